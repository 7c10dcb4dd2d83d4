"""Numba kernels of the attention ops (inputs validated, see __init__.py).

One batch item at a time: hs[n] (T x H, 29 KB at the date task's size) stays in L1 while every
query of that item is served, so the fused ops read the encoder states from memory once per
pass instead of once per product. Dot products over H are reductions: ``fastmath`` with
``reassoc`` (and ``contract`` for FMA) lets LLVM split them into vector partial sums, a
different summation order from BLAS, so results are held to the op's tolerance. No flag that
changes NaN/inf handling is set.

float16 / bfloat16 arrays reach the loops as uint16 views (Numba has neither type on the CPU):
each batch item's inputs are widened into float32 scratch (exactly), the float32 loops below run
on it unchanged, and each output is rounded once to the storage format as the item is done (the
weights between the two halves of a fused op stay float32). The conversions are
kernels/_numba_half.py's, which LLVM vectorises (F16C's instructions for float16): NumPy's and
ml_dtypes' bits. (kernels/_numba_common.py's element-wise ones made the float16 ops 3-6x slower
than float32 at the date task's size.)
"""
import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._numba_half import bits_to_f32, f32_to_bits, f32_to_half, half_to_f32
from ..memory import aligned_empty_like  # dhs, the one large output: rows streamed by vector stores
from ..validate import BFLOAT16, HALF_DTYPES

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})


@numba.njit(inline="always", **_JIT)
def _dot(x, y):
    s = x.dtype.type(0.0)
    for k in range(x.shape[0]):
        s += x[k] * y[k]
    return s


@numba.njit(inline="always", **_JIT)
def _axpy(out, w, y):
    """out += w * y"""
    for k in range(out.shape[0]):
        out[k] += w * y[k]


@numba.njit(inline="always", **_JIT)
def _dots(X, hs_n, out):
    """out[q, t] = X[q] . hs_n[t]; four dot products at a time: four queries per pass over hs_n[t]
    (one load serves four FMAs), then each query left over against four rows."""
    Q, T, H = X.shape[0], hs_n.shape[0], hs_n.shape[1]
    q = 0
    while q + 4 <= Q:
        x0, x1, x2, x3 = X[q], X[q + 1], X[q + 2], X[q + 3]
        for t in range(T):
            y = hs_n[t]
            s0 = s1 = s2 = s3 = y.dtype.type(0.0)
            for k in range(H):
                yk = y[k]
                s0 += x0[k] * yk
                s1 += x1[k] * yk
                s2 += x2[k] * yk
                s3 += x3[k] * yk
            out[q, t], out[q + 1, t], out[q + 2, t], out[q + 3, t] = s0, s1, s2, s3
        q += 4
    while q < Q:  # the queries left over (a decoder step has one): one query against four rows
        x = X[q]
        t = 0
        while t + 4 <= T:
            y0, y1, y2, y3 = hs_n[t], hs_n[t + 1], hs_n[t + 2], hs_n[t + 3]
            s0 = s1 = s2 = s3 = x.dtype.type(0.0)
            for k in range(H):
                xk = x[k]
                s0 += xk * y0[k]
                s1 += xk * y1[k]
                s2 += xk * y2[k]
                s3 += xk * y3[k]
            out[q, t], out[q, t + 1], out[q, t + 2], out[q, t + 3] = s0, s1, s2, s3
            t += 4
        while t < T:
            out[q, t] = _dot(x, hs_n[t])
            t += 1
        q += 1


@numba.njit(inline="always", **_JIT)
def _expf(x):
    """exp of a float32 as attention_ops.h's att_expf computes it (the same steps and constants,
    within 1.4 ulp of exp over the normal range), in arithmetic and bit casts that LLVM vectorises
    across the softmax loop, where math.exp is one libm call per element: the softmax of the date
    task's 128 rows of 29 scores takes 11 us this way against 33."""
    hi, lo = np.float32(88.72283), np.float32(-103.97208)
    xc = lo if x < lo else (hi if x > hi else x)  # NaN compares false both times: kept
    kf = xc * np.float32(1.44269504088896341) + np.float32(12582912.0)  # round(x / ln2) in low bits
    kbits = f32_to_bits(kf)
    kf = kf - np.float32(12582912.0)
    r = xc - kf * np.float32(0.693359375)
    r = r - kf * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    k = np.int32(kbits - np.uint32(0x4B400000))
    k1 = k // np.int32(2) if k >= 0 else -((-k) // np.int32(2))  # C's division, toward zero
    k2 = k - k1
    s1 = bits_to_f32(np.uint32((k1 + np.int32(127)) << np.int32(23)))
    s2 = bits_to_f32(np.uint32((k2 + np.int32(127)) << np.int32(23)))
    y = p * s1 * s2
    return np.float32(0.0) if x < lo else (np.float32(np.inf) if x > hi else y)


