"""Chapter 1 layers: matrix products, activations, softmax and dropout."""
from __future__ import annotations

import numpy as np

from .. import functions as F
from ..kernels.dispatch import array_module
from .base import Layer


class MatMul(Layer):
    def __init__(self, W):
        self.params, self.grads = [W], [np.zeros_like(W)]
        self.x = None

    def forward(self, x):
        (W,) = self.params
        self.x = x
        return x @ W

    def backward(self, dout):
        (W,) = self.params
        x2 = self.x.reshape(-1, W.shape[0])
        self.grads[0][...] = x2.T @ dout.reshape(-1, W.shape[1])
        return dout @ W.T


class Affine(Layer):
    def __init__(self, W, b):
        self.params, self.grads = [W, b], [np.zeros_like(W), np.zeros_like(b)]
        self.x = None

    def forward(self, x):
        W, b = self.params
        self.x = x
        return x @ W + b

    def backward(self, dout):
        W, _ = self.params
        x2 = self.x.reshape(-1, W.shape[0])
        d2 = dout.reshape(-1, W.shape[1])
        self.grads[0][...] = x2.T @ d2
        self.grads[1][...] = d2.sum(axis=0)
        return dout @ W.T


class Sigmoid(Layer):
    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class ReLU(Layer):
    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Softmax(Layer):
    def __init__(self):
        super().__init__()
        self.out = None

    def forward(self, x):
        self.out = F.softmax(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with p = 1 - ratio and scale by 1/p, so
    evaluation is the identity. ``train()``/``eval()`` set the mode; the book's
    ``forward(x, train_flg)`` overrides it for one call."""

    def __init__(self, dropout_ratio: float = 0.5, seed: int | None = None):
        super().__init__()
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout ratio must be in [0, 1), got {dropout_ratio}")
        self.ratio = dropout_ratio
        self.rng = np.random.default_rng(seed)
        self.mask = None

    def forward(self, x, train_flg: bool | None = None):
        training = self.training if train_flg is None else train_flg
        if not training or self.ratio == 0.0:
            self.mask = None
            return x
        keep = 1.0 - self.ratio
        xp = array_module(x)
        draws = self.rng.random(x.shape) if xp is np else xp.random.random(x.shape)
        self.mask = (draws < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask
