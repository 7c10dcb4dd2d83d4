"""CuPy wrapper of topk around topk.cu: one thread per row (inputs validated, see __init__.py).
float16 scores: blocks of rows converted to float32 on the device (exact), the float32 kernel;
bfloat16 cannot live in a CuPy array (OpSpec.lacks_dtype)."""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import THREADS, grid, typed_kernel

from .reference import on_float32_rows

SOURCE = Path(__file__).with_name("topk.cu")


def _to_float32(x):
    return cupy.ascontiguousarray(x, dtype=cupy.float32)


def _rounded(values, dtype):
    return values.astype(dtype)


def topk(scores, k):
    if scores.dtype == np.float16:
        return on_float32_rows(topk, scores, k, to_float32=_to_float32, rounded=_rounded, xp=cupy)
    Q, N = scores.shape
    values = cupy.empty((Q, k), scores.dtype)
    indices = cupy.empty((Q, k), cupy.int64)
    if Q:
        typed_kernel(SOURCE, "topk", scores.dtype)(
            grid(Q), (THREADS,), (scores, cupy.int64(Q), cupy.int64(N), cupy.int64(k), values, indices))
    return values, indices