def _exp(x):
    return math.exp(x)


@overload(_exp, inline="always")
def _exp_for(x):
    """math.exp, or _expf for float32 (Numba picks by the argument's type when it compiles)."""
    if x == types.float32:
        return lambda x: _expf(x)
    return lambda x: math.exp(x)


@numba.njit(inline="always", **_JIT)
def _softmax_rows(s):
    """Each row of s replaced by its softmax (shifted by the row maximum)."""
    for q in range(s.shape[0]):
        row = s[q]
        top = row[0]  # T >= 1; starting from -np.inf (a float64) made every exp a float64 one
        for t in range(1, row.shape[0]):
            top = max(top, row[t])
        total = row.dtype.type(0.0)
        for t in range(row.shape[0]):
            e = _exp(row[t] - top)
            row[t] = e
            total += e
        for t in range(row.shape[0]):
            row[t] /= total


@numba.njit(inline="always", **_JIT)
def _combine(w, rows, out, accumulate):
    """out (+)= sum_j w[j] rows[j], four rows per pass over out; ``w`` may be strided."""
    J, H = rows.shape
    j = 0
    if not accumulate:
        if J == 0:
            out[:] = 0
            return
        y, w0 = rows[0], w[0]
        for k in range(H):
            out[k] = w0 * y[k]
        j = 1
    while j + 4 <= J:
        y0, y1, y2, y3 = rows[j], rows[j + 1], rows[j + 2], rows[j + 3]
        w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        for k in range(H):
            out[k] += w0 * y0[k] + w1 * y1[k] + w2 * y2[k] + w3 * y3[k]
        j += 4
    while j < J:
        _axpy(out, w[j], rows[j])
        j += 1


@numba.njit(inline="always", **_JIT)
def _combine_two(w1, rows1, w2, rows2, out):
    """out = sum_j w1[j] rows1[j] + w2[j] rows2[j] (J >= 1): the gradient into one row of hs
    from both ops, written in one pass (two pairs of rows per pass over out)."""
    J, H = rows1.shape
    y1, y2, a1, a2 = rows1[0], rows2[0], w1[0], w2[0]
    for k in range(H):
        out[k] = a1 * y1[k] + a2 * y2[k]
    j = 1
    while j + 2 <= J:
        y1, y2, y3, y4 = rows1[j], rows2[j], rows1[j + 1], rows2[j + 1]
        a1, a2, a3, a4 = w1[j], w2[j], w1[j + 1], w2[j + 1]
        for k in range(H):
            out[k] += a1 * y1[k] + a2 * y2[k] + a3 * y3[k] + a4 * y4[k]
        j += 2
    if j < J:
        y1, y2, a1, a2 = rows1[j], rows2[j], w1[j], w2[j]
        for k in range(H):
            out[k] += a1 * y1[k] + a2 * y2[k]


@numba.njit(inline="always", **_JIT)
def _context(row, hs_n, out):
    """out = sum_t row[t] hs_n[t]"""
    _combine(row, hs_n, out, False)


@numba.njit(inline="always", **_JIT)
def _softmax_backward(a_row, da_row, ds_row):
    """ds = a * (da - sum(a * da)), the gradient through one softmax row."""
    inner = a_row.dtype.type(0.0)
    for t in range(a_row.shape[0]):
        inner += a_row[t] * da_row[t]
    for t in range(a_row.shape[0]):
        ds_row[t] = a_row[t] * (da_row[t] - inner)


@numba.njit(**_JIT)
def _attention_weights(hs, h, a):
    for n in range(hs.shape[0]):
        _dots(h[n], hs[n], a[n])
        _softmax_rows(a[n])


@numba.njit(**_JIT)
def _weighted_sum(hs, a, c):
    for n in range(hs.shape[0]):
        for q in range(a.shape[1]):
            _context(a[n, q], hs[n], c[n, q])


@numba.njit(**_JIT)
def _attention_context(hs, h, a, c, reverse):
    N = hs.shape[0]
    for i in range(N):
        n = N - 1 - i if reverse else i
        _dots(h[n], hs[n], a[n])
        _softmax_rows(a[n])
        for q in range(h.shape[1]):
            _context(a[n, q], hs[n], c[n, q])


@numba.njit(**_JIT)
def _attention_weights_backward(hs, h, a, da, dhs, dh):
    Q, T = a.shape[1], a.shape[2]
    ds = np.empty((Q, T), dtype=hs.dtype)
    for n in range(hs.shape[0]):
        for q in range(Q):
            _softmax_backward(a[n, q], da[n, q], ds[q])
            _context(ds[q], hs[n], dh[n, q])
        for t in range(T):
            _combine(ds[:, t], h[n], dhs[n, t], False)


