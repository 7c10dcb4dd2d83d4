"""WordVectors: neighbours against a brute-force sort, analogies, evaluations, file formats, book helpers."""
import os
import re
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


@pytest.mark.parametrize("vectors", [
    np.array([[1 + 2j, 0], [0, 1]]),
    np.eye(2, dtype=bool),
    np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object),
    np.array([["1", "2"], ["3", "4"]]),
], ids=["complex", "bool", "object", "str"])
def test_constructor_refuses_non_real_dtypes(vectors):
    """Complex vectors used to lose their imaginary part with only a ComplexWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match=f"vectors must hold real numbers .* got dtype {vectors.dtype}$"):
            WordVectors(vectors, ["a", "b"])


@pytest.mark.parametrize("dtype, stored", [(np.int32, np.float32), (np.uint8, np.float32), (np.int64, np.float32),
                                           (np.float16, np.float16), (np.float64, np.float64)])
def test_constructor_keeps_accepting_real_dtypes(dtype, stored):
    wv = WordVectors(np.array([[1, 2], [3, 4]], dtype=dtype), ["a", "b"])
    assert wv.vectors.dtype == stored
    np.testing.assert_array_equal(wv.vectors, [[1, 2], [3, 4]])


def test_complex_query_vector_is_refused(random_wv):
    with pytest.raises(TypeError, match="query vector must hold real numbers .* got dtype complex"):
        random_wv.most_similar(random_wv["w1"] + 1j)
    with pytest.raises(TypeError, match="positive item 1 must hold real numbers"):
        random_wv.most_similar(["w1", random_wv["w1"] + 1j])
    with pytest.raises(TypeError, match="query 0 must hold real numbers"):
        random_wv.most_similar(np.stack([random_wv["w1"], random_wv["w1"] + 1j]))


# ----- norms at extreme magnitudes ------------------------------------------------------------------

def test_float16_norms_do_not_overflow():
    """float16 squares overflow above a norm of 256: such words used to get zero unit vectors."""
    wv = WordVectors(np.array([[300, 300], [300, 300], [1, -1]], np.float16), ["a", "b", "c"])
    assert wv.vectors.dtype == np.float16 and wv.unit_vectors.dtype == np.float16  # storage dtype kept
    assert wv.similarity("a", "b") == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(wv.unit_vectors, np.array([[1, 1], [1, 1], [1, -1]]) / np.sqrt(2), rtol=1e-3)
    assert wv.most_similar("a", top=1) == [("b", pytest.approx(1.0, abs=1e-3))]


def test_float16_norms_do_not_underflow():
    """float16 squares below 6e-8 vanish: norms below about 3e-4 used to come out as 0."""
    wv = WordVectors(np.array([[1e-4, 1e-4], [2e-4, 2e-4], [1e-4, -1e-4]], np.float16), ["a", "b", "c"])
    assert wv.similarity("a", "b") == pytest.approx(1.0, abs=1e-3)
    assert wv.similarity("a", "c") == pytest.approx(0.0, abs=1e-3)


def test_float16_count_vectors_rank_like_float64():
    """Co-occurrence counts run into the thousands; cast to float16 to save memory, every word
    used to have a "zero vector"."""
    counts = np.random.default_rng(5).integers(0, 5000, (40, 30)).astype(np.float16)
    words = [f"w{i}" for i in range(40)]
    half, exact = WordVectors(counts, words), WordVectors(counts.astype(np.float64), words)
    np.testing.assert_allclose(half.unit_vectors, exact.unit_vectors, atol=1e-3)
    for word in words:
        got = half.most_similar(word, top=3)
        assert [s for _, s in got] == pytest.approx([exact.similarity(word, w) for w, _ in got], abs=2e-3)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e37), (np.float32, 1e20), (np.float32, 1e-20),
                                          (np.float32, 1e-37), (np.float64, 1e300), (np.float64, 1e-300)])
def test_norms_at_extreme_magnitudes(dtype, scale):
    """float32 squares overflow past a norm of about 1e19 and lose precision (then vanish) below
    about 1e-19; float64 likewise near 1e154 and 1e-154."""
    directions = np.array([[3, 4, 0], [4, 3, 0], [0, 0, 1], [-3, -4, 0]], dtype=np.float64)
    wv = WordVectors((directions * scale).astype(dtype), list("abcd"))
    assert wv.unit_vectors.dtype == dtype
    np.testing.assert_allclose(wv.unit_vectors, directions / 5 ** (directions[:, :1] != 0), rtol=1e-6, atol=1e-7)
    assert wv.similarity("a", "b") == pytest.approx(24 / 25, rel=1e-6)
    assert wv.most_similar("a", top=3) == [
        ("b", pytest.approx(24 / 25, rel=1e-6)), ("c", pytest.approx(0, abs=1e-7)), ("d", pytest.approx(-1, rel=1e-6))]


def test_norm_beyond_the_dtype_range_and_mixed_magnitudes():
    """The norm of (3.4e38, 3.4e38) is itself beyond float32; a row may mix huge and tiny values."""
    wv = WordVectors(np.array([[3.4e38, 3.4e38], [1, 1], [3e38, 1e-30], [0, 0]], np.float32), list("abcz"))
    assert wv.similarity("a", "b") == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(wv.unit_vectors[2:], [[1, 0], [0, 0]])


def test_every_normalising_path_handles_float16_magnitudes(royal_wv, tmp_path):
    """most_similar (word and vector queries), similarity, analogy and the evaluations all
    normalise through the same routine; with the float16 overflow each of them broke."""
    big = WordVectors((royal_wv.vectors * 1000).astype(np.float16), royal_wv.words)
    for method in ("3cosadd", "3cosmul"):
        assert big.analogy("man", "woman", "king", method=method)[0][0] == "queen"
    assert big.similarity("king", "prince") == pytest.approx(royal_wv.similarity("king", "prince"), abs=1e-3)
    assert big.most_similar("king", top=1)[0][0] == "prince"
    # 1e5 is beyond float16: the query is normalised before it is cast to the vectors' dtype.
    query = royal_wv["queen"].astype(np.float64) * 1e5
    assert big.most_similar(query, top=1) == [("queen", pytest.approx(1.0, abs=1e-3))]
    questions = tmp_path / "questions.txt"
    questions.write_text(ANALOGY_FILE)
    assert big.evaluate_analogies(questions)["correct"] == royal_wv.evaluate_analogies(questions)["correct"]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("man\twoman\t5\nking\tqueen\t6\nking\tprince\t9\napple\tcar\t1\n")
    assert big.evaluate_word_pairs(pairs)["spearman"] == pytest.approx(royal_wv.evaluate_word_pairs(pairs)["spearman"])


# ----- most_similar / similarity --------------------------------------------------------------------

def test_most_similar_matches_brute_force_sort(random_wv):
    for word in ("w0", "w123", "w499"):
        got = random_wv.most_similar(word, top=10)
        expected = brute_force_neighbours(random_wv, random_wv[word], skip={word})
        assert [w for w, _ in got] == [w for w, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)
        assert all(isinstance(s, float) for _, s in got)


def test_most_similar_vector_query_does_not_exclude_anything(random_wv):
    got = random_wv.most_similar(random_wv["w5"], top=3)
    assert got[0][0] == "w5" and got[0][1] == pytest.approx(1.0, abs=1e-6)
    expected = brute_force_neighbours(random_wv, random_wv["w5"], top=3)
    assert [w for w, _ in got] == [w for w, _ in expected]


def test_batch_equals_single_queries(random_wv):
    """A 2-D array is one query per row (issue 17), answered by one matrix product."""
    queries = np.stack([random_wv["w3"], random_wv["w40"] * 7, random_wv["w77"], random_wv["w499"]])
    batch = random_wv.most_similar(queries, top=7, exclude=["w1"])
    assert len(batch) == 4
    for query, result in zip(queries, batch):
        single = random_wv.most_similar(query, top=7, exclude=["w1"])
        assert [w for w, _ in result] == [w for w, _ in single]
        np.testing.assert_allclose([s for _, s in result], [s for _, s in single], rtol=1e-6)
    matrix_batch = random_wv.most_similar(random_wv.vectors[:3], top=2)
    assert [r[0][0] for r in matrix_batch] == ["w0", "w1", "w2"]
    assert random_wv.most_similar(random_wv.vectors[:0], top=2) == []


def test_exclude(random_wv):
    first = random_wv.most_similar("w9", top=3)
    dropped = [w for w, _ in first[:2]]
    got = random_wv.most_similar("w9", top=3, exclude=dropped)
    assert not set(dropped) & {w for w, _ in got}
    assert got[0] == first[2]
    assert random_wv.most_similar("w9", top=1, exclude=dropped[0])[0] == first[1]


@pytest.mark.parametrize("make", [np.array, set, tuple, iter, dict.fromkeys], ids=["ndarray", "set", "tuple",
                                                                               "iterator", "dict"])
def test_exclude_accepts_any_iterable_of_words(random_wv, make):
    """A NumPy array used to fail with "the truth value of an array ... is ambiguous"."""
    dropped = [w for w, _ in random_wv.most_similar("w9", top=2)]
    expected = random_wv.most_similar("w9", top=3, exclude=dropped)
    assert not set(dropped) & {w for w, _ in expected}
    assert random_wv.most_similar("w9", top=3, exclude=make(dropped)) == expected
    assert random_wv.most_similar(["w9"], top=3, exclude=make(dropped)) == expected
    assert random_wv.most_similar("w9", top=3, exclude=np.array([], dtype=str)) == random_wv.most_similar("w9", top=3)


@pytest.mark.parametrize("exclude", [5, 2.5, object()])
def test_exclude_must_be_a_word_or_an_iterable_of_words(random_wv, exclude):
    with pytest.raises(TypeError, match="exclude must be a word or an iterable of words, got "):
        random_wv.most_similar("w9", exclude=exclude)


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
    """NaN compares False with everything: top=nan used to return the whole vocabulary.
    (most_similar's top=None is gensim's topn=None, every similarity: see test_user_surface.)"""
    if top is not None:
        with pytest.raises(ValueError, match="top must be a positive integer"):
            random_wv.most_similar("w1", top=top)
        with pytest.raises(ValueError, match="topn must be a positive integer"):
            random_wv.most_similar("w1", topn=top)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        random_wv.analogy("w1", "w2", "w3", top=top)
    assert len(random_wv.most_similar("w1", top=np.int64(2))) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_query_vector_raises(random_wv, bad):
    query = random_wv["w5"].copy()
    query[3] = bad
    with pytest.raises(ValueError, match="query vector contains NaN or inf"):
        random_wv.most_similar(query)
    with pytest.raises(ValueError, match="positive item 1 contains NaN or inf"):
        random_wv.most_similar(["w1", query])
    with pytest.raises(ValueError, match="query 1 contains NaN or inf"):
        random_wv.most_similar(np.stack([random_wv["w1"], query]))


def test_zero_queries_raise_instead_of_ranking_arbitrary_words():
    wv = WordVectors(np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
                     ["zero", "x", "y", "z"])
    with pytest.raises(ValueError, match="query vector is a zero vector"):
        wv.most_similar(np.zeros(2))
    with pytest.raises(ValueError, match="word 'zero' has a zero vector"):
        wv.most_similar("zero")
    with pytest.raises(ValueError, match="query 1 is a zero vector"):
        wv.most_similar(np.array([np.ones(2), np.zeros(2)]))
    with pytest.raises(ValueError, match="positive item 1 is a zero vector"):
        wv.most_similar([np.ones(2), np.zeros(2)])
    with pytest.raises(ValueError, match="word 'zero' has a zero vector"):
        wv.most_similar(positive=["x"], negative=["zero"])
    with pytest.raises(ValueError, match="the query .* is the zero vector"):
        wv.most_similar(positive=["x"], negative=["x"])
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
    # Words and values long enough that the file could hold what the header announces, so that
    # the row checks (not the header-size check) find these.
    (b"1 3\nalpha 1.5 2.5\n", False, r":2: expected a word and 3 values, got 2"),
    (b"1 3\na 1 2 x\n", False, "not all numbers"),
    (b"2 3\nalpha 1.5 2.5 3.5\n", False, "announces 2 rows but the file has 1"),
    (b"1 3\na 1 2 3\nb 4 5 6\n", False, "more rows"),
    (b"1 3\nalphabet " + b"\0" * 8, True, r"truncated: word 0 \(b'alphabet'\) has fewer than 3 values"),
    (b"2 1\nalphabet " + b"\0" * 4 + b"\n", True, "truncated: word 1 of 2 is missing its ' ' separator"),
    (b"1 1\na " + b"\0" * 8 + b"\n", True, "data after"),
])
def test_malformed_word2vec_files(tmp_path, content, binary, message):
    path = tmp_path / "bad.w2v"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        WordVectors.load_word2vec_format(path, binary=binary)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_invalid_utf8_names_the_line_or_row(tmp_path, binary):
    """The UnicodeDecodeError used to give no line, though the docstring promised one."""
    path = tmp_path / "latin1.w2v"
    if binary:
        rows = np.ones((2, 2), dtype="<f4")
        path.write_bytes(b"2 2\nok " + rows[0].tobytes() + b"\ncaf\xe9 " + rows[1].tobytes() + b"\n")
        where = "latin1.w2v: row 1"
    else:
        path.write_bytes(b"2 2\nok 1 2\ncaf\xe9 3 4\n")
        where = "latin1.w2v:3"
    with pytest.raises(ValueError, match=re.escape(f"{where}: the word {b'caf' + bytes([0xe9])!r} is not valid UTF-8")
                       + ".*unicode_errors='replace'"):
        WordVectors.load_word2vec_format(path, binary=binary)
    assert WordVectors.load_word2vec_format(path, binary=binary, unicode_errors="replace").words == ("ok", "caf\ufffd")
    assert WordVectors.load_word2vec_format(path, binary=binary, unicode_errors="ignore").words == ("ok", "caf")


def test_word2vec_unknown_unicode_errors_handler(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"1 1\na 1\n")
    with pytest.raises(ValueError, match="unknown unicode_errors 'bogus'"):
        WordVectors.load_word2vec_format(path, unicode_errors="bogus")


def test_word2vec_value_beyond_float32_names_line_and_word(tmp_path):
    """1e39 used to be reported as "vectors contain NaN or inf", with no line or word."""
    path = tmp_path / "big.txt"
    path.write_bytes(b"3 2\na 1 2\n\nb 3 -1e39\nc 3 4\n")
    with pytest.raises(ValueError, match=r"big.txt:4: word 'b' has the value -1e\+39, beyond the float32 range"):
        WordVectors.load_word2vec_format(path)
    assert WordVectors.load_word2vec_format(path, dtype=np.float64)["b"][1] == -1e39


def test_word2vec_non_finite_and_out_of_range_values_name_the_row(tmp_path):
    text = tmp_path / "nan.txt"
    text.write_bytes(b"2 2\na 1 2\nb nan 4\n")
    with pytest.raises(ValueError, match=r"nan.txt:3: word 'b' has the value nan; vectors must be finite"):
        WordVectors.load_word2vec_format(text)
    binary = tmp_path / "v.bin"
    rows = np.array([[1, 2], [3, 1e5]], dtype="<f4")
    binary.write_bytes(b"2 2\na " + rows[0].tobytes() + b"\nb " + rows[1].tobytes() + b"\n")
    assert WordVectors.load_word2vec_format(binary, binary=True)["b"][1] == 1e5
    with pytest.raises(ValueError, match=r"v.bin: row 1: word 'b' has the value 100000, beyond the float16 range"):
        WordVectors.load_word2vec_format(binary, binary=True, dtype=np.float16)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("header, n_words, dim", [
    (b"99999999999 2", 99999999999, 2),
    (b"1 99999999999", 1, 99999999999),
    (b"3 2", 3, 2),
])
def test_word2vec_header_announcing_more_rows_than_the_file_holds(tmp_path, binary, header, n_words, dim):
    """99,999,999,999 words in the header used to end in a MemoryError allocating them."""
    path = tmp_path / "v.w2v"
    if binary:
        rows = np.ones((2, 2), dtype="<f4")
        path.write_bytes(header + b"\na " + rows[0].tobytes() + b"\nb " + rows[1].tobytes() + b"\n")
    else:
        path.write_bytes(header + b"\na 1 2\nb 3 4\n")
    with pytest.raises(ValueError, match=rf"v.w2v:1: the header '{header.decode()}' announces {n_words} rows of "
                                         rf"{dim} values, but the \d+ bytes after it have room for at most \d+"):
        WordVectors.load_word2vec_format(path, binary=binary)


def test_word2vec_shortest_possible_rows_pass_the_header_size_check(tmp_path):
    text = tmp_path / "v.txt"
    text.write_bytes(b"2 2\na 1 2\nb 3 4")  # no final newline
    np.testing.assert_array_equal(WordVectors.load_word2vec_format(text).vectors, [[1, 2], [3, 4]])
    rows = np.arange(4, dtype="<f4").reshape(2, 2)
    binary = tmp_path / "v.bin"
    binary.write_bytes(b"2 2\na " + rows[0].tobytes() + b"b " + rows[1].tobytes())  # no newlines
    np.testing.assert_array_equal(WordVectors.load_word2vec_format(binary, binary=True).vectors, rows)


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


def test_book_helpers_handle_float16_counts_above_256(capsys):
    """The book's x / sqrt(sum(x ** 2)) overflows in float16 past a norm of 256: such words were
    zero vectors, with cosine 0 to everything."""
    counts = np.array([[300, 300, 0], [600, 590, 10], [0, 1, 1], [400, 0, 400]], dtype=np.float16)
    exact = counts.astype(np.float64)
    unit = exact / np.linalg.norm(exact, axis=1, keepdims=True)
    word_to_id = {"a": 0, "b": 1, "c": 2, "d": 3}
    id_to_word = {i: w for w, i in word_to_id.items()}
    assert cos_similarity(counts[0], counts[1]) == pytest.approx(unit[0] @ unit[1], abs=1e-3)
    shown = most_similar("a", word_to_id, id_to_word, counts, top=1)
    assert shown == [("b", pytest.approx(unit[0] @ unit[1], abs=1e-3))]
    target = exact[1] - exact[0] + exact[3]
    shown = analogy("a", "b", "d", word_to_id, id_to_word, counts, top=1)
    assert shown == [("c", pytest.approx(exact[2] @ target / np.linalg.norm(target), rel=1e-2))]
    capsys.readouterr()


def test_book_cos_similarity_of_int32_counts_beyond_46340():
    """int32 squares wrap around past 46340: the book's formula gave NaN."""
    counts = np.array([[50000, 0], [50000, 1]], dtype=np.int32)
    assert cos_similarity(counts[0], counts[1]) == pytest.approx(1.0)


def test_an_unk_token_answers_words_not_in_the_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    words = ["<unk>", "cat", "dog", "mat", "log"]
    wv = WordVectors(rng.standard_normal((5, 4)).astype(np.float32), words)
    with pytest.raises(KeyError, match="'zebra' not in vocabulary"):
        wv["zebra"]
    wv.unk_token = "<unk>"
    np.testing.assert_array_equal(wv["zebra"], wv["<unk>"])
    assert "zebra" not in wv  # membership still tells the truth
    assert [w for w, _ in wv.most_similar("zebra", topn=4)] == [w for w, _ in wv.most_similar("<unk>", topn=4)]
    with pytest.raises(KeyError):
        wv[3]  # not a word at all: still an error
    with pytest.raises(ValueError, match="unk_token 'UNK' is not one of the words"):
        WordVectors(wv.vectors, words, unk_token="UNK")
    import fastnlp

    loaded = fastnlp.load(fastnlp.save(tmp_path / "v.npz", wv))
    assert loaded.unk_token == "<unk>"
    np.testing.assert_array_equal(loaded["zebra"], wv["<unk>"])
