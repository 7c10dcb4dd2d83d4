"""The sentence polarity loader: counts, labels, tokenisation, decoding, where the files come from."""
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp.datasets import _files, load_polarity
from fastnlp.datasets._files import ChecksumError
from fastnlp.datasets.polarity import tokenize

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def polarity():
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    return load_polarity(DATA_DIR)


def test_counts_and_labels(polarity):
    texts, labels = polarity
    assert len(texts) == len(labels) == 10662
    assert labels.dtype == np.int64
    assert (labels[:5331] == 1).all() and (labels[5331:] == 0).all()
    assert all(isinstance(doc, list) and doc and all(isinstance(t, str) for t in doc) for doc in texts)


def test_tokens_follow_the_books_preprocess(polarity, data_dir):
    texts, _ = polarity
    first_pos = (data_dir / "sentiment" / "rt-polarity.pos").read_text(encoding="utf-8").splitlines()[0]
    first_neg = (data_dir / "sentiment" / "rt-polarity.neg").read_text(encoding="utf-8").splitlines()[0]
    assert texts[0] == first_pos.lower().replace(".", " .").split()
    assert texts[5331] == first_neg.lower().replace(".", " .").split()
    # the book's preprocess gives the same word stream
    _, _, id_to_word = fastnlp.preprocess(first_pos)
    corpus, _, _ = fastnlp.preprocess(first_pos)
    assert [id_to_word[int(i)] for i in corpus] == texts[0]
    assert all(t == t.lower() for doc in texts[:200] for t in doc)


def test_tokenize():
    assert tokenize("A Fine Film. Really.") == ["a", "fine", "film", ".", "really", "."]
    with pytest.raises(TypeError):
        tokenize(b"bytes")


def _copy_flat(data_dir, folder):
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        shutil.copy(data_dir / "sentiment" / name, folder / name)


def test_data_dir_argument_then_environment(data_dir, tmp_path, monkeypatch):
    _copy_flat(data_dir, tmp_path)  # a flat folder works as well as the nested layout
    texts, labels = load_polarity(tmp_path)
    assert len(texts) == 10662
    monkeypatch.setenv("FASTNLP_DATA", str(tmp_path))
    texts2, labels2 = load_polarity()
    assert texts2 == texts and (labels2 == labels).all()


def test_corrupt_copy_is_refused_unless_verify_false(data_dir, tmp_path):
    _copy_flat(data_dir, tmp_path)
    path = tmp_path / "rt-polarity.neg"
    path.write_bytes(path.read_bytes().replace(b"dull", b"fine", 1))
    with pytest.raises(ChecksumError):
        load_polarity(tmp_path)
    texts, _ = load_polarity(tmp_path, verify=False)
    assert len(texts) == 10662


def test_files_are_strict_utf8(data_dir, tmp_path):
    _copy_flat(data_dir, tmp_path)
    path = tmp_path / "rt-polarity.pos"
    path.write_bytes(path.read_bytes() + b"caf\xe9 latin-1 byte\n")
    with pytest.raises(UnicodeDecodeError):
        load_polarity(tmp_path, verify=False)
    # the real files decode, accents included
    texts, _ = load_polarity(data_dir)
    assert any("é" in t for doc in texts for t in doc)


def test_missing_files_are_downloaded_and_checked(data_dir, tmp_path, monkeypatch):
    served = {_files.KNOWN_FILES[f"sentiment/{n}"].url: (data_dir / "sentiment" / n).read_bytes()
              for n in ("rt-polarity.pos", "rt-polarity.neg")}
    monkeypatch.setattr(_files, "fetch_url_bytes", lambda url, timeout=60.0: served[url])
    texts, labels = load_polarity(tmp_path / "cache")
    assert len(texts) == 10662
    got = (tmp_path / "cache" / "sentiment" / "rt-polarity.pos").read_bytes()
    assert hashlib.sha256(got).hexdigest() == _files.KNOWN_FILES["sentiment/rt-polarity.pos"].sha256

    served = {url: data[:-10] for url, data in served.items()}  # a truncated download
    with pytest.raises(ChecksumError):
        load_polarity(tmp_path / "other")
    assert not (tmp_path / "other" / "sentiment" / "rt-polarity.pos").exists()
