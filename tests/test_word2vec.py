"""word2vec: the model (fastnlp.Word2Vec), its Huffman tree and sampling tables, on small corpora.

The kernels themselves are checked against the reference by tests/test_kernels_registry.py.
"""
import json
import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp import Vocabulary, Word2Vec, WordVectors
from fastnlp.kernels import word2vec as ops
from fastnlp.models.huffman import huffman_tree
from conftest import CPU_AVAILABLE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FAST = dict(vector_size=16, window=3, min_count=1, sample=0, epochs=5, progress=False)


def planted_corpus(n_topics=4, words_per_topic=6, n_sentences=1200, length=8, seed=0):
    """Sentences that each draw their words from one topic: words co-occur only within a topic."""
    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{i}" for i in range(words_per_topic)] for t in range(n_topics)]
    sentences = []
    for _ in range(n_sentences):
        words = topics[rng.integers(n_topics)]
        sentences.append([words[i] for i in rng.integers(0, words_per_topic, length)])
    return sentences, topics


def topic_accuracy(model, topics):
    """Fraction of words whose nearest neighbour is in their own topic."""
    topic_of = {w: t for t, words in enumerate(topics) for w in words}
    hits = sum(topic_of[model.wv.most_similar(w, top=1)[0][0]] == t for w, t in topic_of.items())
    return hits / len(topic_of)


@pytest.fixture(scope="module")
def planted():
    return planted_corpus()


# ----- learning ------------------------------------------------------------------------------

@pytest.mark.parametrize("sg, hs, negative", [(0, 0, 5), (1, 0, 5), (0, 1, 0), (1, 1, 0), (1, 1, 3)])
def test_every_architecture_learns_the_planted_topics(planted, sg, hs, negative):
    sentences, topics = planted
    model = Word2Vec(sentences, sg=sg, hs=hs, negative=negative, **FAST)
    assert topic_accuracy(model, topics) >= 0.95
    assert model.loss_history[-1] < model.loss_history[0]
    assert isinstance(model.wv, WordVectors) and model.wv.vector_size == 16 and len(model.wv) == 24


def test_workers_1_is_bit_identical_run_to_run(planted):
    sentences, _ = planted
    a = Word2Vec(sentences, sg=1, seed=7, **FAST)
    b = Word2Vec(sentences, sg=1, seed=7, **FAST)
    c = Word2Vec(sentences, sg=1, seed=8, **FAST)
    assert np.array_equal(a.syn0, b.syn0) and np.array_equal(a.syn1neg, b.syn1neg)
    assert a.loss_history == b.loss_history
    assert not np.array_equal(a.syn0, c.syn0)


@pytest.mark.parametrize("sg", [0, 1])
def test_workers_2_hogwild_learns_as_well_as_one_worker(planted, sg):
    sentences, topics = planted
    settings = dict(FAST, sg=sg, batch_words=400)  # many jobs, so two threads really overlap
    one = Word2Vec(sentences, workers=1, **settings)
    two = Word2Vec(sentences, workers=2, **settings)
    assert topic_accuracy(two, topics) >= topic_accuracy(one, topics) - 0.05
    assert abs(two.loss_history[-1] - one.loss_history[-1]) < 0.1 * one.loss_history[-1]


def test_cpu_backends_train_the_same_model_bit_for_bit(planted):
    sentences = planted[0][:60]
    results = {}
    for backend in CPU_AVAILABLE:  # the compute backends (matrix-library ones serve only matrix products)
        with fastnlp.use_backend(backend):
            model = Word2Vec(sentences, sg=1, hs=1, negative=2, vector_size=8, window=2, min_count=1, epochs=1,
                             progress=False)
        results[backend] = model
        assert model.kernel_backend == backend
    reference = results.pop("numpy")
    for backend, model in results.items():
        assert np.array_equal(model.syn0, reference.syn0), backend
        assert np.array_equal(model.syn1, reference.syn1) and np.array_equal(model.syn1neg, reference.syn1neg)
        assert model.loss_history == reference.loss_history


@pytest.mark.parametrize("op", ops.OPS)
def test_every_simd_level_of_the_compiled_step_gives_the_reference_bits(op):
    """The float step is compiled for the build's target and, on x86-64, for AVX2 (the loader
    picks one), plus a 16-lane step where the CPU has AVX-512F (the default there); the
    generated registry tests only see the one in use, so every level is checked here."""
    from hypothesis import given, settings

    from fastnlp.kernels import harness, registry

    impl = registry.implementations(op)["cython"]
    if isinstance(impl, str):
        pytest.skip(impl)
    from fastnlp.kernels.word2vec import _cython_impl

    @settings(max_examples=25, deadline=None)
    @given(args=ops._examples())
    def check(args):
        harness.check_against_reference(op, "cython", args)

    before = _cython_impl.SIMD
    try:
        for level in _cython_impl.SIMD_LEVELS:
            _cython_impl.use_simd(level)
            check()
    finally:
        _cython_impl.use_simd(before)
    with pytest.raises(ValueError, match="not available"):
        _cython_impl.use_simd("avx512")


# ----- input forms -----------------------------------------------------------------------------

