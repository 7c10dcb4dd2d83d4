"""CuPy wrapper of sgd_update around sgd.cu: a grid-stride loop (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("sgd.cu")


def sgd_update(p, g, lr, grad_scale=1.0):
    scalar = cupy.float32 if p.dtype == cupy.float32 else cupy.float64
    typed_kernel(SOURCE, "sgd_update", p.dtype)(grid(p.size), (THREADS,),
                                                (p, g, scalar(lr), scalar(grad_scale), cupy.int64(p.size)))
