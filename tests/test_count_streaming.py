"""Counting under a memory budget and straight from text files (fastnlp.corpus_files): the
same counts as one array in memory, whatever the chunking, and one clear error per bad input."""
import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnlp
from fastnlp import corpus_files
from fastnlp.corpus_files import (CorpusDecodeError, count_files, file_id_chunks, file_tail_ids, iter_file_tokens,
                                  vocabulary_from_files)
from fastnlp.count import count_vectors
from fastnlp.kernels import cooccurrence
from fastnlp.kernels.cooccurrence import chunk_tokens_for_budget, minimum_memory_budget, parse_size

from conftest import CPU_AVAILABLE, assert_one_error_line, run_cli

WORDS = ["the", "cat", "sat", "on", "mat", "é", "naïve", "日本", "x"]


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def _random_text(rng, n_lines, words=WORDS, newline="\n"):
    lines = [" ".join(rng.choice(words, rng.integers(0, 12))) for _ in range(n_lines)]
    return newline.join(lines) + newline


def _ids_in_memory(texts, vocabulary, eos="<eos>"):
    """The ids of the texts as one stream, tokenised the simple way: lines, split, eos."""
    tokens = []
    for text in texts:
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:-1]:
            tokens += line.split() + ([eos] if eos else [])
        last = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[-1]
        if last:
            tokens += last.split() + ([eos] if eos else [])
    return np.array([vocabulary.word_to_id[t] for t in tokens if t in vocabulary.word_to_id], dtype=np.int64)


# ----- memory budget -------------------------------------------------------------------------

@st.composite
def counting_problems(draw):
    vocab = draw(st.integers(1, 40))
    n = draw(st.sampled_from([1, 2, 5, 31, 200, 500]))
    corpus = draw(hnp.arrays(np.int64, n, elements=st.integers(0, vocab - 1)))
    corpus = corpus.astype(draw(st.sampled_from([np.int32, np.int64, np.uint16])))
    window = draw(st.sampled_from([1, 2, 3, 7]))
    weighting = draw(st.sampled_from(["uniform", "harmonic"]))
    boundary = draw(st.one_of(st.none(), st.integers(0, vocab - 1)))
    return corpus, vocab, window, weighting, boundary


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
@settings(max_examples=25, deadline=None)
@given(problem=counting_problems(), extra=st.sampled_from([0, 100, 5_000, 50_000, None]),
       cuts=st.lists(st.integers(0, 500), max_size=3))
def test_any_budget_and_chunking_gives_the_counts_of_one_array(backend, problem, extra, cuts):
    corpus, vocab, window, weighting, boundary = problem
    kwargs = dict(weighting=weighting, boundary_id=boundary, dtype=np.float64)
    whole = cooccurrence(corpus, vocab, window, memory_budget=1 << 40, **kwargs)
    chunks = np.split(corpus, sorted(c for c in cuts if c <= len(corpus)))
    with fastnlp.use_backend(backend):
        budget = None if extra is None else minimum_memory_budget(vocab, window) + extra
        counted = [cooccurrence(corpus, vocab, window, memory_budget=budget, **kwargs),
                   cooccurrence(iter(chunks), vocab, window, memory_budget=budget, **kwargs)]
    for counted in counted:
        assert counted.has_canonical_format
        np.testing.assert_array_equal(counted.indptr, whole.indptr)
        np.testing.assert_array_equal(counted.indices, whole.indices)
        if weighting == "uniform":  # sums of ones: exact in any order
            np.testing.assert_array_equal(counted.data, whole.data)
        else:
            np.testing.assert_allclose(counted.data, whole.data, rtol=1e-13)


