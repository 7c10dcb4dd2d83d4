# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels: typed memoryviews, loops run without the GIL.

Inputs arrive validated by ops.py (ids in range, C-contiguous, matching float dtype), which
is what makes the unchecked indexing below safe.
"""
import numpy as np
from cython cimport floating
from libc.math cimport log2
from libc.stdint cimport int32_t, int64_t, uint8_t


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


cdef int64_t _count_pairs(const int64_t[::1] tokens, Py_ssize_t n_context, Py_ssize_t window,
                          int64_t boundary_id, int64_t* col_count) noexcept nogil:
    cdef Py_ssize_t n = tokens.shape[0], i, j, first, last_boundary = -1
    cdef int64_t total = 0
    for j in range(n):
        if j >= n_context:
            first = max(j - window, last_boundary + 1)
            for i in range(first, j):
                col_count[tokens[i]] += 1
                col_count[tokens[j]] += 1
                total += 2
        if tokens[j] == boundary_id:
            last_boundary = j
    return total


def cooccurrence(tokens, Py_ssize_t n_context, Py_ssize_t vocab_size, Py_ssize_t window,
                 bint harmonic, int64_t boundary_id):
    """Same algorithm as the Numba kernel: two stable counting sorts, then merge duplicates."""
    cdef const int64_t[::1] toks = tokens
    cdef int64_t[::1] start = np.zeros(vocab_size + 1, np.int64)
    cdef int64_t total
    cdef Py_ssize_t n = toks.shape[0], v, i, j, c, r, first, last_boundary = -1
    cdef int64_t p, q, wi, wj, previous, nnz = 0
    cdef double w
    with nogil:
        total = _count_pairs(toks, n_context, window, boundary_id, &start[1])
        for v in range(vocab_size):
            start[v + 1] += start[v]
    cdef int64_t[::1] fill = np.asarray(start[:vocab_size]).copy()
    cdef int32_t[::1] row_by_col = np.empty(total, np.int32)
    cdef uint8_t[::1] dist_by_col = np.empty(total, np.uint8)
    cdef int32_t[::1] col_sorted = np.empty(total, np.int32)
    cdef uint8_t[::1] dist_sorted = np.empty(total, np.uint8)
    indptr_arr = np.zeros(vocab_size + 1, np.int64)
    indices_arr = np.empty(total, np.int32)
    data_arr = np.empty(total, np.float64)
    cdef int64_t[::1] indptr = indptr_arr
    cdef int32_t[::1] indices = indices_arr
    cdef double[::1] data = data_arr
    with nogil:
        for j in range(n):
            if j >= n_context:
                wj = toks[j]
                first = max(j - window, last_boundary + 1)
                for i in range(first, j):
                    wi = toks[i]
                    p = fill[wj]
                    row_by_col[p] = <int32_t>wi
                    dist_by_col[p] = <uint8_t>(j - i)
                    fill[wj] = p + 1
                    p = fill[wi]
                    row_by_col[p] = <int32_t>wj
                    dist_by_col[p] = <uint8_t>(j - i)
                    fill[wi] = p + 1
            if toks[j] == boundary_id:
                last_boundary = j
        for v in range(vocab_size):
            fill[v] = start[v]
        for c in range(vocab_size):
            for p in range(start[c], start[c + 1]):
                r = row_by_col[p]
                q = fill[r]
                col_sorted[q] = <int32_t>c
                dist_sorted[q] = dist_by_col[p]
                fill[r] = q + 1
        for r in range(vocab_size):
            previous = -1
            for p in range(start[r], start[r + 1]):
                c = col_sorted[p]
                w = (1.0 / dist_sorted[p]) if harmonic else 1.0
                if c == previous:
                    data[nnz - 1] += w
                else:
                    indices[nnz] = <int32_t>c
                    data[nnz] = w
                    nnz += 1
                    previous = c
            indptr[r + 1] = nnz
    return indptr_arr, indices_arr[:nnz].copy(), data_arr[:nnz].copy()


def ppmi_values(const int64_t[::1] indptr, const int32_t[::1] indices, const double[::1] counts,
                const double[::1] row_sums, const double[::1] context_weights, double total, double eps):
    out_arr = np.empty(counts.shape[0], np.float64)
    cdef double[::1] out = out_arr
    cdef Py_ssize_t r, p
    cdef double pmi
    with nogil:
        for r in range(indptr.shape[0] - 1):
            for p in range(indptr[r], indptr[r + 1]):
                pmi = log2(counts[p] * total / (row_sums[r] * context_weights[indices[p]]) + eps)
                out[p] = pmi if pmi > 0.0 else 0.0
    return out_arr
