"""``fastnlp precision <study> --out DIR``: the precision studies of ``fastnlp.precision``."""
from __future__ import annotations

import os

from ._common import UsageError, existing_folder


def _precision(args) -> int:
    from fastnlp import precision

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} is a file; give a folder")
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        report = precision.run_study(args.study, args.out, quick=args.quick, data_dir=args.data_dir,
                                     progress=not args.quiet, client=client)
    finally:
        if client is not None:
            client.close()
    print(f"report written to {report}")
    return 0


def _connect(address):
    """A Dask client of the scheduler at ``address``; one clear line when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask's distributed scheduler: pip install 'fastnlp[dask]'") from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--scheduler {address!r}: cannot connect to a Dask scheduler there ({exc})") from None


def register(jobs) -> None:
    from fastnlp import precision

    studies = "\n".join(f"  {name:8s} {text}" for name, text in precision.STUDY_HELP.items())
    parser = jobs.add_parser(
        "precision", help="fp16/bf16/fp8 precision studies: " + ", ".join(precision.STUDIES),
        description="Run a precision study and write a Markdown report (tables, PNG plots when matplotlib is "
                    "installed) into --out. Each measured row is kept as soon as it exists, so running the "
                    f"same command again carries on where a stopped run stopped.\n\nstudies:\n{studies}")
    parser.add_argument("study", choices=precision.STUDIES, help="which study: " + ", ".join(precision.STUDIES))
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the report, its data and plots "
                                                                     "(created when missing)")
    parser.add_argument("--quick", action="store_true", help="small models and data: minutes on two cores")
    parser.add_argument("--data-dir", type=existing_folder, help="folder holding ptb/, seq/ and eval/ "
                                                                  "(default: $FASTNLP_DATA, then the user cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run each configuration as a task on the Dask scheduler at ADDRESS "
                             "(tcp://host:8786); needs the dask extra")
    parser.set_defaults(run=_precision)
