"""NumPy reference of the attention ops: simple, obviously right, the truth in all tests.

Inputs arrive validated (see __init__.py): hs (N, T, H), h (N, Q, H), a (N, Q, T), one storage
dtype, C-contiguous, T >= 1. Every product is a batched matrix product (``np.matmul``, BLAS
underneath): measured 10-20x faster than the book's broadcast-and-sum (bench/test_bench_attention.py).

float16 / bfloat16 storage (the contract in __init__.py): the inputs are converted up to float32
(exactly), the float32 computation below runs unchanged, every intermediate stays in float32, and
each output is rounded once to the storage dtype (to nearest, ties to even).
"""
import functools

import numpy as np

from ..validate import HALF_DTYPES


def _in_float32(op):
    """``op`` on float16 / bfloat16 arrays: computed in float32, each output rounded once."""
    @functools.wraps(op)
    def run(*arrays):
        storage = arrays[0].dtype
        if storage not in HALF_DTYPES:
            return op(*arrays)
        with np.errstate(over="ignore"):  # a float32 result beyond the storage range is inf there
            result = op(*(x.astype(np.float32) for x in arrays))
            if isinstance(result, tuple):
                return tuple(r.astype(storage) for r in result)
            return result.astype(storage)

    return run


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


@_in_float32
def attention_weights(hs, h):
    """a[n, q] = softmax_t(h[n, q] . hs[n, t]): (N, Q, T)."""
    return _softmax_last(np.matmul(h, hs.transpose(0, 2, 1)))


@_in_float32
def attention_weights_backward(hs, h, a, da):
    """(dhs, dh) from the gradient ``da`` arriving at the weights ``a``."""
    ds = a * (da - (a * da).sum(axis=-1, keepdims=True))  # through the softmax
    return _bmm_tn(ds, h), np.matmul(ds, hs)


@_in_float32
def weighted_sum(hs, a):
    """c[n, q] = sum_t a[n, q, t] hs[n, t]: (N, Q, H)."""
    return np.matmul(a, hs)


@_in_float32
def weighted_sum_backward(hs, a, dc):
    """(dhs, da) from the gradient ``dc`` arriving at the context vectors."""
    return _bmm_tn(a, dc), np.matmul(dc, hs.transpose(0, 2, 1))


@_in_float32
def attention_context(hs, h):
    """Both forward ops in one: (a, c)."""
    a = attention_weights(hs, h)
    return a, weighted_sum(hs, a)


@_in_float32
def attention_context_backward(hs, h, a, dc):
    """Both backward ops in one: (dhs, dh), dhs summed over the two paths into hs."""
    dhs_sum, da = weighted_sum_backward(hs, a, dc)
    dhs_weights, dh = attention_weights_backward(hs, h, a, da)
    dhs_sum += dhs_weights
    return dhs_sum, dh
