"""CuPy wrappers of the attention ops around attention.cu (inputs validated, see __init__.py)
and, for float16 / bfloat16 storage, attention_half.cu.

Five small kernels compose every op: ``dots`` (scores, and da), ``softmax_rows``,
``softmax_backward_rows``, ``weigh_rows`` (weighted sum, dh) and ``weigh_queries`` (dhs). The
16-bit versions keep what passes between them in float32 (scores, weights, ds) and round each
output once.

The float16 path is UNTESTED ON A DEVICE: checked by nvcc's PTX compile and the CPU emulation
(tests/cuda_emulation). bfloat16: CuPy arrays cannot hold ml_dtypes.bfloat16, so the registry
never sends one here (OpSpec.lacks_dtype); a caller holding bfloat16 bits in uint16 arrays runs
the kernels with ``run_bits(op, "bf16", *arrays)``.
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import THREADS, grid, module, typed_kernel

SOURCE = Path(__file__).with_name("attention.cu")
HALF_SOURCE = Path(__file__).with_name("attention_half.cu")
_HALF = {np.dtype(np.float16): "f16"}
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
    if hs.dtype in _HALF:
        return _HALF_OPS["attention_weights"](hs, h, _HALF[hs.dtype])
    a = cupy.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    _dots(h, hs, a)
    _softmax_rows(a)
    return a


def attention_weights_backward(hs, h, a, da):
    if hs.dtype in _HALF:
        return _HALF_OPS["attention_weights_backward"](hs, h, a, da, _HALF[hs.dtype])
    ds = _softmax_backward(a, da)
    dhs = cupy.empty_like(hs)
    _weigh_queries(ds, h, dhs, False)
    return dhs, _weigh_rows(ds, hs)


def weighted_sum(hs, a):
    if hs.dtype in _HALF:
        return _HALF_OPS["weighted_sum"](hs, a, _HALF[hs.dtype])
    return _weigh_rows(a, hs)


def weighted_sum_backward(hs, a, dc):
    if hs.dtype in _HALF:
        return _HALF_OPS["weighted_sum_backward"](hs, a, dc, _HALF[hs.dtype])
    dhs = cupy.empty_like(hs)
    _weigh_queries(a, dc, dhs, False)
    da = cupy.empty_like(a)
    _dots(dc, hs, da)
    return dhs, da


def attention_context(hs, h):
    if hs.dtype in _HALF:
        return _HALF_OPS["attention_context"](hs, h, _HALF[hs.dtype])
    a = attention_weights(hs, h)
    return a, _weigh_rows(a, hs)


def attention_context_backward(hs, h, a, dc):
    if hs.dtype in _HALF:
        return _HALF_OPS["attention_context_backward"](hs, h, a, dc, _HALF[hs.dtype])
    da = cupy.empty_like(a)
    _dots(dc, hs, da)
    ds = _softmax_backward(a, da)
    dhs = cupy.empty_like(hs)
    _weigh_queries(a, dc, dhs, False)
    _weigh_queries(ds, h, dhs, True)
    return dhs, _weigh_rows(ds, hs)


# ----- float16 / bfloat16 storage (attention_half.cu): ``fmt`` is "f16" or "bf16" ---------------

def _half(name, fmt, n_threads, args):
    module(HALF_SOURCE).get_function(f"{name}_{fmt}")(grid(n_threads), (THREADS,), args)


def _scores(X, Y, fmt, stored=False):
    """X[n, q] . Y[n, t] for every (n, q, t): float32, or rounded to X's storage when ``stored``."""
    N, Q, H = X.shape
    T = Y.shape[1]
    out = cupy.empty((N, Q, T), dtype=X.dtype if stored else cupy.float32)
    _half("dots" if stored else "scores", fmt, N * Q * T, (X, Y, out, _i64(N), _i64(Q), _i64(T), _i64(H)))
    return out


