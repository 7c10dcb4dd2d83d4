"""CuPy RawKernel implementations; the CUDA sources live in kernels/cuda/*.cu.

CuPy is imported here, lazily, only when the cupy backend or a GPU array is first used.
Inputs arrive validated by ops.py (ids in range, C-contiguous, matching float dtype).
"""
import functools
from pathlib import Path

import cupy

_CUDA_DIR = Path(__file__).with_name("cuda")
_THREADS = 256
_MAX_BLOCKS = 65535


def unavailable_reason():
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError has no stable import path across versions
        return f"CuPy is installed but no CUDA device can be used ({exc})"
    return None if count > 0 else "CuPy is installed but there is no CUDA device"


@functools.lru_cache(maxsize=None)
def _module(source_name: str):
    return cupy.RawModule(code=(_CUDA_DIR / source_name).read_text(), options=("-std=c++14",))


def _kernel(source_name: str, name: str, dtype):
    suffix = "f32" if dtype == cupy.float32 else "f64"
    return _module(source_name).get_function(f"{name}_{suffix}")


def _grid(n_elements: int) -> tuple:
    return (max(1, min(_MAX_BLOCKS, (n_elements + _THREADS - 1) // _THREADS)),)


def scatter_add(dW, idx, rows):
    width = dW.shape[1]
    n = idx.shape[0] * width
    _kernel("embedding.cu", "scatter_add", dW.dtype)(
        _grid(n), (_THREADS,), (dW, idx, rows, cupy.int64(idx.shape[0]), cupy.int64(width)))


def embedding_gather(W, idx):
    out = cupy.empty((idx.shape[0], W.shape[1]), dtype=W.dtype)
    n = out.size
    _kernel("embedding.cu", "gather", W.dtype)(
        _grid(n), (_THREADS,), (W, idx, out, cupy.int64(idx.shape[0]), cupy.int64(W.shape[1])))
    return out


def id_range(ids):
    return int(ids.min()), int(ids.max())


def cooccurrence_matrix(tokens, vocab_size, window, harmonic, boundary_id):
    """The whole corpus on the device: pairs from a RawKernel, summed by CuPy's COO -> CSR."""
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
    _module("cooccurrence.cu").get_function("cooccurrence_pairs")(
        _grid(n * window), (_THREADS,),
        (tokens, sentence.astype(cupy.int64), cupy.int64(n), cupy.int64(0), cupy.int64(window),
         cupy.int32(1 if harmonic else 0), rows, cols, weights))
    matrix = sparse.coo_matrix((weights, (rows, cols)), shape=(vocab_size, vocab_size))
    matrix.sum_duplicates()
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    return matrix


def ppmi_values(indptr, indices, counts, row_sums, context_weights, total, eps):
    out = cupy.empty(counts.shape[0], cupy.float64)
    n_rows = indptr.shape[0] - 1
    _module("cooccurrence.cu").get_function("ppmi_values")(
        _grid(n_rows), (_THREADS,),
        (indptr, indices, counts, row_sums, context_weights, cupy.float64(total), cupy.float64(eps),
         cupy.int64(n_rows), out))
    return out
