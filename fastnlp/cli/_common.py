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




def existing_file(text: str) -> str:
    """An argparse type: a file that exists (a folder or a missing path is a one-line mistake)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"file {text!r} cannot be read (permission denied)")
    return text


def output_file(option: str, figure: bool = False):
    """An argparse type for an output file: ``check_output_file`` at parse time, so a file that
    cannot be written is refused before any other check or work; with ``figure`` the suffix must
    name an image format matplotlib writes (checked when matplotlib is installed; the job says
    to install it otherwise)."""

    def parse(text: str) -> str:
        try:
            check_output_file(text, option)
        except UsageError as exc:
            message = str(exc)
            if message.startswith(option + " "):
                message = message[len(option) + 1:]
            raise argparse.ArgumentTypeError(message) from None
        if figure:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is not None:
                from ..plot import check_figure_path

                try:
                    check_figure_path(text)
                except ValueError as exc:
                    raise argparse.ArgumentTypeError(one_line(str(exc))) from None
        return text

    parse.__name__ = "file name"
    return parse


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` with each option's default shown (when it has a meaningful one); descriptions
    are wrapped paragraph by paragraph (a blank line separates paragraphs) and lines that start
    with spaces (lists, tables) are kept as written."""

    def _fill_text(self, text, width, indent):
        import textwrap

        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or (lines and lines[0].startswith(" ")):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                                initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(paragraphs)

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        if isinstance(action.default, (list, tuple)):
            if not action.default:
                return text
            return text + " (default: " + " ".join(map(str, action.default)) + ")"
        return text + " (default: %(default)s)"


# ---- where the work ran ---------------------------------------------------------------------------


def _device_of(backend: str) -> str:
    return "GPU" if backend == "cupy" else "CPU"


def ops_resolved_so_far() -> list:
    """Names of the kernel ops this process has resolved (so run, or was about to run), in the
    order of the registry."""
    from ..kernels import registry

    resolved = getattr(registry, "_resolved", {})
    names = {key[0] for key in resolved}
    return [op for op in registry.ops() if op in names]


def where_ops_run(ops=None) -> dict:
    """``{op: backend}``: where each op runs now for NumPy arrays, with the user's choice, the
    per-op defaults and the fallbacks applied (``--backend cupy`` leaves NumPy arrays on the CPU).
    ``ops``: the ops to ask about (default: every op the registry has)."""
    from ..kernels import registry

    finder = getattr(registry, "resolved_backend", None) or registry.backend_for
    return {op: finder(op) for op in (registry.ops() if ops is None else ops)}


def describe_where_ops_ran(ops=None) -> str:
    """A short text of where the kernel ops actually ran, e.g. ``"cooccurrence: cython (CPU),
    ppmi_values: cython (CPU)"``: print it after a job instead of ``fastnlp.get_backend()``, which
    names the backend asked for (``--backend cupy`` names cupy while NumPy arrays run on the CPU).

    ``ops``: the op names to describe; default the ops this process has run so far (the ones
    the kernel registry resolved). Ops of one backend are grouped when there are many. Returns
    ``"no kernel op ran"`` when none did. The op ``gemm`` is reported with the library chosen for
    its default shape class (the calibrated choice can differ by shape)."""
    names = ops_resolved_so_far() if ops is None else list(ops)
    if not names:
        return "no kernel op ran"
    where = where_ops_run(names)
    if len(where) <= 4:
        return ", ".join(f"{op}: {backend} ({_device_of(backend)})" for op, backend in where.items())
    by_backend: dict = {}
    for op, backend in where.items():
        by_backend.setdefault(backend, []).append(op)
    return "; ".join(f"{backend} ({_device_of(backend)}): {', '.join(group)}" for backend, group in by_backend.items())


def describe_active_backend() -> str:
    """One line for ``fastnlp backends``: the backend asked for and what runs NumPy arrays now."""
    from ..kernels import dispatch, registry

    chosen = dispatch.chosen_backend()
    counts: dict = {}
    for op in registry.ops():
        if registry.spec(op).calibration is not None:
            continue  # gemm: chosen per shape class by measurement, listed below
        backend = where_ops_run([op])[op]
        counts[backend] = counts.get(backend, 0) + 1
    runs = ", ".join(f"{backend} ({_device_of(backend)}) for {n} op{'s' if n != 1 else ''}"
                     for backend, n in sorted(counts.items(), key=lambda item: -item[1]))
    if chosen is None:
        return f"active: no backend chosen; each op runs on its fastest backend here: {runs}"
    if chosen == "cupy":
        return (f"active: cupy chosen: CuPy arrays run on the GPU; NumPy arrays still run on the CPU: {runs}")
    return f"active: {chosen} chosen; NumPy arrays run on {runs}"
