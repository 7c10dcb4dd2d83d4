"""What every command-line job shares: argument types, output checks, one-line errors."""
from __future__ import annotations

import argparse
import math
import os
import re
import tempfile

from ..kernels import BackendUnavailableError
from ..serialization import is_writable

# What the library documents that it raises for bad input or an unusable machine; anything else
# is a bug and keeps its traceback.
REPORTED_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, RuntimeError, ImportError,
                    ArithmeticError, MemoryError, BackendUnavailableError)

EXIT_USAGE = 2  # argparse's status for a bad command line
EXIT_FAILURE = 1


class UsageError(Exception):
    """A mistake on the command line found after parsing (e.g. ``--k`` larger than the vocabulary)."""


# ---- argument types ---------------------------------------------------------------------------


def int_at_least(low: int, high: int | None = None):
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    if high is not None:
        what = f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def finite_float(low: float | None = None, high: float | None = None, low_open: bool = False):
    """A finite float in [low, high] (or (low, high] with ``low_open``)."""
    if low is None:
        what = "a finite number"
    elif high is None:
        what = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def existing_folder(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"folder {text!r} does not exist")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return text


def backend_name(text: str) -> str:
    return text.strip().lower()


def max_window() -> int | None:
    """The largest window the co-occurrence kernels accept, if the kernels say."""
    import importlib

    for module_name in ("fastnlp.kernels", "fastnlp.kernels.cooccurrence"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        value = getattr(module, "MAX_WINDOW", None)
        if isinstance(value, int):
            return value
    return None


def check_output_file(path: str, option: str) -> None:
    """Fail before any work when ``path`` cannot be written (rather than after a long run)."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a folder; give a file name")
    folder = os.path.dirname(path) or os.curdir
    if not os.path.exists(folder):
        raise UsageError(f"{option} {path!r}: folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path!r}: {folder!r} is not a folder")
    if os.path.exists(path) and not is_writable(path):  # the rule the writer applies, root included
        raise UsageError(f"{option} {path!r}: the file is read-only")
    try:  # the only reliable test (permissions, read-only mounts, root): write something there
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fastnlp-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path!r}: cannot write into folder {folder!r} ({exc.strerror or exc})") from None


def one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):  # numpy's says what it could not allocate; a bare one says nothing
        return "out of memory" + (f": {one_line(str(exc))}" if str(exc) else "") + "; try smaller settings"
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        message = str(exc.args[0])  # str(KeyError) adds quotes around the message
    else:
        message = str(exc)
    message = one_line(message)
    return message or type(exc).__name__