def test_a_file_path_and_id_arrays_train_the_same_model_as_token_lists(planted, tmp_path):
    sentences = planted[0][:300]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    from_lists = Word2Vec(sentences, sg=1, **FAST)
    from_file = Word2Vec(str(path), sg=1, **FAST)
    vocab, _ = Vocabulary.build_encoded([w for s in sentences for w in s])  # order of first appearance
    from_ids = Word2Vec([vocab.encode(s) for s in sentences], sg=1, vocabulary=vocab, **FAST)
    assert from_file.vocabulary.id_to_word == from_lists.vocabulary.id_to_word == from_ids.vocabulary.id_to_word
    assert np.array_equal(from_file.syn0, from_lists.syn0)
    assert np.array_equal(from_ids.syn0, from_lists.syn0)


def test_a_2d_array_of_str_trains_as_one_sentence_a_row(planted):
    sentences = planted[0][:300]  # all of one length
    from_lists = Word2Vec(sentences, sg=1, **FAST)
    from_array = Word2Vec(np.array(sentences), sg=1, **FAST)
    assert from_array.vocabulary.id_to_word == from_lists.vocabulary.id_to_word
    assert all(type(word) is str for word in from_array.vocabulary.id_to_word)
    assert np.array_equal(from_array.syn0, from_lists.syn0)
    ragged = np.empty(2, dtype=object)
    ragged[:] = [["a", "b", "a"], ["b", "a"]]
    assert Word2Vec(ragged, **FAST).vocabulary.id_to_word == ["a", "b"]
    with pytest.raises(TypeError, match="1-D array of str is one sentence"):
        Word2Vec(np.array(sentences[0]), **FAST)
    with pytest.raises(ValueError, match="1-D .* or 2-D .* got shape \\(2, 2, 2\\)"):
        Word2Vec(np.array([[["a", "b"]] * 2] * 2), **FAST)


def test_a_given_vocabulary_s_unseen_words_keep_their_initial_vectors_unless_dropped(tmp_path):
    # the vocabulary's counts are used, not the corpus's; "ghost" never occurs in the corpus
    vocab = Vocabulary(["a", "b", "c", "ghost"], counts=[10, 8, 6, 20])
    rng = np.random.default_rng(0)
    ids = [rng.integers(0, 3, 12) for _ in range(50)]
    settings = dict(vocabulary=vocab, min_count=1, vector_size=8, window=2, sample=0, epochs=3, progress=False)
    untrained = Word2Vec(**settings).build_vocab(ids)
    kept = Word2Vec(ids, **settings)
    assert kept.vocabulary.id_to_word == ["ghost", "a", "b", "c"] and kept.vocabulary.counts.tolist() == [20, 10, 8, 6]
    assert np.array_equal(kept.wv["ghost"], untrained.wv["ghost"])  # never trained
    assert not np.array_equal(kept.wv["a"], untrained.wv["a"])
    dropped = Word2Vec(ids, drop_unseen=True, **settings)
    assert dropped.vocabulary.id_to_word == ["a", "b", "c"] and dropped.vocabulary.counts.tolist() == [10, 8, 6]
    assert "ghost" not in dropped.wv and len(dropped.wv) == 3
    assert "ghost" not in {w for w, _ in dropped.wv.most_similar("a", top=5)}
    assert Word2Vec.load(dropped.save(tmp_path / "m.npz")).drop_unseen is True
    with pytest.raises(ValueError, match="min_count=9 removes every word: the most frequent word seen in the corpus "
                                         "occurs 8 times"):
        Word2Vec([[1, 2]], **dict(settings, min_count=9, drop_unseen=True))
    with pytest.raises(TypeError, match="drop_unseen must be True or False"):
        Word2Vec(ids, drop_unseen="yes", **settings)


def _window_pairs(sg, window, shrink_windows, n=10):
    """(centre, context) pairs one job trains, counted through the loss: with all weights 0 and
    alpha 0 nothing moves and every (input, output) term costs -log sigmoid(0) = log 2; with one
    Huffman node per word there is one output per centre word."""
    tables = ops.Tables.build(np.ones(n, np.int64), sample=0, negative=0,
                              huffman=(np.zeros((n, 1), np.int32), np.zeros((n, 1), np.uint8), np.ones(n, np.int32)),
                              dtype=np.float64)
    syn0, syn1 = np.zeros((n, 4), np.float64), np.zeros((1, 4), np.float64)
    kernel = ops.TrainingKernel(syn0, np.zeros((0, 4), np.float64), syn1, tables, sg=sg, window=window, negative=0,
                                shrink_windows=shrink_windows)
    loss, trained = kernel(np.arange(n, dtype=np.int32), np.array([n], np.int64), 0.0, 0.0, 12345)
    return loss / math.log(2), trained


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
def test_fixed_windows_train_every_context_within_window_words(backend):
    n, window = 10, 3
    every = sum(min(i, window) + min(n - 1 - i, window) for i in range(n))
    with fastnlp.use_backend(backend):
        pairs, trained = _window_pairs(True, window, shrink_windows=False, n=n)
        assert trained == n and pairs == pytest.approx(every, rel=1e-6)
        shrunk, _ = _window_pairs(True, window, shrink_windows=True, n=n)
        assert n * 2 <= shrunk < every  # word2vec.c draws each window from 1..window words a side
        cbow, _ = _window_pairs(False, window, shrink_windows=False, n=n)
        assert cbow == pytest.approx(n, rel=1e-6)  # one input (the mean) per centre word
        # window 1 leaves nothing to draw: both rules train the same pairs
        assert _window_pairs(True, 1, True, n)[0] == _window_pairs(True, 1, False, n)[0]


