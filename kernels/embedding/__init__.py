"""Embedding lookup ``W[idx]`` and its backward, the scatter-add ``dW[idx] += dout``.

The contract of the backend-level ops (every file in this folder implements it):

    scatter_add(dW, idx, rows)      dW (V, D) float, C-contiguous, written in place;
                                    idx (N,) int64 in [0, V); rows (N, D) of dW's dtype;
                                    duplicates summed in order of i. Returns None.
    embedding_gather(W, idx) -> out  out (N, D) new array, out[i] = W[idx[i]].

Storage dtypes: float64, float32, float16 and bfloat16 (ml_dtypes). The gather copies bits. In
float64 / float32 the scatter-add adds each row into dW in that dtype. In float16 / bfloat16 it
accumulates in float32: every touched row of dW is converted up once, the rows with its id are
added to it in float32 in order of i, and the sum is rounded once (to nearest, ties to even) to
the storage dtype: ``dW[r] = round(float32(dW[r]) + rows[i1] + rows[i2] + ...)``. One rounding
per touched row, not one per duplicate: exact on every CPU backend (the reference does it with
np.add.at on a float32 copy of the touched rows).

The id check that guards these loops (and every family's) is its own op, kernels/ids/.

The public ``scatter_add`` / ``embedding_gather`` below take any id shape, lists of ints, any
float ``dout``; they validate once and hand the kernels only what the contract allows.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..validate import (BFLOAT16, HALF_DTYPES, as_id_array, check_float_matrix, check_ids, check_same_device,
                        is_float_dtype)

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
FLOAT16 = np.dtype(np.float16)
STORAGE = FLOATS + HALF_DTYPES  # the dtypes W / dW may have
# Float32 sums of a few hundred terms in another order: a few ulps of the largest partial sum.
# float16 / bfloat16: the same float32 sums rounded once to the storage format, so a sum in
# another order may land one storage ulp away (2^-10, 2^-7 relative; atol for subnormals).
_ATOMIC_TOLERANCE = {np.dtype(np.float32): (1e-6, 1e-5), np.dtype(np.float64): (1e-15, 1e-12),
                     FLOAT16: (1e-7, 2e-3), BFLOAT16: (1e-38, 1.6e-2)}
_EXACT = {dtype: (0.0, 0.0) for dtype in STORAGE}
# CuPy (13) has no bfloat16 dtype: a device array cannot hold one, so no CuPy call can carry it.
_CUPY_NO_BF16 = ("CuPy arrays cannot hold ml_dtypes.bfloat16; embedding.cu has the __nv_bfloat16 kernels "
                 "(scatter_add_bf16, gather_bf16) for uint16 views, untested on a device")


def scatter_add(dW, idx, dout):
    """``dW[idx[i]] += dout[i]`` for every position i, duplicates summed; returns ``dW``.

    ``dW`` is (V, D) float64/float32/float16/bfloat16 and updated in place (float16 / bfloat16:
    summed in float32, each touched row rounded once; see the module docstring); ``idx`` integer
    ids of any shape (an array, list or tuple) in ``[0, V)``; ``dout`` float with shape
    ``idx.shape + (D,)`` (rounded to dW's dtype first). ``dout`` is read completely before
    ``dW`` changes, even when they overlap. This is the backward of an embedding lookup.
    """
    check_float_matrix(dW, "dW", op="scatter_add")
    xp = dispatch.array_module(dW)
    idx = as_id_array(idx, like=dW)
    check_same_device(dW, idx, dout)
    dout = xp.asarray(dout)
    expected = tuple(idx.shape) + (dW.shape[1],)
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout has shape {tuple(dout.shape)} but idx shape {tuple(idx.shape)} and dW width "
                         f"{dW.shape[1]} need {expected}")
    if not is_float_dtype(dout.dtype):
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
    """``W[idx]``: rows of the (V, D) float matrix ``W`` (float64, float32, float16 or bfloat16)
    for integer ids of any shape (array, list or tuple). Returns a new C-contiguous array of
    shape ``idx.shape + (D,)``, W's dtype."""
    check_float_matrix(W, "W", op="embedding_gather")
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

# Scales that reach each format's extremes: subnormals, overflow to inf in the sums, cancellation.
_SCALES = {np.dtype(np.float64): [1.0, 1e-30, 1e30], np.dtype(np.float32): [1.0, 1e-30, 1e30],
           FLOAT16: [1.0, 1e-6, 3e-3, 1e4], BFLOAT16: [1.0, 1e-39, 1e-30, 1e30]}


def _scatter_examples(dtype=None):
    """(dW, idx, rows) of storage dtype ``dtype`` (any of STORAGE when None): values drawn in
    float64, rounded to the dtype, so every value is one the dtype holds."""
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        chosen = np.dtype(dtype) if dtype is not None else draw(st.sampled_from(STORAGE))
        vocab = draw(st.integers(1, 40))
        width = draw(st.sampled_from([1, 2, 3, 7, 16, 33, 300]))
        n = draw(st.sampled_from([1, 2, 5, 60, 257]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        # Small vocabularies make duplicate ids the common case.
        idx = rng.integers(0, vocab, n).astype(np.int64)
        scale = draw(st.sampled_from(_SCALES[chosen]))
        with np.errstate(over="ignore"):
            rows = (rng.standard_normal((n, width)) * scale).astype(chosen)
            dW = (rng.standard_normal((vocab, width)) * draw(st.sampled_from([1.0, scale]))).astype(chosen)
        return dW, idx, rows

    return problems()


def _gather_examples(dtype=None):
    return _scatter_examples(dtype).map(lambda problem: problem[:2])


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
    # (float16 / bfloat16 on CuPy: a sort by id and one thread per (id, column), no atomics.)
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND - {"cupy"}, exact=True, tolerance=_ATOMIC_TOLERANCE,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_scatter_examples, benchmark_args=_scatter_benchmark, writes=(0,), dtype_of=lambda args: args[0].dtype))
registry.register(registry.OpSpec(
    name="embedding_gather", family="embedding", doc="out[i] = W[idx[i]]",
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND, exact=True, tolerance=_EXACT,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_gather_examples, benchmark_args=_gather_benchmark, dtype_of=lambda args: args[0].dtype))
