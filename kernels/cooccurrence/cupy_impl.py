"""CuPy wrappers of the co-occurrence ops around cooccurrence.cu (inputs validated, see
__init__.py). Pairs come from a RawKernel and are summed by CuPy's COO -> CSR conversion."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, module

SOURCE = Path(__file__).with_name("cooccurrence.cu")


def cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id):
    from cupyx.scipy import sparse

    n = tokens.shape[0]
    if boundary_id >= 0:
        sentence = cupy.concatenate([cupy.zeros(1, cupy.int64), cupy.cumsum(tokens[:-1] == boundary_id)])
    else:
        sentence = cupy.zeros(n, cupy.int64)
    n_slots = 2 * n * window
    rows = cupy.empty(n_slots, cupy.int32)
    cols = cupy.empty(n_slots, cupy.int32)
    weights = cupy.empty(n_slots, cupy.float64)
    module(SOURCE).get_function("cooccurrence_pairs")(
        grid(n * window), (THREADS,),
        (tokens, sentence.astype(cupy.int64), cupy.int64(n), cupy.int64(n_context), cupy.int64(window),
         cupy.int32(1 if harmonic else 0), rows, cols, weights))
    matrix = sparse.coo_matrix((weights, (rows, cols)), shape=(vocab_size, vocab_size))
    matrix.sum_duplicates()
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()  # the slots of pairs that do not count carry weight 0
    matrix.sort_indices()
    return matrix.indptr.astype(cupy.int64), matrix.indices.astype(cupy.int32), matrix.data.astype(cupy.float64)


def ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps):
    out = cupy.empty(counts.shape[0], cupy.float64)
    n_rows = indptr.shape[0] - 1
    module(SOURCE).get_function("ppmi_values")(
        grid(n_rows), (THREADS,),
        (indptr, indices, counts, log_row_sums, log_context_weights, cupy.float64(log_total),
         cupy.float64(log_eps), cupy.int64(n_rows), out))
    return out


def _entries(indptr, indices, data, part_starts, part_indices, part_data):
    """(rows, columns, values) of the matrix's stored entries, then each part's (COO rows from a
    RawKernel: one binary search per entry)."""
    vocab_size = indptr.shape[0] - 1

    def rows_of(starts, begin, end):
        rows = cupy.empty(end - begin, cupy.int32)
        if end > begin:
            module(SOURCE).get_function("csr_row_ids")(
                grid(end - begin), (THREADS,),
                (cupy.ascontiguousarray(starts), cupy.int64(vocab_size), cupy.int64(begin), cupy.int64(end), rows))
        return rows

    n_stored = int(indptr[-1])
    rows, cols = [rows_of(indptr, 0, n_stored)], [indices[:n_stored]]
    values = [data[:n_stored]] if data is not None else []
    for q in range(part_starts.shape[0]):
        starts = part_starts[q]
        begin, end = int(starts[0]), int(starts[-1])
        rows.append(rows_of(starts, begin, end))
        cols.append(part_indices[begin:end])
        if part_data is not None:
            values.append(part_data[begin:end])
    return rows, cols, values


def _summed(indptr, indices, data, part_starts, part_indices, part_data):
    """The sum as a canonical cupyx CSR matrix, by CuPy's COO -> CSR conversion (the order of
    the additions is the device's: held to the tolerance, not to the bits)."""
    from cupyx.scipy import sparse

    vocab_size = indptr.shape[0] - 1
    rows, cols, values = _entries(indptr, indices, data, part_starts, part_indices, part_data)
    values = cupy.concatenate(values) if values else cupy.ones(sum(c.shape[0] for c in cols), cupy.float64)
    matrix = sparse.coo_matrix((values, (cupy.concatenate(rows), cupy.concatenate(cols))),
                               shape=(vocab_size, vocab_size))
    matrix.sum_duplicates()
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return matrix


def csr_sum_indptr(indptr, indices, part_starts, part_indices):
    return _summed(indptr, indices, None, part_starts, part_indices, None).indptr.astype(cupy.int64)


def csr_sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices, out_data):
    matrix = _summed(indptr, indices, data, part_starts, part_indices, part_data)
    n = int(out_indptr[-1])
    out_indices[:n] = matrix.indices.astype(cupy.int32)
    out_data[:n] = matrix.data.astype(cupy.float64)
