"""Chapter 1 layers: matrix products, activations, softmax and dropout."""
from __future__ import annotations

import numpy as np

from .. import functions as F
from ..kernels.dispatch import array_module
from .base import FLOAT, Layer, check_dout, check_input, check_param


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
        self.params, self.grads = [check_param(W, "MatMul", "W", 2)], [np.zeros_like(W)]
        self.x = None

    def forward(self, x):
        (W,) = self.params
        self.x = x = _matmul_input(x, W, "MatMul.forward")
        return x @ W

    def backward(self, dout):
        (W,) = self.params
        x = self.saved("x")
        dout = check_dout(dout, x.shape[:-1] + W.shape[1:], "MatMul.backward")
        self.grads[0][...] = x.reshape(-1, W.shape[0]).T @ dout.reshape(-1, W.shape[1])
        return dout @ W.T


class Affine(Layer):
    def __init__(self, W, b):
        check_param(W, "Affine", "W", 2)
        if check_param(b, "Affine", "b", 1).shape[0] != W.shape[1]:
            raise ValueError(f"Affine: b of shape {tuple(b.shape)} does not fit W of shape {tuple(W.shape)}")
        self.params, self.grads = [W, b], [np.zeros_like(W), np.zeros_like(b)]
        self.x = None

    def forward(self, x):
        W, b = self.params
        self.x = x = _matmul_input(x, W, "Affine.forward")
        return x @ W + b

    def backward(self, dout):
        W, _ = self.params
        x = self.saved("x")
        dout = check_dout(dout, x.shape[:-1] + W.shape[1:], "Affine.backward")
        d2 = dout.reshape(-1, W.shape[1])
        self.grads[0][...] = x.reshape(-1, W.shape[0]).T @ d2
        self.grads[1][...] = d2.sum(axis=0)
        return dout @ W.T


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
        xp = array_module(x)
        draws = self.rng.random(x.shape) if xp is np else xp.random.random(x.shape)
        self.mask = (draws < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self.mask

    def backward(self, dout):
        dout = check_dout(dout, self.saved("shape"), "Dropout.backward")
        return dout if self.mask is None else dout * self.mask
