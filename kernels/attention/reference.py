"""NumPy reference of the attention ops: simple, obviously right, the truth in all tests.

Inputs arrive validated (see __init__.py): hs (N, T, H), h (N, Q, H), a (N, Q, T), one float
dtype, C-contiguous, T >= 1. Every product is a batched matrix product (``np.matmul``, BLAS
underneath): measured 10-20x faster than the book's broadcast-and-sum (bench/test_bench_attention.py).
"""
import numpy as np


def _bmm_tn(x, y):
    """``x[n].T @ y[n]`` for every n: (N, Q, T), (N, Q, H) -> (N, T, H).

    With Q = 1 this is an outer product, where np.matmul has no fast path (10x slower than
    the broadcast product that gives the same numbers)."""
    if x.shape[1] == 1:
        return x.transpose(0, 2, 1) * y
    return np.matmul(x.transpose(0, 2, 1), y)


def _softmax_last(s):
    """Softmax over the last axis, in place, shifted by the row maximum (exp never overflows)."""
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    return s


def attention_weights(hs, h):
    """a[n, q] = softmax_t(h[n, q] . hs[n, t]): (N, Q, T)."""
    return _softmax_last(np.matmul(h, hs.transpose(0, 2, 1)))


def attention_weights_backward(hs, h, a, da):
    """(dhs, dh) from the gradient ``da`` arriving at the weights ``a``."""
    ds = a * (da - (a * da).sum(axis=-1, keepdims=True))  # through the softmax
    return _bmm_tn(ds, h), np.matmul(ds, hs)


def weighted_sum(hs, a):
    """c[n, q] = sum_t a[n, q, t] hs[n, t]: (N, Q, H)."""
    return np.matmul(a, hs)


def weighted_sum_backward(hs, a, dc):
    """(dhs, da) from the gradient ``dc`` arriving at the context vectors."""
    return _bmm_tn(a, dc), np.matmul(dc, hs.transpose(0, 2, 1))


def attention_context(hs, h):
    """Both forward ops in one: (a, c)."""
    a = attention_weights(hs, h)
    return a, weighted_sum(hs, a)


def attention_context_backward(hs, h, a, dc):
    """Both backward ops in one: (dhs, dh), dhs summed over the two paths into hs."""
    dhs_sum, da = weighted_sum_backward(hs, a, dc)
    dhs_weights, dh = attention_weights_backward(hs, h, a, da)
    dhs_sum += dhs_weights
    return dhs_sum, dh
