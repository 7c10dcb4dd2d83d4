"""What every CuPy wrapper shares: the device probe, compiled .cu modules and launch sizes.

CuPy is imported lazily, only when the cupy backend or a GPU array is first used; the dtype map
works without it (so it is tested on machines without a GPU).
"""
import functools
from pathlib import Path

import numpy as np

THREADS = 256
_MAX_BLOCKS = 65535
# The CUDA kernels come in one instantiation per float type, named <kernel>_<suffix>; any other
# dtype (float16 is coming) is refused here rather than silently sent to the float64 kernel.
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def kernel_name(name: str, dtype) -> str:
    """``<name>_f32`` or ``<name>_f64``; TypeError for any other dtype."""
    try:
        return f"{name}_{_SUFFIX[np.dtype(dtype)]}"
    except KeyError:
        raise TypeError(f"no CUDA kernel {name} for dtype {np.dtype(dtype)}; "
                        f"available: {', '.join(str(d) for d in _SUFFIX)}") from None


def unavailable_reason():
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); pip install 'fastnlp[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError has no stable import path across versions
        return f"CuPy is installed but no CUDA device can be used ({exc})"
    return None if count > 0 else "CuPy is installed but there is no CUDA device"


@functools.lru_cache(maxsize=None)
def module(source: Path):
    """The compiled RawModule of one .cu file (compiled once per process, cached by CuPy on disk)."""
    import cupy

    return cupy.RawModule(code=Path(source).read_text(), options=("-std=c++14",))


def typed_kernel(source: Path, name: str, dtype):
    """``<name>_f32`` or ``<name>_f64`` from ``source``; TypeError for any other dtype."""
    return module(source).get_function(kernel_name(name, dtype))


def grid(n_elements: int) -> tuple:
    """Blocks for a grid-stride loop over ``n_elements``."""
    return (max(1, min(_MAX_BLOCKS, (n_elements + THREADS - 1) // THREADS)),)


def synchronize():
    import cupy

    cupy.cuda.Device().synchronize()
