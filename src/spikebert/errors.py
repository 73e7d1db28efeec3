"""The one exception type the command line turns into a clear one-line message (exit status 2)."""


class SpikeBertError(Exception):
    """A problem with the user's input, files or models: the message says what and where."""


def located(path, line: int | None, message: str) -> SpikeBertError:
    """An error that names the file (and line, when there is one) it is about."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return SpikeBertError(f"{where}: {message}")
