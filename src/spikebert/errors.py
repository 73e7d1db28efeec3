"""The one exception type the command line turns into a clear one-line message (exit status 2)."""


class SpikeBertError(Exception):
    """A problem with the user's input, files or models: the message says what and where."""


def located(path, line: int | None, message: str) -> SpikeBertError:
    """An error that names the file (and line, when there is one) it is about."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return SpikeBertError(f"{where}: {message}")


def first_line(e: BaseException, typed: bool = False) -> str:
    """The first non-empty line of ``e``'s message, for a one-line error that wraps a library's
    (which may run over many lines, or be empty: then the exception's type name). ``typed``:
    ``"TypeName: first line"``."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    name = type(e).__name__
    if not lines:
        return name
    return f"{name}: {lines[0].strip()}" if typed else lines[0].strip()
