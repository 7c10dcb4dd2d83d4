"""fastnlp.FastText: hashing and n-grams as fastText/gensim, vectors for unseen words, training,
determinism, save/load, bad input."""
import numpy as np
import pytest

import fastnlp
from fastnlp.models.fasttext import FastTextVectors, char_ngrams

WORDS = ["hello", "the", "a", "<he", "llo>", "été", "naïve", "日本語", "Привет", "straße", "😀x", "ab\u0301c"]


def _corpus(n=1500, seed=0):
    """Two topics, each a few stems with suffixes: words of one topic co-occur."""
    rng = np.random.default_rng(seed)
    topics = [["walk", "talk", "jump"], ["read", "write", "print"]]
    suffixes = ["", "s", "ed", "ing"]
    sentences = []
    for i in range(n):
        stems = topics[i % 2]
        sentences.append([stems[rng.integers(3)] + suffixes[rng.integers(4)] for _ in range(8)])
    return sentences


@pytest.fixture(scope="module")
def model():
    return fastnlp.FastText(_corpus(), sg=1, vector_size=24, bucket=4000, min_count=1, epochs=3, progress=False)


def test_hash_equals_gensim_on_ascii_and_non_ascii_words():
    fasttext = pytest.importorskip("gensim.models.fasttext")
    for word in WORDS + [""]:
        assert fastnlp.fasttext_hash(word) == fasttext.ft_hash_bytes(word.encode("utf-8")), word
    # known values (fastText's dictionary hash; bytes >= 128 enter as signed chars)
    assert fastnlp.fasttext_hash("") == 2166136261
    assert fastnlp.fasttext_hash("été") == 200187927
    assert fastnlp.fasttext_hash("été".encode("utf-8")) == 200187927
    with pytest.raises(TypeError):
        fastnlp.fasttext_hash(12)


def test_ngrams_equal_gensims_compute_ngrams():
    fasttext = pytest.importorskip("gensim.models.fasttext")
    for word in WORDS:
        for min_n, max_n in ((3, 6), (1, 3), (2, 2), (4, 9)):
            assert char_ngrams(word, min_n, max_n) == fasttext.compute_ngrams(word, min_n, max_n), (word, min_n, max_n)