def test_a_small_budget_counts_in_many_chunks(cpu_backend):
    corpus = np.random.default_rng(0).integers(0, 50, 3000)
    budget = minimum_memory_budget(50, 2) + 2000
    assert chunk_tokens_for_budget(budget, 50, 2) < 100  # so this really is chunked and merged
    small = cooccurrence(corpus, 50, 2, memory_budget=budget)
    assert (small != cooccurrence(corpus, 50, 2, memory_budget="1G")).nnz == 0


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
def test_the_merge_may_write_the_sum_over_the_matrix(backend):
    """cooccurrence merges in place: csr_sum_into's output is the matrix's own grown arrays."""
    from fastnlp.kernels import registry
    from fastnlp.kernels.cooccurrence import _sum_arguments
    from fastnlp.kernels.cooccurrence.reference import cooccurrence as count

    corpus = np.random.default_rng(2).integers(0, 70, 2000)
    matrix = count(corpus[:1000], 0, 70, 3, True, -1)
    parts = [count(corpus[start - 3:start + 250], 3, 70, 3, True, -1) for start in range(1000, 2000, 250)]
    args = _sum_arguments(*matrix, parts, 5, into=True)
    separate = registry.implementations("csr_sum_into")[backend]
    separate(*args)
    indptr, indices, data, starts, part_indices, part_data, out_indptr, out_indices, out_data = args
    n = int(out_indptr[-1])
    grown_indices, grown_data = np.resize(indices, n), np.resize(data, n)  # the matrix first, then room
    separate(indptr, grown_indices, grown_data, starts, part_indices, part_data, out_indptr, grown_indices,
             grown_data)
    np.testing.assert_array_equal(grown_indices, out_indices)
    np.testing.assert_array_equal(grown_data, out_data)
    assert (out_data > 0).all()


def test_context_counts_only_as_left_side():
    corpus = np.random.default_rng(1).integers(0, 30, 500)
    whole = cooccurrence(corpus, 30, 3, dtype=np.float64)
    first = cooccurrence(corpus[:211], 30, 3, dtype=np.float64)
    rest = cooccurrence(corpus[211:], 30, 3, dtype=np.float64, context=corpus[:211])
    assert (first + rest != whole).nnz == 0


def test_a_budget_too_small_for_one_window_names_the_minimum():
    least = minimum_memory_budget(100, 5)
    with pytest.raises(ValueError, match=rf"memory_budget={least - 1} bytes is too small .* at least {least} bytes"):
        cooccurrence(np.arange(10), 100, 5, memory_budget=least - 1)
    cooccurrence(np.arange(10), 100, 5, memory_budget=least)  # the minimum itself counts


@pytest.mark.parametrize("text, size", [("512M", 512 << 20), ("2G", 2 << 30), ("64KiB", 64 << 10),
                                        ("1500000", 1_500_000), ("1.5k", 1536), (4096, 4096)])
def test_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "-1G", "0", "", "12Q"])
def test_bad_sizes_name_the_setting(bad):
    with pytest.raises(ValueError, match="memory_budget"):
        cooccurrence(np.arange(3), 3, memory_budget=bad)


# ----- reading files ---------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), block=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
       newline=st.sampled_from(["\n", "\r\n", "\r"]), open_end=st.booleans())
def test_blocks_never_cut_a_token_a_character_or_a_newline(tmp_path_factory, seed, block, newline, open_end):
    rng = np.random.default_rng(seed)
    text = _random_text(rng, 30, newline=newline)
    if open_end:
        text = text.rstrip("\r\n") + " tail"
    path = _write(tmp_path_factory.mktemp("blocks") / "corpus.txt", text)
    vocabulary = fastnlp.Vocabulary(WORDS + ["tail", "<eos>"])
    expected = _ids_in_memory([text], vocabulary)
    original = corpus_files.BLOCK_BYTES
    try:
        corpus_files.BLOCK_BYTES = block
        lines = list(iter_file_tokens(path))
        streamed = np.concatenate(list(file_id_chunks(path, vocabulary.word_to_id, 13)) or [np.zeros(0, np.int64)])
    finally:
        corpus_files.BLOCK_BYTES = original
    np.testing.assert_array_equal(streamed, expected)
    np.testing.assert_array_equal(vocabulary.encode([t for line in lines for t in line]), expected)
    assert all(line[-1] == "<eos>" for line in lines)


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
@settings(max_examples=30, deadline=None)
@given(tokens=st.lists(st.sampled_from(["a", "b", "é", "日本", "x y", "<eos>"]), max_size=30),
       known=st.lists(st.sampled_from(["a", "b", "c"]), unique=True))
def test_index_words_grows_the_vocabulary_in_first_appearance_order(backend, tokens, known):
    from fastnlp.kernels import registry

    implementation = registry.implementations("index_words")[backend]
    if isinstance(implementation, str):
        pytest.skip(implementation)  # numba: absent on purpose
    expected_vocabulary = {word: i for i, word in enumerate(known)}
    expected = registry.implementations("index_words")["numpy"](tokens, expected_vocabulary)
    vocabulary = {word: i for i, word in enumerate(known)}
    ids = implementation(tokens, vocabulary)
    assert ids.dtype == np.int64 and ids.tolist() == expected.tolist()
    assert list(vocabulary.items()) == list(expected_vocabulary.items())
    assert vocabulary == {word: i for i, word in enumerate(dict.fromkeys(known + tokens))}


