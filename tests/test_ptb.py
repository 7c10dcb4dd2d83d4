import hashlib
import os
import shutil
import stat
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from fastnlp.datasets import _files, ptb
from fastnlp.datasets._files import ChecksumError, DataFetchError, RemoteFile, data_home, find_or_fetch
from fastnlp.datasets.ptb import SPLITS, load_ptb, load_ptb_vocabulary

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A tiny corpus in PTB's layout: each line starts and ends with a space.
FAKE_TEXT = {
    "train": " the cat sat \n the dog ran \n <unk> cat ran \n",
    "valid": " the cat ran \n",
    "test": " dog sat \n the <unk> \n",
}


def _no_network(url, *args, **kwargs):
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture(scope="module", autouse=True)
def isolated_env(tmp_path_factory):
    """Caches go to a throw-away folder, FASTNLP_DATA is unset, and the network is off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.delenv(_files.DATA_ENV_VAR, raising=False)
        mp.setattr(_files, "fetch_url_bytes", _no_network)
        yield


@pytest.fixture(scope="module")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present")
    return SHARED_DATA


READ_ONLY_FOLDER = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


@pytest.fixture(scope="module")
def read_only_ptb(isolated_env, shared_data, tmp_path_factory):
    """A copy of the real PTB in a folder of our own made read-only, so the tests never depend
    on (or write to) the permissions of ../shared."""
    root = tmp_path_factory.mktemp("read-only-data")
    shutil.copytree(shared_data / "ptb", root / "ptb")
    (root / "ptb").chmod(READ_ONLY_FOLDER)
    yield root
    (root / "ptb").chmod(0o755)  # so pytest can clean it up when not running as root


@pytest.fixture(scope="module")
def ptb_train(read_only_ptb):
    # Tokenising the real training split takes about a second: do it once per module.
    return load_ptb("train", data_dir=read_only_ptb)


def _record_sums(monkeypatch, folder):
    """Make the files in ``folder`` the known PTB files, as if their sums were the recorded ones."""
    for split in SPLITS:
        name = f"ptb/ptb.{split}.txt"
        monkeypatch.setitem(_files.KNOWN_FILES, name,
                            RemoteFile(_files.KNOWN_FILES[name].url, _files.sha256_of(folder / f"ptb.{split}.txt")))


@pytest.fixture
def fake_ptb(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    for split, text in FAKE_TEXT.items():
        (root / "ptb" / f"ptb.{split}.txt").write_text(text, encoding="utf-8")
    _record_sums(monkeypatch, root / "ptb")
    return root


def _book_tokens(path):
    with open(path, encoding="utf-8") as f:
        return f.read().replace("\n", "<eos>").strip().split()


# ---- the real corpus ------------------------------------------------------------------------


def test_train_split_matches_the_book(ptb_train, shared_data):
    corpus, word_to_id, id_to_word = ptb_train
    assert corpus.dtype == np.int32 and corpus.ndim == 1
    assert len(corpus) == 929_589
    assert len(word_to_id) == len(id_to_word) == 10_000
    np.testing.assert_array_equal(corpus[:30], np.arange(30))
    # First-appearance numbering: each new id is exactly one more than the largest so far.
    running_max = np.maximum.accumulate(corpus)
    assert corpus[0] == 0 and np.all(np.diff(running_max) <= 1) and running_max[-1] == 9_999
    assert all(id_to_word[i] == w for w, i in word_to_id.items())
    lines = (shared_data / "ptb" / "ptb.train.txt").read_text(encoding="utf-8").count("\n")
    assert np.count_nonzero(corpus == word_to_id["<eos>"]) == lines == 42_068


@pytest.mark.parametrize("split, n_tokens", [("valid", 73_760), ("test", 82_430), ("val", 73_760)])
def test_other_splits_share_the_training_vocabulary(ptb_train, read_only_ptb, split, n_tokens):
    corpus, word_to_id, id_to_word = load_ptb(split, data_dir=read_only_ptb)
    assert corpus.dtype == np.int32 and len(corpus) == n_tokens
    assert word_to_id == ptb_train[1] and id_to_word == ptb_train[2]


def test_ids_decode_to_the_books_token_stream(ptb_train, read_only_ptb, shared_data):
    corpus, _, id_to_word = load_ptb("test", data_dir=read_only_ptb)
    expected = _book_tokens(shared_data / "ptb" / "ptb.test.txt")
    assert [id_to_word[i] for i in corpus.tolist()] == expected


def test_vocabulary_object_has_training_counts(ptb_train, read_only_ptb):
    vocab = load_ptb_vocabulary(read_only_ptb)
    assert vocab.id_to_word == [ptb_train[2][i] for i in range(10_000)]
    assert vocab.counts.sum() == 929_589 and vocab.unk_token == "<unk>"
    assert vocab.counts[vocab.id("<eos>")] == 42_068


def test_read_only_data_folder_is_never_written(ptb_train, read_only_ptb):
    folder = read_only_ptb / "ptb"
    assert stat.S_IMODE(folder.stat().st_mode) == READ_ONLY_FOLDER  # the premise of this test
    for split in SPLITS:
        load_ptb(split, data_dir=read_only_ptb)
    assert sorted(p.name for p in folder.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    # The caches went to the user cache instead.
    cached = sorted(p.name.split(".")[1] for p in (_files.cache_home() / "token-cache").rglob("ptb.*"))
    assert cached == ["test", "train", "valid", "vocab"]


# ---- checking local copies against their recorded sums -------------------------------------


def _flip_one_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] = ord("x") if data[offset] != ord("x") else ord("y")
    path.write_bytes(bytes(data))


def _truncate_to_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def writable_ptb(shared_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shared_data / "ptb", root / "ptb")
    return root


@pytest.mark.parametrize("damage", [lambda p: _flip_one_byte(p, 1_000_000), _truncate_to_half],
                         ids=["one byte flipped", "cut in half"])
def test_damaged_local_copy_is_refused_and_not_cached(writable_ptb, damage):
    train = writable_ptb / "ptb" / "ptb.train.txt"
    damage(train)
    actual, expected = _files.sha256_of(train), _files.KNOWN_FILES["ptb/ptb.train.txt"].sha256
    with pytest.raises(ChecksumError) as raised:
        load_ptb("train", data_dir=writable_ptb)
    assert str(train) in str(raised.value) and actual in str(raised.value) and expected in str(raised.value)
    assert sorted(p.name for p in train.parent.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    with pytest.raises(ChecksumError, match="ptb.train.txt"):
        load_ptb_vocabulary(writable_ptb)


def test_damage_is_caught_even_when_size_and_mtime_are_kept(writable_ptb):
    train = writable_ptb / "ptb" / "ptb.train.txt"
    load_ptb("train", data_dir=writable_ptb)  # builds the cache
    before = train.stat()
    _flip_one_byte(train, 2_000_000)
    os.utime(train, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ChecksumError, match="ptb.train.txt"):
        load_ptb("train", data_dir=writable_ptb)


def test_cache_follows_the_content_not_size_and_mtime(fake_ptb):
    """An edit that keeps the file's size and modification time still rebuilds the ids."""
    train_file = fake_ptb / "ptb" / "ptb.train.txt"
    old_ids, old_word_to_id, _ = load_ptb("train", data_dir=fake_ptb, verify=False)  # cached now
    before = train_file.stat()
    text = train_file.read_text(encoding="utf-8")
    assert "cat" in text
    train_file.write_text(text.replace("cat", "cow"), encoding="utf-8")  # same length
    os.utime(train_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert train_file.stat().st_size == before.st_size
    ids, word_to_id, _ = load_ptb("train", data_dir=fake_ptb, verify=False)
    assert "cow" in word_to_id and "cat" not in word_to_id and "cat" in old_word_to_id
    np.testing.assert_array_equal(ids, old_ids)  # same positions, new word
    assert len(list((fake_ptb / "ptb").glob("ptb.train.*.npy"))) == 1


def test_damaged_other_split_is_refused(writable_ptb):
    _flip_one_byte(writable_ptb / "ptb" / "ptb.valid.txt", 100)
    with pytest.raises(ChecksumError, match="ptb.valid.txt"):
        load_ptb("valid", data_dir=writable_ptb)


def test_verify_false_reads_a_deliberately_changed_corpus(writable_ptb):
    train = writable_ptb / "ptb" / "ptb.train.txt"
    train.write_text(train.read_text(encoding="utf-8") + " aardvark \n", encoding="utf-8")
    corpus, word_to_id, _ = load_ptb("train", data_dir=writable_ptb, verify=False)
    assert len(word_to_id) == 10_001 and corpus[-2] == word_to_id["aardvark"]


def test_unknown_split_names_the_valid_ones(fake_ptb):
    with pytest.raises(ValueError, match="'train', 'valid', 'test'"):
        load_ptb("dev", data_dir=fake_ptb)


@pytest.mark.parametrize("name", sorted(_files.KNOWN_FILES))
def test_shared_copies_match_the_recorded_checksums(shared_data, name):
    assert find_or_fetch(name, shared_data, verify=True) == shared_data / name


# ---- the token-id cache -------------------------------------------------------------------


def test_cache_is_reused_then_rebuilt_when_the_text_changes(fake_ptb, monkeypatch):
    folder = fake_ptb / "ptb"
    train, word_to_id, _ = load_ptb("train", data_dir=fake_ptb)
    assert list(word_to_id) == ["the", "cat", "sat", "<eos>", "dog", "ran", "<unk>"]
    np.testing.assert_array_equal(train, [0, 1, 2, 3, 0, 4, 5, 3, 6, 1, 5, 3])
    valid = load_ptb("valid", data_dir=fake_ptb)[0]
    assert len(list(folder.glob("*.npy"))) == 2 and len(list(folder.glob("ptb.vocab.*.txt"))) == 1

    real_read_tokens = ptb._read_tokens
    monkeypatch.setattr(ptb, "_read_tokens", lambda path: pytest.fail(f"{path} was tokenised again"))
    np.testing.assert_array_equal(load_ptb("train", data_dir=fake_ptb)[0], train)
    np.testing.assert_array_equal(load_ptb("valid", data_dir=fake_ptb)[0], valid)

    monkeypatch.setattr(ptb, "_read_tokens", real_read_tokens)
    train_file = folder / "ptb.train.txt"
    train_file.write_text(FAKE_TEXT["train"] + " zebra cat \n", encoding="utf-8")
    _record_sums(monkeypatch, folder)
    st = train_file.stat()
    os.utime(train_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new_train, new_word_to_id, _ = load_ptb("train", data_dir=fake_ptb)
    assert len(new_train) == len(train) + 3 and new_word_to_id["zebra"] == 7
    load_ptb("valid", data_dir=fake_ptb)
    # The stale caches are replaced, not piled up.
    assert len(list(folder.glob("ptb.train.*.npy"))) == 1
    assert len(list(folder.glob("ptb.valid.*.npy"))) == 1
    assert len(list(folder.glob("ptb.vocab.*.txt"))) == 1


def test_damaged_cache_is_rebuilt(fake_ptb):
    expected = load_ptb("train", data_dir=fake_ptb)[0]
    (cached,) = (fake_ptb / "ptb").glob("ptb.train.*.npy")
    cached.write_bytes(b"not an array")
    np.testing.assert_array_equal(load_ptb("train", data_dir=fake_ptb)[0], expected)
    np.testing.assert_array_equal(np.load(cached), expected)


def test_read_only_folder_caches_in_the_user_cache(fake_ptb, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = fake_ptb / "ptb"
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        first = load_ptb("test", data_dir=fake_ptb)[0]
        assert sorted(p.name for p in folder.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
        cached = sorted(p.name.split(".")[1] for p in (tmp_path / "xdg" / "fastnlp").rglob("ptb.*"))
        assert cached == ["test", "train", "vocab"]
        np.testing.assert_array_equal(load_ptb("test", data_dir=fake_ptb)[0], first)
    finally:
        folder.chmod(0o755)


def test_word_missing_from_training_vocabulary_is_reported(fake_ptb, monkeypatch):
    (fake_ptb / "ptb" / "ptb.valid.txt").write_text(" the unicorn \n", encoding="utf-8")
    _record_sums(monkeypatch, fake_ptb / "ptb")
    with pytest.raises(ValueError, match="unknown word 'unicorn'"):
        load_ptb("valid", data_dir=fake_ptb)


# ---- finding the data folder --------------------------------------------------------------


def test_fastnlp_data_env_var_is_honoured(fake_ptb, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNLP_DATA", str(fake_ptb))
    assert data_home() == fake_ptb
    assert len(load_ptb("valid")[0]) == 4
    # An explicit data_dir wins over the variable.
    monkeypatch.setenv("FASTNLP_DATA", str(tmp_path / "empty"))
    assert len(load_ptb("valid", data_dir=fake_ptb)[0]) == 4


def test_default_data_home_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data_home() == tmp_path / "fastnlp"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert data_home() == Path.home() / ".cache" / "fastnlp"


def test_flat_folder_without_ptb_subfolder_works(fake_ptb, tmp_path):
    flat = tmp_path / "flat"
    (fake_ptb / "ptb").rename(flat)
    corpus, word_to_id, _ = load_ptb("test", data_dir=flat)
    assert [list(word_to_id)[i] for i in corpus] == "dog sat <eos> the <unk> <eos>".split()


# ---- downloads (with a fake fetcher: tests never touch the network) ---------------------


@pytest.fixture
def fake_remote(monkeypatch):
    """Serve FAKE_TEXT from made-up addresses, recorded with their true sums."""
    served = {}
    for split, text in FAKE_TEXT.items():
        payload = text.encode("utf-8")
        url = f"https://example.invalid/ptb.{split}.txt"
        served[url] = payload
        monkeypatch.setitem(_files.KNOWN_FILES, f"ptb/ptb.{split}.txt",
                            RemoteFile(url, hashlib.sha256(payload).hexdigest()))
    calls = []

    def fetch(url, *args, **kwargs):
        calls.append(url)
        return served[url]

    monkeypatch.setattr(_files, "fetch_url_bytes", fetch)
    return calls


def test_missing_files_are_downloaded_checked_and_kept(fake_remote, tmp_path):
    corpus, word_to_id, _ = load_ptb("valid", data_dir=tmp_path)
    assert len(corpus) == 4 and len(word_to_id) == 7
    assert fake_remote == ["https://example.invalid/ptb.train.txt", "https://example.invalid/ptb.valid.txt"]
    assert (tmp_path / "ptb" / "ptb.valid.txt").read_text(encoding="utf-8") == FAKE_TEXT["valid"]
    load_ptb("valid", data_dir=tmp_path)
    assert len(fake_remote) == 2  # kept on disk: no second download


def test_download_of_a_real_entry_uses_its_public_address(shared_data, tmp_path, monkeypatch):
    calls = []

    def fetch(url, *args, **kwargs):
        calls.append(url)
        return (shared_data / "seq" / "addition.txt").read_bytes()

    monkeypatch.setattr(_files, "fetch_url_bytes", fetch)
    path = find_or_fetch("seq/addition.txt", tmp_path)
    assert path == tmp_path / "seq" / "addition.txt"
    assert calls == ["https://raw.githubusercontent.com/oreilly-japan/deep-learning-from-scratch-2/master/dataset/addition.txt"]
    assert _files.sha256_of(path) == _files.KNOWN_FILES["seq/addition.txt"].sha256


def test_wrong_checksum_raises_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, "fetch_url_bytes", lambda url, *a, **k: b"a truncated or altered copy")
    with pytest.raises(ChecksumError, match="expected fcea919f"):
        load_ptb("train", data_dir=tmp_path)
    assert list(tmp_path.rglob("*")) == []


def test_failed_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(_files, "fetch_url_bytes", offline)
    with pytest.raises(DataFetchError, match="ptb.test.txt.*FASTNLP_DATA"):
        find_or_fetch("ptb/ptb.test.txt", tmp_path)
    assert list(tmp_path.rglob("*")) == []


def test_local_files_are_trusted_unless_verify_is_asked(tmp_path):
    target = tmp_path / "eval" / "wordsim353.tsv"
    target.parent.mkdir()
    target.write_text("# not the real file\n", encoding="utf-8")
    assert find_or_fetch("eval/wordsim353.tsv", tmp_path) == target
    with pytest.raises(ChecksumError, match="wordsim353.tsv"):
        find_or_fetch("eval/wordsim353.tsv", tmp_path, verify=True)


def test_unknown_files_cannot_be_fetched_or_verified(tmp_path):
    with pytest.raises(FileNotFoundError, match="no known download address"):
        find_or_fetch("other/thing.txt", tmp_path)
    (tmp_path / "thing.txt").write_text("x", encoding="utf-8")
    assert find_or_fetch("other/thing.txt", tmp_path) == tmp_path / "thing.txt"
    with pytest.raises(ValueError, match="no sha256"):
        find_or_fetch("other/thing.txt", tmp_path, verify=True)
