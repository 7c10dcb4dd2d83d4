"""NumPy reference of the LSTM step ops: the book's TimeLSTM arithmetic, one step at a time.

Inputs arrive validated (see __init__.py): C-contiguous, one float dtype, shapes agree, outputs
distinct from inputs. Gate blocks of ``A`` are the book's [f, g, i, o]. float16 / bfloat16
storage: every input converted up to float32, the float32 step, every output rounded once.
"""
import numpy as np

from ..validate import HALF_DTYPES


def _in_float32(step, inputs, outputs):
    """Run the float32 ``step`` on float32 copies of 16-bit arrays; round each output once.
    ``inputs`` are read only; ``outputs`` are written (an array in both is listed as output)."""
    wide_out = [out.astype(np.float32) for out in outputs]
    step(*[x.astype(np.float32) for x in inputs], *wide_out)
    for out, value in zip(outputs, wide_out):
        out[...] = value.astype(out.dtype)


def _sigmoid(a):
    # sigmoid(a) = (1 + tanh(a / 2)) / 2: the same function as 1 / (1 + exp(-a)), but without
    # the overflow of exp(-a) for very negative a.
    return 0.5 * np.tanh(0.5 * a) + 0.5


def lstm_step_forward(A, c_prev, h_next, c_next, tanh_c):
    if A.dtype in HALF_DTYPES:  # A is written in place: passed first, as an output
        _in_float32(lambda *a: lstm_step_forward(a[1], a[0], *a[2:]), (c_prev,), (A, h_next, c_next, tanh_c))
        return
    H = c_prev.shape[1]
    f = _sigmoid(A[:, :H])
    g = np.tanh(A[:, H:2 * H])
    i = _sigmoid(A[:, 2 * H:3 * H])
    o = _sigmoid(A[:, 3 * H:])
    c_next[...] = f * c_prev + g * i
    tanh_c[...] = np.tanh(c_next)
    h_next[...] = o * tanh_c
    A[:, :H], A[:, H:2 * H], A[:, 2 * H:3 * H], A[:, 3 * H:] = f, g, i, o


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    if gates.dtype in HALF_DTYPES:
        _in_float32(lstm_step_backward, (dh_next, dc_next, gates, c_prev, tanh_c), (dA, dc_prev))
        return
    H = c_prev.shape[1]
    f, g, i, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    ds = dc_next + (dh_next * o) * (1 - tanh_c ** 2)
    dc_prev[...] = ds * f
    dA[:, :H] = ds * c_prev * f * (1 - f)
    dA[:, H:2 * H] = ds * i * (1 - g ** 2)
    dA[:, 2 * H:3 * H] = ds * g * i * (1 - i)
    dA[:, 3 * H:] = dh_next * tanh_c * o * (1 - o)
