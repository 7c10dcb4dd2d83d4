"""Numba kernels of the embedding ops: typed loops compiled on first call (cached on disk).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks. float16
and bfloat16 arrays are handed to the loops as uint16 views (Numba has neither type on the
CPU); their conversions are kernels/_numba_half.py's, which LLVM vectorises (those of
_numba_common.py made the float16 scatter-add 7x slower than the float32 one), bit for bit
those of the reference. On a CPU with AVX512-FP16, LLVM turns the float16 pass's widen, add
and round into one float16 add (the same bits: float32's 24 bits are at least 2 x 11 + 2, so
rounding the float32 sum again changes nothing). bfloat16's pass goes 32 values at a time
(_numba_half.add_round_bf16_block: vcvtne2ps2bf16 where the CPU has AVX512-BF16, integer
rounding elsewhere), and asks for the next row of dW and of ``rows`` one line per block: with
its conversions the pass was waiting on those loads more than on its vector operations.
"""
import numba
import numpy as np

from .._numba_half import (BF16_BLOCK, add_round_bf16_block, add_round_bf16_part, f32_sum_to_half, half_to_f32,
                           prefetch_for_read, prefetch_for_write, prefetch_row)
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
def _link_duplicates(idx):
    """(following, repeat): following[i] the next position after i holding idx[i], or -1;
    repeat[i] whether an earlier position holds it. An open-addressing table of the ids, one
    pass, O(n) (a stable argsort and the walk in its order made the float16 call 1.3x slower)."""
    n = idx.shape[0]
    capacity, shift = 16, 60  # a power of two >= 2 n slots; shift keeps the hash's top bits
    while capacity < 2 * n:
        capacity *= 2
        shift -= 1
    mask = capacity - 1
    slot_id = np.full(capacity, -1, np.int64)
    slot_last = np.empty(capacity, np.int64)  # the last position seen with the slot's id
    following = np.empty(n, np.int64)
    repeat = np.empty(n, np.bool_)
    for i in range(n):
        slot = np.int64((np.uint64(idx[i]) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift))
        while slot_id[slot] != -1 and slot_id[slot] != idx[i]:
            slot = (slot + 1) & mask
        following[i] = -1
        repeat[i] = slot_id[slot] != -1
        if repeat[i]:
            following[slot_last[slot]] = i
        else:
            slot_id[slot] = idx[i]
        slot_last[slot] = i
    return following, repeat


@numba.njit(cache=True, nogil=True)
def _scatter_add_half(dW, idx, rows, bf16):
    """dW, rows: uint16 patterns. An id seen once (the common case) is one fused pass over its
    row, dW[r] = round(dW[r] + rows[i]) (bfloat16: by add_round_bf16_block, the row's last
    width % 32 values by add_round_bf16_part under a mask); a repeated id is summed in a float32
    row in order of i and rounded by the pass of its last position. Every rounding is of a sum
    of widened values (f32_sum_to_half: bfloat16's without the NaN select).

    The next position's rows are prefetched while this one runs. In the bfloat16 pass one line
    of each per block: all of a row at once before the pass (prefetch_row, still used by the
    other passes) made the bfloat16 call 1.1-1.2x slower, and leaving ``rows`` to the hardware
    prefetcher 1.05-1.1x slower."""
    following, repeat = _link_duplicates(idx)
    n, width = idx.shape[0], dW.shape[1]
    # bfloat16 blocks address flat views by offset: a row view per id cost 1.15x the call there.
    dW_flat, rows_flat = dW.reshape(-1), rows.reshape(-1)
    acc = np.empty(width, np.float32)
    whole = width - width % BF16_BLOCK  # the values of a row in whole blocks
    for i in range(n):
        if repeat[i]:
            continue  # summed with the id's first position
        ahead = idx[i + 1] * width if i + 1 < n else -1  # the next row, asked for while this one runs
        if following[i] < 0 and bf16:  # whole blocks, then the row's last values under a mask
            row, offset = idx[i] * width, i * width
            for start in range(0, whole, BF16_BLOCK):
                if ahead >= 0:  # one 64-byte line of the next rows of dW and rows per block of this one
                    prefetch_for_write(dW_flat, ahead + start)
                    prefetch_for_read(rows_flat, offset + width + start)
                add_round_bf16_block(dW_flat, row + start, rows_flat, offset + start, dW_flat, row + start)
            if ahead >= 0:
                prefetch_for_write(dW_flat, ahead + width - 1)
                prefetch_for_read(rows_flat, offset + 2 * width - 1)
            if whole < width:
                last = width - whole
                add_round_bf16_part(dW_flat, row + whole, rows_flat, offset + whole, dW_flat, row + whole, last)
            continue
        if ahead >= 0:
            prefetch_row(dW, idx[i + 1])
        target = dW[idx[i]]
        k = i
        if following[i] < 0:
            source = rows[i]
            for j in range(width):
                target[j] = f32_sum_to_half(half_to_f32(target[j], bf16) + half_to_f32(source[j], bf16), bf16)
            continue
        for j in range(width):
            acc[j] = half_to_f32(target[j], bf16)
        while following[k] >= 0:
            source = rows[k]
            for j in range(width):
                acc[j] += half_to_f32(source[j], bf16)
            k = following[k]
        source = rows[k]
        for j in range(width):
            target[j] = f32_sum_to_half(acc[j] + half_to_f32(source[j], bf16), bf16)


def scatter_add(dW, idx, rows):
    if dW.dtype in HALF_DTYPES:
        _scatter_add_half(dW.view(np.uint16), idx, rows.view(np.uint16), dW.dtype == BFLOAT16)
    else:
        _scatter_add(dW, idx, rows)


def embedding_gather(W, idx):
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    if W.dtype in HALF_DTYPES:  # a copy of bit patterns
        _embedding_gather(W.view(np.uint16), idx, out.view(np.uint16))
    else:
        _embedding_gather(W, idx, out)
    return out
