"""``fastnlp download``: fetch the data sets from their public homes, each checked against its sha256."""
from __future__ import annotations

import os

from ._common import UsageError

GROUP_HELP = {
    "ptb": "Penn Treebank, the language-modelling split (train, valid, test)",
    "seq": "the book's addition and date tasks (ch. 7-8)",
    "eval": "WordSim-353 and the Google analogy questions",
    "sentiment": "sentence polarity (movie reviews, positive and negative)",
}


def _download(args) -> int:
    from fastnlp.datasets import _files

    home = _files.data_home(args.data_dir)
    if home.exists() and not home.is_dir():
        raise UsageError(f"--data-dir {str(home)!r} is a file, not a folder")
    files = _files.files_of(args.sets)
    print(f"data folder: {home}")
    counts = {"present": 0, "downloaded": 0}

    def report(name, path, status):
        if status in counts:
            counts[status] += 1
            what = "already there, sha256 ok" if status == "present" else "downloaded, sha256 ok"
            print(f"  {name}: {what} ({path}, {os.path.getsize(path):,} bytes)", flush=True)
        else:
            print(f"  {name}: FAILED", flush=True)

    _files.download(files, home, report=report)
    print(f"{len(files)} files ready: {counts['downloaded']} downloaded, {counts['present']} already there")
    return 0


def register(jobs) -> None:
    from fastnlp.datasets._files import DATA_ENV_VAR

    sets = "\n".join(f"  {name:10s} {text}" for name, text in GROUP_HELP.items())
    download = jobs.add_parser(
        "download", help="fetch the data sets (sha256 checked): ptb, seq, eval, sentiment, all",
        description="Fetch data sets from their public homes into the data folder, each file checked against "
                    "its recorded sha256 before it is written (atomically). Files already there with the right "
                    "sum are skipped; a file there with another sum is reported and left alone (delete it to "
                    f"download it again).\n\nsets:\n{sets}\n  all        every set above")
    download.add_argument("sets", metavar="SET", nargs="+", choices=(*GROUP_HELP, "all"),
                          help="what to fetch: " + ", ".join((*GROUP_HELP, "all")))
    download.add_argument("--data-dir", metavar="DIR",
                          help=f"the data folder, created when missing (default: ${DATA_ENV_VAR}, else "
                               "~/.cache/fastnlp); the jobs' --data-dir reads it")
    download.set_defaults(run=_download)
