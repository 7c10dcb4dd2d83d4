"""Locating data files: the data folder, downloads checked against known sha256 sums, caches.

A file is looked for in the data folder first; only when it is missing is it fetched from its
public home, checked against the sum recorded here, and written atomically, so a half-written
or tampered download is never used.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..serialization import atomic_write, is_writable

log = logging.getLogger(__name__)

DATA_ENV_VAR = "FASTNLP_DATA"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str


_BOOK_REPO = "https://raw.githubusercontent.com/oreilly-japan/deep-learning-from-scratch-2/master/dataset/"
_PTB_REPO = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/"
_GENSIM_TEST_DATA = "https://raw.githubusercontent.com/piskvorky/gensim/develop/gensim/test/test_data/"
_SENTIMENT_REPO = "https://raw.githubusercontent.com/dennybritz/cnn-text-classification-tf/master/data/rt-polaritydata/"

# Keyed by the path inside the data folder; the sums are those of the project's shared copies.
KNOWN_FILES: dict[str, RemoteFile] = {
    "ptb/ptb.train.txt": RemoteFile(
        _PTB_REPO + "ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    "ptb/ptb.valid.txt": RemoteFile(
        _PTB_REPO + "ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    "ptb/ptb.test.txt": RemoteFile(
        _PTB_REPO + "ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    "seq/addition.txt": RemoteFile(
        _BOOK_REPO + "addition.txt", "34e0746f5014c11311c9452ee9050bf14e38eca44ec4aaf4d81eba2b38674009"),
    "seq/date.txt": RemoteFile(
        _BOOK_REPO + "date.txt", "62e66a301ce8537868e725512d2a45663fc366526b7e42028cb703bda2b1c79a"),
    "eval/wordsim353.tsv": RemoteFile(
        _GENSIM_TEST_DATA + "wordsim353.tsv", "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d"),
    "eval/questions-words.txt": RemoteFile(
        _GENSIM_TEST_DATA + "questions-words.txt", "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36"),
    "sentiment/rt-polarity.pos": RemoteFile(
        _SENTIMENT_REPO + "rt-polarity.pos", "4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58"),
    "sentiment/rt-polarity.neg": RemoteFile(
        _SENTIMENT_REPO + "rt-polarity.neg", "2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd"),
}

# The sets of files ``download`` (and ``fastnlp download``) fetches by name.
FILE_GROUPS: dict[str, tuple[str, ...]] = {
    "ptb": ("ptb/ptb.train.txt", "ptb/ptb.valid.txt", "ptb/ptb.test.txt"),
    "seq": ("seq/addition.txt", "seq/date.txt"),
    "eval": ("eval/wordsim353.tsv", "eval/questions-words.txt"),
    "sentiment": ("sentiment/rt-polarity.pos", "sentiment/rt-polarity.neg"),
}


class ChecksumError(ValueError):
    """A file's sha256 is not the one recorded for it (a corrupt, truncated or altered copy)."""


class DataFetchError(OSError):
    """A missing data file could not be downloaded."""


def cache_home() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/fastnlp``, else ``~/.cache/fastnlp``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fastnlp"


def data_home(data_dir=None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$FASTNLP_DATA``, else ``cache_home()``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR, "")
    if from_env:
        return Path(from_env).expanduser()
    return cache_home()