def test_chunks_have_the_size_asked(tmp_path):
    path = _write(tmp_path / "a.txt", "a b c d e\nf g\n")
    vocabulary = vocabulary_from_files(path)
    sizes = [chunk.size for chunk in file_id_chunks(path, vocabulary.word_to_id, 3)]
    assert sizes == [3, 3, 3] and all(c.dtype == np.int64 for c in file_id_chunks(path, vocabulary.word_to_id, 3))


def test_unknown_words_are_left_out_or_become_the_unknown_id(tmp_path):
    path = _write(tmp_path / "a.txt", "a rare b\n")
    word_to_id = {"a": 0, "b": 1, "<eos>": 2, "<unk>": 3}
    np.testing.assert_array_equal(np.concatenate(list(file_id_chunks(path, word_to_id, 10))), [0, 1, 2])
    np.testing.assert_array_equal(np.concatenate(list(file_id_chunks(path, word_to_id, 10, unknown=3))), [0, 3, 1, 2])


def test_vocabulary_is_first_appearance_with_counts(tmp_path):
    a = _write(tmp_path / "a.txt", "b a b\nc b\n")
    b = _write(tmp_path / "b.txt", "d a\n")
    vocabulary = vocabulary_from_files([a, b])
    assert vocabulary.id_to_word == ["b", "a", "<eos>", "c", "d"]
    assert vocabulary.counts.tolist() == [3, 2, 3, 1, 1]
    assert vocabulary_from_files([a, b], min_count=2).id_to_word == ["b", "a", "<eos>"]
    assert vocabulary_from_files([a, b], max_size=2).id_to_word == ["b", "<eos>"]  # most frequent, ties first
    assert vocabulary_from_files(a, eos=None).id_to_word == ["b", "a", "c"]


@pytest.mark.parametrize("n", [0, 1, 5, 300, 5000])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_tail_ids_are_the_last_ids(tmp_path, n, encoding):
    rng = np.random.default_rng(n)
    text = _random_text(rng, 1500, words=WORDS + ["rare"]) + "no newline at the end"
    path = _write(tmp_path / "a.txt", text, encoding)
    word_to_id = {w: i for i, w in enumerate(WORDS + ["<eos>", "at", "the", "end"])}
    ids = np.concatenate(list(file_id_chunks(path, word_to_id, 1000, encoding=encoding)))
    assert os.path.getsize(path) > 4096 * 4  # read backwards, in more than one step
    tail = file_tail_ids(path, word_to_id, n, encoding=encoding)
    np.testing.assert_array_equal(tail, ids[len(ids) - min(n, len(ids)):])


def test_tail_ids_of_a_file_of_one_word(tmp_path):
    path = _write(tmp_path / "a.txt", "é" * 10_000)
    assert file_tail_ids(path, {"é" * 10_000: 4, "<eos>": 1}, 5).tolist() == [4, 1]


# ----- counting files --------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_files=st.integers(1, 4), window=st.sampled_from([1, 2, 5]),
       weighting=st.sampled_from(["uniform", "harmonic"]), sentences=st.booleans())
