"""WordVectors: neighbours against a brute-force sort, analogies, evaluations, file formats, book helpers."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from fastnlp.vectors import evaluation as wv_module
from fastnlp.wordvectors import WordVectors, analogy, cos_similarity, most_similar

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"


def eval_file(name):
    path = EVAL_DIR / name
    if not path.exists():
        pytest.skip(f"shared evaluation data not found at {path}")
    return path


@pytest.fixture(scope="module")
def random_wv():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    return WordVectors(rng.standard_normal((500, 20)).astype(np.float32), words)


def brute_force_neighbours(wv, query_vector, skip=(), top=10):
    """Full sort of every cosine: the slow reference the top-k path must match."""
    unit = wv.vectors / np.linalg.norm(wv.vectors, axis=1, keepdims=True)
    q = query_vector / np.linalg.norm(query_vector)
    cos = unit.astype(np.float64) @ q.astype(np.float64)
    ranked = [i for i in np.argsort(-cos) if wv.words[i] not in skip]
    return [(wv.words[i], cos[i]) for i in ranked[:top]]


@pytest.fixture
def royal_wv():
    """Tiny hand-made space where man:woman = king:queen holds exactly (plus distractors)."""
    male, female, royal, person = np.eye(6)[:4]
    rng = np.random.default_rng(1)
    vectors = {
        "man": male + person,
        "woman": female + person,
        "king": male + royal,
        "queen": female + royal,
        "apple": np.eye(6)[4] + 0.1 * rng.standard_normal(6),
        "car": np.eye(6)[5] + 0.1 * rng.standard_normal(6),
        "prince": male + royal + 0.6 * np.eye(6)[5],
    }
    return WordVectors(np.array(list(vectors.values()), dtype=np.float32), list(vectors))


# ----- construction and vocabulary ----------------------------------------------------------------

def test_vocabulary_basics(random_wv):
    assert len(random_wv) == 500 and random_wv.vector_size == 20
    assert "w7" in random_wv and "nope" not in random_wv
    assert random_wv.word_to_id["w7"] == 7
    np.testing.assert_array_equal(random_wv["w7"], random_wv.vectors[7])
    assert random_wv.vectors.dtype == np.float32
    with pytest.raises(KeyError, match="nope"):
        random_wv["nope"]


def test_constructor_rejects_bad_input():
    with pytest.raises(ValueError, match="duplicate word 'a'"):
        WordVectors(np.zeros((3, 2)), ["a", "b", "a"])
    with pytest.raises(ValueError, match="2 words for 3 vectors"):
        WordVectors(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="2-D"):
        WordVectors(np.zeros(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="NaN"):
        WordVectors(np.array([[np.nan, 1.0]]), ["a"])


def test_vectors_are_read_only_so_the_unit_cache_cannot_go_stale(random_wv):
    with pytest.raises(ValueError):
        random_wv.vectors[0, 0] = 1.0


def test_zero_rows_stay_zero_without_warnings():
    wv = WordVectors(np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32), ["zero", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unit = wv.unit_vectors
        assert wv.similarity("zero", "x") == 0.0
    np.testing.assert_array_equal(unit, np.array([[0, 0], [0.6, 0.8]], dtype=np.float32))
    assert unit.dtype == np.float32


# ----- most_similar / similarity --------------------------------------------------------------------

def test_most_similar_matches_brute_force_sort(random_wv):
    for word in ("w0", "w123", "w499"):
        got = random_wv.most_similar(word, top=10)
        expected = brute_force_neighbours(random_wv, random_wv[word], skip={word})
        assert [w for w, _ in got] == [w for w, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)
        assert all(isinstance(s, float) for _, s in got)


def test_most_similar_uses_argpartition(random_wv, monkeypatch):
    calls = []
    real = np.argpartition
    monkeypatch.setattr(np, "argpartition", lambda *a, **k: calls.append(1) or real(*a, **k))
    random_wv.most_similar("w1", top=3)
    assert calls


def test_most_similar_vector_query_does_not_exclude_anything(random_wv):
    got = random_wv.most_similar(random_wv["w5"], top=3)
    assert got[0][0] == "w5" and got[0][1] == pytest.approx(1.0, abs=1e-6)
    expected = brute_force_neighbours(random_wv, random_wv["w5"], top=3)
    assert [w for w, _ in got] == [w for w, _ in expected]


def test_batch_equals_single_queries(random_wv):
    queries = ["w3", "w40", random_wv["w77"], "w499"]
    batch = random_wv.most_similar(queries, top=7, exclude=["w1"])
    assert len(batch) == 4
    for query, result in zip(queries, batch):
        single = random_wv.most_similar(query, top=7, exclude=["w1"])
        assert [w for w, _ in result] == [w for w, _ in single]
        np.testing.assert_allclose([s for _, s in result], [s for _, s in single], rtol=1e-6)
    matrix_batch = random_wv.most_similar(random_wv.vectors[:3], top=2)
    assert [r[0][0] for r in matrix_batch] == ["w0", "w1", "w2"]


def test_exclude(random_wv):
    first = random_wv.most_similar("w9", top=3)
    dropped = [w for w, _ in first[:2]]
    got = random_wv.most_similar("w9", top=3, exclude=dropped)
    assert not set(dropped) & {w for w, _ in got}
    assert got[0] == first[2]
    assert random_wv.most_similar("w9", top=1, exclude=dropped[0])[0] == first[1]


def test_top_larger_than_vocabulary_returns_every_other_word():
    wv = WordVectors(np.eye(3), ["a", "b", "c"])
    assert sorted(w for w, _ in wv.most_similar("a", top=10)) == ["b", "c"]
    assert wv.most_similar("a", top=10, exclude=["b", "c"]) == []


def test_unknown_words_raise_key_error_naming_them(random_wv):
    with pytest.raises(KeyError, match="zebra"):
        random_wv.most_similar("zebra")
    with pytest.raises(KeyError, match="zebra"):
        random_wv.most_similar(["w1", "zebra"])
    with pytest.raises(KeyError, match="zebra"):
        random_wv.most_similar("w1", exclude=["zebra"])
    with pytest.raises(KeyError, match="zebra"):
        random_wv.analogy("w1", "w2", "zebra")


def test_similarity_is_cosine(random_wv):
    a, b = random_wv["w1"].astype(np.float64), random_wv["w2"].astype(np.float64)
    expected = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert random_wv.similarity("w1", "w2") == pytest.approx(expected, rel=1e-5)
    assert random_wv.similarity("w1", "w1") == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("top", [float("nan"), 2.5, 0, -3, True, "3", None])
def test_top_must_be_a_positive_integer(random_wv, top):
    """NaN compares False with everything: top=nan used to return the whole vocabulary."""
    with pytest.raises(ValueError, match="top must be a positive integer"):
        random_wv.most_similar("w1", top=top)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        random_wv.analogy("w1", "w2", "w3", top=top)
    assert len(random_wv.most_similar("w1", top=np.int64(2))) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_query_vector_raises(random_wv, bad):
    query = random_wv["w5"].copy()
    query[3] = bad
    with pytest.raises(ValueError, match="query vector contains NaN or inf"):
        random_wv.most_similar(query)
    with pytest.raises(ValueError, match="query 1 contains NaN or inf"):
        random_wv.most_similar(["w1", query])


def test_zero_queries_raise_instead_of_ranking_arbitrary_words():
    wv = WordVectors(np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
                     ["zero", "x", "y", "z"])
    with pytest.raises(ValueError, match="query vector is a zero vector"):
        wv.most_similar(np.zeros(2))
    with pytest.raises(ValueError, match="word 'zero' has a zero vector"):
        wv.most_similar("zero")
    with pytest.raises(ValueError, match="query 1 is a zero vector"):
        wv.most_similar([np.ones(2), np.zeros(2)])
    with pytest.raises(ValueError, match="word 'zero' has a zero vector"):
        wv.analogy("x", "zero", "y")
    assert wv.most_similar("y", top=1) == [("x", pytest.approx(0.6))]  # a zero row is merely a candidate


@pytest.mark.parametrize("method, raises", [("3cosadd", True), ("3cosmul", False)])
def test_analogy_with_a_zero_target_raises(method, raises):
    """c = a - b makes b - a + c zero: every cosine with it is 0 and the answer was arbitrary."""
    angles = np.radians([0, -60, 60, 100, 200])
    wv = WordVectors(np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32), list("abcde"))
    if raises:
        with pytest.raises(ValueError, match=r"'b' - 'a' \+ 'c' is the zero vector"):
            wv.analogy("a", "b", "c", method=method)
    else:  # 3CosMul multiplies cosines, each meaningful on its own
        assert len(wv.analogy("a", "b", "c", method=method)) == 2


# ----- analogies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_known_answer(royal_wv, method):
    result = royal_wv.analogy("man", "woman", "king", top=3, method=method)
    assert result[0][0] == "queen"
    assert not {"man", "woman", "king"} & {w for w, _ in result}
    assert [s for _, s in result] == sorted((s for _, s in result), reverse=True)
    assert royal_wv.analogy("woman", "man", "queen", method=method)[0][0] == "king"


def test_analogy_scores_follow_their_definitions(royal_wv):
    unit = royal_wv.unit_vectors.astype(np.float64)
    ids = [royal_wv.word_to_id[w] for w in ("man", "woman", "king", "queen")]
    target = unit[ids[1]] - unit[ids[0]] + unit[ids[2]]
    cosadd = royal_wv.analogy("man", "woman", "king", top=1)[0][1]
    assert cosadd == pytest.approx(unit[ids[3]] @ target / np.linalg.norm(target), rel=1e-5)
    shifted = (unit @ unit[ids[3]] + 1) / 2
    expected = shifted[ids[1]] * shifted[ids[2]] / (shifted[ids[0]] + 1e-3)
    cosmul = royal_wv.analogy("man", "woman", "king", top=1, method="3cosmul")[0][1]
    assert cosmul == pytest.approx(expected, rel=1e-5)


def test_analogy_unknown_method(royal_wv):
    with pytest.raises(ValueError, match="3cosadd"):
        royal_wv.analogy("man", "woman", "king", method="pairdirection")


# ----- evaluate_word_pairs --------------------------------------------------------------------------

def test_evaluate_word_pairs_known_spearman(tmp_path):
    angles = np.radians([0, 10, 30, 60, 90])
    words = ["Alpha", "b", "c", "d", "e"]
    wv = WordVectors(np.stack([np.cos(angles), np.sin(angles)], axis=1), words)
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment line\n"
                    "alpha\tb\t4\n"      # cosines fall as the angle grows: ranks 4 3 2 1
                    "alpha\tc\t3\n"
                    "\n"
                    "alpha\td\t1\n"      # human ranks 4 3 1 2 -> rho = 1 - 6*2/(4*15) = 0.8
                    "ALPHA\te\t2\n"
                    "alpha\tunknown\t5\n")
    result = wv.evaluate_word_pairs(path)
    assert result["spearman"] == pytest.approx(0.8)
    cosines = np.cos(angles[1:])
    assert result["pearson"] == pytest.approx(stats.pearsonr(cosines, [4, 3, 1, 2])[0])
    assert result["pairs"] == 4 and result["oov"] == 1
    assert result["oov_ratio"] == pytest.approx(1 / 5)
    # Case-sensitive: "alpha" and "ALPHA" miss the vocabulary word "Alpha".
    with pytest.raises(ValueError, match="0 word pair"):
        wv.evaluate_word_pairs(path, case_insensitive=False)


def test_evaluate_word_pairs_malformed_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\t1\na b 2\n")
    wv = WordVectors(np.eye(2), ["a", "b"])
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        wv.evaluate_word_pairs(path)


@pytest.mark.parametrize("score", ["nan", "inf", "-inf"])
def test_evaluate_word_pairs_non_finite_score_names_the_line(tmp_path, score):
    """One NaN score used to turn the whole result into NaN without a word."""
    path = tmp_path / "scores.tsv"
    path.write_text(f"a\tb\t1\n# note\na\tc\t{score}\nb\tc\t3\n")
    wv = WordVectors(np.eye(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match=rf"scores.tsv:3: score '{score}' is not a finite number"):
        wv.evaluate_word_pairs(path)


def test_evaluate_analogies_restrict_vocab_must_be_positive(royal_wv, tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGY_FILE)
    with pytest.raises(ValueError, match="restrict_vocab must be a positive integer"):
        royal_wv.evaluate_analogies(path, restrict_vocab=0)


def test_evaluate_word_pairs_on_wordsim353():
    path = eval_file("wordsim353.tsv")
    pairs = [line.split("\t")[:2] for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    vocab = sorted({w.lower() for pair in pairs for w in pair})
    known = vocab[::2]  # every other word missing: a fair share of pairs becomes OOV
    wv = WordVectors(np.random.default_rng(2).standard_normal((len(known), 16)).astype(np.float32), known)
    result = wv.evaluate_word_pairs(path)
    expected_oov = sum(not (a.lower() in wv and b.lower() in wv) for a, b in pairs)
    assert result["oov"] == expected_oov > 0
    assert result["pairs"] + result["oov"] == len(pairs) == 353
    assert result["oov_ratio"] == pytest.approx(expected_oov / 353)
    assert -1 <= result["spearman"] <= 1 and -1 <= result["pearson"] <= 1


# ----- evaluate_analogies ---------------------------------------------------------------------------

ANALOGY_FILE = """\
: royal
man woman king queen
woman man queen king
man woman king apple
: mixed-case
Man Woman King Queen
man woman king zebra
man woman prince queen

