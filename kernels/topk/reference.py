"""NumPy reference of the top-k selection (contract in __init__.py)."""
import numpy as np

from ..validate import HALF_DTYPES

# Rows of 16-bit scores converted to float32 at a time: a block stays in cache between its
# conversion and its selection.
HALF_BLOCK_ROWS = 16


def _to_float32(x):
    return x.astype(np.float32)


def _rounded(values, dtype):
    return values.astype(dtype)


def on_float32_rows(topk32, scores, k, *, to_float32=_to_float32, rounded=_rounded, xp=np):
    """float16 / bfloat16 scores: ``topk32`` (a backend's float32 op) on blocks of rows converted
    to float32 (exact, order-preserving, NaN stays NaN), so the indices are those of the 16-bit
    scores; the values, 16-bit numbers in float32, convert back exactly (a NaN stays a NaN)."""
    Q = scores.shape[0]
    values = xp.empty((Q, k), xp.float32)
    indices = xp.empty((Q, k), xp.int64)
    for start in range(0, Q, HALF_BLOCK_ROWS):
        block = scores[start:start + HALF_BLOCK_ROWS]
        values[start:start + block.shape[0]], indices[start:start + block.shape[0]] = topk32(to_float32(block), k)
    return rounded(values, scores.dtype), indices


def topk(scores, k):
    """Per row of ``scores`` (Q, N) the ``k`` largest values and their indices, best first.

    A stable sort of the negated scores is the contract itself: larger values first, equal
    values by lower index (``-0.0 == 0.0`` tie), NaN after every number (NumPy sorts NaN last)
    and among themselves by lower index. A full sort, hence the reference, not a contender.
    float16 / bfloat16 scores are sorted as their (exact) float32 values."""
    if scores.dtype in HALF_DTYPES:
        return on_float32_rows(topk, scores, k)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64, copy=False)
    return np.take_along_axis(scores, order, axis=1), np.ascontiguousarray(order)
