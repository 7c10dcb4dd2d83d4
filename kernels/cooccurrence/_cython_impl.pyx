# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the co-occurrence ops (line-for-line twins of numba_impl.py), no GIL.

Inputs arrive validated (see __init__.py: token ids in range, C-contiguous), which is what
makes the unchecked indexing below safe.
"""
import numpy as np
from libc.math cimport exp2, fabs, log, log1p, log2
from cpython.dict cimport PyDict_GetItemWithError, PyDict_SetItem, PyDict_Size
from cpython.long cimport PyLong_AsLongLong
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


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


def _sorted_pairs(tokens, Py_ssize_t n_context, Py_ssize_t vocab_size, Py_ssize_t window,
                  int64_t boundary_id):
    """Two stable counting sorts (by column, then by row) order all pairs by (row, column); the
    first sort's buffers are freed on return (10 bytes a pair at the peak)."""
    cdef const int64_t[::1] toks = tokens
    start_arr = np.zeros(vocab_size + 1, np.int64)
    cdef int64_t[::1] start = start_arr
    cdef int64_t total
    cdef Py_ssize_t n = toks.shape[0], v, i, j, c, r, last_boundary = -1
    cdef int64_t p, q, wi, wj
    with nogil:
        total = _count_pairs(toks, n_context, window, boundary_id, &start[1])
        for v in range(vocab_size):
            start[v + 1] += start[v]
    cdef int64_t[::1] fill = np.asarray(start[:vocab_size]).copy()
    cdef int32_t[::1] row_by_col = np.empty(total, np.int32)
    cdef uint8_t[::1] dist_by_col = np.empty(total, np.uint8)
    col_sorted_arr = np.empty(total, np.int32)
    dist_sorted_arr = np.empty(total, np.uint8)
    cdef int32_t[::1] col_sorted = col_sorted_arr
    cdef uint8_t[::1] dist_sorted = dist_sorted_arr
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
    return start_arr, col_sorted_arr, dist_sorted_arr


def _merge_duplicates(const int64_t[::1] start, const int32_t[::1] col_sorted, const uint8_t[::1] dist_sorted,
                      Py_ssize_t vocab_size, bint harmonic):
    """Duplicates are adjacent in the sorted pairs: count the distinct ones first, so the output
    is allocated at its exact size (5 bytes a pair + 12 a distinct pair at the peak)."""
    cdef Py_ssize_t r
    cdef int64_t p, c, previous, nnz = 0
    cdef double w
    with nogil:
        for r in range(vocab_size):
            previous = -1
            for p in range(start[r], start[r + 1]):
                if col_sorted[p] != previous:
                    nnz += 1
                    previous = col_sorted[p]
    indptr_arr = np.zeros(vocab_size + 1, np.int64)
    indices_arr = np.empty(nnz, np.int32)
    data_arr = np.empty(nnz, np.float64)
    cdef int64_t[::1] indptr = indptr_arr
    cdef int32_t[::1] indices = indices_arr
    cdef double[::1] data = data_arr
    nnz = 0
    with nogil:
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
    return indptr_arr, indices_arr, data_arr


def cooccurrence(tokens, Py_ssize_t n_context, Py_ssize_t vocab_size, Py_ssize_t window,
                 bint harmonic, int64_t boundary_id):
    start, col_sorted, dist_sorted = _sorted_pairs(tokens, n_context, vocab_size, window, boundary_id)
    return _merge_duplicates(start, col_sorted, dist_sorted, vocab_size, harmonic)


# De Bruijn sequence: the index of the lowest set bit of w is _LOWEST_BIT[((w & -w) * _DE_BRUIJN) >> 58].
cdef uint64_t _DE_BRUIJN = 0x03F79D71B4CB0A89ULL
cdef int64_t[64] _LOWEST_BIT
_LOWEST_BIT[:] = [0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59, 36, 53, 51, 43, 22,
                  45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23,
                  11, 46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6]


