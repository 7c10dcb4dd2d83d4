"""Embedding backward ``dW[idx] += dout`` at the sizes of the book's models, every backend and
the peers: np.add.at (the reference to beat), the book's Python loop and torch's index_add_;
and the forward lookup ``W[idx]`` against NumPy's fancy indexing and torch's index_select.

    pytest bench/test_bench_scatter_add.py      (one group per size)
"""
import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import scatter_add
from machine import cpu_backend_params

SIZES = {"V10000xD100-ids100x10": (10000, 100, (100, 10)),
         "V10000xD650-ids20x35": (10000, 650, (20, 35))}


def make_problem(size):
    vocab, width, idx_shape = SIZES[size]
    rng = np.random.default_rng(0)
    dW = np.zeros((vocab, width), np.float32)
    idx = rng.integers(0, vocab, idx_shape)
    dout = rng.standard_normal(idx_shape + (width,)).astype(np.float32)
    return dW, idx, dout


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("backend", cpu_backend_params())
def test_scatter_add(benchmark, backend, size):
    benchmark.group = f"scatter_add {size}"
    dW, idx, dout = make_problem(size)
    with fastnlp.use_backend(backend):
        benchmark(scatter_add, dW, idx, dout)


@pytest.mark.parametrize("size", list(SIZES))
def test_memory_floor(benchmark, size):
    """A contiguous add over the same bytes a scatter-add moves: what no kernel can beat."""
    benchmark.group = f"scatter_add {size}"
    _, _, dout = make_problem(size)
    a, b = dout.reshape(-1, dout.shape[-1]).copy(), dout.reshape(-1, dout.shape[-1]).copy()
    benchmark(np.add, a, b, a)


@pytest.mark.parametrize("size", list(SIZES))
def test_book_python_loop(benchmark, size):
    benchmark.group = f"scatter_add {size}"
    dW, idx, dout = make_problem(size)
    flat_idx, rows = idx.reshape(-1), dout.reshape(-1, dW.shape[1])

    def book_loop():
        for i, word_id in enumerate(flat_idx):
            dW[word_id] += rows[i]

    benchmark(book_loop)


@pytest.mark.parametrize("size", list(SIZES))
def test_torch_index_add(benchmark, size):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"scatter_add {size}"
    dW, idx, dout = make_problem(size)
    t_dW = torch.from_numpy(dW)
    t_idx = torch.from_numpy(idx.reshape(-1).astype(np.int64))
    t_rows = torch.from_numpy(dout.reshape(-1, dW.shape[1]))
    benchmark(t_dW.index_add_, 0, t_idx, t_rows)


@pytest.mark.parametrize("size", list(SIZES))
def test_numpy_add_at(benchmark, size):
    benchmark.group = f"scatter_add {size}"
    dW, idx, dout = make_problem(size)
    benchmark(np.add.at, dW, idx.reshape(-1), dout.reshape(-1, dW.shape[1]))


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("backend", cpu_backend_params("embedding_gather"))
def test_embedding_gather(benchmark, backend, size):
    benchmark.group = f"embedding_gather {size}"
    W, idx, _ = make_problem(size)
    with fastnlp.use_backend(backend):
        benchmark(fastnlp.kernels.embedding_gather, W, idx)


@pytest.mark.parametrize("size", list(SIZES))
def test_torch_index_select(benchmark, size):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"embedding_gather {size}"
    W, idx, _ = make_problem(size)
    benchmark(torch.index_select, torch.from_numpy(W), 0, torch.from_numpy(idx.reshape(-1).astype(np.int64)))
