"""The task data as the shared folder holds it: row and label counts, the cut dev splits, the
awkward bytes (MR/Subj 0x85, unquoted ChnSentiCorp quotes, quoted waimai CSV), task-format files
given with --file and user CSV/TSV/JSONL files."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from conftest import run_cli
from spikebert.data.tasks import TASKS, Example, load_data, read_task_file, read_user_file, stratified_split
from spikebert.errors import SpikeBertError

# (train n, dev n, train label counts, dev label counts), counted from the raw files with shell tools
EXPECTED = {
    "sst2": (6920, 872, {"negative": 3310, "positive": 3610}, {"negative": 428, "positive": 444}),
    "sst5": (8544, 1101,
             {"very negative": 1092, "negative": 2218, "neutral": 1624, "positive": 2322, "very positive": 1288},
             {"very negative": 139, "negative": 289, "neutral": 229, "positive": 279, "very positive": 165}),
    # no official split: a seeded 10% per class is cut from the file
    "mr": (8636, 960, {"negative": 4318, "positive": 4318}, {"negative": 480, "positive": 480}),
    "subj": (8100, 900, {"subjective": 4050, "objective": 4050}, {"subjective": 450, "objective": 450}),
    "chnsenti": (9600, 1200, {"negative": 4802, "positive": 4798}, {"negative": 610, "positive": 590}),
    "waimai": (9709, 1079, {"negative": 6469, "positive": 3240}, {"negative": 719, "positive": 360}),
}
TOTAL = {"mr": (9596, (4798, 4798)), "subj": (9000, (4500, 4500)), "waimai": (10788, (7188, 3600))}


@pytest.fixture(scope="module")
def splits(data_dir):
    return {t: (load_data(t, "train", data_dir), load_data(t, "dev", data_dir)) for t in TASKS}


@pytest.mark.parametrize("task", list(EXPECTED))
def test_task_row_and_label_counts(splits, task):
    train, dev = splits[task]
    n_train, n_dev, c_train, c_dev = EXPECTED[task]
    assert (len(train.examples), len(dev.examples)) == (n_train, n_dev)
    assert train.label_counts() == c_train
    assert dev.label_counts() == c_dev
    assert train.labels == dev.labels == TASKS[task].labels
    for ex in train.examples + dev.examples:
        assert ex.text and ex.text == ex.text.strip()
        assert 0 <= ex.label < TASKS[task].num_labels


@pytest.mark.parametrize("task", list(EXPECTED))
def test_data_info_json_reports_the_counts(data_dir, task, capsys):
    assert run_cli(["data", "info", "--task", task, "--data-dir", data_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    n_train, n_dev, c_train, c_dev = EXPECTED[task]
    assert report["task"] == task
    assert report["language"] == TASKS[task].language
    assert report["splits"]["train"]["n"] == n_train and report["splits"]["dev"]["n"] == n_dev
    assert report["splits"]["train"]["labels"] == c_train
    assert report["splits"]["dev"]["labels"] == c_dev


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("SPIKEBERT_DATA", str(data_dir))
    assert len(load_data("sst2", "dev").examples) == 872


@pytest.mark.parametrize("task", ["mr", "subj", "waimai"])
def test_cut_dev_split_is_stratified_disjoint_and_complete(splits, data_dir, task):
    train, dev = splits[task]
    whole = read_task_file(TASKS[task], data_dir / TASKS[task].files["all"])
    n, per_class = TOTAL[task]
    assert len(whole) == n
    assert Counter(ex.label for ex in whole) == dict(enumerate(per_class))
    # every example lands in exactly one split
    assert Counter(train.examples) + Counter(dev.examples) == Counter(whole)
    # 10% of every class, rounded
    dev_counts = Counter(ex.label for ex in dev.examples)
    for label, count in enumerate(per_class):
        assert dev_counts[label] == round(count * 0.1)
    # the order of the file is kept inside each split
    pos = {}
    for i, ex in enumerate(whole):
        pos.setdefault(ex, []).append(i)
    for part in (train.examples, dev.examples):
        idx = [pos[ex][0] for ex in part]
        assert idx == sorted(idx)


@pytest.mark.parametrize("task", ["mr", "subj", "waimai"])
def test_cut_dev_split_is_the_same_on_every_call(splits, data_dir, task):
    train, dev = splits[task]
    again_dev = load_data(task, "dev", data_dir)
    again_train = load_data(task, "train", data_dir)
    assert again_dev.examples == dev.examples
    assert again_train.examples == train.examples


def _digest(examples) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.label}\t{ex.text}\n".encode())
    return h.hexdigest()


def test_cut_dev_split_is_the_same_in_another_process(splits, data_dir):
    """No dependence on hash randomisation or process state: a fresh interpreter with another
    PYTHONHASHSEED cuts the same dev splits."""
    code = ("import hashlib, sys\n"
            "from spikebert.data.tasks import load_data\n"
            "for t in ('mr', 'subj', 'waimai'):\n"
            "    h = hashlib.sha256()\n"
            "    for ex in load_data(t, 'dev', sys.argv[1]).examples:\n"
            "        h.update(f'{ex.label}\\t{ex.text}\\n'.encode())\n"
            "    print(t, h.hexdigest())\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = dict(line.split() for line in out.stdout.strip().splitlines())
    assert got == {t: _digest(splits[t][1].examples) for t in ("mr", "subj", "waimai")}


def test_stratified_split_other_seed_differs_and_keeps_proportions():
    examples = [Example(f"text {i}", i % 3) for i in range(300)]
    a_train, a_dev = stratified_split(examples)
    b_train, b_dev = stratified_split(examples, seed=1)
    assert a_dev != b_dev
    for dev in (a_dev, b_dev):
        assert Counter(ex.label for ex in dev) == {0: 10, 1: 10, 2: 10}
    # a class of one example still gives dev one example of it (max(1, ...)), and nothing is lost
    tiny = [Example("a", 0), Example("b", 1), Example("c", 1)]
    tr, dv = stratified_split(tiny)
    assert sorted(tr + dv, key=lambda e: e.text) == tiny


@pytest.mark.parametrize("task,n_lines", [("mr", 21), ("subj", 18)])
def test_latin1_0x85_lines_stay_one_example(splits, data_dir, task, n_lines):
    raw = (data_dir / TASKS[task].files["all"]).read_bytes()
    lines = [ln for ln in raw.split(b"\n") if b"\x85" in ln]
    assert len(lines) == n_lines
    train, dev = splits[task]
    have = Counter((ex.label, ex.text) for ex in train.examples + dev.examples)
    wants = []
    for ln in lines:
        label, _, sentence = ln.decode("latin-1").strip().partition(" ")
        want = sentence.strip()
        assert have[(int(label), want)] >= 1, f"{task}: line {ln[:60]!r}... was not read as one example"
        wants.append(want)
    inside = [w for w in wants if "\x85" in w]
    assert inside  # the byte in the middle of a sentence is kept, not a line break
    # and no example is a piece of such a sentence
    pieces = {p.strip() for w in inside for p in w.split("\x85") if p.strip()}
    texts = {ex.text for ex in train.examples + dev.examples}
    assert not (pieces & texts)


def test_chnsenti_texts_with_double_quotes_are_read_whole(splits, data_dir):
    train, dev = splits["chnsenti"]
    for name, split in (("train.tsv", train), ("dev.tsv", dev)):
        raw = (data_dir / "chnsenti" / name).read_text(encoding="utf-8").split("\n")
        quoted = [ln for ln in raw[1:] if '"' in ln]
        assert quoted, name
        texts = Counter((ex.label, ex.text) for ex in split.examples)
        for ln in quoted:
            label, text = ln.split("\t")
            assert texts[(int(label.strip()), text.strip())] >= 1, f"{name}: {ln[:50]!r} not read whole"
        # every line of the file is one example, in order
        rows = [ln.split("\t") for ln in raw[1:] if ln.strip()]
        assert [ex.text for ex in split.examples] == [t.strip() for _, t in rows]


def test_waimai_quoted_csv(data_dir, splits):
    with open(data_dir / "waimai" / "waimai_10k.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    whole = read_task_file(TASKS["waimai"], data_dir / "waimai" / "waimai_10k.csv")
    assert [(ex.label, ex.text) for ex in whole] == [(int(lab), txt.strip()) for lab, txt in rows]
    assert any("," in ex.text for ex in whole)  # commas inside quoted fields stay in the text


# ---------------------------------------------------------------------------------------------
# --file PATH with --task: a file in the task's own format


def test_task_format_file_sst(tmp_path, capsys):
    f = tmp_path / "test.txt"
    f.write_text("1 a fine , funny film .\n\n0 dull\r\n1   spaced   out  \n", encoding="utf-8")
    data = load_data("sst2", file=str(f))
    assert [(e.label, e.text) for e in data.examples] == [(1, "a fine , funny film ."), (0, "dull"),
                                                          (1, "spaced   out")]
    assert data.labels == TASKS["sst2"].labels and data.source == str(f)
    assert run_cli(["data", "info", "--task", "sst2", "--file", f, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["file"]["n"] == 3
    assert report["splits"]["file"]["labels"] == {"negative": 1, "positive": 2}


def test_task_format_file_mr_latin1(tmp_path):
    f = tmp_path / "mr-test.txt"
    f.write_bytes(b"0 too long\x85and too dull\n1 caf\xe9 society\n")
    data = load_data("mr", file=str(f))
    assert [(e.label, e.text) for e in data.examples] == [(0, "too long\x85and too dull"), (1, "café society")]


def test_task_format_file_chnsenti_tsv(tmp_path):
    f = tmp_path / "test.tsv"
    f.write_text('label\ttext_a\n1\t一个字"好"!\n 0 \t他说"不\n1\t"全引号"\n', encoding="utf-8")
    data = load_data("chnsenti", file=str(f))
    assert [(e.label, e.text) for e in data.examples] == [(1, '一个字"好"!'), (0, '他说"不'), (1, '"全引号"')]


def test_task_format_file_waimai_csv(tmp_path):
    f = tmp_path / "test.csv"
    with open(f, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["label", "review"], [1, '很好,"快"'], [0, "两行\n的评论"], [0, "慢"]])
    data = load_data("waimai", file=str(f))
    assert [(e.label, e.text) for e in data.examples] == [(1, '很好,"快"'), (0, "两行\n的评论"), (0, "慢")]


def test_task_file_labels_may_be_names(tmp_path):
    f = tmp_path / "named.txt"
    f.write_text("positive great\nnegative awful\n", encoding="utf-8")
    assert [(e.label, e.text) for e in load_data("sst2", file=str(f)).examples] == [(1, "great"), (0, "awful")]


# ---------------------------------------------------------------------------------------------
# User files: CSV / TSV / JSONL with --text-column / --label-column


def test_user_csv_with_columns(tmp_path, capsys):
    f = tmp_path / "reviews.csv"
    with open(f, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sentiment", "body"])
        w.writerows([[1, "pos", "good, really"], [2, "neg", 'bad "very"'], [3, "pos", "ok\nfine"], [4, "mixed", "hm"]])
    data = load_data(None, file=str(f), text_column="body", label_column="sentiment")
    assert data.labels == ("mixed", "neg", "pos")  # sorted distinct labels
    assert [(e.label, e.text) for e in data.examples] == [(2, "good, really"), (1, 'bad "very"'), (2, "ok\nfine"),
                                                          (0, "hm")]
    assert run_cli(["data", "info", "--file", f, "--text-column", "body", "--label-column", "sentiment",
                    "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["mixed", "neg", "pos"]
    assert report["splits"]["file"]["labels"] == {"mixed": 1, "neg": 1, "pos": 2}


def test_user_tsv_with_bom_and_digit_labels(tmp_path):
    f = tmp_path / "data.tsv"
    f.write_text("\ufefftext\tlabel\nfirst\t0\nsecond\t2\nthird\t1\n", encoding="utf-8")
    exs, names = read_user_file(f)
    assert names == ("0", "1", "2")
    assert [(e.label, e.text) for e in exs] == [(0, "first"), (2, "second"), (1, "third")]


def test_user_jsonl_with_columns(tmp_path, capsys):
    f = tmp_path / "data.jsonl"
    rows = [{"sentence": "a \"quoted\" one", "y": 1}, {"sentence": "多字节", "y": 0},
            {"sentence": "x\u2028y", "y": 1}]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    data = load_data(None, file=str(f), text_column="sentence", label_column="y")
    assert data.labels == ("0", "1")
    assert [(e.label, e.text) for e in data.examples] == [(1, 'a "quoted" one'), (0, "多字节"), (1, "x\u2028y")]
    assert run_cli(["data", "info", "--file", f, "--text-column", "sentence", "--label-column", "y", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["file"]["labels"] == {"0": 1, "1": 2}


def test_user_file_labels_fixed_by_caller(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label\nfine,positive\nbad,negative\n", encoding="utf-8")
    exs, names = read_user_file(f, label_names=("negative", "positive"))
    assert names == ("negative", "positive") and [e.label for e in exs] == [1, 0]
    f.write_text("text,label\nfine,great\n", encoding="utf-8")
    with pytest.raises(SpikeBertError, match=r"d\.csv:2"):
        read_user_file(f, label_names=("negative", "positive"))


def test_user_file_with_minus_one_labels(tmp_path):
    """-1/1 is a common way to write binary sentiment; the classes are the file's labels ("-1", "1")."""
    f = tmp_path / "pm.csv"
    f.write_text("text,label\nawful,-1\ngreat,1\nmeh,-1\n", encoding="utf-8")
    exs, names = read_user_file(f)
    assert names == ("-1", "1")
    assert [names[e.label] for e in exs] == ["-1", "1", "-1"]


