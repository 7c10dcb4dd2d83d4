# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the co-occurrence ops (line-for-line twins of numba_impl.py), no GIL.

Inputs arrive validated (see __init__.py: token ids in range, C-contiguous), which is what
makes the unchecked indexing below safe.
"""
import numpy as np
from libc.math cimport exp2, fabs, log, log1p, log2
from libc.stdint cimport int32_t, int64_t, uint8_t


cdef int64_t _count_pairs(const int64_t[::1] tokens, Py_ssize_t n_context, Py_ssize_t window,
                          int64_t boundary_id, int64_t* col_count) noexcept nogil:
    """Pass 1: how many pairs land in each column (== each row: the count is symmetric)."""
    cdef Py_ssize_t n = tokens.shape[0], i, j, last_boundary = -1
    cdef int64_t total = 0
    for j in range(n):
        if j >= n_context:
            for i in range(max(j - window, last_boundary + 1), j):
                col_count[tokens[i]] += 1
                col_count[tokens[j]] += 1
                total += 2
        if tokens[j] == boundary_id:
            last_boundary = j
    return total


def cooccurrence(tokens, Py_ssize_t n_context, Py_ssize_t vocab_size, Py_ssize_t window,
                 bint harmonic, int64_t boundary_id):
    """Two stable counting sorts (by column, then by row), then duplicates merged."""
    cdef const int64_t[::1] toks = tokens
    cdef int64_t[::1] start = np.zeros(vocab_size + 1, np.int64)
    cdef int64_t total
    cdef Py_ssize_t n = toks.shape[0], v, i, j, c, r, last_boundary = -1
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
                for i in range(max(j - window, last_boundary + 1), j):
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
                const double[::1] log_row_sums, const double[::1] log_context_weights,
                double log_total, double log_eps):
    out_arr = np.empty(counts.shape[0], np.float64)
    cdef double[::1] out = out_arr
    cdef Py_ssize_t r, p
    cdef double log_ratio, high, pmi, inv_ln2 = 1.0 / log(2.0)
    with nogil:
        for r in range(indptr.shape[0] - 1):
            for p in range(indptr[r], indptr[r + 1]):
                if counts[p] <= 0.0:
                    out[p] = 0.0
                    continue
                log_ratio = log2(counts[p]) + log_total - log_row_sums[r] - log_context_weights[indices[p]]
                # log2(2**log_ratio + 2**log_eps) without forming either power
                high = max(log_ratio, log_eps)
                pmi = high + log1p(exp2(-fabs(log_ratio - log_eps))) * inv_ln2
                out[p] = pmi if pmi > 0.0 else 0.0
    return out_arr