def csr_sum_indptr(const int64_t[::1] indptr, const int32_t[::1] indices, const int64_t[:, ::1] part_starts,
                   const int32_t[::1] part_indices):
    """Distinct columns per row over the matrix and the parts (a stamp per column)."""
    cdef Py_ssize_t vocab_size = indptr.shape[0] - 1, n_parts = part_starts.shape[0], r, q
    out_indptr_arr = np.zeros(vocab_size + 1, np.int64)
    cdef int64_t[::1] out_indptr = out_indptr_arr
    cdef int64_t[::1] stamp = np.full(vocab_size, -1, np.int64)
    cdef int64_t p, c, nnz = 0
    with nogil:
        for r in range(vocab_size):
            for p in range(indptr[r], indptr[r + 1]):
                stamp[indices[p]] = r  # canonical: distinct already
                nnz += 1
            for q in range(n_parts):
                for p in range(part_starts[q, r], part_starts[q, r + 1]):
                    c = part_indices[p]
                    if stamp[c] != r:
                        stamp[c] = r
                        nnz += 1
            out_indptr[r + 1] = nnz
    return out_indptr_arr


def csr_sum_into(const int64_t[::1] indptr, const int32_t[::1] indices, const double[::1] data,
                 const int64_t[:, ::1] part_starts, const int32_t[::1] part_indices, const double[::1] part_data,
                 const int64_t[::1] out_indptr, int32_t[::1] out_indices, double[::1] out_data):
    """Rows from the last to the first: row r is read whole (into a dense accumulator) before
    it is written at out_indptr[r] >= indptr[r], above every row not yet read (so the output may
    be the matrix's own grown arrays); columns come back in order from two levels of bitmaps."""
    cdef Py_ssize_t vocab_size = indptr.shape[0] - 1, n_parts = part_starts.shape[0]
    cdef Py_ssize_t n_words = (vocab_size + 63) >> 6
    cdef double[::1] acc = np.zeros(vocab_size, np.float64)
    cdef uint64_t[::1] words = np.zeros(n_words, np.uint64)
    cdef uint64_t[::1] summary = np.zeros((n_words + 63) >> 6, np.uint64)
    cdef Py_ssize_t r, source
    cdef int64_t p, c, w, s, begin, end, lowest, highest, out
    cdef uint64_t top, bits
    cdef const int32_t* cols
    cdef const double* vals
    # A length-0 view has no first element to point at: an empty side is never read anyway.
    cdef const int32_t* index_base = &indices[0] if indices.shape[0] else NULL
    cdef const double* data_base = &data[0] if data.shape[0] else NULL
    cdef const int32_t* part_index_base = &part_indices[0] if part_indices.shape[0] else NULL
    cdef const double* part_data_base = &part_data[0] if part_data.shape[0] else NULL
    with nogil:
        for r in range(vocab_size - 1, -1, -1):
            out = out_indptr[r]
            if out == out_indptr[r + 1]:
                continue
            lowest, highest = n_words, -1  # the summary words this row touched
            for source in range(-1, n_parts):
                if source < 0:
                    begin, end, cols, vals = indptr[r], indptr[r + 1], index_base, data_base
                else:
                    begin, end = part_starts[source, r], part_starts[source, r + 1]
                    cols, vals = part_index_base, part_data_base
                for p in range(begin, end):
                    c = cols[p]
                    acc[c] += vals[p]
                    w = c >> 6
                    words[w] |= (<uint64_t>1) << (c & 63)
                    summary[w >> 6] |= (<uint64_t>1) << (w & 63)
                    lowest = min(lowest, w >> 6)
                    highest = max(highest, w >> 6)
            for s in range(lowest, highest + 1):
                top = summary[s]
                summary[s] = 0
                while top:
                    w = (s << 6) + _LOWEST_BIT[((top & -top) * _DE_BRUIJN) >> 58]
                    top &= top - 1
                    bits = words[w]
                    words[w] = 0
                    while bits:
                        c = (w << 6) + _LOWEST_BIT[((bits & -bits) * _DE_BRUIJN) >> 58]
                        bits &= bits - 1
                        out_indices[out] = <int32_t>c
                        out_data[out] = acc[c]
                        acc[c] = 0.0
                        out += 1


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


def index_words(list tokens, dict word_to_index):
    """reference.index_words as one loop of C-level dict look-ups (no Python call per token):
    the vocabulary pass over a text file spends its time here."""
    cdef Py_ssize_t n = len(tokens), i
    cdef PyObject* value
    cdef long long index
    ids = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] ids_view = ids
    for i in range(n):
        token = tokens[i]
        # borrowed reference; NULL: missing (an error, e.g. an unhashable token, is raised)
        value = PyDict_GetItemWithError(word_to_index, token)
        if value == NULL:
            index = PyDict_Size(word_to_index)
            PyDict_SetItem(word_to_index, token, index)
        else:
            index = PyLong_AsLongLong(<object>value)
        ids_view[i] = index
    return ids
