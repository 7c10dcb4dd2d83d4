# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels: typed memoryviews, loops run without the GIL.

Inputs arrive validated by ops.py (ids in range, C-contiguous, matching float dtype), which
is what makes the unchecked indexing below safe.
"""
import numpy as np
from cython cimport floating
from libc.stdint cimport int64_t


def unavailable_reason():
    return None


def id_range(const int64_t[::1] ids):
    """(min, max) of a non-empty int64 array in one pass."""
    cdef int64_t low = ids[0], high = ids[0], v
    cdef Py_ssize_t i
    with nogil:
        for i in range(1, ids.shape[0]):
            v = ids[i]
            if v < low:
                low = v
            elif v > high:
                high = v
    return int(low), int(high)


cdef void _scatter_add(floating[:, ::1] dW, const int64_t[::1] idx,
                       const floating[:, ::1] rows) noexcept nogil:
    cdef Py_ssize_t i, j, width = dW.shape[1]
    cdef floating* target
    cdef const floating* source
    for i in range(idx.shape[0]):
        target = &dW[idx[i], 0]
        source = &rows[i, 0]
        for j in range(width):
            target[j] += source[j]


cdef void _embedding_gather(const floating[:, ::1] W, const int64_t[::1] idx,
                            floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t i, j, width = W.shape[1]
    cdef const floating* source
    cdef floating* target
    for i in range(idx.shape[0]):
        source = &W[idx[i], 0]
        target = &out[i, 0]
        for j in range(width):
            target[j] = source[j]


def scatter_add(dW, idx, rows):
    cdef const int64_t[::1] ids = idx
    cdef float[:, ::1] dW32
    cdef double[:, ::1] dW64
    cdef const float[:, ::1] rows32
    cdef const double[:, ::1] rows64
    if dW.dtype == np.float32:
        dW32, rows32 = dW, rows
        with nogil:
            _scatter_add(dW32, ids, rows32)
    else:
        dW64, rows64 = dW, rows
        with nogil:
            _scatter_add(dW64, ids, rows64)


def embedding_gather(W, idx):
    cdef const int64_t[::1] ids = idx
    cdef const float[:, ::1] W32
    cdef const double[:, ::1] W64
    cdef float[:, ::1] out32
    cdef double[:, ::1] out64
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    if W.dtype == np.float32:
        W32, out32 = W, out
        with nogil:
            _embedding_gather(W32, ids, out32)
    else:
        W64, out64 = W, out
        with nogil:
            _embedding_gather(W64, ids, out64)
    return out
