"""CuPy wrappers of the embedding ops around embedding.cu (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("embedding.cu")


def scatter_add(dW, idx, rows):
    width = dW.shape[1]
    typed_kernel(SOURCE, "scatter_add", dW.dtype)(
        grid(idx.shape[0] * width), (THREADS,), (dW, idx, rows, cupy.int64(idx.shape[0]), cupy.int64(width)))


def embedding_gather(W, idx):
    out = cupy.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    typed_kernel(SOURCE, "gather", W.dtype)(
        grid(out.size), (THREADS,), (W, idx, out, cupy.int64(idx.shape[0]), cupy.int64(W.shape[1])))
    return out

