"""Embedding lookup; its backward is the scatter-add kernel."""
from __future__ import annotations

import numpy as np

from ..kernels import embedding_gather, scatter_add
from .base import Layer


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
