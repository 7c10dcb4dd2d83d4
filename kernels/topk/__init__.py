"""Top-k selection: per row of a score matrix, the k largest scores and where they are.

Exact nearest-neighbour search (``WordVectors.most_similar``) is one matrix product of the
queries with the unit vectors (``kernels.gemm``) followed by this op on each block of scores.
The contract of the backend-level op (every file in this folder implements it)::

    topk(scores, k) -> (values, indices)
        scores (Q, N) C-contiguous float64, float32, float16 or bfloat16, 1 <= k <= N, Q >= 0.
        values (Q, k) of scores' dtype, indices (Q, k) int64: row q holds the k best entries
        of scores[q], best first. The order is total: a larger value ranks higher; equal
        values (-0.0 == 0.0 included) rank by lower index; NaN ranks below every number,
        -inf included, and NaNs among themselves by lower index. -inf is a number: callers
        exclude candidates by writing -inf over their scores and drop -inf results.
        Nothing is written into ``scores``.

The order is the stable sort of the negated scores (the reference does exactly that, a full
sort). The compiled versions select, they do not sort: per row a heap of the k best so far
whose root (the worst kept) rejects almost every later score with one comparison, blocks of 16
scores compared at once (topk.h; O(N + k log k log(N/k)) for random order, O(N log k) at
worst), then the k kept are heapsorted. On the GPU one thread per row runs the same loop
(topk.cu). Every backend gives the same answer bit for bit: selection involves no arithmetic.

float16 / bfloat16 scores (a 16-bit matrix product's output: kernels.gemm rounds to the input
dtype with ``out_dtype``) are ranked as their float32 values, which the conversion gives
exactly and in the same order (NaN stays NaN, -0.0 == 0.0): every backend converts blocks of
rows and runs its float32 selection; the values returned are the scores' own 16-bit entries.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dispatch, registry
from ..validate import BFLOAT16, STORAGE_DTYPES


def topk(scores, k):
    """``(values, indices)``: per row of ``scores`` (Q, N) the ``k`` largest values, best first,
    ties by lower index, NaN after every number (see the module's contract). ``k`` is an int
    1..N; float64, float32, float16 or bfloat16 scores."""
    if not hasattr(scores, "dtype") or not hasattr(scores, "shape"):
        scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"topk: scores must be 2-D (queries, candidates), got shape {tuple(scores.shape)}")
    registry.spec("topk").check_dtype(scores.dtype, "scores")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"topk: k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"topk: k must be between 1 and the {scores.shape[1]} candidates per row, got {k}")
    scores = dispatch.array_module(scores).ascontiguousarray(scores)
    return registry.kernel("topk", scores)(scores, k)


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _topk_examples(dtype=None):
    """Scores with many ties (small integers), signed zeros, infinities and NaNs, rows short
    and longer than the 16-score blocks, every k from 1 to N."""
    from hypothesis import strategies as st

    @st.composite
    def problem(draw):
        chosen = np.dtype(dtype) if dtype is not None else np.dtype(draw(st.sampled_from(STORAGE_DTYPES)))
        Q = draw(st.sampled_from([0, 1, 2, 3, 7]))
        N = draw(st.sampled_from([1, 2, 5, 16, 17, 33, 100, 257]))
        k = draw(st.integers(1, N))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        kind = draw(st.sampled_from(["ties", "normal", "special", "sorted", "reversed"]))
        if kind == "ties":
            scores = rng.integers(-3, 4, (Q, N)).astype(chosen)
        else:
            scores = rng.standard_normal((Q, N)).astype(chosen)
        if kind == "special":
            specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], chosen)
            mask = rng.random((Q, N)) < draw(st.sampled_from([0.05, 0.3, 0.9]))
            scores[mask] = rng.choice(specials, int(mask.sum()))
        elif kind == "sorted":  # every score enters the heap: its worst case
            scores.sort(axis=1)
        elif kind == "reversed":
            scores = -np.sort(scores, axis=1)
        return np.ascontiguousarray(scores), k

    return problem()


def _topk_benchmark():
    """most_similar's exact search: 256 queries against one 16,384-word block of unit vectors
    (cosines in [-1, 1]), the 10 best of each row."""
    rng = np.random.default_rng(0)
    scores = np.tanh(rng.standard_normal((256, 16384)) * 0.3).astype(np.float32)
    return scores, 10


# CuPy (13) has no bfloat16 dtype: a device array cannot hold one, so no CuPy call can carry it.
_CUPY_NO_BF16 = "CuPy arrays cannot hold ml_dtypes.bfloat16"
registry.register(registry.OpSpec(
    name="topk", family="topk", doc="per row the k largest scores and their indices, best first",
    dtypes=STORAGE_DTYPES, deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={d: (0, 0) for d in STORAGE_DTYPES},
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_topk_examples, benchmark_args=_topk_benchmark, dtype_of=lambda args: args[0].dtype))