@example(seed=24587487, n_files=2, window=1, weighting="uniform", sentences=False)  # a file of one empty line: one <eos>
def test_files_count_as_one_stream(tmp_path_factory, seed, n_files, window, weighting, sentences):
    rng = np.random.default_rng(seed)
    folder = tmp_path_factory.mktemp("files")
    texts = [_random_text(rng, int(rng.integers(0, 20))) for _ in range(n_files)]
    paths = [_write(folder / f"{i}.txt", text) for i, text in enumerate(texts)]
    if not "".join(texts).strip():
        return
    vocabulary = vocabulary_from_files(paths)
    ids = _ids_in_memory(texts, vocabulary)
    boundary = vocabulary.word_to_id["<eos>"] if sentences else None
    expected = cooccurrence(ids, len(vocabulary), window, weighting=weighting, boundary_id=boundary, dtype=np.float64)
    budget = minimum_memory_budget(len(vocabulary), window) + int(rng.integers(0, 3000))
    counted = count_files(paths, vocabulary, window, weighting=weighting, boundary_id=boundary, memory_budget=budget)
    np.testing.assert_array_equal(counted.indices, expected.indices)
    np.testing.assert_allclose(counted.data, expected.data, rtol=1e-13)
    # Shards, each with the last `window` ids before it as context, sum to the whole.
    shards = [count_files(path, vocabulary, window, weighting=weighting, boundary_id=boundary,
                          context_ids=_ids_in_memory(texts[:i], vocabulary)[-window:])
              for i, path in enumerate(paths) if _ids_in_memory([texts[i]], vocabulary).size]
    np.testing.assert_allclose(sum(shards).toarray(), expected.toarray(), rtol=1e-13)
    if len(texts[0].split()) >= window:  # what file_tail_ids gives when one file holds the context
        tail = file_tail_ids(paths[0], vocabulary.word_to_id, window)
        np.testing.assert_array_equal(tail, _ids_in_memory(texts[:1], vocabulary)[-window:])


def test_pairs_straddle_files(tmp_path):
    a = _write(tmp_path / "a.txt", "x y")  # no newline at the end: <eos> still ends the line
    b = _write(tmp_path / "b.txt", "z\n")
    vocabulary = fastnlp.Vocabulary(["x", "y", "z", "<eos>"])
    C = count_files([a, b], vocabulary, window=2).toarray()
    assert C[1, 3] == 1 and C[3, 2] == 2 and C[1, 2] == 1 and C[0, 2] == 0  # x y <eos> z <eos>


def test_count_vectors_of_files_equal_those_of_ids(tmp_path):
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(60)]
    texts = [_random_text(rng, 200, words=words) for _ in range(2)]
    paths = [_write(tmp_path / f"{i}.txt", text) for i, text in enumerate(texts)]
    vocabulary = vocabulary_from_files(paths)
    from_files = count_vectors(paths, window=3, k=8, memory_budget="1M")
    from_ids = count_vectors(_ids_in_memory(texts, vocabulary), vocabulary.id_to_word, window=3, k=8)
    assert from_files.words == from_ids.words
    np.testing.assert_array_equal(from_files.vectors, from_ids.vectors)
    given = count_vectors(str(paths[0]), vocabulary, window=3, k=8)  # a given vocabulary: no first pass
    assert list(given.words) == vocabulary.id_to_word


@pytest.mark.slow  # reads the whole of PTB (twice: the loader, then the file)
def test_ptb_file_counts_equal_the_ptb_loader(data_dir):
    from fastnlp.datasets import load_ptb

    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=data_dir)
    words = [id_to_word[i] for i in range(len(id_to_word))]
    path = data_dir / "ptb" / "ptb.train.txt"
    vocabulary = vocabulary_from_files(path)
    assert vocabulary.id_to_word == words
    np.testing.assert_array_equal(vocabulary.counts, np.bincount(corpus, minlength=len(words)))
    assert (count_files(path, vocabulary, 2) != cooccurrence(corpus, len(words), 2, dtype=np.float64)).nnz == 0
    from_file = count_vectors(path, window=2, k=10)
    from_ids = count_vectors(corpus, words, window=2, k=10)
    np.testing.assert_array_equal(from_file.vectors, from_ids.vectors)


# ----- bad input -----------------------------------------------------------------------------

def test_a_missing_file_is_named(tmp_path):
    good = _write(tmp_path / "good.txt", "a b\n")
    missing = tmp_path / "missing.txt"
    for call in (lambda: vocabulary_from_files([good, missing]), lambda: list(iter_file_tokens(missing)),
                 lambda: count_files([good, missing], ["a", "b"]), lambda: file_tail_ids(missing, {}, 3),
                 lambda: count_vectors([good, missing], k=1)):
        with pytest.raises(FileNotFoundError, match="missing.txt"):
            call()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_file_is_named(tmp_path):
    locked = _write(tmp_path / "locked.txt", "a b\n")
    locked.chmod(0)
    try:
        with pytest.raises(PermissionError, match="locked.txt"):
            vocabulary_from_files(locked)
    finally:
        locked.chmod(0o644)


def test_a_folder_is_not_a_corpus_file(tmp_path):
    with pytest.raises(OSError, match="folder"):
        vocabulary_from_files(tmp_path)


