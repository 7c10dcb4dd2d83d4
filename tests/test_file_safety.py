"""Every file the library writes is written the way a careful user would write it by hand.

Each test runs over every writer: new files follow the umask, existing files keep their mode,
symlinks are written through, read-only files and missing folders are refused, and a write that
fails halfway leaves the old file as it was.
"""
import errno
import logging
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import fastnlp
from fastnlp.datasets import ptb

OLD_CONTENT = b"the previous contents, which must survive a refused or failed write"
# Bigger than FAILING_WRITE_LIMIT for every writer, so the limit strikes in the middle of a write.
N_WORDS = 5_000
FAILING_WRITE_LIMIT = 8_192


def _word_vectors():
    rng = np.random.default_rng(0)
    return fastnlp.WordVectors(rng.standard_normal((N_WORDS, 10)).astype(np.float32),
                               [f"word{i}" for i in range(N_WORDS)])


def _params():
    return [np.arange(50_000, dtype=np.float32).reshape(500, 100), np.ones(7, dtype=np.float32)]


@dataclass(frozen=True)
class Writer:
    name: str
    prepare: Callable[[Path], Path]  # sets up what the writer reads in a folder; returns the path it writes there
    write: Callable[[Path], object]
    check: Callable[[Path], None]  # asserts the path holds what write put there
    best_effort: bool = False  # a cache: a failed write logs a warning and the caller goes on


def _check_params(path):
    for saved, expected in zip(fastnlp.load_params(path), _params(), strict=True):
        np.testing.assert_array_equal(saved, expected)


def _check_vectors(loaded):
    expected = _word_vectors()
    assert loaded.words == expected.words
    np.testing.assert_array_equal(loaded.vectors, expected.vectors)


# The token cache writes beside a PTB-style text, under a name derived from the text's size and
# modification time; the vocabulary file stands for both of its cache files.
def _prepare_token_cache(folder):
    lines = (" ".join(f"word{i}" for i in range(start, start + 100)) for start in range(0, N_WORDS, 100))
    text = folder / "ptb.train.txt"
    text.write_text("".join(f" {line} \n" for line in lines), encoding="utf-8")
    return folder / f"ptb.vocab.{ptb._source_key(text)}.txt"


def _write_token_cache(path):
    # verify=False: a made-up corpus stands in for the real PTB.
    return ptb.load_ptb("train", data_dir=path.parent, verify=False)


def _check_token_cache(path):
    # Ids by first appearance: the first line's 100 words, then '<eos>', then the rest.
    words = [f"word{i}" for i in range(N_WORDS)]
    assert path.read_text(encoding="utf-8") == "".join(w + "\n" for w in words[:100] + ["<eos>"] + words[100:])


WRITERS = [
    Writer("save_params", lambda folder: folder / "params.npz",
           lambda path: fastnlp.save_params(path, _params()), _check_params),
    Writer("WordVectors.save", lambda folder: folder / "vectors.npz",
           lambda path: _word_vectors().save(path),
           lambda path: _check_vectors(fastnlp.WordVectors.load(path))),
    Writer("word2vec text", lambda folder: folder / "vectors.txt",
           lambda path: _word_vectors().save_word2vec_format(path),
           lambda path: _check_vectors(fastnlp.WordVectors.load_word2vec_format(path))),
    Writer("word2vec binary", lambda folder: folder / "vectors.bin",
           lambda path: _word_vectors().save_word2vec_format(path, binary=True),
           lambda path: _check_vectors(fastnlp.WordVectors.load_word2vec_format(path, binary=True))),
    Writer("ptb token cache", _prepare_token_cache, _write_token_cache, _check_token_cache, best_effort=True),
]
WRITERS_BY_NAME = {writer.name: writer for writer in WRITERS}
each_writer = pytest.mark.parametrize("writer", WRITERS, ids=[w.name for w in WRITERS])
# The token cache creates its folder in the user cache on purpose, so only writers whose
# path the user chooses must refuse to invent one.
each_user_writer = pytest.mark.parametrize("writer", [w for w in WRITERS if not w.best_effort],
                                           ids=[w.name for w in WRITERS if not w.best_effort])


@pytest.fixture
def umask():
    """Set the process umask for the test and restore it afterwards."""
    saved = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(saved)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _assert_refused(writer, path, error, names, caplog):
    """The write raises ``error`` naming ``names``; the cache logs that warning instead."""
    if writer.best_effort:
        with caplog.at_level(logging.WARNING, logger=ptb.log.name):
            writer.write(path)
        messages = [r.getMessage() for r in caplog.records]
        assert any(error.__name__ in m and names in m for m in messages), messages
    else:
        with pytest.raises(error, match=re.escape(names)):
            writer.write(path)


