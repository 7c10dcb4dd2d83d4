"""Numba kernels of the embedding ops: typed loops compiled on first call (cached on disk).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks. float16
and bfloat16 arrays are handed to the loops as uint16 views (Numba has neither type on the
CPU); their conversions are kernels/_numba_common.py's, bit for bit those of the reference.
"""
import numba
import numpy as np

from .._numba_common import bf16_to_f32_bits, f16_to_f32_bits, f32_bits_to_bf16, f32_bits_to_f16
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
def _scatter_add_half(dW, idx, order, rows, acc, term, bf16):
    """dW, rows: uint16 patterns; each touched row widened to float32 once (acc), its rows added
    in order of i (order: a stable argsort of idx), the sum rounded once to the storage format."""
    width = dW.shape[1]
    acc_bits = acc.view(np.uint32)
    term_bits = term.view(np.uint32)
    k = 0
    while k < idx.shape[0]:
        row = idx[order[k]]
        target = dW[row]
        for j in range(width):
            acc_bits[j] = bf16_to_f32_bits(target[j]) if bf16 else f16_to_f32_bits(target[j])
        while k < idx.shape[0] and idx[order[k]] == row:
            source = rows[order[k]]
            for j in range(width):
                term_bits[j] = bf16_to_f32_bits(source[j]) if bf16 else f16_to_f32_bits(source[j])
            for j in range(width):
                acc[j] += term[j]
            k += 1
        for j in range(width):
            target[j] = f32_bits_to_bf16(acc_bits[j]) if bf16 else f32_bits_to_f16(acc_bits[j])


def scatter_add(dW, idx, rows):
    if dW.dtype in HALF_DTYPES:
        order = np.argsort(idx, kind="stable")
        scratch = np.empty((2, dW.shape[1]), np.float32)
        _scatter_add_half(dW.view(np.uint16), idx, order, rows.view(np.uint16), scratch[0], scratch[1],
                          dW.dtype == BFLOAT16)
    else:
        _scatter_add(dW, idx, rows)


def embedding_gather(W, idx):
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    if W.dtype in HALF_DTYPES:  # a copy of bit patterns
        _embedding_gather(W.view(np.uint16), idx, out.view(np.uint16))
    else:
        _embedding_gather(W, idx, out)
    return out