def test_shrink_windows_is_a_saved_setting_that_changes_training(planted, tmp_path):
    sentences, topics = planted
    fixed = Word2Vec(sentences, sg=1, shrink_windows=False, **FAST)
    shrunk = Word2Vec(sentences, sg=1, **FAST)
    assert not np.array_equal(fixed.syn0, shrunk.syn0)
    assert topic_accuracy(fixed, topics) >= 0.95
    assert Word2Vec.load(fixed.save(tmp_path / "m.npz")).shrink_windows is False
    with pytest.raises(TypeError, match="shrink_windows must be True or False"):
        Word2Vec(sentences, shrink_windows="no", **FAST)


def test_private_rows_follow_the_workers_and_are_a_saved_setting(planted, tmp_path):
    sentences, topics = planted
    one = Word2Vec(sentences, sg=0, workers=1, **FAST)
    assert one.private_rows is None and one._training_kernel(100).private_rows == 0  # bit-exact single worker
    two = Word2Vec(sentences, sg=0, workers=2, **FAST)
    # 128 KiB of rows per matrix: 2,048 rows of 16 floats, capped by the kernel at the 24 words
    assert two._training_kernel(100).private_rows == ops.PRIVATE_BYTES // (16 * 4)
    assert topic_accuracy(two, topics) >= 0.95
    # one worker with every row private: the rule's arithmetic only, so the same topics
    private = Word2Vec(sentences, sg=0, workers=1, private_rows=5, **FAST)
    assert private._training_kernel(100).private_rows == 5 and topic_accuracy(private, topics) >= 0.95
    assert Word2Vec.load(private.save(tmp_path / "m.npz")).private_rows == 5
    for bad, error in ((-1, ValueError), (True, TypeError), (2.5, TypeError)):
        with pytest.raises(error, match="private_rows"):
            Word2Vec(sentences, private_rows=bad, **FAST)


def test_the_training_kernel_refuses_negative_private_rows(planted):
    model = Word2Vec(vector_size=4, min_count=1, progress=False).build_vocab(planted[0][:50])
    for name in ("private_rows", "sync_tokens"):
        with pytest.raises(ValueError, match=name):
            ops.TrainingKernel(model.syn0, model.syn1neg, model.syn1, model._tables, sg=True, window=2, negative=5,
                               **{name: -1})


def test_private_rows_equal_the_plain_loop_up_to_rounding_in_one_thread(planted):
    """With one writer the rule is start + (trained - start) per range: the plain loop's rows
    up to one rounding per range, on every backend (the generated tests check the bits)."""
    sentences = planted[0][:300]
    plain = Word2Vec(sentences, sg=1, workers=1, **FAST)
    private = Word2Vec(sentences, sg=1, workers=1, private_rows=10_000, **FAST)
    np.testing.assert_allclose(private.syn0, plain.syn0, rtol=1e-3, atol=1e-5)


def test_min_count_with_a_given_vocabulary_drops_rare_ids():
    vocab = Vocabulary(["a", "b", "rare"])
    sentences = [np.array([0, 1, 0, 1, 2]), [1, 0, 1, 0]]
    model = Word2Vec(sentences, vocabulary=vocab, min_count=2, vector_size=4, window=1, sample=0, epochs=1,
                     progress=False)
    assert model.vocabulary.id_to_word == ["a", "b"] and model.vocabulary.counts.tolist() == [4, 4]


def test_words_outside_the_vocabulary_are_skipped_when_training_on(planted):
    sentences, _ = planted
    model = Word2Vec(sentences[:200], min_count=1, vector_size=8, epochs=1, progress=False)
    model.train([["t0w1", "unseen", "t0w2"], ["never", "seen"]], epochs=1)
    assert model.epochs_trained == 2


