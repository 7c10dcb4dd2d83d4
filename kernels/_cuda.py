"""What every CuPy wrapper shares: the device probe, compiled .cu modules and launch sizes.

CuPy is imported lazily, only when the cupy backend or a GPU array is first used; the dtype map
works without it (so it is tested on machines without a GPU).
"""
import functools
import re
from pathlib import Path

import numpy as np

THREADS = 256
_MAX_BLOCKS = 65535
# The CUDA kernels come in one instantiation per float type, named <kernel>_<suffix>; any other
# dtype is refused here rather than silently sent to the float64 kernel.
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


# The headers shared with the C kernels (kernels/include/fastnlp/, e.g. rng.h).
INCLUDE_DIR = Path(__file__).resolve().with_name("include")
# A .cu file names a shared header relative to itself ("../include/fastnlp/rng.h"), so a host
# compiler finds it too (tests/test_word2vec.py compiles word2vec.cu with g++).
_SHARED_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"(?:\.\./include/)?(fastnlp/[\w.]+)".*$', re.MULTILINE)


def source_text(source: Path) -> str:
    """The text of a .cu file with each ``#include "../include/fastnlp/<name>"`` replaced by that
    shared header's text. Pasted rather than passed to NVRTC as an include path: CuPy's on-disk
    cache is keyed by the source text, so an edited header must change that text to be recompiled."""
    seen = set()

    def expand(match):
        name = match.group(1)
        if name in seen:
            return ""  # each header once (they are include-guarded anyway)
        seen.add(name)
        return _SHARED_INCLUDE.sub(expand, (INCLUDE_DIR / name).read_text())

    return _SHARED_INCLUDE.sub(expand, Path(source).read_text())


@functools.lru_cache(maxsize=None)
def module(source: Path):
    """The compiled RawModule of one .cu file (compiled once per process, cached by CuPy on disk)."""
    import cupy

    return cupy.RawModule(code=source_text(source), options=("-std=c++14",))


def typed_kernel(source: Path, name: str, dtype):
    """``<name>_f32`` or ``<name>_f64`` from ``source``; TypeError for any other dtype."""
    return module(source).get_function(kernel_name(name, dtype))


def grid(n_elements: int) -> tuple:
    """Blocks for a grid-stride loop over ``n_elements``."""
    return (max(1, min(_MAX_BLOCKS, (n_elements + THREADS - 1) // THREADS)),)


def synchronize():
    import cupy

    cupy.cuda.Device().synchronize()
