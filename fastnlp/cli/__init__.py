"""Command line: fastnlp JOB [options] (also python -m fastnlp JOB).

Every job's options: fastnlp JOB --help. Without a job, fastnlp prints this help and exits 0.

A mistake (a bad option, a missing file or folder, an unknown word, a backend that cannot load
here) is reported as one "fastnlp JOB: error: ..." line on stderr with a non-zero exit status:
2 for a bad command line, 1 when the job itself fails. --debug shows the Python traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..kernels import BACKENDS, BackendUnavailableError
from ..kernels.dispatch import AUTO
from . import backends, bench, book, download, precision, train, vectors
from ._common import (EXIT_FAILURE, EXIT_USAGE, REPORTED_ERRORS, HelpFormatter, UsageError, backend_name, describe,
                      one_line)

# Each module adds its jobs with register(jobs); the order is the order of --help.
JOB_MODULES = (train, book, vectors, precision, download, bench, backends)

DESCRIPTION = "The NLP systems of 'Deep Learning from Scratch 2', with compiled kernels, from the shell."
EPILOG = __doc__.split("\n", 2)[2].strip()


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage block) and exit status 2; every
    parser (the jobs' too) shows the options' defaults in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def _version() -> str:
    import fastnlp

    return f"fastnlp {fastnlp.__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastnlp", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print 'fastnlp VERSION' and exit")
    parser.add_argument("--backend", type=backend_name, choices=BACKENDS + (AUTO,),
                        help=f"kernel backend ({', '.join(BACKENDS)}, or {AUTO}: each op on its fastest measured "
                             "here); default: $FASTNLP_BACKEND, else auto")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    jobs = parser.add_subparsers(dest="job", title="jobs", metavar="JOB")
    for module in JOB_MODULES:
        module.register(jobs)
    return parser


def _select_backend(args) -> None:
    """Apply --backend, or check $FASTNLP_BACKEND, before any work starts; check $FASTNLP_MAX_ISA."""
    import fastnlp
    from fastnlp.kernels import cpu

    try:
        cpu.isa_cap()
    except ValueError as exc:
        raise UsageError(describe(exc)) from exc

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
    """Run the command line; returns the exit status (argparse exits with 2 on a bad command line).

    Without a job (``fastnlp`` alone, or only ``--backend``/``--debug``) the help, with its list
    of jobs, goes to stdout and the status is 0: asking what there is to do is not a mistake."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.job is None:
        parser.print_help()
        return 0
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
