"""Memory-light loading (issue 17): WordVectors.load(path, mmap=True) maps the matrix instead
of reading it; load_word2vec_format(limit=n) reads only n rows; float16 vectors search in float32."""
import mmap
import resource
import time
import zipfile

import numpy as np
import pytest

from fastnlp import WordVectors
from fastnlp.vectors import formats


def _wv(n=2000, dim=16, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return WordVectors(rng.standard_normal((n, dim)).astype(dtype), [f"w{i}" for i in range(n)])


def _is_mapped(array):
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_mmap_load_maps_the_same_vectors_read_only(tmp_path, dtype):
    wv = _wv(dtype=dtype)
    path = wv.save(tmp_path / "v.npz")
    mapped = WordVectors.load(path, mmap=True)
    assert isinstance(mapped.vectors, np.memmap) and _is_mapped(mapped.vectors)
    assert not mapped.vectors.flags.writeable and mapped.vectors.dtype == dtype
    np.testing.assert_array_equal(mapped.vectors, wv.vectors)
    assert mapped.words == wv.words
    with pytest.raises(ValueError):
        mapped.vectors[0, 0] = 1
    assert [w for w, _ in mapped.most_similar("w3", top=10)] == [w for w, _ in wv.most_similar("w3", top=10)]
    queries = wv.vectors[:5].astype(np.float32)
    assert [[w for w, _ in r] for r in mapped.most_similar(queries, top=4)] == \
        [[w for w, _ in r] for r in wv.most_similar(queries, top=4)]
    assert not isinstance(WordVectors.load(path).vectors, np.memmap)  # mmap=False reads


def test_mmap_load_never_reads_the_vectors_member(tmp_path, monkeypatch):
    """The .npy reader is never handed vectors.npy: the other members are read, that one mapped."""
    path = _wv().save(tmp_path / "v.npz")
    real_read_array = np.lib.format.read_array
    read = []

    def guarded(f, *args, **kwargs):
        name = getattr(f, "name", "")
        read.append(name)
        if name.endswith("vectors.npy"):
            raise AssertionError("vectors.npy was read")
        return real_read_array(f, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "read_array", guarded)
    monkeypatch.setattr(formats, "read_file", lambda *a, **k: pytest.fail("read_file reads every member"))
    mapped = WordVectors.load(path, mmap=True)
    assert len(mapped) == 2000 and read and not any(n.endswith("vectors.npy") for n in read)


def test_mapping_a_large_file_is_fast_and_reads_nothing(tmp_path):
    """~200 MB of vectors: reading them costs their size in RSS and time; mapping costs neither."""
    n, dim = 500_000, 100
    vectors = np.lib.format.open_memmap(tmp_path / "raw.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    vectors[:] = 0.5
    vectors[:, 0] = np.arange(n, dtype=np.float32) % 7
    words = [f"w{i}" for i in range(n)]
    path = WordVectors(vectors, words).save(tmp_path / "big.npz")
    del vectors
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    mapped = WordVectors.load(path, mmap=True)
    seconds = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(mapped.vectors, np.memmap) and mapped.vectors.shape == (n, dim)
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB while mapping 200 MB"
    assert seconds < 5
    assert mapped.vectors[123_456, 0] == 123_456 % 7


def test_compressed_or_odd_files_cannot_be_mapped(tmp_path):
    wv = _wv(n=50)
    word_bytes = np.frombuffer("".join(chr(0x100 + i) for i in range(50)).encode(), np.uint8)
    offsets = np.arange(51, dtype=np.int64) * 2  # 50 two-byte UTF-8 words
    np.savez_compressed(tmp_path / "c.npz", vectors=wv.vectors, word_bytes=word_bytes, word_offsets=offsets)
    with pytest.raises(ValueError, match="stored compressed"):
        WordVectors.load(tmp_path / "c.npz", mmap=True)
    assert len(WordVectors.load(tmp_path / "c.npz")) == 50  # the reader still takes it
    (tmp_path / "not.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a saved WordVectors file"):
        WordVectors.load(tmp_path / "not.npz", mmap=True)
    np.savez(tmp_path / "novec.npz", words=np.array(["a"]))
    with pytest.raises(ValueError, match="no vectors to map"):
        WordVectors.load(tmp_path / "novec.npz", mmap=True)
    with zipfile.ZipFile(tmp_path / "c.npz") as archive:  # sanity: the member really is deflated
        assert archive.getinfo("vectors.npy").compress_type == zipfile.ZIP_DEFLATED


def test_word2vec_limit_reads_only_the_first_rows(tmp_path):
    wv = _wv(n=300)
    for binary in (False, True):
        path = tmp_path / f"v{int(binary)}.txt"
        wv.save_word2vec_format(path, binary=binary)
        # Truncate after row 100's bytes: a reader that went further would fail.
        data = path.read_bytes()
        cut = 0
        for _ in range(1 + 101):
            cut = data.index(b"\n", cut) + 1 if not binary else cut
        if binary:
            header_end = data.index(b"\n") + 1
            row = len("w000".encode()) + 1 + 4 * 16 + 1
            cut = header_end + sum(len(f"w{i}".encode()) + 1 + 4 * 16 + 1 for i in range(101))
            del row
        path.write_bytes(data[:cut] + b"garbage that is no row \xff\xfe")
        small = WordVectors.load_word2vec_format(path, limit=100, binary=binary)
        assert len(small) == 100 and small.words == wv.words[:100]
        np.testing.assert_allclose(small.vectors, wv.vectors[:100], rtol=1e-6)


def test_float16_vectors_load_mapped_and_search_in_float32(tmp_path):
    wv = _wv(dtype=np.float16)
    mapped = WordVectors.load(wv.save(tmp_path / "h.npz"), mmap=True)
    got = mapped.most_similar("w1", top=5)
    ref = WordVectors(wv.vectors.astype(np.float32), wv.words).most_similar("w1", top=5)
    assert [w for w, _ in got] == [w for w, _ in ref]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in ref], rtol=1e-6)
