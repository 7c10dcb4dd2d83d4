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
import os
import sys

from ..kernels import BACKENDS, BackendUnavailableError
from . import backends, book
from ._common import EXIT_FAILURE, EXIT_USAGE, REPORTED_ERRORS, UsageError, backend_name, describe, one_line

# Each module adds its jobs with register(jobs); the order is the order of --help.
JOB_MODULES = (book, backends)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", type=backend_name, choices=BACKENDS,
                        help=f"kernel backend ({', '.join(BACKENDS)}); default: $FASTNLP_BACKEND, "
                             "else the fastest that loads")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    jobs = parser.add_subparsers(dest="job", required=True, metavar="{spiral,count,backends}")

    for module in JOB_MODULES:
        module.register(jobs)
    return parser


def _select_backend(args) -> None:
    """Apply --backend, or check $FASTNLP_BACKEND, before any work starts."""
    import fastnlp

    if args.backend:
        try:
            fastnlp.set_backend(args.backend)
        except BackendUnavailableError as exc:
            raise UsageError(f"--backend {args.backend}: {describe(exc)}") from exc
        return
    try:
        fastnlp.get_backend()
    except (ValueError, BackendUnavailableError) as exc:
        from_env = os.environ.get("FASTNLP_BACKEND", "").strip()
        raise UsageError(f"FASTNLP_BACKEND={from_env}: {describe(exc)}") from exc


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
        print(f"fastnlp {args.job}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`fastnlp backends | head -1`): nothing is wrong, and nothing more
        # can be written; point stdout at devnull so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except REPORTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"fastnlp {args.job}: error: {describe(exc)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"fastnlp {args.job}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
