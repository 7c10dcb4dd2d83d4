"""Numba kernels of the co-occurrence ops (line-for-line twins of _cython_impl.pyx).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks.
"""
import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _count_pairs(tokens, n_context, window, boundary_id, col_count):
    """Pass 1: how many pairs land in each column (== each row: the count is symmetric)."""
    n = tokens.shape[0]
    last_boundary = -1
    total = 0
    for j in range(n):
        if j >= n_context:
            for i in range(max(j - window, last_boundary + 1), j):
                col_count[tokens[i]] += 1
                col_count[tokens[j]] += 1
                total += 2
        if tokens[j] == boundary_id:
            last_boundary = j
    return total


@numba.njit(cache=True, nogil=True)
def _sorted_pairs(tokens, n_context, vocab_size, window, boundary_id):
    # Two stable counting sorts (by column, then by row) order all pairs by (row, column)
    # without comparisons. Pairs store the distance (uint8) instead of a weight so the buffers
    # stay small: 10 bytes a pair at the peak, the first sort's buffers freed on return.
    n = tokens.shape[0]
    start = np.zeros(vocab_size + 1, np.int64)  # start[v] .. start[v + 1]: bucket of column (row) v
    total = _count_pairs(tokens, n_context, window, boundary_id, start[1:])
    for v in range(vocab_size):
        start[v + 1] += start[v]

    fill = start[:-1].copy()
    row_by_col = np.empty(total, np.int32)
    dist_by_col = np.empty(total, np.uint8)
    last_boundary = -1
    for j in range(n):
        if j >= n_context:
            wj = tokens[j]
            for i in range(max(j - window, last_boundary + 1), j):
                wi = tokens[i]
                p = fill[wj]
                row_by_col[p] = wi
                dist_by_col[p] = j - i
                fill[wj] = p + 1
                p = fill[wi]
                row_by_col[p] = wj
                dist_by_col[p] = j - i
                fill[wi] = p + 1
        if tokens[j] == boundary_id:
            last_boundary = j

    for v in range(vocab_size):
        fill[v] = start[v]
    col_sorted = np.empty(total, np.int32)
    dist_sorted = np.empty(total, np.uint8)
    for c in range(vocab_size):
        for p in range(start[c], start[c + 1]):
            r = row_by_col[p]
            q = fill[r]
            col_sorted[q] = c
            dist_sorted[q] = dist_by_col[p]
            fill[r] = q + 1
    return start, col_sorted, dist_sorted


@numba.njit(cache=True, nogil=True)
def _merge_duplicates(start, col_sorted, dist_sorted, vocab_size, harmonic):
    # Duplicates are adjacent in the sorted pairs: count the distinct ones first, so the output
    # is allocated at its exact size (5 bytes a pair + 12 a distinct pair at the peak).
    nnz = 0
    for r in range(vocab_size):
        previous = -1
        for p in range(start[r], start[r + 1]):
            if col_sorted[p] != previous:
                nnz += 1
                previous = col_sorted[p]
    indptr = np.zeros(vocab_size + 1, np.int64)
    indices = np.empty(nnz, np.int32)
    data = np.empty(nnz, np.float64)
    nnz = 0
    for r in range(vocab_size):
        previous = -1
        for p in range(start[r], start[r + 1]):
            c = col_sorted[p]
            w = 1.0 / dist_sorted[p] if harmonic else 1.0
            if c == previous:
                data[nnz - 1] += w
            else:
                indices[nnz] = c
                data[nnz] = w
                nnz += 1
                previous = c
        indptr[r + 1] = nnz
    return indptr, indices, data


def cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id):
    start, col_sorted, dist_sorted = _sorted_pairs(tokens, n_context, vocab_size, window, boundary_id)
    return _merge_duplicates(start, col_sorted, dist_sorted, vocab_size, harmonic)


