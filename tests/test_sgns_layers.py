"""Negative sampling: the public ops (gather_dot, gather_dot_backward, sample_negatives) and the
layers on them (EmbeddingDot, UnigramSampler, NegativeSamplingLoss). Backend equivalence on
generated inputs lives in test_kernels_registry.py; here: the math, the sampler's distribution,
bad input, and the row-sparse gradients."""
import numpy as np
import pytest

import fastnlp
from fastnlp import layers as L
from fastnlp.kernels import gather_dot, gather_dot_backward, sample_negatives
from fastnlp.kernels.sgns import NoiseTable

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ----- gather_dot / gather_dot_backward --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_dot_and_backward_do_the_math_with_repeated_ids(cpu_backend, dtype):
    W, h = randn(6, 37, dtype=dtype), randn(4, 37, dtype=dtype)
    idx = np.array([[0, 5, 5], [2, 2, 2], [5, 0, 1], [3, 3, 0]])
    out = gather_dot(W, idx, h)
    assert out.shape == (4, 3) and out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.einsum("nkd,nd->nk", W[idx].astype(float), h), rtol=tol, atol=tol)
    dout = randn(4, 3, dtype=dtype)
    dW = np.ones_like(W)
    dh = gather_dot_backward(W, idx, h, dout, dW)
    expected = np.ones_like(W, dtype=np.float64)
    np.add.at(expected, idx.reshape(-1), (dout[:, :, None] * h[:, None, :]).reshape(-1, 37))
    np.testing.assert_allclose(dW, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(dh, np.einsum("nk,nkd->nd", dout, W[idx]), rtol=tol, atol=tol)


def test_gather_dot_gives_the_references_bits_on_every_backend(cpu_backend):
    W, h, idx = randn(50, 100, dtype=np.float32), randn(20, 100, dtype=np.float32), rng.integers(0, 50, (20, 6))
    with fastnlp.use_backend("numpy"):
        want, want_dh = gather_dot(W, idx, h), gather_dot_backward(W, idx, h, np.ones((20, 6), np.float32),
                                                                  np.zeros_like(W))
    np.testing.assert_array_equal(gather_dot(W, idx, h), want)
    np.testing.assert_array_equal(gather_dot_backward(W, idx, h, np.ones((20, 6), np.float32), np.zeros_like(W)),
                                  want_dh)


def test_gather_dot_takes_any_id_shape_and_lists():
    W, h = randn(5, 3), randn(2, 3)
    assert gather_dot(W, [1, 4], h).shape == (2,)
    np.testing.assert_allclose(gather_dot(W, [1, 4], h), (W[[1, 4]] * h).sum(1))
    assert gather_dot(W, np.zeros((2, 3, 4), int), h).shape == (2, 3, 4)
    assert gather_dot(W, np.zeros((2, 0), int), h).shape == (2, 0)
    assert gather_dot(np.zeros((5, 0)), [1, 2], np.zeros((2, 0))).tolist() == [0.0, 0.0]


def test_gather_dot_backward_reads_every_input_before_writing_dW():
    W, h, idx, dout = randn(6, 4), randn(3, 4), np.array([[1, 1], [2, 5], [1, 0]]), randn(3, 2)
    want_dW = W.copy()
    want_dh = gather_dot_backward(W.copy(), idx, h, dout, want_dW)
    dh = gather_dot_backward(W, idx, h, dout, W)  # dW is W itself: W is read as it was
    np.testing.assert_array_equal(W, want_dW)
    np.testing.assert_array_equal(dh, want_dh)
    dW_f = np.zeros((6, 4), order="F")  # written through a C-contiguous copy
    gather_dot_backward(W, idx, h, dout, dW_f)
    dW_c = np.zeros((6, 4))
    gather_dot_backward(W, idx, h, dout, dW_c)
    np.testing.assert_array_equal(dW_f, dW_c)


@pytest.mark.parametrize("call, error, match", [
    (lambda W, h: gather_dot(W, [[0, 6]], h[:1]), IndexError, "out of range for 6 rows"),
    (lambda W, h: gather_dot(W, [[-1]], h[:1]), IndexError, "negative"),
    (lambda W, h: gather_dot(W, np.array([[0.0]]), h[:1]), TypeError, "integer"),
    (lambda W, h: gather_dot(W, [0, 1, 2], h), ValueError, "first axis of 2"),
    (lambda W, h: gather_dot(W, [0, 1], h[:, :3]), ValueError, r"shape \(N, 4\)"),
    (lambda W, h: gather_dot(W, [0, 1], h.astype(int)), TypeError, "float"),
    (lambda W, h: gather_dot(W.astype(np.float16), [0, 1], h), TypeError, "float32 or float64"),
    (lambda W, h: gather_dot_backward(W, [0, 1], h, np.ones(3), np.zeros_like(W)), ValueError, "dout has shape"),
    (lambda W, h: gather_dot_backward(W, [0, 1], h, np.ones(2), np.zeros((6, 4), np.float32)), ValueError,
     "dtype"),
    (lambda W, h: gather_dot_backward(W, [0, 1], h, np.ones(2), np.zeros((5, 4))), ValueError, "W's shape"),
])
def test_gather_ops_refuse_bad_input_before_any_loop(call, error, match):
    W, h = randn(6, 4), randn(2, 4)
    with pytest.raises(error, match=match):
        call(W, h)


def test_gather_dot_backward_refuses_a_read_only_dW():
    dW = np.zeros((6, 4))
    dW.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gather_dot_backward(randn(6, 4), [0], randn(1, 4), np.ones(1), dW)


# ----- the sampler --------------------------------------------------------------------------------

def test_noise_table_samples_the_weights():
    weights = np.array([5.0, 0.0, 1.0, 3.0, 0.5])
    table = NoiseTable.from_weights(weights)
    np.testing.assert_allclose(table.probabilities, weights / weights.sum(), atol=5 * 2.0**-32)
    counts = np.array([10, 0, 3, 1])
    np.testing.assert_allclose(NoiseTable.from_counts(counts, 0.75).probabilities,
                               np.array([10, 0, 3, 1]) ** 0.75 / (10**0.75 + 3**0.75 + 1), atol=1e-9)
    assert NoiseTable.from_counts(counts, 0.0).probabilities[1] == 0  # unseen words stay out


@pytest.mark.parametrize("weights, match", [
    ([1.0], "at least two words"),
    ([0.0, 3.0, 0.0], "at least two words"),
    ([1e12, 1.0, 1.0], "positive for 3 words, but the largest is 1e\\+12 times the next, beyond the alias "
                       "table's resolution"),
    ([1.0, -1.0], "non-negative"),
    ([1.0, np.nan], "finite"),
    ([0.0, 0.0], "positive"),
    (np.ones((2, 2)), "1-D"),
])
def test_noise_table_refuses_distributions_it_cannot_sample(weights, match):
    with pytest.raises(ValueError, match=match):
        NoiseTable.from_weights(weights)


def test_noise_table_checks_alias_arrays_given_directly():
    table = NoiseTable.from_weights([1.0, 2.0, 3.0])
    again = NoiseTable(table.alias_prob, table.alias_index)
    np.testing.assert_array_equal(again.cumulative, table.cumulative)
    assert not table.cumulative.flags.writeable
    with pytest.raises(ValueError, match="alias_index must lie in"):
        NoiseTable(table.alias_prob, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="alias_prob must lie in"):
        NoiseTable(np.array([0, 2**33, 0]), table.alias_index)
    with pytest.raises(ValueError, match="one length"):
        NoiseTable(table.alias_prob[:2], table.alias_index)
    with pytest.raises(ValueError, match="at least two words"):
        NoiseTable(np.array([2**32, 0, 0]), np.array([0, 0, 0]))


@pytest.mark.parametrize("weights, target", [
    (np.array([3.0, 1.0, 2.0, 0.0, 4.0]), 4),  # the common case: redraws are rare
    (np.array([1000.0, 1.0, 3.0, 2.0]), 0),  # the target is nearly all the mass: inverse CDF
])
def test_negatives_follow_the_noise_distribution_without_the_target(cpu_backend, weights, target):
    table = NoiseTable.from_weights(weights)
    out = sample_negatives(table, np.full(4000, target), 10, seed=11)
    assert out.shape == (4000, 10) and out.dtype == np.int64
    assert not (out == target).any()
    want = weights.copy()
    want[target] = 0
    want /= want.sum()
    frequency = np.bincount(out.ravel(), minlength=weights.size) / out.size
    # 40k draws: a binomial standard deviation is at most 0.0025
    np.testing.assert_allclose(frequency, want, atol=0.01)


def test_negatives_are_reproducible_and_the_same_on_every_backend(cpu_backend):
    table = NoiseTable.from_counts(np.arange(1, 101))
    target = np.arange(100) % 37
    with fastnlp.use_backend("numpy"):
        want = sample_negatives(table, target, 5, seed=2**64 - 1, counter=99)
    np.testing.assert_array_equal(sample_negatives(table, target, 5, seed=2**64 - 1, counter=99), want)
    # The counter addresses slots: the second half of a batch is the batch started further on.
    np.testing.assert_array_equal(sample_negatives(table, target[50:], 5, seed=2**64 - 1, counter=99 + 250),
                                  want[50:])
    assert not np.array_equal(sample_negatives(table, target, 5, seed=2**64 - 2, counter=99), want)


def test_sample_negatives_shapes_and_bad_input():
    table = NoiseTable.from_weights([1.0, 2.0, 3.0])
    assert sample_negatives(table, [[0, 1], [2, 2]], 4, seed=1).shape == (2, 2, 4)
    assert sample_negatives(table, [0, 1], 0).shape == (2, 0)
    assert sample_negatives([1.0, 2.0, 3.0], [0, 1], 3, seed=1).tolist() == \
        sample_negatives(table, [0, 1], 3, seed=1).tolist()  # weights: a table for this call
    with pytest.raises(IndexError, match="target id 3 is out of range"):
        sample_negatives(table, [3], 2)
    with pytest.raises(ValueError, match="sample_size"):
        sample_negatives(table, [0], -1)
    with pytest.raises(TypeError, match="sample_size"):
        sample_negatives(table, [0], 2.0)
    with pytest.raises(ValueError, match="2\\*\\*64"):
        sample_negatives(table, [0], 2, seed=2**64)
    with pytest.raises(ValueError, match="2\\*\\*61"):
        sample_negatives(table, [0], 2, counter=2**61)


# ----- layers ---------------------------------------------------------------------------------

def test_embedding_dot_gradients():
    W = randn(7, 4)
    assert fastnlp.gradcheck(L.EmbeddingDot(W), randn(5, 4), np.array([0, 3, 3, 6, 1])) < 1e-5  # the book's
    assert fastnlp.gradcheck(L.EmbeddingDot(W), randn(5, 4), np.array([[0, 3], [3, 3], [6, 1], [1, 1],
                                                                     [2, 0]])) < 1e-5


@pytest.mark.parametrize("target_shape", [(6,), (6, 3)])
def test_negative_sampling_loss_gradients(target_shape):
    corpus = rng.integers(0, 9, 200)
    layer = L.NegativeSamplingLoss(randn(9, 4), corpus, power=0.75, sample_size=3, seed=4)
    target = rng.integers(0, 9, target_shape)

    def replay():  # the same negatives at every call: the loss is a function of W and h
        layer.sampler.counter = 0

    assert fastnlp.gradcheck(layer, randn(6, 4), target, before_forward=replay) < 1e-5


def test_negative_sampling_loss_is_the_books_sum_of_sigmoid_losses():
    corpus = rng.integers(0, 9, 200)
    W, h, target = randn(9, 4), randn(6, 4), rng.integers(0, 9, 6)
    layer = L.NegativeSamplingLoss(W, corpus, sample_size=4, seed=1)
    loss = layer.forward(h, target)
    negatives = L.UnigramSampler(corpus, 0.75, 4, seed=1).get_negative_sample(target)
    sigmoid_loss = L.SigmoidWithLoss()
    want = sigmoid_loss.forward((W[target] * h).sum(1), np.ones(6))
    for i in range(4):  # the book's loop over sample_size EmbeddingDot + SigmoidWithLoss layers
        want += sigmoid_loss.forward((W[negatives[:, i]] * h).sum(1), np.zeros(6))
    assert loss == pytest.approx(want, rel=1e-12)


def test_unigram_sampler_is_the_books_with_a_seed():
    corpus = np.array([0, 1, 2, 3, 4, 1, 5, 6])
    sampler = fastnlp.UnigramSampler(corpus, 0.75, 2, seed=7)
    np.testing.assert_allclose(sampler.word_p, np.array([1, 2, 1, 1, 1, 1, 1]) ** 0.75 / (6 + 2**0.75))
    target = np.array([1, 3, 0])
    negatives = sampler.get_negative_sample(target)
    assert negatives.shape == (3, 2) and not (negatives == target[:, None]).any()
    assert sampler.counter == 6
    again = fastnlp.UnigramSampler(corpus, 0.75, 2, seed=7)
    np.testing.assert_array_equal(again.get_negative_sample(target), negatives)
    assert not np.array_equal(again.get_negative_sample(target), negatives)  # the stream moves on
    assert fastnlp.UnigramSampler(corpus, 0.75, 2).seed != fastnlp.UnigramSampler(corpus, 0.75, 2).seed
    with pytest.raises(ValueError, match="empty corpus"):
        fastnlp.UnigramSampler(np.array([], np.int32), 0.75, 2)
    with pytest.raises(ValueError, match="sample_size"):
        fastnlp.UnigramSampler(corpus, 0.75, 0)
    with pytest.raises(ValueError, match="at least two words"):
        fastnlp.UnigramSampler(np.array([3, 3, 3]), 0.75, 1)
    with pytest.raises(IndexError, match="out of range"):
        sampler.get_negative_sample(np.array([7]))


@pytest.mark.parametrize("make", [lambda W: L.Embedding(W), lambda W: L.EmbeddingDot(W)], ids=["Embedding",
                                                                                                "EmbeddingDot"])
def test_row_sparse_gradients_stay_exact_and_name_their_rows(cpu_backend, make):
    W = randn(50, 4, dtype=np.float32)
    layer = make(W)
    for step in range(4):
        idx = rng.integers(0, 50, (3, 7)) if step != 2 else np.array([[1, 1]])
        h = randn(idx.shape[0], 4, dtype=np.float32)
        dout = randn(*idx.shape, *((4,) if isinstance(layer, L.Embedding) else ()), dtype=np.float32)
        if isinstance(layer, L.Embedding):
            layer.forward(idx)
            rows = dout.reshape(-1, 4)
        else:
            layer.forward(h, idx)
            rows = (dout[:, :, None] * h[:, None, :]).reshape(-1, 4)
        layer.backward(dout)
        expected = np.zeros_like(W)
        np.add.at(expected, idx.reshape(-1), rows)
        grad = layer.grads[0]
        assert isinstance(grad, L.RowSparseGrad) and grad.shape == W.shape
        np.testing.assert_array_equal(grad, expected)  # the book's dense gradient, every row right
        np.testing.assert_array_equal(grad.rows, np.unique(idx))
        assert (grad * 2).rows is None and grad.copy().rows is None  # derived arrays: plain dense


def test_embedding_dot_refuses_bad_input():
    layer = L.EmbeddingDot(randn(5, 3))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        layer.forward(randn(2, 4), [0, 1])
    with pytest.raises(fastnlp.layers.NonFiniteError):
        layer.forward(np.full((2, 3), np.nan), [0, 1])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(2))
    layer.forward(randn(2, 3), [0, 1])
    with pytest.raises(ValueError, match="dout has shape"):
        layer.backward(np.ones(3))


def test_sample_negatives_refuses_a_sample_size_no_memory_can_hold():
    table = NoiseTable.from_counts(np.array([5, 3, 1]))
    with pytest.raises(ValueError, match=r"sample_size 1099511627776 for 1 target\(s\) needs 8,192 GiB"):
        sample_negatives(table, np.array(0), 2**40)