@numba.njit(**_JIT)
def _weighted_sum_backward(hs, a, dc, dhs, da):
    T = a.shape[2]
    for n in range(hs.shape[0]):
        _dots(dc[n], hs[n], da[n])
        for t in range(T):
            _combine(a[n, :, t], dc[n], dhs[n, t], False)


@numba.njit(**_JIT)
def _attention_context_backward(hs, h, a, dc, dhs, dh, reverse):
    Q, T = a.shape[1], a.shape[2]
    da = np.empty((Q, T), dtype=hs.dtype)
    ds = np.empty((Q, T), dtype=hs.dtype)
    N = hs.shape[0]
    for i in range(N):
        n = N - 1 - i if reverse else i
        _dots(dc[n], hs[n], da)
        for q in range(Q):
            _softmax_backward(a[n, q], da[q], ds[q])
            _context(ds[q], hs[n], dh[n, q])
        for t in range(T):  # both paths into hs, each row of dhs written once
            if Q:
                _combine_two(a[n, :, t], dc[n], ds[:, t], h[n], dhs[n, t])
            else:
                dhs[n, t] = 0


# ----- float16 / bfloat16 storage ----------------------------------------------------------------
# Arrays as (N, rows * columns) uint16 views, one row per batch item; scratch as float32 (T, H) etc.

@numba.njit(inline="always", **_JIT)
def _widen(bits, out, bf16):
    """out (float32, any shape, C-contiguous) = the values of the 16-bit patterns ``bits`` (flat)."""
    flat = out.reshape(-1)
    for j in range(bits.shape[0]):
        flat[j] = half_to_f32(bits[j], bf16)


@numba.njit(inline="always", **_JIT)
def _narrow(values, bits, bf16):
    """bits (flat uint16) = ``values`` (float32, C-contiguous) rounded once to the storage format."""
    flat = values.reshape(-1)
    for j in range(bits.shape[0]):
        bits[j] = f32_to_half(flat[j], bf16)


@numba.njit(**_JIT)
def _attention_weights_half(hs, h, a, Q, T, H, bf16):
    hs32, h32, a32 = (np.empty((T, H), np.float32), np.empty((Q, H), np.float32),
                      np.empty((Q, T), np.float32))
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(h[n], h32, bf16)
        _dots(h32, hs32, a32)
        _softmax_rows(a32)
        _narrow(a32, a[n], bf16)


@numba.njit(**_JIT)
def _weighted_sum_half(hs, a, c, Q, T, H, bf16):
    hs32, a32, c32 = (np.empty((T, H), np.float32), np.empty((Q, T), np.float32),
                      np.empty((Q, H), np.float32))
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(a[n], a32, bf16)
        for q in range(Q):
            _context(a32[q], hs32, c32[q])
        _narrow(c32, c[n], bf16)


@numba.njit(**_JIT)
def _attention_context_half(hs, h, a, c, Q, T, H, bf16):
    hs32, h32 = np.empty((T, H), np.float32), np.empty((Q, H), np.float32)
    a32, c32 = np.empty((Q, T), np.float32), np.empty((Q, H), np.float32)
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(h[n], h32, bf16)
        _dots(h32, hs32, a32)
        _softmax_rows(a32)
        for q in range(Q):
            _context(a32[q], hs32, c32[q])  # weighed by the float32 weights
        _narrow(a32, a[n], bf16)
        _narrow(c32, c[n], bf16)


@numba.njit(**_JIT)
def _attention_weights_backward_half(hs, h, a, da, dhs, dh, Q, T, H, bf16):
    hs32, dhs32 = np.empty((T, H), np.float32), np.empty((T, H), np.float32)
    h32, dh32 = np.empty((Q, H), np.float32), np.empty((Q, H), np.float32)
    a32, da32, ds = np.empty((Q, T), np.float32), np.empty((Q, T), np.float32), np.empty((Q, T), np.float32)
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(h[n], h32, bf16)
        _widen(a[n], a32, bf16)
        _widen(da[n], da32, bf16)
        for q in range(Q):
            _softmax_backward(a32[q], da32[q], ds[q])
            _context(ds[q], hs32, dh32[q])
        for t in range(T):
            _combine(ds[:, t], h32, dhs32[t], False)
        _narrow(dhs32, dhs[n], bf16)
        _narrow(dh32, dh[n], bf16)


@numba.njit(**_JIT)
def _weighted_sum_backward_half(hs, a, dc, dhs, da, Q, T, H, bf16):
    hs32, dhs32 = np.empty((T, H), np.float32), np.empty((T, H), np.float32)
    a32, da32, dc32 = np.empty((Q, T), np.float32), np.empty((Q, T), np.float32), np.empty((Q, H), np.float32)
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(a[n], a32, bf16)
        _widen(dc[n], dc32, bf16)
        _dots(dc32, hs32, da32)
        for t in range(T):
            _combine(a32[:, t], dc32, dhs32[t], False)
        _narrow(dhs32, dhs[n], bf16)
        _narrow(da32, da[n], bf16)