# De Bruijn sequence: the index of the lowest set bit of w is _LOWEST_BIT[((w & -w) * _DE_BRUIJN) >> 58].
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_LOWEST_BIT = np.array([0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59, 36, 53, 51, 43, 22,
                        45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23,
                        11, 46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _count_union(indptr, indices, part_starts, part_indices, out_indptr):
    """Distinct columns per row over the matrix and the parts (a stamp per column)."""
    vocab_size = indptr.shape[0] - 1
    stamp = np.full(vocab_size, -1, np.int64)
    nnz = 0
    for r in range(vocab_size):
        for p in range(indptr[r], indptr[r + 1]):
            stamp[indices[p]] = r  # canonical: distinct already
            nnz += 1
        for q in range(part_starts.shape[0]):
            for p in range(part_starts[q, r], part_starts[q, r + 1]):
                c = part_indices[p]
                if stamp[c] != r:
                    stamp[c] = r
                    nnz += 1
        out_indptr[r + 1] = nnz


def csr_sum_indptr(indptr, indices, part_starts, part_indices):
    out_indptr = np.zeros(indptr.shape[0], np.int64)
    _count_union(indptr, indices, part_starts, part_indices, out_indptr)
    return out_indptr


@numba.njit(cache=True, nogil=True)
def _sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices, out_data):
    # Rows from the last to the first: row r is read whole (into a dense accumulator, in the
    # cache: 8 bytes a column) before it is written at out_indptr[r] >= indptr[r], above every
    # row not yet read, so the output may be the matrix's own (grown) arrays. Columns come back
    # in order from two levels of bitmaps (a bit per column, a bit per 64 columns).
    vocab_size = indptr.shape[0] - 1
    n_words = (vocab_size + 63) >> 6
    acc = np.zeros(vocab_size, np.float64)
    words = np.zeros(n_words, np.uint64)
    summary = np.zeros((n_words + 63) >> 6, np.uint64)
    one = np.uint64(1)
    for r in range(vocab_size - 1, -1, -1):
        out = out_indptr[r]
        if out == out_indptr[r + 1]:
            continue
        lowest, highest = n_words, -1  # the summary words this row touched
        for source in range(-1, part_starts.shape[0]):
            if source < 0:
                begin, end, cols, vals = indptr[r], indptr[r + 1], indices, data
            else:
                begin, end = part_starts[source, r], part_starts[source, r + 1]
                cols, vals = part_indices, part_data
            for p in range(begin, end):
                c = cols[p]
                acc[c] += vals[p]
                w = c >> 6
                words[w] |= one << np.uint64(c & 63)
                summary[w >> 6] |= one << np.uint64(w & 63)
                lowest = min(lowest, w >> 6)
                highest = max(highest, w >> 6)
        for s in range(lowest, highest + 1):
            top = summary[s]
            summary[s] = 0
            while top:
                w = (s << 6) + _LOWEST_BIT[((top & -top) * _DE_BRUIJN) >> np.uint64(58)]
                top &= top - one
                bits = words[w]
                words[w] = 0
                while bits:
                    c = (w << 6) + _LOWEST_BIT[((bits & -bits) * _DE_BRUIJN) >> np.uint64(58)]
                    bits &= bits - one
                    out_indices[out] = c
                    out_data[out] = acc[c]
                    acc[c] = 0.0
                    out += 1


def csr_sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices, out_data):
    _sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices, out_data)


@numba.njit(cache=True, nogil=True)
def _ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps, out):
    inv_ln2 = 1.0 / math.log(2.0)
    for r in range(indptr.shape[0] - 1):
        for p in range(indptr[r], indptr[r + 1]):
            if counts[p] <= 0.0:
                out[p] = 0.0
                continue
            log_ratio = math.log2(counts[p]) + log_total - log_row_sums[r] - log_context_weights[indices[p]]
            # log2(2**log_ratio + 2**log_eps) without forming either power
            high = max(log_ratio, log_eps)
            pmi = high + math.log1p(2.0 ** -abs(log_ratio - log_eps)) * inv_ln2
            out[p] = pmi if pmi > 0.0 else 0.0


def ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps):
    out = np.empty(counts.shape[0], np.float64)
    _ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps, out)
    return out
