"""NumPy reference implementation of every op: simple, obviously right, the truth in all tests.

Inputs arrive validated by ops.py (ids in range, C-contiguous, matching dtypes).
"""
import numpy as np


def unavailable_reason():
    return None


def scatter_add(dW, idx, rows):
    np.add.at(dW, idx, rows)


def embedding_gather(W, idx):
    return W[idx]


def id_range(ids):
    """(min, max) of a non-empty int64 array, as Python ints."""
    return int(ids.min()), int(ids.max())


def cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id):
    """Symmetric window co-occurrence as CSR parts ``(indptr, indices, data)``, data float64.

    Counts every pair of positions i < j with 1 <= j - i <= window and j >= n_context (the
    first ``n_context`` tokens are left context carried over from a previous chunk), in both
    directions, weighted 1 or 1 / (j - i). With ``boundary_id >= 0`` a pair counts only when
    no boundary token sits at positions i .. j-1 (the boundary ends its own sentence).
    """
    from scipy import sparse

    n = tokens.shape[0]
    sentence = np.concatenate([[0], np.cumsum(tokens[:-1] == boundary_id)]) if boundary_id >= 0 else None
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        left = np.arange(max(n_context - d, 0), n - d)
        right = left + d
        if sentence is not None:
            same = sentence[left] == sentence[right]
            left, right = left[same], right[same]
        w = np.full(left.shape[0], 1.0 / d if harmonic else 1.0)
        rows += [tokens[left], tokens[right]]
        cols += [tokens[right], tokens[left]]
        weights += [w, w]
    matrix = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(vocab_size, vocab_size)).tocsr()
    matrix.sum_duplicates()
    return matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data.astype(np.float64)


def ppmi_values(indptr, indices, counts, row_sums, context_weights, total, eps):
    """PPMI of every stored count: max(0, log2(C_wc * N / (S_w * P_c) + eps)), float64.

    ``context_weights`` are the context column sums, possibly smoothed and rescaled to sum N.
    """
    rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    pmi = np.log2(counts * total / (row_sums[rows] * context_weights[indices]) + eps)
    return np.maximum(pmi, 0.0)
