"""Embedding lookup ``W[idx]`` and its backward, the scatter-add ``dW[idx] += dout``.

The contract of the backend-level ops (every file in this folder implements it):

    scatter_add(dW, idx, rows)      dW (V, D) float, C-contiguous, written in place;
                                    idx (N,) int64 in [0, V); rows (N, D) of dW's dtype;
                                    duplicates summed in order of i. Returns None.
    embedding_gather(W, idx) -> out  out (N, D) new array, out[i] = W[idx[i]].

The id check that guards these loops (and every family's) is its own op, kernels/ids/.

The public ``scatter_add`` / ``embedding_gather`` below take any id shape, lists of ints, any
float ``dout``; they validate once and hand the kernels only what the contract allows.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..validate import as_id_array, check_float_matrix, check_ids, check_same_device

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Float32 sums of a few hundred terms in another order: a few ulps of the largest partial sum.
_ATOMIC_TOLERANCE = {np.dtype(np.float32): (1e-6, 1e-5), np.dtype(np.float64): (1e-15, 1e-12)}
_EXACT = {dtype: (0.0, 0.0) for dtype in FLOATS}


def scatter_add(dW, idx, dout):
    """``dW[idx[i]] += dout[i]`` for every position i, duplicates summed; returns ``dW``.

    ``dW`` is (V, D) float32/float64 and updated in place; ``idx`` integer ids of any shape (an
    array, list or tuple) in ``[0, V)``; ``dout`` float with shape ``idx.shape + (D,)`` (cast to
    dW's dtype). ``dout`` is read completely before ``dW`` changes, even when they overlap.
    This is the backward of an embedding lookup.
    """
    check_float_matrix(dW, "dW")
    xp = dispatch.array_module(dW)
    idx = as_id_array(idx, like=dW)
    check_same_device(dW, idx, dout)
    dout = xp.asarray(dout)
    expected = tuple(idx.shape) + (dW.shape[1],)
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout has shape {tuple(dout.shape)} but idx shape {tuple(idx.shape)} and dW width "
                         f"{dW.shape[1]} need {expected}")
    if dout.dtype.kind != "f":
        raise TypeError(f"dout must be a float array, got dtype {dout.dtype}")
    if not getattr(dW.flags, "writeable", True):  # CuPy arrays have no such flag
        raise ValueError("dW is read-only; scatter_add writes into it")
    flat_idx = check_ids(idx, dW.shape[0])
    if flat_idx.size == 0 or dW.shape[1] == 0:
        return dW
    # The kernels read ids and rows while writing dW: inputs that share its memory are copied
    # first, so the answer is the same on every backend (and an id cannot change mid-loop).
    if xp.may_share_memory(flat_idx, dW):
        flat_idx = flat_idx.copy()
    rows = dout.reshape(flat_idx.size, dW.shape[1])
    rows = rows.copy() if xp.may_share_memory(rows, dW) else rows
    rows = xp.ascontiguousarray(rows, dtype=dW.dtype)
    kernel = registry.kernel("scatter_add", dW)
    if dW.flags.c_contiguous:
        kernel(dW, flat_idx, rows)
    else:  # kernels write through C-contiguous buffers only
        target = xp.ascontiguousarray(dW)
        kernel(target, flat_idx, rows)
        dW[...] = target
    return dW


def embedding_gather(W, idx):
    """``W[idx]``: rows of the (V, D) float matrix ``W`` for integer ids of any shape (array,
    list or tuple). Returns a new C-contiguous array of shape ``idx.shape + (D,)``, W's dtype."""
    check_float_matrix(W, "W")
    xp = dispatch.array_module(W)
    idx = as_id_array(idx, like=W)
    check_same_device(W, idx)
    flat_idx = check_ids(idx, W.shape[0])
    shape = tuple(idx.shape) + (W.shape[1],)
    if flat_idx.size == 0 or W.shape[1] == 0:
        return xp.empty(shape, dtype=W.dtype)
    out = registry.kernel("embedding_gather", W)(xp.ascontiguousarray(W), flat_idx)
    return out.reshape(shape)


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _scatter_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = draw(st.sampled_from(FLOATS))
        vocab = draw(st.integers(1, 40))
        width = draw(st.sampled_from([1, 2, 3, 7, 16, 33, 300]))
        n = draw(st.sampled_from([1, 2, 5, 60, 257]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        # Small vocabularies make duplicate ids the common case.
        idx = rng.integers(0, vocab, n).astype(np.int64)
        scale = draw(st.sampled_from([1.0, 1e-30, 1e30]))
        rows = (rng.standard_normal((n, width)) * scale).astype(dtype)
        dW = rng.standard_normal((vocab, width)).astype(dtype)
        return dW, idx, rows

    return problems()


def _gather_examples():
    return _scatter_examples().map(lambda problem: problem[:2])


# Benchmark sizes (bench/test_bench_scatter_add.py): the book's CBOW, V 10000 x D 100 with a batch
# of 100 targets x 10 context ids (ch. 4, window 5), and BetterRnnlm, V 10000 x D 650 with a batch
# of 20 x 35 time steps (ch. 6).
def _cbow_ids(rng):
    return rng.integers(0, 10000, 100 * 10).astype(np.int64)


def _scatter_benchmark():
    """CBOW's embedding backward: dW (10000, 100) += the rows of 100 x 10 context ids."""
    rng = np.random.default_rng(0)
    idx = _cbow_ids(rng)
    return np.zeros((10000, 100), np.float32), idx, rng.standard_normal((idx.size, 100)).astype(np.float32)


def _gather_benchmark():
    """BetterRnnlm's embedding lookup: W (10000, 650) at 20 x 35 ids."""
    rng = np.random.default_rng(0)
    W = 0.01 * rng.standard_normal((10000, 650), dtype=np.float32)
    return W, rng.integers(0, 10000, 20 * 35).astype(np.int64)


registry.register(registry.OpSpec(
    name="scatter_add", family="embedding", doc="dW[idx[i]] += rows[i], duplicates summed",
    # The CUDA kernel adds duplicate ids' rows with atomicAdd, in whatever order threads arrive.
    dtypes=FLOATS, deterministic=registry.EVERY_BACKEND - {"cupy"}, exact=True, tolerance=_ATOMIC_TOLERANCE,
    examples=_scatter_examples, benchmark_args=_scatter_benchmark, writes=(0,), dtype_of=lambda args: args[0].dtype))
registry.register(registry.OpSpec(
    name="embedding_gather", family="embedding", doc="out[i] = W[idx[i]]",
    dtypes=FLOATS, deterministic=registry.EVERY_BACKEND, exact=True, tolerance=_EXACT,
    examples=_gather_examples, benchmark_args=_gather_benchmark, dtype_of=lambda args: args[0].dtype))
