"""Numba kernels of the LSTM step ops (inputs validated, see __init__.py).

Without Intel's SVML, LLVM calls scalar ``tanhf``/``expf`` from libm and cannot vectorise a
loop around them. float32 therefore uses ``_tanh32``: Eigen's clamped rational approximation
of tanh (a few ulp, plain arithmetic, so the loops vectorise); float64 keeps ``math.tanh``.
The loops are split so that each one reads and writes few arrays: LLVM gives up on vectorising
a loop whose pointers need too many run-time overlap checks. ``error_model="numpy"`` removes the
division-by-zero branch that would also stop vectorisation.
"""
import math

import numba
import numpy as np

from .._numba_half import round_into, to_float32

_JIT = dict(cache=True, nogil=True, error_model="numpy")
_CLAMP = np.float32(7.90531110763549805)  # tanh rounds to +-1 in float32 beyond this
_P = tuple(np.float32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                   5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                   4.89352455891786e-03))
_Q = tuple(np.float32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                   4.89352518554385e-03))


@numba.njit(inline="always", **_JIT)
def _tanh32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = _P[0]
    p = p * x2 + _P[1]
    p = p * x2 + _P[2]
    p = p * x2 + _P[3]
    p = p * x2 + _P[4]
    p = p * x2 + _P[5]
    p = p * x2 + _P[6]
    q = _Q[0]
    q = q * x2 + _Q[1]
    q = q * x2 + _Q[2]
    q = q * x2 + _Q[3]
    return p * x / q


@numba.njit(inline="always", **_JIT)
def _tanh64(x):
    return math.tanh(x)


def _make_forward(tanh):
    @numba.njit(**_JIT)
    def forward(A, c_prev, h_next, c_next, tanh_c):
        N, H = c_prev.shape
        half = A.dtype.type(0.5)
        for n in range(N):
            a = A[n]
            # Each gate as its own slice, each loop over range(H): LLVM does not vectorise a
            # loop that starts at an offset (range(H, 2 * H)).
            f, g, i, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
            for j in range(H):  # sigmoid(x) = (1 + tanh(x / 2)) / 2
                f[j] = half * tanh(half * f[j]) + half
            for j in range(H):
                g[j] = tanh(g[j])
            for j in range(H):
                i[j] = half * tanh(half * i[j]) + half
            for j in range(H):
                o[j] = half * tanh(half * o[j]) + half
            cp, cn, tc, hn = c_prev[n], c_next[n], tanh_c[n], h_next[n]
            for j in range(H):
                cn[j] = f[j] * cp[j] + g[j] * i[j]
            for j in range(H):
                tc[j] = tanh(cn[j])
            for j in range(H):
                hn[j] = o[j] * tc[j]

    return forward


_forward32 = _make_forward(_tanh32)
_forward64 = _make_forward(_tanh64)


@numba.njit(**_JIT)
def _backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    N, H = c_prev.shape
    one = gates.dtype.type(1.0)
    for n in range(N):
        gt, d = gates[n], dA[n]
        f, g, i, o = gt[:H], gt[H:2 * H], gt[2 * H:3 * H], gt[3 * H:]
        df, dg, di, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        dh, dc, cp, tc, ds = dh_next[n], dc_next[n], c_prev[n], tanh_c[n], dc_prev[n]
        # One output per loop (ds lives in dc_prev until the last loop scales it by f), so
        # each loop needs few overlap checks and vectorises.
        for j in range(H):
            ds[j] = dc[j] + dh[j] * o[j] * (one - tc[j] * tc[j])
        for j in range(H):
            df[j] = ds[j] * cp[j] * f[j] * (one - f[j])
        for j in range(H):
            dg[j] = ds[j] * i[j] * (one - g[j] * g[j])
        for j in range(H):
            di[j] = ds[j] * g[j] * i[j] * (one - i[j])
        for j in range(H):
            do[j] = dh[j] * tc[j] * o[j] * (one - o[j])
        for j in range(H):
            ds[j] *= f[j]


def lstm_step_forward(A, c_prev, h_next, c_next, tanh_c):
    if A.dtype.itemsize == 2:  # float16 / bfloat16 (a cheaper test than dtype equality)
        _in_float32(_forward32, (A, c_prev, h_next, c_next, tanh_c), (0, 2, 3, 4))
        return
    (_forward32 if A.dtype == np.float32 else _forward64)(A, c_prev, h_next, c_next, tanh_c)


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    if gates.dtype.itemsize == 2:
        _in_float32(_backward, (dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev), (5, 6))
        return
    _backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev)


def _in_float32(kernel, args, written):
    """float16 / bfloat16 storage: the float32 kernel on float32 copies (the inputs converted up
    once, by the vectorised conversions of _numba_half), then each argument at a position in
    ``written`` rounded once back into its 16-bit array. A step's arrays are small (N x 4H)."""
    wide = [to_float32(x) for x in args]
    kernel(*wide)
    for k in written:
        round_into(wide[k], args[k])
