"""CuPy wrappers of the LSTM step ops around lstm.cu and, for float16 storage, lstm_half.cu
(inputs validated, see __init__.py).

The float16 kernels are checked without a GPU by the CUDA emulation (tests/test_cuda_emulation.py).
bfloat16: CuPy arrays cannot hold ml_dtypes.bfloat16, so the registry never sends one here
(OpSpec.lacks_dtype); a caller holding bfloat16 bits in uint16 arrays runs lstm_half.cu's
__nv_bfloat16 kernels with ``lstm_step_forward_bits(..., "bf16")`` / ``lstm_step_backward_bits``.
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import THREADS, grid, module, typed_kernel

SOURCE = Path(__file__).with_name("lstm.cu")
HALF_SOURCE = Path(__file__).with_name("lstm_half.cu")
_HALF = {np.dtype(np.float16): "f16"}


def _kernel(name, dtype, storage):
    storage = storage or _HALF.get(np.dtype(dtype))
    if storage is not None:
        return module(HALF_SOURCE).get_function(f"{name}_{storage}")
    return typed_kernel(SOURCE, name, dtype)


def lstm_step_forward(A, c_prev, h_next, c_next, tanh_c):
    lstm_step_forward_bits(A, c_prev, h_next, c_next, tanh_c, None)


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    lstm_step_backward_bits(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, None)


def lstm_step_forward_bits(A, c_prev, h_next, c_next, tanh_c, storage):
    """The forward on 16-bit storage ``storage`` ('f16' or 'bf16': the arrays hold its bits), or
    on the arrays' own dtype when None."""
    N, H = c_prev.shape
    if N * H == 0:
        return
    _kernel("lstm_forward", A.dtype, storage)(
        grid(N * H), (THREADS,), (A, c_prev, h_next, c_next, tanh_c, cupy.int64(N), cupy.int64(H)))


def lstm_step_backward_bits(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, storage):
    """The backward on 16-bit storage ``storage`` (as lstm_step_forward_bits)."""
    N, H = c_prev.shape
    if N * H == 0:
        return
    _kernel("lstm_backward", gates.dtype, storage)(
        grid(N * H), (THREADS,), (dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev,
                                  cupy.int64(N), cupy.int64(H)))
