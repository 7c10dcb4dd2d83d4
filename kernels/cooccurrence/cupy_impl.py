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
