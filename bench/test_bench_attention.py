"""Attention weights + weighted sum at the date task's size (N 128, T 29, H 256), every backend and
the peers: the book's broadcast-and-sum NumPy code, NumPy's batched matmul (the reference
backend) and torch.bmm with a hand-written backward; beside them one copy of hs, the memory
traffic no pair can avoid.

    pytest bench/test_bench_attention.py      (one group per op and number of queries)

Q = 1 is one decoder step (the book's Attention layer, and greedy generation); Q = 10 is the
date decoder's whole answer at once (TimeAttention in training). "pair" is the forward of both
ops and their backward, the unit a training step runs.
"""
import numpy as np
import pytest

import fastnlp
from fastnlp import kernels
from fastnlp.kernels.memory import aligned_copy
from machine import cpu_backend_params

N, T, H = 128, 29, 256
QUERIES = [1, 10]


def make_problem(Q, dtype=np.float32):
    """Inputs on 64-byte boundaries, as the library's layers produce them (kernels/memory.py): a
    plain NumPy array starts 16 bytes past one about half the time, and then every backend's
    vector loads (torch's too, on the same memory) cross cache lines."""
    rng = np.random.default_rng(0)
    hs = aligned_copy(rng.standard_normal((N, T, H)).astype(dtype))
    h = aligned_copy((rng.standard_normal((N, Q, H)) / np.sqrt(H)).astype(dtype))
    dc = aligned_copy(rng.standard_normal((N, Q, H)).astype(dtype))
    a = kernels.attention_weights(hs, h)
    return hs, h, a, dc


def pair(hs, h, dc):
    a, c = kernels.attention_context(hs, h)
    return kernels.attention_context_backward(hs, h, a, dc)


def separate_pair(hs, h, dc):
    a = kernels.attention_weights(hs, h)
    kernels.weighted_sum(hs, a)
    dhs, da = kernels.weighted_sum_backward(hs, a, dc)
    dhs2, dh = kernels.attention_weights_backward(hs, h, a, da)
    return dhs + dhs2, dh


def book_pair(hs, h, dc):
    """The book's AttentionWeight and WeightSum, forward and backward, one step per query."""
    n, t, d = hs.shape
    for q in range(h.shape[1]):
        hq, dcq = h[:, q], dc[:, q]
        hr = hq.reshape(n, 1, d).repeat(t, axis=1)
        s = (hs * hr).sum(axis=2)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        a = s / s.sum(axis=1, keepdims=True)
        ar = a.reshape(n, t, 1).repeat(d, axis=2)
        (hs * ar).sum(axis=1)
        dt = dcq.reshape(n, 1, d).repeat(t, axis=1)
        dhs0, da = dt * ar, (dt * hs).sum(axis=2)
        ds = a * da - a * (a * da).sum(axis=1, keepdims=True)
        dt = ds.reshape(n, t, 1).repeat(d, axis=2)
        dhs0 + dt * hr, (dt * hs).sum(axis=1)


def torch_pair(torch):
    def run(hs, h, dc):
        a = torch.softmax(torch.bmm(h, hs.transpose(1, 2)), dim=-1)
        torch.bmm(a, hs)
        da = torch.bmm(dc, hs.transpose(1, 2))
        ds = a * (da - (a * da).sum(dim=-1, keepdim=True))
        return torch.bmm(a.transpose(1, 2), dc) + torch.bmm(ds.transpose(1, 2), h), torch.bmm(ds, hs)

    return run


@pytest.mark.parametrize("Q", QUERIES)
@pytest.mark.parametrize("backend", cpu_backend_params("attention_context"))
def test_pair_fused(benchmark, backend, Q):
    benchmark.group = f"attention pair fwd+bwd Q{Q}"
    hs, h, _, dc = make_problem(Q)
    with fastnlp.use_backend(backend):
        pair(hs, h, dc)  # Numba compiles (or loads its cache) on the first call: not a round
        benchmark(pair, hs, h, dc)


@pytest.mark.parametrize("Q", QUERIES)
@pytest.mark.parametrize("backend", cpu_backend_params("attention_weights"))
def test_pair_separate_ops(benchmark, backend, Q):
    benchmark.group = f"attention pair fwd+bwd Q{Q}"
    hs, h, _, dc = make_problem(Q)
    with fastnlp.use_backend(backend):
        separate_pair(hs, h, dc)
        benchmark(separate_pair, hs, h, dc)


@pytest.mark.parametrize("Q", QUERIES)
def test_pair_memory_floor(benchmark, Q):
    """Not attention: one copy of hs into an aligned buffer, the traffic of the backward alone (hs
    read, dhs written). At the date task's size hs (3.8 MB) exceeds an L2, so the pair, which reads
    hs twice and writes dhs once, costs at least this."""
    benchmark.group = f"attention pair fwd+bwd Q{Q}"
    hs = make_problem(Q)[0]
    out = aligned_copy(hs)
    benchmark(np.copyto, out, hs)


@pytest.mark.parametrize("Q", QUERIES)
def test_pair_book_broadcast_and_sum(benchmark, Q):
    benchmark.group = f"attention pair fwd+bwd Q{Q}"
    hs, h, _, dc = make_problem(Q)
    benchmark(book_pair, hs, h, dc)


@pytest.mark.parametrize("Q", QUERIES)
def test_pair_torch_bmm(benchmark, Q):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"attention pair fwd+bwd Q{Q}"
    hs, h, _, dc = (torch.from_numpy(x) for x in make_problem(Q))
    with torch.no_grad():
        benchmark(torch_pair(torch), hs, h, dc)


OPS = {
    "attention_weights": lambda hs, h, a, dc: (hs, h),
    "weighted_sum": lambda hs, h, a, dc: (hs, a),
    "attention_weights_backward": lambda hs, h, a, dc: (hs, h, a, a),
    "weighted_sum_backward": lambda hs, h, a, dc: (hs, a, dc),
    "attention_context": lambda hs, h, a, dc: (hs, h),
    "attention_context_backward": lambda hs, h, a, dc: (hs, h, a, dc),
}


@pytest.mark.parametrize("Q", QUERIES)
@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("backend", cpu_backend_params("attention_weights"))
def test_op(benchmark, backend, op, Q):
    benchmark.group = f"{op} Q{Q}"
    args = OPS[op](*make_problem(Q))
    with fastnlp.use_backend(backend):
        getattr(kernels, op)(*args)
        benchmark(getattr(kernels, op), *args)