def test_progress_bar_reports_epoch_alpha_and_words(planted, capsys):
    Word2Vec(planted[0][:200], vector_size=8, min_count=1, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "word2vec" in err and "epoch 2/2" in err and "alpha" in err and "word/s" in err


# ----- the pieces: Huffman tree, subsampling, noise, learning rate -----------------------------

def test_huffman_codes_are_prefix_free_and_frequent_words_get_short_codes():
    rng = np.random.default_rng(0)
    counts = np.sort(rng.integers(1, 1000, 50))[::-1] ** 2
    points, codes, lengths = huffman_tree(counts)
    words = ["".join(map(str, codes[w, :lengths[w]])) for w in range(50)]
    assert len(set(words)) == 50
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert sum(2.0 ** -length for length in lengths) == pytest.approx(1.0)  # a full binary tree
    for i in range(50):
        for j in range(50):
            if counts[i] > counts[j]:
                assert lengths[i] <= lengths[j]
    assert (points[:, 0] == 48).all()  # every path starts at the root, inner node V - 2
    assert points.max() <= 48 and points.min() >= 0
    # the average code length is within 1 bit of the entropy
    p = counts / counts.sum()
    assert (p * lengths).sum() < -(p * np.log2(p)).sum() + 1


def test_huffman_tree_of_one_and_two_words():
    points, codes, lengths = huffman_tree([5])
    assert lengths.tolist() == [0] and points.shape == (1, 0)
    points, codes, lengths = huffman_tree([5, 3])
    assert lengths.tolist() == [1, 1] and sorted(codes[:, 0].tolist()) == [0, 1] and (points == 0).all()
    with pytest.raises(ValueError):
        huffman_tree([3, 0])


def test_subsampling_keeps_word2vec_c_s_fraction_of_each_word():
    counts = np.array([20000, 5000, 10])
    sample = 1e-3
    keep = ops.keep_thresholds(counts, sample)
    threshold = sample * counts.sum()
    expected = np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1)
    assert np.allclose(keep / 2.0**32, expected, atol=1e-9)
    assert keep[2] == 2**32  # rare: always kept
    assert (ops.keep_thresholds(counts, 0) == 2**32).all()
    # the kernel keeps about that fraction of each word
    tokens = np.repeat(np.array([0, 1, 2], np.int32), [20000, 5000, 10])
    ends = np.arange(10, tokens.size + 1, 10, dtype=np.int64)
    ends[-1] = tokens.size
    for word, n in ((0, 20000), (1, 5000)):
        tables = ops.Tables.build(counts, sample=sample, negative=1)
        kernel = ops.TrainingKernel(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32),
                                    np.zeros((0, 2), np.float32), tables, sg=True, window=1, negative=1)
        only = np.full(n, word, np.int32)
        _, trained = kernel(only, np.array([n], np.int64), 0.0, 0.0, 3)
        p = expected[word]
        assert abs(trained - p * n) < 4 * math.sqrt(n * p * (1 - p))


def alias_distribution(prob, index):
    """The exact distribution an alias table draws: column c with probability 1/V, then c or its alias."""
    n = prob.shape[0]
    assert np.all((0 <= prob) & (prob <= 2**32)) and np.all((0 <= index) & (index < n))
    dist = np.zeros(n)
    for c in range(n):
        dist[c] += prob[c] / 2.0**32 / n
        dist[index[c]] += (1 - prob[c] / 2.0**32) / n
    return dist


@pytest.mark.parametrize("exponent", [0.75, 0.0, -1.0, 3.0, 40.0])
def test_alias_table_samples_the_unigram_distribution_to_the_power_ns_exponent(exponent):
    counts = np.array([1000, 100, 10, 1, 500])
    target = counts.astype(np.float64) ** exponent
    assert np.allclose(alias_distribution(*ops.alias_table(counts, exponent)), target / target.sum(), atol=1e-9)


def test_huge_ns_exponents_give_the_limit_distribution_not_a_uniform_one():
    # counts**1000 overflows to inf; the limit puts all the mass on the most (or least) frequent words
    counts = np.array([1000, 100, 1000, 1, 0])
    for exponent, target in ((1000.0, [0.5, 0, 0.5, 0, 0]), (1e308, [0.5, 0, 0.5, 0, 0]),
                             (-1000.0, [0, 0, 0, 1, 0]), (0.0, [0.25, 0.25, 0.25, 0.25, 0])):
        weights = ops.noise_weights(counts, exponent)
        assert np.all(np.isfinite(weights)) and weights.max() == 1.0
        assert np.allclose(alias_distribution(*ops.alias_table(counts, exponent)), target, atol=1e-9), exponent
    # a few survivors of underflow among many zeros still make a valid table
    many = np.ones(1000, np.int64)
    many[[3, 500]] = 2
    assert np.allclose(alias_distribution(*ops.alias_table(many, 5000.0))[[3, 500]], 0.5, atol=1e-9)
    with pytest.raises(ValueError, match="positive count"):
        ops.alias_table(np.zeros(3, np.int64), 0.75)
    with pytest.raises(ValueError, match="exponent.*finite"):
        ops.alias_table(counts, math.inf)


def test_the_model_s_noise_distribution_follows_ns_exponent(planted):
    sentences = [["common"] * 5 + ["rare"]] * 20 + planted[0][:50]
    model = Word2Vec(sentences, ns_exponent=1000, **FAST)
    dist = alias_distribution(model._tables.alias_prob, model._tables.alias_index)
    assert model.vocabulary.id_to_word[0] == "common" and dist[0] == pytest.approx(1.0)
    rare_first = Word2Vec(sentences, ns_exponent=-1000, **FAST)
    dist = alias_distribution(rare_first._tables.alias_prob, rare_first._tables.alias_index)
    rarest = rare_first.vocabulary.counts == rare_first.vocabulary.counts.min()
    assert dist[rarest].sum() == pytest.approx(1.0) and np.allclose(dist[rarest], dist[rarest][0])


