"""CuPy wrappers of the negative-sampling ops around sgns.cu (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, module, typed_kernel

SOURCE = Path(__file__).with_name("sgns.cu")


def gather_dot(W, idx, h):
    n, k = idx.shape
    out = cupy.empty((n, k), dtype=W.dtype)
    typed_kernel(SOURCE, "gather_dot", W.dtype)(
        grid(n * k), (THREADS,), (W, idx, h, out, cupy.int64(n), cupy.int64(k), cupy.int64(W.shape[1])))
    return out


def gather_dot_backward(W, idx, h, dout, dW):
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