@numba.njit(**_JIT)
def _attention_context_backward_half(hs, h, a, dc, dhs, dh, Q, T, H, bf16):
    hs32, dhs32 = np.empty((T, H), np.float32), np.empty((T, H), np.float32)
    h32, dh32, dc32 = np.empty((Q, H), np.float32), np.empty((Q, H), np.float32), np.empty((Q, H), np.float32)
    a32, da32, ds = np.empty((Q, T), np.float32), np.empty((Q, T), np.float32), np.empty((Q, T), np.float32)
    for n in range(hs.shape[0]):
        _widen(hs[n], hs32, bf16)
        _widen(h[n], h32, bf16)
        _widen(a[n], a32, bf16)
        _widen(dc[n], dc32, bf16)
        _dots(dc32, hs32, da32)  # da: float32, never stored
        for q in range(Q):
            _softmax_backward(a32[q], da32[q], ds[q])
            _context(ds[q], hs32, dh32[q])
        for t in range(T):
            if Q:
                _combine_two(a32[:, t], dc32, ds[:, t], h32, dhs32[t])
            else:
                dhs32[t] = 0
        _narrow(dhs32, dhs[n], bf16)
        _narrow(dh32, dh[n], bf16)


def _bits(x):
    """A float16 / bfloat16 array as (N, rest) uint16: one row of bit patterns per batch item."""
    return x.view(np.uint16).reshape(x.shape[0], math.prod(x.shape[1:]))


def _half_call(kernel, arrays, Q, T, H):
    """``kernel`` on the uint16 rows of ``arrays`` (inputs, then the new outputs)."""
    kernel(*(_bits(x) for x in arrays), Q, T, H, arrays[0].dtype == BFLOAT16)


# ----- the backend functions (the reference's signatures) ------------------------------------

# The fused pair walks the batch items in the direction opposite to its previous call's, so each
# call starts on the items the one before touched last, still in L2 (at the date task's size hs
# is 3.8 MB, about twice an L2): a forward and its backward, or two decoder steps' backwards, then
# read that half of hs from L2 instead of L3 or memory (attention_ops.h does the same). Every item
# is computed alike either way, so results do not depend on it; called with the GIL held.
_walk = [False]


def _next_walk():
    _walk[0] = not _walk[0]
    return _walk[0]


def attention_weights(hs, h):
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    if hs.dtype in HALF_DTYPES:
        _half_call(_attention_weights_half, (hs, h, a), h.shape[1], hs.shape[1], hs.shape[2])
        return a
    _attention_weights(hs, h, a)
    return a


def attention_weights_backward(hs, h, a, da):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    if hs.dtype in HALF_DTYPES:
        _half_call(_attention_weights_backward_half, (hs, h, a, da, dhs, dh), h.shape[1], hs.shape[1], hs.shape[2])
        return dhs, dh
    _attention_weights_backward(hs, h, a, da, dhs, dh)
    return dhs, dh


def weighted_sum(hs, a):
    c = np.empty((hs.shape[0], a.shape[1], hs.shape[2]), dtype=hs.dtype)
    if hs.dtype in HALF_DTYPES:
        _half_call(_weighted_sum_half, (hs, a, c), a.shape[1], hs.shape[1], hs.shape[2])
        return c
    _weighted_sum(hs, a, c)
    return c


def weighted_sum_backward(hs, a, dc):
    dhs, da = aligned_empty_like(hs), np.empty_like(a)
    if hs.dtype in HALF_DTYPES:
        _half_call(_weighted_sum_backward_half, (hs, a, dc, dhs, da), a.shape[1], hs.shape[1], hs.shape[2])
        return dhs, da
    _weighted_sum_backward(hs, a, dc, dhs, da)
    return dhs, da


def attention_context(hs, h):
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    c = np.empty((hs.shape[0], h.shape[1], hs.shape[2]), dtype=hs.dtype)
    if hs.dtype in HALF_DTYPES:
        _half_call(_attention_context_half, (hs, h, a, c), h.shape[1], hs.shape[1], hs.shape[2])
        return a, c
    _attention_context(hs, h, a, c, _next_walk())
    return a, c


def attention_context_backward(hs, h, a, dc):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    if hs.dtype in HALF_DTYPES:
        _half_call(_attention_context_backward_half, (hs, h, a, dc, dhs, dh), h.shape[1], hs.shape[1], hs.shape[2])
        return dhs, dh
    _attention_context_backward(hs, h, a, dc, dhs, dh, _next_walk())
    return dhs, dh