: empty
"""


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_evaluate_analogies_crafted(royal_wv, tmp_path, method):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGY_FILE)
    result = royal_wv.evaluate_analogies(path, method=method)
    # royal: 2 of 3 right (the "apple" answer is wrong); mixed-case: "Man ..." is right after case
    # folding, the zebra question is skipped, and woman - man + prince lands nearest to queen.
    assert result["skipped"] == 1
    assert result["total"] == 5
    assert result["sections"]["royal"] == {"correct": 2, "total": 3, "accuracy": pytest.approx(2 / 3)}
    mixed = result["sections"]["mixed-case"]
    assert mixed["total"] == 2 and mixed["correct"] == 2
    assert result["sections"]["empty"]["total"] == 0 and np.isnan(result["sections"]["empty"]["accuracy"])
    assert result["correct"] == 4 and result["accuracy"] == pytest.approx(4 / 5)
    assert list(result["sections"]) == ["royal", "mixed-case", "empty"]


def test_evaluate_analogies_case_sensitive_and_restricted(royal_wv, tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGY_FILE)
    result = royal_wv.evaluate_analogies(path, case_insensitive=False)
    assert result["skipped"] == 2  # "Man Woman King Queen" is now OOV too
    # Only the first 4 words (man woman king queen) exist: apple/prince questions are skipped.
    restricted = royal_wv.evaluate_analogies(path, restrict_vocab=4)
    assert restricted["total"] == 3 and restricted["correct"] == 3 and restricted["skipped"] == 3


def test_evaluate_analogies_small_chunks_give_same_result(royal_wv, tmp_path, monkeypatch):
    path = tmp_path / "questions.txt"
    path.write_text(ANALOGY_FILE)
    full = royal_wv.evaluate_analogies(path, method="3cosmul")
    monkeypatch.setattr(wv_module, "_MAX_SCORE_ELEMENTS", 1)  # one question per product
    chunked = royal_wv.evaluate_analogies(path, method="3cosmul")

    def counts(result):
        return result["correct"], result["total"], result["skipped"], {
            name: (sec["correct"], sec["total"]) for name, sec in result["sections"].items()}

    assert counts(chunked) == counts(full)


def test_evaluate_analogies_errors(royal_wv, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(": s\nman woman king\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        royal_wv.evaluate_analogies(bad)
    headless = tmp_path / "headless.txt"
    headless.write_text("man woman king queen\n")
    with pytest.raises(ValueError, match="section"):
        royal_wv.evaluate_analogies(headless)
    all_oov = tmp_path / "oov.txt"
    all_oov.write_text(": s\nx y z w\n")
    with pytest.raises(ValueError, match="no analogy question"):
        royal_wv.evaluate_analogies(all_oov)
    with pytest.raises(ValueError, match="method"):
        royal_wv.evaluate_analogies(all_oov, method="nope")


def test_evaluate_analogies_on_google_questions():
    path = eval_file("questions-words.txt")
    words = sorted({w.lower() for line in path.read_text().splitlines()
                    if not line.startswith(":") for w in line.split()})
    wv = WordVectors(np.random.default_rng(3).standard_normal((len(words), 32)).astype(np.float32), words)
    result = wv.evaluate_analogies(path)
    assert result["skipped"] == 0 and result["total"] == 19544
    assert len(result["sections"]) == 14
    assert sum(s["total"] for s in result["sections"].values()) == result["total"]
    assert result["accuracy"] < 0.05  # random vectors


# ----- word2vec formats -----------------------------------------------------------------------------

@pytest.fixture
def unicode_wv():
    rng = np.random.default_rng(4)
    words = ["the", "café", "日本", "naïve", "</s>", "x\u00e9y"]
    return WordVectors(rng.standard_normal((len(words), 7)).astype(np.float32), words)


def test_word2vec_binary_round_trip_is_exact(unicode_wv, tmp_path):
    path = unicode_wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    loaded = WordVectors.load_word2vec_format(path, binary=True)
    assert loaded.words == unicode_wv.words
    np.testing.assert_array_equal(loaded.vectors, unicode_wv.vectors)
    data = path.read_bytes()
    assert data.startswith(b"6 7\n") and len(data) == len(b"6 7\n") + sum(
        len(w.encode()) + 2 + 28 for w in unicode_wv.words)


def test_word2vec_text_round_trip(unicode_wv, tmp_path):
    path = unicode_wv.save_word2vec_format(tmp_path / "v.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "6 7" and lines[2].split()[0] == "café" and len(lines[2].split()) == 8
    loaded = WordVectors.load_word2vec_format(path)
    assert loaded.words == unicode_wv.words
    np.testing.assert_allclose(loaded.vectors, unicode_wv.vectors, rtol=1e-6)


def test_word2vec_text_reader_is_lenient_about_layout(tmp_path):
    path = tmp_path / "messy.txt"
    path.write_bytes(b"2 3  \r\na 1 2 3   \r\n\nb 4 5 6")  # trailing spaces, CRLF, blank line, no final newline
    loaded = WordVectors.load_word2vec_format(path)
    assert loaded.words == ("a", "b")
    np.testing.assert_array_equal(loaded.vectors, [[1, 2, 3], [4, 5, 6]])


def test_word2vec_binary_without_newlines(tmp_path):
    rows = np.arange(6, dtype="<f4").reshape(2, 3)
    path = tmp_path / "compact.bin"
    path.write_bytes(b"2 3\n" + b"a " + rows[0].tobytes() + b"b " + rows[1].tobytes())
    loaded = WordVectors.load_word2vec_format(path, binary=True)
    assert loaded.words == ("a", "b")
    np.testing.assert_array_equal(loaded.vectors, rows)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_files(unicode_wv, tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    path = unicode_wv.save_word2vec_format(tmp_path / "v.w2v", binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert list(kv.index_to_key) == list(unicode_wv.words)
    np.testing.assert_allclose(kv.vectors, unicode_wv.vectors, rtol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_we_read_gensim_files(unicode_wv, tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(vector_size=unicode_wv.vector_size)
    kv.add_vectors(list(unicode_wv.words), unicode_wv.vectors)
    path = tmp_path / "g.w2v"
    kv.save_word2vec_format(str(path), binary=binary)
    loaded = WordVectors.load_word2vec_format(path, binary=binary)
    assert loaded.words == unicode_wv.words
    np.testing.assert_allclose(loaded.vectors, unicode_wv.vectors, rtol=1e-6)


@pytest.mark.parametrize("content, binary, message", [
    (b"", False, "header"),
    (b"two 3\na 1 2 3\n", False, "header"),
    (b"2\na 1 2\n", False, "header"),
    (b"1 3\na 1 2\n", False, r":2: expected a word and 3 values, got 2"),
    (b"1 3\na 1 2 x\n", False, "not all numbers"),
    (b"2 3\na 1 2 3\n", False, "announces 2 rows but the file has 1"),
    (b"1 3\na 1 2 3\nb 4 5 6\n", False, "more rows"),
    (b"1 3\na " + b"\0" * 8, True, "truncated"),
    (b"2 1\na " + b"\0" * 4 + b"\n", True, "truncated"),
    (b"1 1\na " + b"\0" * 8 + b"\n", True, "data after"),
])
def test_malformed_word2vec_files(tmp_path, content, binary, message):
    path = tmp_path / "bad.w2v"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        WordVectors.load_word2vec_format(path, binary=binary)


@pytest.mark.parametrize("word", ["two words", "tab\there", "", "new\nline", "nb\u00a0sp"])
def test_words_with_whitespace_cannot_be_saved(tmp_path, word):
    wv = WordVectors(np.eye(2), ["ok", word])
    for binary in (False, True):
        with pytest.raises(ValueError, match="whitespace"):
            wv.save_word2vec_format(tmp_path / "v.w2v", binary=binary)
    assert os.listdir(tmp_path) == []


# ----- npz ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npz_round_trip_is_exact(unicode_wv, tmp_path, dtype):
    wv = WordVectors(unicode_wv.vectors.astype(dtype), unicode_wv.words)
    path = wv.save(tmp_path / "v.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["word_bytes"].dtype == np.uint8  # words as UTF-8 bytes + offsets, no pickle
    loaded = WordVectors.load(path)
    assert loaded.words == wv.words and loaded.vectors.dtype == dtype
    np.testing.assert_array_equal(loaded.vectors, wv.vectors)


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(2))
    with pytest.raises(ValueError, match="missing"):
        WordVectors.load(path)


def test_failed_save_leaves_old_file_and_no_temp_file(unicode_wv, tmp_path, monkeypatch):
    path = tmp_path / "v.npz"
    unicode_wv.save(path)
    before = path.read_bytes()

    def fail_midway(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        unicode_wv.save(path)
    assert os.listdir(tmp_path) == ["v.npz"] and path.read_bytes() == before


# ----- the book's helpers ---------------------------------------------------------------------------

@pytest.fixture
def book_vocab():
    word_to_id = {"you": 0, "say": 1, "goodbye": 2, "and": 3, "i": 4}
    id_to_word = {i: w for w, i in word_to_id.items()}
    matrix = np.array([[0, 1, 0, 0, 0], [1, 0, 1, 0, 1], [0, 1, 0, 1, 0],
                       [0, 0, 1, 0, 1], [0, 1, 0, 1, 0]], dtype=np.float64)
    return word_to_id, id_to_word, matrix


def test_book_cos_similarity():
    assert cos_similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(np.sqrt(0.5))
    assert cos_similarity(np.zeros(2), np.ones(2)) == 0.0  # eps: no division by zero


def test_book_most_similar_prints_like_the_book(book_vocab, capsys):
    word_to_id, id_to_word, matrix = book_vocab
    shown = most_similar("you", word_to_id, id_to_word, matrix, top=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "" and out[1] == "[query] you"
    expected = sorted(((id_to_word[i], cos_similarity(matrix[i], matrix[0])) for i in range(1, 5)),
                      key=lambda pair: -pair[1])[:2]
    assert [w for w, _ in shown] == [w for w, _ in expected]
    assert out[2] == " %s: %s" % (shown[0][0], np.float64(shown[0][1]))
    assert len(out) == 4
    assert most_similar("zebra", word_to_id, id_to_word, matrix) is None
    assert capsys.readouterr().out == "zebra is not found\n"


def test_book_analogy_prints_like_the_book(royal_wv, capsys):
    word_to_id = dict(royal_wv.word_to_id)
    id_to_word = dict(enumerate(royal_wv.words))
    shown = analogy("man", "woman", "king", word_to_id, id_to_word, royal_wv.unit_vectors, top=2, answer="queen")
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "[analogy] man:woman = king:?"
    assert out[2].startswith("==>queen:")
    assert shown[0][0] == "queen" and out[3].startswith(" queen: ")
    assert analogy("man", "woman", "zebra", word_to_id, id_to_word, royal_wv.unit_vectors) is None
    assert capsys.readouterr().out == "zebra is not found\n"