def test_learning_rate_decays_linearly_over_all_words_of_all_epochs(planted, monkeypatch):
    seen = []
    original = ops.TrainingKernel.__call__

    def spy(self, tokens, ends, alpha_start, alpha_end, seed):
        seen.append((alpha_start, alpha_end, int(ends[-1]) if ends.size else 0))
        return original(self, tokens, ends, alpha_start, alpha_end, seed)

    monkeypatch.setattr(ops.TrainingKernel, "__call__", spy)
    sentences = planted[0][:500]  # 4000 words, 8 jobs of 500 per epoch
    Word2Vec(sentences, alpha=0.05, min_alpha=0.001, batch_words=500, vector_size=8, min_count=1, epochs=3,
             progress=False)
    starts = [s for s, _, _ in seen]
    assert len(seen) == 24 and starts[0] == 0.05  # 8 jobs of 504 words (whole sentences) per epoch
    assert seen[-1][1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(starts, starts[1:]))
    done = 0  # words of the schedule before each job
    for alpha_start, alpha_end, words in seen:
        assert alpha_start == pytest.approx(0.05 - 0.049 * done / 12000)
        done += words
        assert alpha_end == pytest.approx(0.05 - 0.049 * done / 12000)


# ----- callbacks, divergence --------------------------------------------------------------------

def test_callbacks_are_called_after_every_epoch_with_model_epoch_and_loss(planted):
    calls = []
    model = Word2Vec(planted[0][:300], vector_size=8, min_count=1, epochs=3, progress=False,
                     callbacks=[lambda m, epoch, loss: calls.append((m, epoch, loss))])
    assert [c[1] for c in calls] == [1, 2, 3]
    assert all(c[0] is model for c in calls)
    assert [c[2] for c in calls] == model.loss_history and all(loss > 0 for loss in model.loss_history)


def test_a_diverging_run_stops_with_the_epoch_and_job_named(planted):
    # Saturated scores are skipped (gensim's rule), so a merely huge alpha freezes the rows it
    # blows up instead of overflowing them; one beyond float32's range is inf in the weights' dtype.
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) in epoch 1 .*job \d+"):
        Word2Vec(planted[0][:300], alpha=1e39, min_alpha=0, vector_size=8, min_count=1, epochs=2, progress=False)


# ----- saving, loading, resuming ---------------------------------------------------------------

@pytest.mark.parametrize("sg, hs, negative", [(1, 0, 5), (0, 1, 3)])
def test_save_load_resume_equals_one_uninterrupted_run(planted, tmp_path, sg, hs, negative):
    sentences = planted[0][:400]
    settings = dict(FAST, sg=sg, hs=hs, negative=negative, epochs=4, sample=1e-3)
    straight = Word2Vec(sentences, **settings)

    first = Word2Vec(**settings)
    first.build_vocab(sentences)
    first.train(sentences, stop_after=2)
    path = first.save(tmp_path / "w2v.npz")
    assert sorted(os.listdir(tmp_path)) == ["w2v.npz"]  # atomic write: no temporary left
    resumed = Word2Vec.load(path)
    assert resumed.epochs_trained == 2 and resumed.vocabulary.counts.tolist() == first.vocabulary.counts.tolist()
    resumed.train(sentences)  # the two remaining epochs of the schedule
    assert np.array_equal(resumed.syn0, straight.syn0)
    assert np.array_equal(resumed.syn1neg, straight.syn1neg) and np.array_equal(resumed.syn1, straight.syn1)
    assert resumed.loss_history == straight.loss_history and resumed.epochs_trained == 4


def test_saved_file_is_npz_and_json_without_pickle(planted, tmp_path):
    model = Word2Vec(planted[0][:100], vector_size=4, min_count=1, epochs=1, progress=False)
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(data["__fastnlp__"].tobytes().decode("utf-8"))
        assert data["syn0"].shape == (24, 4) and data["counts"].sum() == 800
    assert header["format"] == "fastnlp" and header["class"] == "fastnlp.models.word2vec.Word2Vec"
    assert header["settings"]["vector_size"] == 4 and header["state"]["words"] == model.vocabulary.id_to_word
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a Word2Vec file"):
        Word2Vec.load(tmp_path / "junk.npz")


def test_continuing_a_finished_model_starts_a_new_schedule(planted):
    sentences = planted[0][:200]
    model = Word2Vec(sentences, vector_size=4, min_count=1, epochs=2, progress=False)
    model.train(sentences, epochs=1)
    assert model.epochs_trained == 3 and len(model.loss_history) == 3
    partial = Word2Vec(vector_size=4, min_count=1, epochs=3, progress=False)
    partial.build_vocab(sentences)
    partial.train(sentences, stop_after=1)
    with pytest.raises(ValueError, match="2 of its 3 epochs left"):
        partial.train(sentences, epochs=3)
    partial.train(sentences, stop_after=1)
    partial.train(sentences)
    assert partial.epochs_trained == 3


def test_vectors_save_in_word2vec_format_that_gensim_reads(planted, tmp_path):
    model = Word2Vec(planted[0][:200], vector_size=8, min_count=1, epochs=1, progress=False)
    model.wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    back = WordVectors.load_word2vec_format(tmp_path / "v.bin", binary=True)
    assert np.array_equal(back.vectors, model.syn0) and back.words == tuple(model.vocabulary.id_to_word)
    gensim = pytest.importorskip("gensim")
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    assert np.array_equal(kv["t0w1"], model.wv["t0w1"])


