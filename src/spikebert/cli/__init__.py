"""The ``spikebert`` command line: one Typer app, commands grouped by module.

Every command's user-facing failure is a :class:`SpikeBertError`, printed as one line
``error: ...`` with exit status 2 (no traceback).
"""

from __future__ import annotations

import sys

import click
import typer

from spikebert.errors import SpikeBertError

# help texts are plain text: rich markup would eat brackets such as pip's extras ('.[mpnet]')
PLAIN = {"no_args_is_help": True, "rich_markup_mode": None}
app = typer.Typer(help="Distil a BERT-family encoder into a spiking Transformer text classifier (SpikeBERT).",
                  pretty_exceptions_enable=False, add_completion=False, **PLAIN)
teacher_app = typer.Typer(help="Teachers: fine-tune a BERT, pre-train one from scratch.", **PLAIN)
distill_app = typer.Typer(help="The two distillation stages.", **PLAIN)
data_app = typer.Typer(help="Look at task data.", **PLAIN)
tokenizer_app = typer.Typer(help="Train a WordPiece tokenizer.", **PLAIN)
app.add_typer(teacher_app, name="teacher")
app.add_typer(distill_app, name="distill")
app.add_typer(data_app, name="data")
app.add_typer(tokenizer_app, name="tokenizer")

# command modules register themselves on the apps above
from spikebert.cli import data_cmds, energy_cmds, report_cmds, train_cmds, zh_cmds  # noqa: E402,F401


# the click that typer runs on: click itself, or the copy newer typer releases carry inside them;
# a usage error raised by either is one line, not a traceback
_CLICKS = (click.exceptions, typer, sys.modules[typer.BadParameter.__module__])


def _raised(name: str) -> tuple[type, ...]:
    """The exception class ``name`` of every click that typer may run on."""
    return tuple({getattr(m, name) for m in _CLICKS if hasattr(m, name)})


_ABORT, _EXIT, _USAGE = _raised("Abort"), _raised("Exit"), _raised("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="spikebert", standalone_mode=False)
    except SpikeBertError as e:
        _close_progress_bars()  # the error line must not be glued to a bar left open
        print(f"error: {e}", file=sys.stderr)
        return 2
    except _ABORT:
        print("error: aborted", file=sys.stderr)
        return 130
    except _EXIT as e:
        return e.exit_code
    except _USAGE as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def _close_progress_bars() -> None:
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def console() -> None:
    """The ``spikebert`` console script."""
    sys.exit(main())