def test_user_file_label_names_that_look_like_numbers(tmp_path):
    """Labels are names when the file's classes are names: "1" is the class named "1", not class
    index 1 (which here is the class named "2")."""
    f = tmp_path / "stars.csv"
    f.write_text("text,label\nbad,1\ngood,2\nunsure,x\n", encoding="utf-8")
    exs, names = read_user_file(f)
    assert names == ("1", "2", "x")
    assert [names[e.label] for e in exs] == ["1", "2", "x"]


def test_user_file_unknown_suffix(tmp_path):
    f = tmp_path / "data.xlsx"
    f.write_bytes(b"PK\x03\x04")
    with pytest.raises(SpikeBertError, match="unknown file type"):
        read_user_file(f)


def test_limit_keeps_the_first_examples(data_dir):
    full = load_data("sst2", "train", data_dir)
    part = load_data("sst2", "train", data_dir, limit=17)
    assert part.examples == full.examples[:17]


def test_user_txt_file_is_a_label_then_the_text(tmp_path):
    """The plain `<label> <text>` line format (TREC's, Kim's) as a user file: label names stay names."""
    f = tmp_path / "trec.txt"
    f.write_text("DESC how did serfdom develop ?\nLOC where is the eiffel tower ?\n\nDESC what is a caldera ?\n",
                 encoding="utf-8")
    exs, names = read_user_file(f)
    assert names == ("DESC", "LOC")
    assert [(names[e.label], e.text) for e in exs] == [("DESC", "how did serfdom develop ?"),
                                                       ("LOC", "where is the eiffel tower ?"),
                                                       ("DESC", "what is a caldera ?")]


