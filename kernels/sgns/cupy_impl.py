"""CuPy wrappers of the negative-sampling ops around sgns.cu (inputs validated, see __init__.py).

float16: sgns.cu's float32 kernels on the touched rows converted up on the device (CuPy's
astype: __half2float, and __float2half_rn to round once), as reference.on_touched_rows does
on the host. bfloat16 cannot live in a CuPy array (OpSpec.lacks_dtype).
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import THREADS, grid, module, typed_kernel

from .reference import on_touched_rows

SOURCE = Path(__file__).with_name("sgns.cu")


def _to_float32(x):
    return cupy.ascontiguousarray(x, dtype=cupy.float32)


def _rounded(values, dtype):
    return values.astype(dtype)


def gather_dot(W, idx, h):
    if W.dtype == np.float16:
        return on_touched_rows(gather_dot, W, idx, h, to_float32=_to_float32, rounded=_rounded, xp=cupy)
    n, k = idx.shape
    out = cupy.empty((n, k), dtype=W.dtype)
    typed_kernel(SOURCE, "gather_dot", W.dtype)(
        grid(n * k), (THREADS,), (W, idx, h, out, cupy.int64(n), cupy.int64(k), cupy.int64(W.shape[1])))
    return out


def gather_dot_backward(W, idx, h, dout, dW):
    if W.dtype == np.float16:
        return on_touched_rows(gather_dot_backward, W, idx, h, dout, dW, to_float32=_to_float32, rounded=_rounded,
                               xp=cupy)
    n, k = idx.shape
    width = W.shape[1]
    dh = cupy.empty((n, width), dtype=W.dtype)
    args = (W, idx, h, dout, dW, dh, cupy.int64(n), cupy.int64(k), cupy.int64(width))
    typed_kernel(SOURCE, "gather_dot_dh", W.dtype)(grid(n * width), (THREADS,), args)
    typed_kernel(SOURCE, "gather_dot_dW", W.dtype)(grid(n * k * width), (THREADS,), args)
    return dh


def sample_negatives(alias_prob, alias_index, cumulative, target, sample_size, seed, counter):
    n = target.shape[0]
    out = cupy.empty((n, sample_size), dtype=cupy.int64)
    module(SOURCE).get_function("sample_negatives")(
        grid(n * sample_size), (THREADS,),
        (alias_prob, alias_index, cumulative, cupy.int64(alias_prob.shape[0]), target, cupy.int64(n),
         cupy.int64(sample_size), cupy.uint64(int(seed)), cupy.uint64(int(counter)), out))
    return out