@each_writer
@pytest.mark.parametrize("mask", [0o027, 0o002], ids=["umask027", "umask002"])
def test_new_file_mode_follows_the_umask(writer, tmp_path, umask, mask):
    path = writer.prepare(tmp_path)
    umask(mask)
    writer.write(path)
    writer.check(path)
    assert _mode(path) == 0o666 & ~mask


@each_writer
def test_existing_file_keeps_its_mode(writer, tmp_path, umask):
    path = writer.prepare(tmp_path)
    path.write_bytes(OLD_CONTENT)
    path.chmod(0o660)  # neither what the umask (022) nor a private temp file (600) would give
    writer.write(path)
    writer.check(path)
    assert _mode(path) == 0o660


@each_writer
def test_symlink_is_written_through(writer, tmp_path):
    (tmp_path / "work").mkdir()
    path = writer.prepare(tmp_path / "work")
    real = tmp_path / "elsewhere" / "real-file"
    real.parent.mkdir()
    real.write_bytes(OLD_CONTENT)
    path.symlink_to(real)
    writer.write(path)
    assert path.is_symlink() and os.readlink(path) == str(real)
    writer.check(real)
    assert _temp_files(real.parent) == [] and _temp_files(path.parent) == []


@each_writer
def test_read_only_file_is_refused_and_left_intact(writer, tmp_path, caplog):
    path = writer.prepare(tmp_path)
    path.write_bytes(OLD_CONTENT)
    # No write bit: refused by its mode, which also holds for root, whom os.access lets write anything.
    path.chmod(0o444)
    _assert_refused(writer, path, PermissionError, str(path), caplog)
    assert path.read_bytes() == OLD_CONTENT and _mode(path) == 0o444
    assert _temp_files(tmp_path) == []


@each_user_writer
def test_missing_parent_folder_is_refused_not_created(writer, tmp_path, caplog):
    missing = tmp_path / "no" / "such" / "folder"
    path = writer.prepare(missing)
    _assert_refused(writer, path, FileNotFoundError, str(missing), caplog)
    assert list(tmp_path.iterdir()) == []


_FAILING_WRITE = """
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_file_safety
writer = test_file_safety.WRITERS_BY_NAME[sys.argv[2]]
path = Path(sys.argv[3])
# Writes past this size fail with EFBIG (Python ignores SIGXFSZ), halfway through the file.
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    writer.write(path)
except OSError as err:
    print("raised", err.errno)
"""


@each_writer
def test_write_failing_halfway_keeps_the_old_file(writer, tmp_path):
    path = writer.prepare(tmp_path)
    path.write_bytes(OLD_CONTENT)
    done = subprocess.run([sys.executable, "-c", _FAILING_WRITE, str(Path(__file__).parent), writer.name,
                           str(path), str(FAILING_WRITE_LIMIT)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if writer.best_effort:
        assert "could not cache" in done.stderr and "File too large" in done.stderr, done.stderr
    else:
        assert done.stdout.split() == ["raised", str(errno.EFBIG)], (done.stdout, done.stderr)
    assert path.read_bytes() == OLD_CONTENT
    assert _temp_files(tmp_path) == []
    # And with no limit the same write goes through: the failure above came from the limit.
    writer.write(path)
    writer.check(path)



@pytest.mark.parametrize("content", [b"", b"not numpy at all", b"PK\x03\x04 broken zip", "npy"],
                         ids=["empty", "text", "zip", "npy"])
def test_every_npz_loader_names_a_foreign_file_and_closes_it(tmp_path, content):
    import warnings

    from fastnlp.lm import RnnlmTrainer
    from fastnlp.models import Rnnlm

    path = tmp_path / "foreign.npz"
    if content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    else:
        path.write_bytes(content)
    trainer = RnnlmTrainer(Rnnlm(vocab_size=5, wordvec_size=2, hidden_size=2), fastnlp.optim.SGD())
    loaders = {"load_params": fastnlp.load_params, "WordVectors.load": fastnlp.WordVectors.load,
               "Word2Vec.load": fastnlp.Word2Vec.load, "RnnlmTrainer.load_checkpoint": trainer.load_checkpoint}
    for name, load in loaders.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)  # an unclosed file would show here
            with pytest.raises(ValueError, match="foreign.npz (is not|holds a single array)"):
                load(path)