# ----- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(window=0), ValueError, "window must be >= 1"),
    (dict(negative=-1), ValueError, "negative must be >= 0"),
    (dict(hs=0, negative=0), ValueError, "trains nothing"),
    (dict(vector_size=0), ValueError, "vector_size must be >= 1"),
    (dict(workers=0), ValueError, "workers must be >= 1"),
    (dict(alpha=0), ValueError, "alpha must be > 0"),
    (dict(alpha=-0.1), ValueError, "alpha must be > 0"),
    (dict(min_alpha=0.5), ValueError, "min_alpha"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(sample=-1), ValueError, "sample must be >= 0"),
    (dict(window=2.5), TypeError, "window must be an integer"),
    (dict(negative=2**31), ValueError, "negative must be <= 1024"),
    (dict(negative=np.int64(1025)), ValueError, "negative must be <= 1024"),
    (dict(window=2**32), ValueError, "window must be <= 4294967295"),
    (dict(ns_exponent=math.inf), ValueError, "ns_exponent must be finite"),
])
def test_bad_settings_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Word2Vec([["a", "b"]], min_count=1, progress=False, **kwargs)


def test_bad_corpora_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        Word2Vec([], progress=False)
    with pytest.raises(ValueError, match="empty corpus"):
        Word2Vec([[], []], progress=False)
    with pytest.raises(ValueError, match="min_count=5 removes every word.*occurs 2 times"):
        Word2Vec([["a", "b", "a"], ["b"]], min_count=5, progress=False)
    with pytest.raises(TypeError, match="one-shot iterator"):
        Word2Vec((s for s in [["a", "b"]]), min_count=1, progress=False)
    with pytest.raises(TypeError, match="one-shot iterator"):
        Word2Vec(iter([["a", "b"]]), min_count=1, progress=False)
    with pytest.raises(TypeError, match="split it first"):
        Word2Vec(["a sentence as one string"], min_count=1, progress=False)
    with pytest.raises(TypeError, match="vocabulary="):
        Word2Vec([[1, 2, 3]], min_count=1, progress=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        Word2Vec(str(tmp_path / "missing.txt"), progress=False)
    with pytest.raises(IndexError, match="out of range"):
        Word2Vec([[0, 5]], vocabulary=Vocabulary(["a", "b"]), min_count=1, progress=False)
    with pytest.raises(RuntimeError, match="build_vocab"):
        Word2Vec(progress=False).train([["a"]])


@pytest.mark.parametrize("corpus, match", [
    ([["a", 1, "b"]], "sentence 0 holds 1 of type int; for integer ids pass the vocabulary"),
    ([["a", "b"], ["c", None]], "sentence 1 holds None of type NoneType"),
    ([["a"], ["b"], ["c", b"d"]], "sentence 2 holds b'd' of type bytes"),
    ([["a"], ["b", np.float64(0.5)]], "sentence 1 holds .*0.5.* of type float64"),
    ([["a", ["x"]]], "sentence 0 must be a list of str tokens: unhashable type: 'list'"),
    ([["a"], None], "sentence 1 must be a list of str tokens"),
    ([["a"], 7], "sentence 1 must be a list of str tokens"),
])
def test_every_token_is_checked_while_counting_the_vocabulary(corpus, match):
    with pytest.raises(TypeError, match=match):
        Word2Vec(corpus, min_count=1, progress=False)


def test_a_bad_token_is_found_even_where_max_vocab_size_would_prune_it():
    corpus = [["a", "a"], ["b", None, "c"]] + [["a", "b"]] * 5
    with pytest.raises(TypeError, match="sentence 1 holds None"):
        Word2Vec(corpus, min_count=1, max_vocab_size=2, progress=False)


def test_max_vocab_size_that_prunes_every_word_says_so_and_numpy_integers_are_settings():
    with pytest.raises(ValueError, match="max_vocab_size=1 pruned every word while counting"):
        Word2Vec([["a", "b"], ["c", "d"]], min_count=1, max_vocab_size=1, progress=False)
    with pytest.raises(ValueError, match="max_vocab_size=1 pruned every word"):
        Word2Vec([["a", "b"], ["c", "d"]], min_count=1, max_vocab_size=np.int64(1), progress=False)
    model = Word2Vec([["a", "b", "a"], ["a", "c"]] * 3, min_count=np.int32(1), max_vocab_size=np.int64(2),
                     window=np.int16(2), negative=np.uint8(3), vector_size=np.int64(4), epochs=np.int8(1),
                     progress=False)
    assert model.vocabulary.id_to_word[0] == "a" and model.window == 2 and type(model.negative) is int


def test_ids_sentences_name_the_sentence_that_is_wrong():
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(IndexError, match="sentence 1: id 5 is out of range"):
        Word2Vec([[0, 1], [0, 5]], vocabulary=vocab, min_count=1, progress=False)
    with pytest.raises(TypeError, match="sentence 0: .*integer ids"):
        Word2Vec([["a", 1, "b"]], vocabulary=vocab, min_count=1, progress=False)


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
def test_a_window_longer_than_every_sentence_costs_nothing_and_trains_as_the_longest(planted, backend):
    sentences = planted[0][:40]  # 8 words each: a window of 7 already reaches every word
    settings = dict(FAST, sg=1, epochs=1)
    with fastnlp.use_backend(backend):
        huge = Word2Vec(sentences, **dict(settings, window=2**31, shrink_windows=False))
        longest = Word2Vec(sentences, **dict(settings, window=7, shrink_windows=False))
        shrunk = Word2Vec(sentences, **dict(settings, window=ops.MAX_WINDOW))
    assert huge.kernel_backend == backend
    assert np.array_equal(huge.syn0, longest.syn0) and huge.loss_history == longest.loss_history
    assert np.all(np.isfinite(shrunk.syn0))


def test_a_window_whose_scratch_cannot_be_had_raises_before_training():
    # one sentence of 100,000 words: skip-gram with a window over all of it needs 2 * 100,000
    # inputs of 2,000 floats each (1.6 GB) in one job
    rng = np.random.default_rng(0)
    sentence = [f"w{i}" for i in rng.integers(0, 50, 100_000)]
    model = Word2Vec(sg=1, vector_size=2000, window=2**20, min_count=1, sample=0, progress=False)
    model.build_vocab([sentence])
    before = model.syn0.copy()
    with pytest.raises(ValueError, match=r"window=1048576 cannot be honoured: a job of 100000 tokens would need "
                                         r"\d+ MiB of scratch"):
        model.train([sentence])
    assert model.epochs_trained == 0 and np.array_equal(model.syn0, before)


def test_a_worker_that_fails_to_start_stops_the_others_and_the_model_trains_again(planted, monkeypatch):
    sentences = planted[0][:200]

    def word2vec_threads():
        return [t for t in threading.enumerate() if t.name.startswith("word2vec-")]

    model = Word2Vec(workers=4, **FAST).build_vocab(sentences)
    before = model.syn0.copy()
    real_start, starts = threading.Thread.start, []

    def start_two_then_fail(thread):
        if thread.name.startswith("word2vec-"):
            starts.append(thread.name)
            if len(starts) > 2:
                raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_two_then_fail)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        model.train(sentences)
    monkeypatch.undo()
    assert len(starts) == 3 and word2vec_threads() == []
    assert np.array_equal(model.syn0, before) and model.epochs_trained == 0  # all workers or none
    model.train(sentences)
    assert model.epochs_trained == FAST["epochs"] and not np.array_equal(model.syn0, before)
    assert word2vec_threads() == []


