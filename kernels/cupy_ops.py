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
