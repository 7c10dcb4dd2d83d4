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
def _cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id):
    # Two stable counting sorts (by column, then by row) order all pairs by (row, column)
    # without comparisons; duplicates are then adjacent and merged. Pairs store the distance
    # (uint8) instead of a weight so the buffers stay small.
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

    indptr = np.zeros(vocab_size + 1, np.int64)
    indices = np.empty(total, np.int32)
    data = np.empty(total, np.float64)
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
    return indptr, indices[:nnz].copy(), data[:nnz].copy()


def cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id):
    return _cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id)


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