def test_the_kernel_entry_refuses_negative_and_window_it_cannot_run():
    tables = ops.Tables.build([3, 2], sample=0, negative=2)
    syn0, syn1neg, syn1 = np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros((0, 4), np.float32)
    with pytest.raises(ValueError, match="negative must be in \\[0, 1024\\]"):
        ops.TrainingKernel(syn0, syn1neg, syn1, tables, sg=True, window=2, negative=2**31)
    with pytest.raises(ValueError, match="window must be in \\[1, 4294967295\\]"):
        ops.TrainingKernel(syn0, syn1neg, syn1, tables, sg=True, window=2**32, negative=2)
    kernel = ops.TrainingKernel(syn0, syn1neg, syn1, tables, sg=True, window=ops.MAX_WINDOW, negative=2)
    loss, trained = kernel(np.array([0, 1, 0], np.int32), np.array([3], np.int64), 0.1, 0.1, 1)
    assert trained == 3 and math.isfinite(loss)
    kernel.check_scratch(10**6)  # 2 * 10**6 context words with 3 outputs and 4 floats each: 88 MB
    with pytest.raises(ValueError, match="window=4294967295 cannot be honoured"):
        kernel.check_scratch(10**8)
    assert ops.scratch_bytes(sg=True, window=2**31, negative=5, max_code=0, vector_size=100, n_tokens=10,
                             itemsize=4) == ops.scratch_bytes(sg=True, window=10, negative=5, max_code=0,
                                                              vector_size=100, n_tokens=10, itemsize=4)


def test_the_kernel_entry_checks_what_makes_its_loops_safe():
    tables = ops.Tables.build([3, 2], sample=0, negative=2)
    syn0, syn1neg, syn1 = np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32), np.zeros((0, 4), np.float32)
    kernel = ops.TrainingKernel(syn0, syn1neg, syn1, tables, sg=False, window=2, negative=2)
    with pytest.raises(ValueError, match="token ids must lie in"):
        kernel(np.array([0, 2], np.int32), np.array([2], np.int64), 0.1, 0.1, 1)
    with pytest.raises(ValueError, match="last sentence end"):
        kernel(np.array([0, 1], np.int32), np.array([1], np.int64), 0.1, 0.1, 1)
    with pytest.raises(TypeError, match="dtype int32"):
        kernel(np.array([0, 1]), np.array([2], np.int64), 0.1, 0.1, 1)
    with pytest.raises(ValueError, match="share memory"):
        ops.TrainingKernel(syn0, syn0, syn1, tables, sg=False, window=2, negative=2)
    with pytest.raises(ValueError, match="nothing to train"):
        ops.TrainingKernel(syn0, syn1neg, syn1, ops.Tables.build([3, 2], sample=0, negative=0), sg=True, window=1,
                           negative=0)