def _half_weights(hs, h, fmt):
    """(float32 weights, the same rounded to the storage)."""
    s = _scores(h, hs, fmt)
    a = cupy.empty(s.shape, dtype=hs.dtype)
    N, Q, T = s.shape
    _half("softmax_rows", fmt, N * Q, (s, a, _i64(N * Q), _i64(T)))
    return s, a


def _half_softmax_backward(a, da, fmt):
    """ds in float32; ``da`` float32 (an intermediate) or in the storage (an input)."""
    N, Q, T = a.shape
    ds = cupy.empty((N, Q, T), dtype=cupy.float32)
    name = "softmax_backward_rows_da32" if da.dtype == cupy.float32 else "softmax_backward_rows"
    _half(name, fmt, N * Q, (a, da, ds, _i64(N * Q), _i64(T)))
    return ds


def _half_weigh_rows(W, Y, fmt):
    """out[n, q] = sum_t W[n, q, t] Y[n, t], rounded to Y's storage; W float32 or storage."""
    N, Q, T = W.shape
    H = Y.shape[2]
    out = cupy.empty((N, Q, H), dtype=Y.dtype)
    name = "weigh_rows_w32" if W.dtype == cupy.float32 else "weigh_rows"
    _half(name, fmt, N * Q * H, (W, Y, out, _i64(N), _i64(Q), _i64(T), _i64(H)))
    return out


def _half_weigh_queries(W, X, fmt, w32=None, X2=None):
    """out[n, t] = sum_q W[n, q, t] X[n, q] (+ w32[n, q, t] X2[n, q]), rounded to X's storage."""
    N, Q, T = W.shape
    H = X.shape[2]
    out = cupy.empty((N, T, H), dtype=X.dtype)
    sizes = (_i64(N), _i64(Q), _i64(T), _i64(H))
    if w32 is not None:
        _half("weigh_queries_two", fmt, N * T * H, (W, X, w32, X2, out) + sizes)
    else:
        _half("weigh_queries_w32" if W.dtype == cupy.float32 else "weigh_queries", fmt, N * T * H, (W, X, out) + sizes)
    return out


def _attention_weights_half(hs, h, fmt):
    return _half_weights(hs, h, fmt)[1]


def _attention_weights_backward_half(hs, h, a, da, fmt):
    ds = _half_softmax_backward(a, da, fmt)
    return _half_weigh_queries(ds, h, fmt), _half_weigh_rows(ds, hs, fmt)


def _weighted_sum_half(hs, a, fmt):
    return _half_weigh_rows(a, hs, fmt)


def _weighted_sum_backward_half(hs, a, dc, fmt):
    return _half_weigh_queries(a, dc, fmt), _scores(dc, hs, fmt, stored=True)


def _attention_context_half(hs, h, fmt):
    s, a = _half_weights(hs, h, fmt)
    return a, _half_weigh_rows(s, hs, fmt)  # weighed by the float32 weights


def _attention_context_backward_half(hs, h, a, dc, fmt):
    ds = _half_softmax_backward(a, _scores(dc, hs, fmt), fmt)  # da stays float32
    return _half_weigh_queries(a, dc, fmt, w32=ds, X2=h), _half_weigh_rows(ds, hs, fmt)


_HALF_OPS = {"attention_weights": _attention_weights_half,
             "attention_weights_backward": _attention_weights_backward_half,
             "weighted_sum": _weighted_sum_half, "weighted_sum_backward": _weighted_sum_backward_half,
             "attention_context": _attention_context_half,
             "attention_context_backward": _attention_context_backward_half}


def run_bits(op, fmt, *arrays):
    """``op`` on 16-bit storage ``fmt`` ("f16" or "bf16") held as the bit patterns of uint16 device
    arrays (the contract's arguments otherwise); returns what ``op`` returns, as uint16 bits."""
    if fmt not in ("f16", "bf16"):
        raise ValueError(f"run_bits: fmt must be 'f16' or 'bf16', got {fmt!r}")
    return _HALF_OPS[op](*arrays, fmt)
