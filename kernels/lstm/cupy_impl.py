"""CuPy wrappers of the LSTM step ops around lstm.cu (inputs validated, see __init__.py)."""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("lstm.cu")


def lstm_step_forward(A, c_prev, h_next, c_next, tanh_c):
    N, H = c_prev.shape
    if N * H == 0:
        return
    typed_kernel(SOURCE, "lstm_forward", A.dtype)(
        grid(N * H), (THREADS,), (A, c_prev, h_next, c_next, tanh_c, cupy.int64(N), cupy.int64(H)))


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    N, H = c_prev.shape
    if N * H == 0:
        return
    typed_kernel(SOURCE, "lstm_backward", gates.dtype)(
        grid(N * H), (THREADS,), (dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev,
                                  cupy.int64(N), cupy.int64(H)))
