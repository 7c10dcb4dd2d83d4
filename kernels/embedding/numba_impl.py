"""Numba kernels of the embedding ops: typed loops compiled on first call (cached on disk).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks.
"""
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _scatter_add(dW, idx, rows):
    width = dW.shape[1]
    for i in range(idx.shape[0]):
        target = dW[idx[i]]
        source = rows[i]
        for j in range(width):
            target[j] += source[j]


@numba.njit(cache=True, nogil=True)
def _embedding_gather(W, idx, out):
    width = W.shape[1]
    for i in range(idx.shape[0]):
        source = W[idx[i]]
        target = out[i]
        for j in range(width):
            target[j] = source[j]


def scatter_add(dW, idx, rows):
    _scatter_add(dW, idx, rows)


def embedding_gather(W, idx):
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    _embedding_gather(W, idx, out)
    return out

