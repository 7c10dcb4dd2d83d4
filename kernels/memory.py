"""Arrays whose data starts on a 64-byte boundary (a cache line, one AVX-512 vector).

NumPy takes large arrays from malloc, which returns addresses 16 bytes past a 64-byte boundary
about half the time, and then every row a kernel streams with 64-byte vector loads or stores
crosses cache lines. At the date task's attention size (N 128, T 29, H 256, float32) that costs the
fused forward 60 -> 77 us and the backward 92 -> 113 us (the same C loops, aligned against
misaligned buffers). So the outputs of the compiled ops, and the layer outputs that feed them
(TimeLSTM's states), are allocated here; CuPy arrays are aligned by CuPy's allocator already.
"""
from __future__ import annotations

import math
import operator

import numpy as np

ALIGNMENT = 64


def aligned_empty(shape, dtype=np.float32, xp=np):
    """``xp.empty(shape, dtype)`` (C order) whose data starts on a 64-byte boundary."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    shape = (operator.index(shape),) if np.isscalar(shape) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    array = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -array.__array_interface__["data"][0] % ALIGNMENT  # ~1 us; .ctypes builds an object
    return array[start:start + nbytes].view(dtype).reshape(shape)


def aligned_empty_like(array):
    """An uninitialised array of ``array``'s shape and dtype (C order), 64-byte aligned."""
    return aligned_empty(array.shape, array.dtype)


def aligned_copy(array, xp=np):
    """A C-ordered copy of ``array`` (any strides) whose data starts on a 64-byte boundary."""
    out = aligned_empty(array.shape, array.dtype, xp)
    out[...] = array
    return out
