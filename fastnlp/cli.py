"""Command line: ``fastnlp <job>`` (also ``python -m fastnlp``).

Jobs:
  count      PPMI + SVD word vectors on PTB, most-similar words and WordSim-353 (ch. 2)
  spiral     train the book's two-layer net on the spiral data (ch. 1)
  backends   list the kernel backends and why any does not load

A mistake (a bad option, a missing folder, a backend that cannot load here) is reported as one
``fastnlp: error: ...`` line on stderr with a non-zero exit status: 2 for a bad command line, 1 when
the job itself fails. ``--debug`` shows the Python traceback instead.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import sys
import tempfile
import time

from .kernels import BACKENDS, BackendUnavailableError
from .serialization import is_writable

# What the library documents that it raises for bad input or an unusable machine; anything else
# is a bug and keeps its traceback.
_REPORTED_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, RuntimeError, ImportError,
                    ArithmeticError, MemoryError, BackendUnavailableError)

EXIT_USAGE = 2  # argparse's status for a bad command line
EXIT_FAILURE = 1


class UsageError(Exception):
    """A mistake on the command line found after parsing (e.g. ``--k`` larger than the vocabulary)."""


# ---- argument types ---------------------------------------------------------------------------


def _int_at_least(low: int, high: int | None = None):
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


def _finite_float(low: float | None = None, high: float | None = None, low_open: bool = False):
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


def _existing_folder(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"folder {text!r} does not exist")
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return text


def _backend_name(text: str) -> str:
    return text.strip().lower()


def _max_window() -> int | None:
    """The largest window the co-occurrence kernels accept, if the kernels say."""
    for module_name in ("fastnlp.kernels", "fastnlp.kernels.cooccurrence", "fastnlp.kernels.ops"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        value = getattr(module, "MAX_WINDOW", None)
        if isinstance(value, int):
            return value
    return None


def _check_output_file(path: str, option: str) -> None:
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


# ---- jobs -------------------------------------------------------------------------------------

SPIRAL_EVAL_INTERVAL = 10


def _spiral(args) -> int:
    if args.plot:
        _check_output_file(args.plot, "--plot")
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib: pip install 'fastnlp[plot]'")
        from fastnlp.plot import check_figure_path

        try:
            check_figure_path(args.plot)
        except ValueError as exc:
            raise UsageError(f"--plot {args.plot!r}: {_describe(exc)}") from None

    import fastnlp
    from fastnlp.datasets import load_spiral

    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, args.hidden, 3, seed=args.seed)
    trainer = fastnlp.Trainer(model, fastnlp.optim.SGD(lr=args.lr), seed=args.seed)
    # The loss is recorded every 10 iterations; a short run records it at its end instead of never.
    iterations = args.epochs * max(len(x) // args.batch_size, 1)
    start = time.perf_counter()
    history = trainer.fit(x, t, max_epoch=args.epochs, batch_size=args.batch_size,
                          eval_interval=min(SPIRAL_EVAL_INTERVAL, iterations), progress=not args.quiet)
    if not history:
        raise RuntimeError(f"no loss was recorded in {args.epochs} epochs")
    print(f"spiral: {args.epochs} epochs in {time.perf_counter() - start:.2f} s, "
          f"final loss {history[-1]:.4f}, training accuracy {model.accuracy(x, t):.1%}")
    if args.plot:
        trainer.plot(args.plot)
        print(f"loss curve written to {args.plot}")
    return 0


BOOK_QUERIES = ("you", "year", "car", "toyota")


def _count(args) -> int:
    if args.save:
        _check_output_file(args.save, "--save")

    from fastnlp.count import count_vectors
    from fastnlp.datasets import load_ptb
    from fastnlp.datasets._files import find_or_fetch

    import fastnlp

    start = time.perf_counter()
    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = [id_to_word[i] for i in range(len(id_to_word))]
    if args.k >= len(words):
        raise UsageError(f"--k {args.k} must be smaller than the vocabulary ({len(words):,} words)")
    print(f"PTB train: {len(corpus):,} tokens, {len(words):,} words ({time.perf_counter() - start:.2f} s to load)")
    timings = {}
    vectors = count_vectors(corpus, words, window=args.window, k=args.k, power=args.power, alpha=args.alpha,
                            boundary_id=word_to_id["<eos>"] if args.sentences else None,
                            method=args.svd, seed=args.seed, timings=timings)
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    print(f"PPMI + SVD (window {args.window}, k {args.k}, backend {fastnlp.get_backend()}): {stages}, "
          f"total {sum(timings.values()):.2f} s")
    for query in args.queries:
        if query not in vectors:
            print(f"\n[query] {query}: not in the vocabulary")
            continue
        print(f"\n[query] {query}")
        for word, score in vectors.most_similar(query, top=5):
            print(f" {word}: {score:.3f}")
    result = vectors.evaluate_word_pairs(find_or_fetch("eval/wordsim353.tsv", args.data_dir))
    print(f"\nWordSim-353: Spearman {result['spearman']:.3f} over {result['pairs']} pairs "
          f"({result['oov_ratio']:.1%} out of vocabulary)")
    if args.save:
        vectors.save_word2vec_format(args.save, binary=args.save.endswith(".bin"))
        print(f"vectors saved to {args.save}")
    return 0


def _library_details(name, why) -> str:
    """For a matrix library that loads: its version, threading, and how it runs bfloat16 here."""
    from fastnlp.kernels import dispatch

    if why is not None or name not in dispatch.LIBRARY_BACKENDS:
        return ""
    from fastnlp.kernels.gemm import _libraries

    return f" ({_libraries.describe(name)})"


def _backends(args) -> int:
    import fastnlp

    from fastnlp.kernels import dispatch, registry

    for name, why in fastnlp.available_backends().items():
        print(f"{name:7s} {'ok' if why is None else 'unavailable: ' + why}{_library_details(name, why)}")
    chosen = dispatch.chosen_backend()
    print(f"active: {chosen or 'per-op default (fastest measured backend that has the op)'}\n")
    print(registry.matrix())
    print("\nruns on now: " + ", ".join(f"{op} -> {registry.backend_for(op)}" for op in registry.ops()
                                        if registry.spec(op).calibration is None))
    from fastnlp.kernels.gemm import calibration

    measured = calibration.calibrate(refresh=True) if args.calibrate else calibration.measurements()
    print("\nmatrix products (gemm), the library measured fastest per class, GFLOP/s"
          + ("" if measured else ": nothing measured yet (fastnlp backends --calibrate measures now)"))
    for variant, ranking in sorted(measured.items()):
        print(f"  {variant:18s} " + ", ".join(f"{backend} {gflops:.0f}" for backend, gflops in ranking))
    return 0


# ---- parser and entry point -------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    positive = _int_at_least(1)
    parser = _Parser(prog="fastnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", type=_backend_name, choices=BACKENDS,
                        help=f"kernel backend ({', '.join(BACKENDS)}); default: $FASTNLP_BACKEND, "
                             "else the fastest that loads")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    jobs = parser.add_subparsers(dest="job", required=True, metavar="{spiral,count,backends}")

    spiral = jobs.add_parser("spiral", help="train the two-layer net on the spiral data")
    spiral.add_argument("--hidden", type=positive, default=10)
    spiral.add_argument("--epochs", type=positive, default=300)
    spiral.add_argument("--batch-size", type=positive, default=30)
    spiral.add_argument("--lr", type=_finite_float(0.0, low_open=True), default=1.0)
    spiral.add_argument("--seed", type=_int_at_least(0), default=0)
    spiral.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    spiral.add_argument("--quiet", action="store_true", help="no progress bar")
    spiral.set_defaults(run=_spiral)

    count = jobs.add_parser("count", help="PPMI + SVD word vectors on PTB (book ch. 2)")
    count.add_argument("--data-dir", type=_existing_folder,
                       help="folder holding ptb/ and eval/ (default: $FASTNLP_DATA, "
                            "then the user cache, downloading when missing)")
    max_window = _max_window()
    count.add_argument("--window", type=_int_at_least(1, max_window), default=2,
                       help="context words on each side" + (f" (1 to {max_window})" if max_window else ""))
    count.add_argument("--k", type=positive, default=100,
                       help="vector size (number of singular vectors; less than the vocabulary size)")
    count.add_argument("--power", type=_finite_float(), default=1.0, help="vectors = U * S**power")
    count.add_argument("--alpha", type=_finite_float(0.0, 1.0, low_open=True), default=None,
                       help="context smoothing in (0, 1], e.g. 0.75")
    count.add_argument("--svd", choices=("randomized", "arpack"), default="arpack",
                       help="ARPACK is exact and, at k = 100 on PTB, faster than randomized")
    count.add_argument("--sentences", action="store_true", help="do not count pairs across <eos>")
    count.add_argument("--seed", type=_int_at_least(0), default=0)
    count.add_argument("--queries", nargs="*", default=list(BOOK_QUERIES))
    count.add_argument("--save", help="write the vectors in word2vec format (.bin: binary)")
    count.set_defaults(run=_count)

    backends = jobs.add_parser("backends", help="list kernel backends")
    backends.add_argument("--calibrate", action="store_true",
                          help="time the matrix libraries at the models' shapes now (a few seconds) and keep the "
                               "result for this machine")
    backends.set_defaults(run=_backends)
    return parser


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):  # numpy's says what it could not allocate; a bare one says nothing
        return "out of memory" + (f": {_one_line(str(exc))}" if str(exc) else "") + "; try smaller settings"
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        message = str(exc.args[0])  # str(KeyError) adds quotes around the message
    else:
        message = str(exc)
    message = _one_line(message)
    return message or type(exc).__name__


def _select_backend(args) -> None:
    """Apply --backend, or check $FASTNLP_BACKEND, before any work starts."""
    import fastnlp

    if args.backend:
        try:
            fastnlp.set_backend(args.backend)
        except BackendUnavailableError as exc:
            raise UsageError(f"--backend {args.backend}: {_describe(exc)}") from exc
        return
    try:
        fastnlp.get_backend()
    except (ValueError, BackendUnavailableError) as exc:
        from_env = os.environ.get("FASTNLP_BACKEND", "").strip()
        raise UsageError(f"FASTNLP_BACKEND={from_env}: {_describe(exc)}") from exc


def main(argv=None) -> int:
    """Run the command line; returns the exit status (argparse exits with 2 on a bad command line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _select_backend(args)
        return args.run(args)
    except UsageError as exc:
        if args.debug:
            raise
        print(f"fastnlp {args.job}: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`fastnlp backends | head -1`): nothing is wrong, and nothing more
        # can be written; point stdout at devnull so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except _REPORTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"fastnlp {args.job}: error: {_describe(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"fastnlp {args.job}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