def sha256_of(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def fetch_url_bytes(url: str, timeout: float = 60.0) -> bytes:
    """Everything at ``url`` (the one place that touches the network, so tests can replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def is_writable_folder(folder) -> bool:
    """Whether we may write into ``folder``: the rule ``atomic_write`` applies, so a folder
    shown read-only counts as read-only even for root and shared data is never littered."""
    try:
        st = os.stat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and is_writable(folder, st)


def _candidates(home: Path, relative_name: str) -> list[Path]:
    # The shared data keeps a subfolder (ptb/ptb.train.txt); a flat folder of files works too.
    nested = home / relative_name
    flat = home / Path(relative_name).name
    return [nested] if flat == nested else [nested, flat]


def _check_sum(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(f"{path} has sha256 {actual}, expected {expected}: the copy is corrupt or altered; "
                            "delete it to have it downloaded again, or pass verify=False to use it as it is")


def find_or_fetch(relative_name: str, data_dir=None, verify: bool = False) -> Path:
    """Path of the data file ``relative_name`` (e.g. ``"ptb/ptb.train.txt"``).

    Looks in ``data_home(data_dir)`` at ``<dir>/<relative_name>`` and then ``<dir>/<file name>``.
    A missing file listed in ``KNOWN_FILES`` is downloaded to ``<dir>/<relative_name>`` and
    checked against its sha256 before it is written (a mismatch raises ``ChecksumError`` and
    leaves nothing behind). Local files are trusted unless ``verify=True``.
    """
    home = data_home(data_dir)
    known = KNOWN_FILES.get(relative_name)
    for path in _candidates(home, relative_name):
        if path.is_file():
            if verify:
                if known is None:
                    raise ValueError(f"no sha256 is recorded for {relative_name!r}, so it cannot be verified")
                _check_sum(path, known.sha256)
            return path
    if known is None:
        raise FileNotFoundError(f"{relative_name} is not in {home} and has no known download address")
    return _download(known, home / relative_name)


def _download(remote: RemoteFile, target: Path) -> Path:
    log.info("downloading %s to %s", remote.url, target)
    try:
        payload = fetch_url_bytes(remote.url)
    except (urllib.error.URLError, OSError) as err:
        raise DataFetchError(
            f"could not download {remote.url}: {err}. Put the file at {target}, or point "
            f"data_dir or ${DATA_ENV_VAR} at a folder that holds it") from err
    actual = hashlib.sha256(payload).hexdigest()
    # Checked before anything reaches the disk, so a bad download can never be picked up later.
    if actual != remote.sha256:
        raise ChecksumError(
            f"download of {remote.url} has sha256 {actual}, expected {remote.sha256}; nothing was saved")
    target.parent.mkdir(parents=True, exist_ok=True)  # our data folder: created only once the file is good
    return atomic_write(target, lambda f: f.write(payload))


def files_of(names) -> list[str]:
    """The data files named by ``names``: groups of ``FILE_GROUPS`` (``"ptb"``, ``"seq"``, ``"eval"``,
    ``"sentiment"``, ``"all"``) or files of ``KNOWN_FILES``, in order, each once."""
    if isinstance(names, str):
        names = [names]
    files: list[str] = []
    for name in names:
        if name == "all":
            chosen = [f for group in FILE_GROUPS.values() for f in group]
        elif name in FILE_GROUPS:
            chosen = list(FILE_GROUPS[name])
        elif name in KNOWN_FILES:
            chosen = [name]
        else:
            raise ValueError(f"unknown data set {name!r}; expected one of {', '.join([*FILE_GROUPS, 'all'])} "
                             f"or a file of {', '.join(KNOWN_FILES)}")
        files += [f for f in chosen if f not in files]
    return files


def ensure_file(relative_name: str, data_dir=None) -> tuple[Path, bool]:
    """``(path, downloaded)`` for the known data file ``relative_name``, checked against its sha256.

    A copy already in the data folder (nested or flat, as ``find_or_fetch`` looks) with the right
    sum is kept (``downloaded`` False); one with another sum raises ``ChecksumError`` naming it and
    is left alone (delete it to download it again); a missing one is downloaded, checked before it
    is written, and written atomically (``downloaded`` True)."""
    known = KNOWN_FILES.get(relative_name)
    if known is None:
        raise ValueError(f"{relative_name!r} has no known download address; known: {', '.join(KNOWN_FILES)}")
    home = data_home(data_dir)
    if home.exists() and not home.is_dir():
        raise NotADirectoryError(f"the data folder {home} is a file, not a folder")
    for path in _candidates(home, relative_name):
        if path.is_file():
            actual = sha256_of(path)
            if actual != known.sha256:
                raise ChecksumError(f"{path} has sha256 {actual}, expected {known.sha256}: the copy is corrupt or "
                                    "altered; delete it to download it again")
            return path, False
    return _download(known, home / relative_name), True


def download(names="all", data_dir=None, report=None) -> list[Path]:
    """Fetch the data sets ``names`` (see ``files_of``: ``"ptb"``, ``"seq"``, ``"eval"``,
    ``"sentiment"``, ``"all"``, or file names) into ``data_home(data_dir)`` with their sha256
    checked (see ``ensure_file``); files already there with the right sum are skipped. Every
    file is tried; then the first failure is raised, its message counting the others.
    ``report(relative_name, path_or_None, status)`` is called per file, status ``"present"``,
    ``"downloaded"`` or the error's text. Returns the paths."""
    paths, failures = [], []
    for name in files_of(names):
        try:
            path, fetched = ensure_file(name, data_dir)
        except (OSError, ValueError) as exc:  # ChecksumError is a ValueError, DataFetchError an OSError
            failures.append(exc)
            if report is not None:
                report(name, None, str(exc))
            continue
        paths.append(path)
        if report is not None:
            report(name, path, "downloaded" if fetched else "present")
    if failures:
        first = failures[0]
        if len(failures) > 1:
            raise type(first)(f"{first} (and {len(failures) - 1} more file{'s' if len(failures) > 2 else ''} failed)")
        raise first
    return paths
