"""Numba CPU kernels: typed loops compiled on first call (cached on disk), one thread each.

Inputs arrive validated by ops.py, so the loops index without bounds checks.
"""
import numba
import numpy as np


def unavailable_reason():
    return None


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
def _id_range(ids):
    low = high = ids[0]
    for i in range(1, ids.shape[0]):
        v = ids[i]
        if v < low:
            low = v
        elif v > high:
            high = v
    return low, high


def id_range(ids):
    low, high = _id_range(ids)
    return int(low), int(high)


def scatter_add(dW, idx, rows):
    _scatter_add(dW, idx, rows)


def embedding_gather(W, idx):
    out = np.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    _embedding_gather(W, idx, out)
    return out


@numba.njit(cache=True, nogil=True)
def _count_pairs_by_column(tokens, n_context, vocab_size, window, boundary_id, col_count):
    """Pass 1: how many pairs land in each column (== each row: the count is symmetric)."""
    n = tokens.shape[0]
    last_boundary = -1
    total = 0
    for j in range(n):
        if j >= n_context:
            first = max(j - window, last_boundary + 1, 0)
            for i in range(first, j):
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
    count = np.zeros(vocab_size + 1, np.int64)
    total = _count_pairs_by_column(tokens, n_context, vocab_size, window, boundary_id, count[1:])
    for v in range(vocab_size):
        count[v + 1] += count[v]
    start = count  # start[v] .. start[v + 1]: bucket of column (and of row) v

    fill = start[:-1].copy()
    row_by_col = np.empty(total, np.int32)
    dist_by_col = np.empty(total, np.uint8)
    last_boundary = -1
    for j in range(n):
        if j >= n_context:
            wj = tokens[j]
            for i in range(max(j - window, last_boundary + 1, 0), j):
                wi = tokens[i]
                d = j - i
                p = fill[wj]
                row_by_col[p] = wi
                dist_by_col[p] = d
                fill[wj] = p + 1
                p = fill[wi]
                row_by_col[p] = wj
                dist_by_col[p] = d
                fill[wi] = p + 1
        if tokens[j] == boundary_id:
            last_boundary = j

    fill = start[:-1].copy()
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
def _ppmi_values(indptr, indices, counts, row_sums, context_weights, total, eps):
    out = np.empty(counts.shape[0], np.float64)
    for r in range(indptr.shape[0] - 1):
        for p in range(indptr[r], indptr[r + 1]):
            pmi = np.log2(counts[p] * total / (row_sums[r] * context_weights[indices[p]]) + eps)
            out[p] = pmi if pmi > 0.0 else 0.0
    return out


def ppmi_values(indptr, indices, counts, row_sums, context_weights, total, eps):
    return _ppmi_values(indptr, indices, counts, row_sums, context_weights, total, eps)
