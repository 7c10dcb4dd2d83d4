"""CuPy wrapper of round_to_format around rounding.cu (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("rounding.cu")


def round_to_format(x, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    out = cupy.empty_like(x)
    n = x.size
    if n:
        typed_kernel(SOURCE, "round_to_format", x.dtype)(
            grid(n), (THREADS,), (x, out, cupy.int64(n), cupy.int32(man_bits), cupy.int32(emin),
                                  cupy.float64(max_finite), cupy.int32(subnormals), cupy.int32(overflow),
                                  cupy.int32(stochastic), cupy.uint64(seed)))
    return out