def test_bytes_that_are_not_utf8_name_the_file_the_offset_and_the_option(tmp_path):
    good = _write(tmp_path / "good.txt", "a b\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    expected = r"latin.txt: the bytes at offset 3 are not valid utf-8.*encoding="
    with pytest.raises(CorpusDecodeError, match=expected) as info:
        count_files([good, latin], ["a", "b"])  # no partial result of good.txt alone
    assert isinstance(info.value, ValueError) and info.value.offset == 3
    vocabulary = vocabulary_from_files(latin, encoding="latin-1")
    assert vocabulary.id_to_word[0] == "café"
    assert count_files(latin, vocabulary, encoding="latin-1").nnz > 0


def test_a_bad_byte_far_into_a_file_has_its_offset(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"ab " * 1_000_000 + "é".encode("utf-8")[:1] + b" cd\n")
    with pytest.raises(CorpusDecodeError) as info:
        vocabulary_from_files(path)
    assert info.value.offset == 3_000_000


def test_empty_files(tmp_path):
    empty = _write(tmp_path / "empty.txt", "")
    blank = _write(tmp_path / "blank.txt", "  \n\n")
    with pytest.raises(ValueError, match="empty corpus: no words in .*empty.txt"):
        vocabulary_from_files(empty)
    with pytest.raises(ValueError, match="empty corpus"):
        count_files([empty], ["a"])
    assert vocabulary_from_files(blank).id_to_word == ["<eos>"]  # two lines, each ends
    assert vocabulary_from_files([empty, blank]).counts.tolist() == [2]
    with pytest.raises(ValueError, match="no corpus files"):
        vocabulary_from_files([])


def test_bad_settings(tmp_path):
    path = _write(tmp_path / "a.txt", "a b\n")
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        vocabulary_from_files(path, encoding="klingon")
    with pytest.raises(ValueError, match="eos must be"):
        list(iter_file_tokens(path, eos="two words"))
    with pytest.raises(ValueError, match="min_count"):
        vocabulary_from_files(path, min_count=0)
    with pytest.raises(ValueError, match="chunk_tokens"):
        file_id_chunks(path, {"a": 0}, 0)
    with pytest.raises(ValueError, match="memory_budget=10 bytes is too small"):
        count_files(path, ["a", "b"], memory_budget=10)
    with pytest.raises(TypeError, match="words"):
        count_vectors(np.array([0, 1]), k=1)


# ----- the command line ----------------------------------------------------------------------

def test_cli_counts_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    paths = [_write(tmp_path / f"{i}.txt", _random_text(rng, 150, words=words)) for i in range(2)]
    code, out, err = run_cli(["count", "--corpus", *paths, "--k", "5", "--queries", "w1", "--memory-budget", "2M",
                              "--data-dir", tmp_path])
    assert code == 0, err
    assert "2 files:" in out and "[query] w1" in out and "WordSim-353: not scored" in out


@pytest.mark.parametrize("argv, says", [
    (["--corpus", "{tmp}/missing.txt"], "missing.txt"),
    (["--corpus", "{tmp}/a.txt", "--memory-budget", "lots"], "--memory-budget"),
    (["--corpus", "{tmp}/a.txt", "--k", "2", "--memory-budget", "100"], "--memory-budget"),
    (["--corpus", "{tmp}/a.txt", "--encoding", "klingon"], "--encoding"),
    (["--corpus", "{tmp}/latin.txt"], "--encoding"),
    (["--corpus", "{tmp}/empty.txt"], "empty.txt"),
    (["--corpus", "{tmp}/a.txt", "--k", "50"], "--k 50"),
])
def test_cli_mistakes_are_one_line(tmp_path, capsys, argv, says):
    _write(tmp_path / "a.txt", "a b c\n")
    _write(tmp_path / "empty.txt", "")
    (tmp_path / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    code, out, err = run_cli(["count", *[arg.format(tmp=tmp_path) for arg in argv]])
    assert_one_error_line(code, err)
    assert says in err


def test_cli_reads_another_encoding(tmp_path, capsys):
    path = tmp_path / "latin.txt"
    path.write_bytes(("caf\u00e9 au lait\n" * 20 + "th\u00e9 au citron\n" * 20).encode("latin-1"))
    code, out, err = run_cli(["count", "--corpus", path, "--encoding", "latin-1", "--k", "2", "--queries", "café",
                              "--data-dir", tmp_path])
    assert code == 0, err
    assert "[query] café" in out
