"""NumPy reference of the co-occurrence ops: simple, obviously right, the truth in all tests.

Inputs arrive validated (see __init__.py): token ids in range, C-contiguous, float64 sums.
"""
import numpy as np


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
        left = np.arange(max(n_context - d, 0), max(n - d, 0))
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


def ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps):
    """PPMI of every stored count, float64, in log space so no product can overflow:
    ``max(0, log2(2**(log2 C + log2 N - log2 S_w - log2 P_c) + eps))``; a stored 0 gives 0."""
    rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    positive = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log2(counts) + log_total - log_row_sums[rows] - log_context_weights[indices]
        pmi = np.logaddexp2(log_ratio, log_eps)
    return np.where(positive, np.maximum(pmi, 0.0), 0.0)
