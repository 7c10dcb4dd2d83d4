"""CuPy wrapper of dropout_forward around dropout.cu: a grid-stride loop (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("dropout.cu")


def dropout_forward(x, out, mask, keep_below, scale, seed, first):
    scalar = cupy.float32 if x.dtype == cupy.float32 else cupy.float64
    typed_kernel(SOURCE, "dropout_forward", x.dtype)(
        grid(x.size), (THREADS,),
        (x, out, mask, cupy.uint64(keep_below), scalar(scale), cupy.uint64(seed), cupy.uint64(first),
         cupy.int64(x.size)))