# ----- the CUDA kernel, emulated on CPU threads --------------------------------------------------
# word2vec.cu compiled by g++ against tests/cuda_emulation/cuda_emulation.h (the harness every
# .cu file runs on, tests/test_cuda_emulation.py): one std::thread per CUDA thread, a barrier
# for __syncthreads, static variables for __shared__, plain IEEE operations for the _rn
# intrinsics. Here one block at other block sizes than cupy_impl's 128, with the reference's bits.

@pytest.fixture(scope="module")
def emulated_cuda(tmp_path_factory):
    """The compiled word2vec.cu (tests/cuda_emulation/build.py's EmulatedModule)."""
    from cuda_emulation import build

    if build.compiler() is None:
        pytest.skip("g++ is not on PATH")
    return build.build(Path(ops.__file__).with_name("word2vec.cu"), tmp_path_factory.mktemp("cuda_emulation"))


def _run_emulated(module, threads, sg, syn0, syn1neg, syn1, tokens, ends, keep, alias_prob, alias_index, points, codes,
                  lengths, tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
                  private_rows, sync_tokens):
    """The CuPy op's launches (one block of ``threads``, one per range of sentences, the private
    rows' rule between them: cupy_impl.word2vec_sg/cbow) on the emulated kernel."""
    from fastnlp.kernels.word2vec import reference

    def launch(first, stop):
        return _launch_emulated(module, threads, sg, syn0, syn1neg, syn1, tokens, ends, keep, alias_prob, alias_index,
                                points, codes, lengths, tables, max_exp, window, negative, alpha_start, alpha_end,
                                seed, shrink_windows, first, stop)

    return reference.train_privately(launch, syn0, syn1neg, ends, private_rows, sync_tokens)


def _launch_emulated(module, threads, sg, syn0, syn1neg, syn1, tokens, ends, keep, alias_prob, alias_index, points,
                     codes, lengths, tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
                     first, stop):
    """cupy_impl.train_hogwild's launch over sentences [first, stop) on the emulated kernel."""
    V, D = syn0.shape
    N = tokens.shape[0]
    if V == 0 or N == 0:
        return 0.0, 0
    hs = lengths.shape[0] > 0
    max_code = points.shape[1] if hs else 0
    max_out = max_code + (negative + 1 if negative > 0 else 0)
    span = min(window, N)
    max_in = 2 * span if sg else 1
    block_reals = max_out + max_in * max_out + max_in * D + D + threads  # as cupy_impl.train_hogwild
    block_ints = 2 * span + max_out + max_in + 3
    real = syn0.dtype.type
    reals, ints = np.zeros(block_reals, syn0.dtype), np.zeros(block_ints, np.int64)
    kept, kept_at = np.zeros(N, np.int32), np.zeros(N, np.int64)
    loss, trained = np.zeros(1), np.zeros(1, np.int64)
    T = tables.shape[1]
    kernel = module.get_function("word2vec_train_" + ("f32" if syn0.dtype == np.float32 else "f64"))
    kernel((1,), (threads,),
           (np.int32(sg), syn0, syn1neg, syn1, np.int64(D), tokens, np.int64(N), ends, np.int64(first),
            np.int64(stop), keep,
            alias_prob, alias_index, np.int64(alias_prob.shape[0]), points, codes, lengths, np.int64(max_code),
            np.int32(hs), tables, np.int64(T), real(max_exp), real(T / (2.0 * max_exp)), np.int64(window),
            np.int64(negative), np.float64(alpha_start), np.float64(alpha_end), np.uint64(seed),
            np.int32(bool(shrink_windows)), kept, kept_at, reals, np.int64(block_reals), ints, np.int64(block_ints),
            loss, trained))
    return float(loss[0]), int(trained[0])


@pytest.mark.parametrize("threads", [16, 128])
def test_the_cuda_kernel_emulated_on_cpu_threads_gives_the_reference_bits(emulated_cuda, threads):
    from hypothesis import given, settings

    from fastnlp.kernels.word2vec import reference

    @settings(max_examples=30, deadline=None)
    @given(args=ops._examples())
    def check(args):
        for sg, op in ((1, reference.word2vec_sg), (0, reference.word2vec_cbow)):
            mine = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            theirs = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            got, want = _run_emulated(emulated_cuda, threads, sg, *mine), op(*theirs)
            assert got[1] == want[1] and (got[0] == want[0] or (math.isnan(got[0]) and math.isnan(want[0])))
            for a, b in zip(mine[:3], theirs[:3]):
                assert np.array_equal(a, b, equal_nan=True)

    check()


# ----- the real corpus -------------------------------------------------------------------------

@pytest.mark.slow
def test_ptb_skipgram_one_epoch_puts_weekdays_together():
    path = DATA / "ptb" / "ptb.train.txt"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    model = Word2Vec(str(path), sg=1, vector_size=50, min_count=1, epochs=1, workers=2, progress=False)
    assert len(model.vocabulary) == 9999  # the text file has no <eos>
    days = {"monday", "tuesday", "wednesday", "thursday", "friday"}
    for day in ("monday", "tuesday"):
        neighbours = {w for w, _ in model.wv.most_similar(day, top=10)}
        assert len(days & neighbours) >= 2, (day, neighbours)
