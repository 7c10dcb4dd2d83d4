"""Negative-sampling ops at the book's CBOW sizes (V = 10000, D = 100, batch 100, 1 positive + 5
negatives per row), every CPU backend from the registry and the peers: the book's path
(NumPy gather + sum, np.add.at, np.random.choice per row) and torch where installed.

    pytest bench/test_bench_sgns.py      (one group per op)
"""
import numpy as np
import pytest

import fastnlp
from compare_cbow_step import book_negative_sample
from fastnlp.kernels import gather_dot, gather_dot_backward, sample_negatives
from fastnlp.kernels.sgns import NoiseTable
from machine import cpu_backend_params

V, D, N, K, SAMPLE_SIZE = 10000, 100, 100, 6, 5


def make_problem():
    rng = np.random.default_rng(0)
    W = (0.01 * rng.standard_normal((V, D))).astype(np.float32)
    h = rng.standard_normal((N, D)).astype(np.float32)
    idx = rng.integers(0, V, (N, K))
    dout = rng.standard_normal((N, K)).astype(np.float32)
    counts = np.minimum(rng.zipf(1.2, 200_000) - 1, V - 1)
    return W, h, idx, dout, np.bincount(counts, minlength=V)


@pytest.mark.parametrize("backend", cpu_backend_params("gather_dot"))
def test_gather_dot(benchmark, backend):
    benchmark.group = "gather_dot V10000xD100 N100xK6"
    W, h, idx, _, _ = make_problem()
    with fastnlp.use_backend(backend):
        gather_dot(W, idx, h)  # JIT compilation and caches outside the timing
        benchmark(gather_dot, W, idx, h)


def test_gather_dot_numpy_einsum(benchmark):
    benchmark.group = "gather_dot V10000xD100 N100xK6"
    W, h, idx, _, _ = make_problem()
    benchmark(lambda: np.einsum("nkd,nd->nk", W[idx], h))


def test_gather_dot_book_layers(benchmark):
    """The book: one EmbeddingDot per column, ``np.sum(W[idx] * h, axis=1)``."""
    benchmark.group = "gather_dot V10000xD100 N100xK6"
    W, h, idx, _, _ = make_problem()
    benchmark(lambda: [np.sum(W[idx[:, k]] * h, axis=1) for k in range(K)])


def test_gather_dot_torch(benchmark):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = "gather_dot V10000xD100 N100xK6"
    W, h, idx, _, _ = make_problem()
    tW, th, tidx = torch.from_numpy(W), torch.from_numpy(h), torch.from_numpy(idx)
    benchmark(lambda: torch.bmm(tW[tidx], th.unsqueeze(2)))


@pytest.mark.parametrize("backend", cpu_backend_params("gather_dot_backward"))
def test_gather_dot_backward(benchmark, backend):
    benchmark.group = "gather_dot_backward V10000xD100 N100xK6"
    W, h, idx, dout, _ = make_problem()
    dW = np.zeros_like(W)
    with fastnlp.use_backend(backend):
        gather_dot_backward(W, idx, h, dout, dW)
        benchmark(gather_dot_backward, W, idx, h, dout, dW)


def test_gather_dot_backward_numpy_add_at(benchmark):
    benchmark.group = "gather_dot_backward V10000xD100 N100xK6"
    W, h, idx, dout, _ = make_problem()
    dW = np.zeros_like(W)

    def einsum_add_at():
        dh = np.einsum("nk,nkd->nd", dout, W[idx])
        np.add.at(dW, idx.reshape(-1), (dout[:, :, None] * h[:, None, :]).reshape(-1, D))
        return dh

    benchmark(einsum_add_at)


def test_gather_dot_backward_book_layers(benchmark):
    """The book: per column a dense (V, D) gradient zeroed, then np.add.at, and dh summed."""
    benchmark.group = "gather_dot_backward V10000xD100 N100xK6"
    W, h, idx, dout, _ = make_problem()
    grads = [np.zeros_like(W) for _ in range(K)]

    def book():
        dh = 0
        for k in range(K):
            d = dout[:, k].reshape(-1, 1)
            grads[k][...] = 0
            np.add.at(grads[k], idx[:, k], d * h)
            dh += d * W[idx[:, k]]
        return dh

    benchmark(book)


@pytest.mark.parametrize("backend", cpu_backend_params("sample_negatives"))
def test_sample_negatives(benchmark, backend):
    benchmark.group = "sample_negatives V10000 N100x5"
    _, _, idx, _, counts = make_problem()
    table = NoiseTable.from_counts(counts, 0.75)
    target = idx[:, 0]
    with fastnlp.use_backend(backend):
        sample_negatives(table, target, SAMPLE_SIZE, 1, 0)
        benchmark(sample_negatives, table, target, SAMPLE_SIZE, 1, 0)


def test_sample_negatives_book_random_choice(benchmark):
    benchmark.group = "sample_negatives V10000 N100x5"
    _, _, idx, _, counts = make_problem()
    word_p = counts ** 0.75 / np.sum(counts ** 0.75)
    benchmark(book_negative_sample, word_p, idx[:, 0], SAMPLE_SIZE)


def test_sample_negatives_numpy_choice_with_replacement(benchmark):
    """np.random.Generator.choice for the whole batch at once (no target exclusion)."""
    benchmark.group = "sample_negatives V10000 N100x5"
    _, _, _, _, counts = make_problem()
    word_p = counts ** 0.75 / np.sum(counts ** 0.75)
    rng = np.random.default_rng(0)
    benchmark(rng.choice, V, size=(N, SAMPLE_SIZE), p=word_p)


def test_noise_table_build(benchmark):
    """Built once per sampler: Vose's method over V words."""
    benchmark.group = "noise table build V10000"
    counts = make_problem()[4]
    benchmark(NoiseTable.from_counts, counts, 0.75)