# ---------------------------------------------------------------------------------------------
# A run's own data: train, dev (a file or a seeded stratified cut), test


def _rows(path, rows, header=("text", "label")):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def test_user_splits_cut_a_stratified_dev_split_or_read_the_dev_file(tmp_path):
    from spikebert.data.tasks import DEV_SEED, user_splits

    rows = [(f"text {i}", ("LOC", "DESC", "HUM")[i % 3]) for i in range(60)]
    train = _rows(tmp_path / "q.csv", rows)
    cut = user_splits(train, labels=("LOC", "DESC", "HUM"))
    assert cut.train.labels == ("LOC", "DESC", "HUM") and cut.train.name == "q"
    assert Counter(cut.dev.label_counts().values()) == {2: 3}  # 10 % of each class
    whole, _ = read_user_file(train, label_names=("LOC", "DESC", "HUM"))
    assert (cut.train.examples, cut.dev.examples) == stratified_split(whole)
    assert cut.record["dev_cut"] == {"fraction": 0.1, "seed": DEV_SEED, "stratified": True}
    dev = _rows(tmp_path / "q-dev.csv", [("a new one", "HUM")])
    given = user_splits(train, dev, name="questions")
    assert given.train.labels == ("DESC", "HUM", "LOC")  # sorted, without --labels
    assert len(given.train.examples) == 60 and given.dev.examples == [Example("a new one", 1)]
    assert given.train.name == "questions" and given.record["dev_cut"] is None
    assert given.record["fingerprint"] != user_splits(train, dev, labels=("LOC", "DESC", "HUM")).record["fingerprint"]


@pytest.mark.parametrize("which", ["dev", "test"])
def test_a_held_out_label_the_training_file_never_has_is_refused(tmp_path, which):
    from spikebert.data.tasks import user_splits

    train = _rows(tmp_path / "t.csv", [("a", "pos"), ("b", "pos"), ("c", "neg"), ("d", "neg")])
    other = _rows(tmp_path / "o.csv", [("e", "pos"), ("f", "mixed")])
    with pytest.raises(SpikeBertError, match=rf"o\.csv:3: label 'mixed' never occurs in the training file .*t\.csv "
                                             r"\(its classes: neg, pos\)"):
        user_splits(train, **{f"{which}_file": other})