def test_vocabulary_and_oov_vectors_are_means_of_their_rows(model):
    wv = model.wv
    assert isinstance(wv, FastTextVectors) and isinstance(wv, fastnlp.WordVectors)
    V = len(model.vocabulary)
    ngrams = model.vectors_ngrams
    assert ngrams.shape == (4000, 24) and np.shares_memory(ngrams, model.syn0)

    def rows(word):
        return [fastnlp.fasttext_hash(g) % 4000 for g in char_ngrams(word, 3, 6)]

    for word in ["walking", "printed"]:  # in the vocabulary: its own row and its n-gram rows
        i = model.vocabulary.word_to_id[word]
        expected = (model.syn0[i].astype(np.float64) + ngrams[rows(word)].astype(np.float64).sum(0)) / (1 + len(rows(word)))
        np.testing.assert_allclose(wv[word], expected, rtol=1e-5, atol=1e-7)
    for word in ["walker", "reprinting", "日本"]:  # never seen: the mean of its n-gram rows
        assert word not in wv and wv.has_ngrams(word)
        expected = ngrams[rows(word)].astype(np.float64).mean(0)
        np.testing.assert_allclose(wv[word], expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(wv.get_vector(word, norm=True), expected / np.linalg.norm(expected), rtol=1e-5)
    assert wv["walking"].shape == (24,) and len(wv) == V


def test_word_without_ngrams_raises_key_error_naming_it():
    model = fastnlp.FastText(_corpus(200), vector_size=8, min_n=5, max_n=6, bucket=100, min_count=1, epochs=1,
                             progress=False)
    with pytest.raises(KeyError, match="'ab'"):
        model.wv["ab"]  # "<ab>" has 4 characters: no n-gram of length 5..6
    with pytest.raises(KeyError):
        model.wv.most_similar("walkerx")  # searches take vocabulary words (or vectors)
    assert model.wv.most_similar(model.wv["walkerx"], topn=3)


@pytest.mark.parametrize("sg", [0, 1])
def test_training_reduces_loss_and_gives_sensible_neighbours(sg):
    model = fastnlp.FastText(_corpus(), sg=sg, vector_size=24, bucket=4000, min_count=1, epochs=4, progress=False)
    assert model.kernel_backend in ("cython", "numba")  # a compiled loop, not the Python reference
    assert model.loss_history[-1] < model.loss_history[0]
    topic = {"walk", "talk", "jump"}
    for query in ["walking", model.wv["walkers"]]:  # a vocabulary word, an unseen word's vector
        best = [w for w, _ in model.wv.most_similar(query, topn=5)]
        assert sum(any(w.startswith(s) for s in topic) for w in best) >= 4, best


def test_deterministic_with_one_worker_and_a_seed(model):
    again = fastnlp.FastText(_corpus(), sg=1, vector_size=24, bucket=4000, min_count=1, epochs=3, progress=False)
    assert np.array_equal(again.syn0, model.syn0) and np.array_equal(again.syn1neg, model.syn1neg)
    assert again.loss_history == model.loss_history
    other = fastnlp.FastText(_corpus(), sg=1, vector_size=24, bucket=4000, min_count=1, epochs=3, seed=2,
                             progress=False)
    assert not np.array_equal(other.syn0, model.syn0)


def test_save_load_round_trip_is_bit_exact(model, tmp_path):
    path = fastnlp.save(tmp_path / "ft.npz", model)
    loaded = fastnlp.load(path)
    assert type(loaded) is fastnlp.FastText
    assert (loaded.min_n, loaded.max_n, loaded.bucket) == (3, 6, 4000)
    assert np.array_equal(loaded.syn0, model.syn0) and np.array_equal(loaded.syn1neg, model.syn1neg)
    assert loaded.wv.words == model.wv.words
    assert np.array_equal(loaded.wv.vectors, model.wv.vectors)
    for word in ["walking", "walker", "日本"]:
        assert np.array_equal(loaded.wv[word], model.wv[word])
    assert loaded.loss_history == model.loss_history
    assert type(fastnlp.FastText.load(path)) is fastnlp.FastText
    loaded.train(_corpus(100), epochs=1)  # ready to train on


def test_bad_inputs():
    sentences = _corpus(50)
    kw = dict(min_count=1, epochs=1, progress=False, bucket=100, vector_size=8)
    with pytest.raises(ValueError, match="min_n must be <= max_n"):
        fastnlp.FastText(sentences, min_n=5, max_n=3, **{k: v for k, v in kw.items()})
    for bucket in (0, -5):
        with pytest.raises(ValueError, match="bucket"):
            fastnlp.FastText(sentences, **dict(kw, bucket=bucket))
    with pytest.raises(TypeError, match="bucket"):
        fastnlp.FastText(sentences, **dict(kw, bucket=2.5))
    with pytest.raises(ValueError, match="min_n"):
        fastnlp.FastText(sentences, min_n=0, **kw)
    with pytest.raises(ValueError, match="negative"):
        fastnlp.FastText(sentences, negative=0, **kw)
    for empty in ([], [[]], [[], []]):
        with pytest.raises(ValueError, match="empty corpus"):
            fastnlp.FastText(empty, **kw)
    with pytest.raises(ValueError, match="empty word"):
        fastnlp.FastText([["walk", "", "talk"]], **kw)
    with pytest.raises(TypeError):
        fastnlp.FastText([["walk", 3]], **kw)


def test_kernel_matches_reference_on_a_small_job():
    """Every compiled backend that loads, at the model's width (D = 100) and subword lists."""
    from fastnlp.kernels import harness, registry

    for op in ("fasttext_sg", "fasttext_cbow"):
        args = registry.spec(op).benchmark_args()
        tokens, ends = args[2][:300], np.array([100, 300], np.int64)
        small = (args[0], args[1], np.ascontiguousarray(tokens), ends) + args[4:]
        compiled = [backend for backend, function in registry.implementations(op).items()
                    if backend != registry.REFERENCE and not isinstance(function, str)]
        assert compiled, registry.implementations(op)
        for backend in compiled:
            harness.check_against_reference(op, backend, small)
