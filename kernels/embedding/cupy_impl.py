"""CuPy wrappers of the embedding ops around embedding.cu and, for float16 / bfloat16 storage,
embedding_half.cu (inputs validated, see __init__.py).

The float16 path is UNTESTED ON A DEVICE: written and syntax-checked without a GPU. bfloat16:
CuPy arrays cannot hold ml_dtypes.bfloat16, so the registry never sends one here
(OpSpec.lacks_dtype); a caller holding bfloat16 bits in uint16 arrays can run the kernels with
``scatter_add_bits(dW_u16, idx, rows_u16, "bf16")`` / ``gather_bits(W_u16, idx, "bf16")``.
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import THREADS, grid, module, typed_kernel

SOURCE = Path(__file__).with_name("embedding.cu")
HALF_SOURCE = Path(__file__).with_name("embedding_half.cu")
_HALF = {np.dtype(np.float16): "f16"}


def scatter_add(dW, idx, rows):
    suffix = _HALF.get(dW.dtype)
    if suffix is not None:
        scatter_add_bits(dW, idx, rows, suffix)
        return
    typed_kernel(SOURCE, "scatter_add", dW.dtype)(
        grid(idx.shape[0] * dW.shape[1]), (THREADS,), (dW, idx, rows, cupy.int64(idx.shape[0]), cupy.int64(dW.shape[1])))


def embedding_gather(W, idx):
    suffix = _HALF.get(W.dtype)
    if suffix is not None:
        return gather_bits(W, idx, suffix)
    out = cupy.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    typed_kernel(SOURCE, "gather", W.dtype)(
        grid(out.size), (THREADS,), (W, idx, out, cupy.int64(idx.shape[0]), cupy.int64(W.shape[1])))
    return out


def scatter_add_bits(dW, idx, rows, storage):
    """The scatter-add on 16-bit storage ``storage`` ('f16' or 'bf16'): dW and rows hold its bits."""
    width = dW.shape[1]
    if idx.shape[0] and width:
        # Runs of equal ids in a sort that keeps the order of i within an id (CuPy sorts with
        # thrust's stable sort): one thread per (run, column) adds the run's rows in that order.
        order = cupy.argsort(idx).astype(cupy.int64, copy=False)
        ids = idx[order]
        first = cupy.flatnonzero(cupy.concatenate([cupy.ones(1, bool), ids[1:] != ids[:-1]]))
        starts = cupy.concatenate([first, cupy.array([idx.shape[0]])]).astype(cupy.int64)
        n_groups = starts.shape[0] - 1
        module(HALF_SOURCE).get_function(f"scatter_add_sorted_{storage}")(
            grid(n_groups * width), (THREADS,),
            (dW, idx, order, starts, rows, cupy.int64(n_groups), cupy.int64(width)))


def gather_bits(W, idx, storage):
    """The gather on 16-bit storage ``storage`` ('f16' or 'bf16'): a copy of W's bits."""
    out = cupy.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    module(HALF_SOURCE).get_function(f"gather_{storage}")(
        grid(out.size), (THREADS,), (W, idx, out, cupy.int64(idx.shape[0]), cupy.int64(W.shape[1])))
    return out
