"""Numba kernels of the embedding ops: typed loops compiled on first call (cached on disk).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks. float16
and bfloat16 arrays are handed to the loops as uint16 views (Numba has neither type on the
CPU); their conversions are kernels/_numba_half.py's, which LLVM vectorises (those of
_numba_common.py made the float16 scatter-add 7x slower than the float32 one), bit for bit
those of the reference.
"""
import numba
import numpy as np

from .._numba_half import f32_to_half, half_to_f32, prefetch_row
from ..validate import BFLOAT16, HALF_DTYPES


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


@numba.njit(cache=True, nogil=True)
def _scatter_add_half(dW, idx, order, rows, acc, bf16):
    """dW, rows: uint16 patterns; each touched row widened to float32 once (acc), its rows added
    in order of i (order: a stable argsort of idx), the sum rounded once to the storage format."""
    width = dW.shape[1]
    k = 0
    while k < idx.shape[0]:
        row = idx[order[k]]
        target = dW[row]
        source = rows[order[k]]
        k += 1
        if k < idx.shape[0]:
            prefetch_row(dW, idx[order[k]])
        if k == idx.shape[0] or idx[order[k]] != row:  # the common case: one pass over the row
            for j in range(width):
                target[j] = f32_to_half(half_to_f32(target[j], bf16) + half_to_f32(source[j], bf16), bf16)
            continue
        for j in range(width):
            acc[j] = half_to_f32(target[j], bf16) + half_to_f32(source[j], bf16)
        while k < idx.shape[0] and idx[order[k]] == row:
            source = rows[order[k]]
            for j in range(width):
                acc[j] += half_to_f32(source[j], bf16)
            k += 1
        for j in range(width):
            target[j] = f32_to_half(acc[j], bf16)


def scatter_add(dW, idx, rows):
    if dW.dtype in HALF_DTYPES:
        order = np.argsort(idx, kind="stable")
        acc = np.empty(dW.shape[1], np.float32)
        _scatter_add_half(dW.view(np.uint16), idx, order, rows.view(np.uint16), acc, dW.dtype == BFLOAT16)
    else:
        _scatter_add(dW, idx, rows)


def embedding_gather(W, idx):
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    if W.dtype in HALF_DTYPES:  # a copy of bit patterns
        _embedding_gather(W.view(np.uint16), idx, out.view(np.uint16))
    else:
        _embedding_gather(W, idx, out)
    return out
