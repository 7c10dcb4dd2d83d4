"""Loss layers: softmax and sigmoid cross-entropy (computed from logits)."""
from __future__ import annotations

import numpy as np

from .. import functions as F
from ..kernels.dispatch import array_module
from .base import Layer, check_dout, check_input
from .core import _class_scores


def _nonempty(x, who):
    if x.size == 0:
        raise ValueError(f"{who}: empty batch (scores of shape {tuple(x.shape)}); the mean loss is undefined")
    return x


class SoftmaxWithLoss(Layer):
    """Softmax + mean cross-entropy over all leading axes; ``t`` ids or one-hot.

    Ids equal to ``ignore_label`` (e.g. padding) contribute neither loss nor gradient.
    """

    def __init__(self, ignore_label: int | None = None):
        super().__init__()
        self.ignore_label = ignore_label
        self.y = self.labels = self.mask = None

    def forward(self, x, t):
        x = _nonempty(_class_scores(x, "SoftmaxWithLoss.forward"), "SoftmaxWithLoss.forward")
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
        dx = self.saved("y").copy()
        dout = check_dout(dout, (), "SoftmaxWithLoss.backward")
        dx[self.rows, self.labels] -= 1
        if self.mask is not None:
            dx *= self.mask[:, None]
        dx *= dout / self.count
        return dx.reshape(self.shape)


class SigmoidWithLoss(Layer):
    """Sigmoid + mean binary cross-entropy, computed from logits so it never takes log(0).

    Targets are probabilities in [0, 1] (0/1 labels, or soft targets) of the scores' shape."""

    def __init__(self):
        super().__init__()
        self.x = self.t = None

    def forward(self, x, t):
        x = F.as_float(_nonempty(check_input(x, "SigmoidWithLoss.forward"), "SigmoidWithLoss.forward"))
        t = check_input(t, "SigmoidWithLoss.forward", "biuf", what="targets")
        if t.shape != x.shape:
            raise ValueError(f"SigmoidWithLoss.forward: targets shape {tuple(t.shape)} != scores shape "
                             f"{tuple(x.shape)}")
        if bool((t < 0).any() | (t > 1).any()):
            raise ValueError("SigmoidWithLoss.forward: targets must lie in [0, 1]")
        self.x, self.t = x, t
        # log(1 + exp(x)) - x t, written with |x| so exp never overflows.
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return loss.mean()

    def backward(self, dout=1):
        x, t = self.saved("x", "t")
        dout = check_dout(dout, (), "SigmoidWithLoss.backward")
        return (F.sigmoid(x) - t) * (dout / x.size)
