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


def _entries(indptr, indices, data, part_starts, part_indices, part_data):
    """(rows, columns, values) of the matrix's entries, then each part's, in that order."""
    vocab_size = indptr.shape[0] - 1
    n_stored = indptr[-1]
    rows = [np.repeat(np.arange(vocab_size, dtype=np.int64), np.diff(indptr))]
    cols, values = [indices[:n_stored]], [data[:n_stored] if data is not None else None]
    for starts in part_starts:
        rows.append(np.repeat(np.arange(vocab_size, dtype=np.int64), np.diff(starts)))
        cols.append(part_indices[starts[0]:starts[-1]])
        values.append(part_data[starts[0]:starts[-1]] if part_data is not None else None)
    return np.concatenate(rows), np.concatenate(cols).astype(np.int64), values


def csr_sum_indptr(indptr, indices, part_starts, part_indices):
    """The indptr (int64) of the sum of a canonical CSR matrix and k canonical CSR parts: the
    distinct columns of each row over all of them. Part q's row r is
    ``part_indices[part_starts[q, r]:part_starts[q, r + 1]]``."""
    vocab_size = indptr.shape[0] - 1
    rows, cols, _ = _entries(indptr, indices, None, part_starts, part_indices, None)
    distinct = np.unique(rows * vocab_size + cols)
    out_indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(distinct // vocab_size, minlength=vocab_size), out=out_indptr[1:])
    return out_indptr


def csr_sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices, out_data):
    """Write the sum of the matrix and the parts into ``out_indices`` / ``out_data`` (room for
    ``out_indptr[-1]`` entries; ``out_indptr`` from ``csr_sum_indptr``). They may be ``indices``
    / ``data`` themselves, grown: the matrix is read in full before anything is written.

    Each sum is taken from 0.0 in a fixed order: the matrix's value, then the parts' in order
    (a stable sort keeps that order among equal (row, column); ``bincount`` adds in it).
    """
    rows, cols, values = _entries(indptr, indices, data, part_starts, part_indices, part_data)
    values = np.concatenate(values)
    order = np.lexsort((cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    sums = np.bincount(np.cumsum(first) - 1, weights=values) if rows.shape[0] else np.zeros(0)
    n = int(out_indptr[-1])
    out_indices[:n] = cols[first]
    out_data[:n] = sums


def index_words(tokens, word_to_index):
    """The index of every token in ``word_to_index`` as int64, words not in it added with the
    next free index (``len(word_to_index)``) in order of first appearance: one pass that builds
    a vocabulary in the book's order and encodes with it."""
    setdefault = word_to_index.setdefault
    return np.fromiter((setdefault(token, len(word_to_index)) for token in tokens), dtype=np.int64,
                       count=len(tokens))
