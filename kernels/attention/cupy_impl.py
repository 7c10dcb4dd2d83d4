"""CuPy wrappers of the attention ops around attention.cu (inputs validated, see __init__.py).

Five small kernels compose every op: ``dots`` (scores, and da), ``softmax_rows``,
``softmax_backward_rows``, ``weigh_rows`` (weighted sum, dh) and ``weigh_queries`` (dhs).
"""
from pathlib import Path

import cupy

from .._cuda import THREADS, grid, typed_kernel

SOURCE = Path(__file__).with_name("attention.cu")
_i64 = cupy.int64


def _launch(name, dtype, n_threads, args):
    typed_kernel(SOURCE, name, dtype)(grid(n_threads), (THREADS,), args)


def _dots(X, Y, out):
    N, Q, H = X.shape
    T = Y.shape[1]
    _launch("dots", X.dtype, N * Q * T, (X, Y, out, _i64(N), _i64(Q), _i64(T), _i64(H)))


def _softmax_rows(s):
    N, Q, T = s.shape
    _launch("softmax_rows", s.dtype, N * Q, (s, _i64(N * Q), _i64(T)))


def _softmax_backward(a, da):
    N, Q, T = a.shape
    ds = cupy.empty_like(a)
    _launch("softmax_backward_rows", a.dtype, N * Q, (a, da, ds, _i64(N * Q), _i64(T)))
    return ds


def _weigh_rows(W, Y):
    """out[n, q] = sum_t W[n, q, t] Y[n, t]"""
    N, Q, T = W.shape
    H = Y.shape[2]
    out = cupy.empty((N, Q, H), dtype=Y.dtype)
    _launch("weigh_rows", Y.dtype, N * Q * H, (W, Y, out, _i64(N), _i64(Q), _i64(T), _i64(H)))
    return out


def _weigh_queries(W, X, out, accumulate):
    """out[n, t] (+)= sum_q W[n, q, t] X[n, q]"""
    N, Q, T = W.shape
    H = X.shape[2]
    _launch("weigh_queries", X.dtype, N * T * H,
            (W, X, out, _i64(N), _i64(Q), _i64(T), _i64(H), cupy.int32(1 if accumulate else 0)))


def attention_weights(hs, h):
    a = cupy.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    _dots(h, hs, a)
    _softmax_rows(a)
    return a


def attention_weights_backward(hs, h, a, da):
    ds = _softmax_backward(a, da)
    dhs = cupy.empty_like(hs)
    _weigh_queries(ds, h, dhs, False)
    return dhs, _weigh_rows(ds, hs)


def weighted_sum(hs, a):
    return _weigh_rows(a, hs)


def weighted_sum_backward(hs, a, dc):
    dhs = cupy.empty_like(hs)
    _weigh_queries(a, dc, dhs, False)
    da = cupy.empty_like(a)
    _dots(dc, hs, da)
    return dhs, da


def attention_context(hs, h):
    a = attention_weights(hs, h)
    return a, _weigh_rows(a, hs)


def attention_context_backward(hs, h, a, dc):
    da = cupy.empty_like(a)
    _dots(dc, hs, da)
    ds = _softmax_backward(a, da)
    dhs = cupy.empty_like(hs)
    _weigh_queries(a, dc, dhs, False)
    _weigh_queries(ds, h, dhs, True)
    return dhs, _weigh_rows(ds, hs)
