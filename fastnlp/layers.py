"""The book's layers: ``params`` and ``grads`` lists, ``forward`` and ``backward``.

Gradients are written in place (``grads[0][...] = dW``) so optimizers holding references stay
valid. Layers never look at the kernel backend: the ops they call do (fastnlp.kernels).
Inputs may be NumPy or CuPy arrays; parameters set the dtype (float32 by default).
"""
from __future__ import annotations

import numpy as np

from . import functions as F
from .kernels import embedding_gather, scatter_add
from .kernels.dispatch import array_module


class Layer:
    """Base: no parameters, training mode on."""

    params: list
    grads: list
    training = True

    def __init__(self):
        self.params, self.grads = [], []

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)


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


class SoftmaxWithLoss(Layer):
    """Softmax + mean cross-entropy over all leading axes; ``t`` ids or one-hot.

    Ids equal to ``ignore_label`` (e.g. padding) contribute neither loss nor gradient.
    """

    def __init__(self, ignore_label: int | None = None):
        super().__init__()
        self.ignore_label = ignore_label
        self.y = self.labels = self.mask = None

    def forward(self, x, t):
        n_classes = x.shape[-1]
        labels = F.as_labels(t, x.shape).reshape(-1)
        x2 = x.reshape(-1, n_classes)
        mask = labels != self.ignore_label if self.ignore_label is not None else None
        safe = labels if mask is None else labels * mask
        if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= n_classes):
            raise IndexError(f"label out of range for {n_classes} classes")
        log_y = F.log_softmax(x2)
        rows = array_module(x2).arange(x2.shape[0])
        picked = -log_y[rows, safe]
        count = x2.shape[0] if mask is None else max(int(mask.sum()), 1)
        if mask is not None:
            picked = picked * mask
        self.y, self.labels, self.rows, self.mask = np.exp(log_y), safe, rows, mask
        self.count, self.shape = count, x.shape
        return picked.sum() / count

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[self.rows, self.labels] -= 1
        if self.mask is not None:
            dx *= self.mask[:, None]
        dx *= dout / self.count
        return dx.reshape(self.shape)


class SigmoidWithLoss(Layer):
    """Sigmoid + mean binary cross-entropy, computed from logits so it never takes log(0)."""

    def __init__(self):
        super().__init__()
        self.x = self.t = None

    def forward(self, x, t):
        if t.shape != x.shape:
            raise ValueError(f"targets shape {t.shape} != scores shape {x.shape}")
        self.x, self.t = x, t
        # log(1 + exp(x)) - x t, written with |x| so exp never overflows.
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return loss.mean()

    def backward(self, dout=1):
        return (F.sigmoid(self.x) - self.t) * (dout / self.x.size)


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


class Embedding(Layer):
    """Row lookup ``W[idx]``; backward scatter-adds into the (V, D) gradient.

    The gradient stays dense for the optimizers, but backward zeroes only the rows its last
    call touched instead of all V rows (zeroing a 10000 x 650 matrix costs more than the
    scatter itself). Invariant: nothing but this layer writes non-zeros into ``grads[0]``
    (scaling it in place, as gradient clipping does, is fine).
    """

    def __init__(self, W):
        self.params, self.grads = [W], [np.zeros_like(W)]
        self.idx = None
        self._touched = None

    def forward(self, idx):
        self.idx = idx
        return embedding_gather(self.params[0], idx)

    def backward(self, dout):
        (dW,) = self.grads
        if self._touched is not None:
            dW[self._touched] = 0
        scatter_add(dW, self.idx, dout)
        self._touched = self.idx.reshape(-1).copy()
        return None
