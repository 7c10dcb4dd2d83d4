"""Chapter 1 layers: matrix products, activations, softmax and dropout.

Every matrix product of the layers goes through ``fastnlp.kernels.gemm`` (the fastest matrix
library of the machine, cuBLAS for CuPy arrays): :func:`product` and :func:`product_into` here
are the layers' way to call it with NumPy's dtype rules for ``a @ b``; the recurrent time loops
call ``gemm`` itself with their preallocated buffers.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functions as F
from ..kernels import gemm
from ..kernels.dropout import apply_dropout
from ..kernels.dispatch import array_module
from ..kernels.gemm import INPUT_DTYPES
from ..kernels.memory import aligned_empty, aligned_zeros_like
from .base import FLOAT, Layer, check_dout, check_input, check_param

_GEMM_DTYPES = frozenset(INPUT_DTYPES)  # what gemm multiplies as it is: float32, float64, bfloat16
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def gemm_ready(*dtypes) -> bool:
    """True when operands (and output) of these dtypes go to ``gemm`` as they are: one dtype
    that gemm multiplies (float32, float64, bfloat16)."""
    first = dtypes[0]
    return first in _GEMM_DTYPES and all(d == first for d in dtypes)


def _result_dtype(a, b):
    """NumPy's dtype of ``a @ b``, and the dtype gemm computes it in: float16 in float32,
    anything else gemm lacks (long double) in float64."""
    dtype = np.promote_types(a.dtype, b.dtype)
    if dtype in _GEMM_DTYPES:
        return dtype, dtype
    return dtype, _FLOAT32 if dtype.itemsize <= 2 else _FLOAT64


def rows(x):
    """``x`` (..., D) as a 2-D (rows, D) matrix (a view when the layout allows)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def product(a, b, *, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` as a new array, through gemm (``op(x)`` is ``x`` transposed in its last
    two axes when the flag is set). Dtype and shape are those of ``a @ b`` in NumPy: ``a`` may
    be a vector or a stack (..., M, K) (one product of all its rows when ``b`` is a matrix),
    and mixed or integer dtypes are promoted first."""
    xp = array_module(a)
    dtype, compute = _result_dtype(a, b)
    if a.dtype != compute:
        a = a.astype(compute)
    if b.dtype != compute:
        b = b.astype(compute)
    lead = a.shape[:-1]
    if a.ndim == 1 or (b.ndim == 2 and a.ndim > 2 and not trans_a):
        a = rows(a)  # (..., K) @ (K, N): one product of all rows
    else:
        lead = None
    M = a.shape[-1] if trans_a else a.shape[-2]
    N = b.shape[-2] if trans_b else b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if a.ndim > 2 or b.ndim > 2 else ()
    out = aligned_empty(tuple(batch) + (M, N), dtype if dtype in _GEMM_DTYPES else compute, xp)
    gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)
    if out.dtype != dtype:
        out = out.astype(dtype)
    return out if lead is None else out.reshape(lead + (N,))


def product_into(a, b, out, *, trans_a=False, trans_b=False, accumulate=False):
    """``out[...] = op(a) @ op(b)`` (``+=`` with ``accumulate``) through gemm, straight into
    ``out`` when the dtypes agree and ``out`` (or its transpose: a gradient laid out like a
    transposed weight) is C-contiguous; otherwise through a temporary, cast as ``out[...] =
    a @ b`` would. Returns ``out``."""
    if gemm_ready(a.dtype, b.dtype, out.dtype):
        if out.flags.c_contiguous:
            gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate)
            return out
        if out.ndim == 2 and out.T.flags.c_contiguous:  # out.T = op(b).T @ op(a).T
            gemm(b, a, out.T, trans_a=not trans_b, trans_b=not trans_a, accumulate=accumulate)
            return out
    result = product(a, b, trans_a=trans_a, trans_b=trans_b)
    if accumulate:
        out += result
    else:
        out[...] = result
    return out


def add_bias(y, b):
    """``y + b``, in place when the sum keeps ``y``'s dtype (y is a fresh product)."""
    if np.promote_types(y.dtype, b.dtype) != y.dtype:
        return y + b
    y += b
    return y


def _matmul_input(x, W, who):
    x = check_input(x, who)
    if x.ndim == 0 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"{who}: input of shape {tuple(x.shape)} needs a last axis of {W.shape[0]} "
                         f"to multiply W of shape {tuple(W.shape)}")
    return x


def _class_scores(x, who):
    x = check_input(x, who)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{who}: scores need a non-empty last (class) axis, got shape {tuple(x.shape)}")
    return x


class MatMul(Layer):
    def __init__(self, W):
        self.params, self.grads = [check_param(W, "MatMul", "W", 2)], [aligned_zeros_like(W)]
        self.x = None

    def forward(self, x):
        (W,) = self.params
        self.x = x = _matmul_input(x, W, "MatMul.forward")
        return product(x, W)

    def backward(self, dout):
        (W,) = self.params
        x = self.saved("x")
        dout = check_dout(dout, x.shape[:-1] + W.shape[1:], "MatMul.backward")
        product_into(rows(x), rows(dout), self.grads[0], trans_a=True)
        return product(dout, W, trans_b=True)


class Affine(Layer):
    def __init__(self, W, b):
        check_param(W, "Affine", "W", 2)
        if check_param(b, "Affine", "b", 1).shape[0] != W.shape[1]:
            raise ValueError(f"Affine: b of shape {tuple(b.shape)} does not fit W of shape {tuple(W.shape)}")
        self.params, self.grads = [W, b], [aligned_zeros_like(W), aligned_zeros_like(b)]
        self.x = None

    def forward(self, x):
        W, b = self.params
        self.x = x = _matmul_input(x, W, "Affine.forward")
        return add_bias(product(x, W), b)

    def backward(self, dout):
        W, _ = self.params
        x = self.saved("x")
        dout = check_dout(dout, x.shape[:-1] + W.shape[1:], "Affine.backward")
        d2 = rows(dout)
        product_into(rows(x), d2, self.grads[0], trans_a=True)
        self.grads[1][...] = d2.sum(axis=0)
        return product(dout, W, trans_b=True)


class Sigmoid(Layer):
    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        self.out = F.sigmoid(check_input(x, "Sigmoid.forward"))
        return self.out

    def backward(self, dout):
        out = self.saved("out")
        return check_dout(dout, out.shape, "Sigmoid.backward") * (1.0 - out) * out


class ReLU(Layer):
    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        x = check_input(x, "ReLU.forward")
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        mask = self.saved("mask")
        return check_dout(dout, mask.shape, "ReLU.backward") * mask


class Softmax(Layer):
    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        self.out = F.softmax(_class_scores(x, "Softmax.forward"))
        return self.out

    def backward(self, dout):
        y = self.saved("out")
        dout = check_dout(dout, y.shape, "Softmax.backward")
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with p = 1 - ratio and scale by 1/p, so
    evaluation is the identity. ``train()``/``eval()`` set the mode; the book's
    ``forward(x, train_flg)`` overrides it for one call.

    Inputs must be floating point (TypeError otherwise, in either mode): the scaled output keeps
    the input's dtype, which an integer array cannot hold.
    """

    def __init__(self, dropout_ratio: float = 0.5, seed: int | None = None):
        super().__init__()
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout ratio must be in [0, 1), got {dropout_ratio}")
        self.ratio = dropout_ratio
        self.rng = np.random.default_rng(seed)
        self.mask = self.shape = None  # mask None after a forward: identity

    def forward(self, x, train_flg: bool | None = None):
        x = check_input(x, "Dropout.forward", FLOAT)
        training = self.training if train_flg is None else train_flg
        self.shape = x.shape
        if not training or self.ratio == 0.0:
            self.mask = None
            return x
        keep = 1.0 - self.ratio
        seed = int(self.rng.bit_generator.random_raw())  # this layer's generator picks each call's draws
        out, self.mask = apply_dropout(x, keep, seed)  # counter-based draws, one pass (kernels/dropout)
        return out

    def backward(self, dout):
        dout = check_dout(dout, self.saved("shape"), "Dropout.backward")
        return dout if self.mask is None else dout * self.mask
