"""Embedding lookup; its backward is the scatter-add kernel."""
from __future__ import annotations

import numpy as np

from ..kernels import embedding_gather, scatter_add
from ..kernels.validate import as_id_array
from .base import Layer, check_dout, check_param


class Embedding(Layer):
    """Row lookup ``W[idx]`` for integer ids of any shape (an array or a list of ints); backward
    scatter-adds into the (V, D) gradient.

    The gradient stays dense for the optimizers, but backward zeroes only the rows its last
    call touched instead of all V rows (zeroing a 10000 x 650 matrix costs more than the
    scatter itself). Invariant: nothing but this layer writes non-zeros into ``grads[0]``
    (scaling it in place, as gradient clipping does, is fine).
    """

    def __init__(self, W):
        self.params, self.grads = [check_param(W, "Embedding", "W", 2)], [np.zeros_like(W)]
        self.idx = None
        self._touched = None

    def forward(self, idx):
        out = embedding_gather(self.params[0], idx)  # validates the ids
        self.idx = as_id_array(idx, like=self.params[0])  # an array, whatever was passed
        return out

    def backward(self, dout):
        (dW,) = self.grads
        idx = self.saved("idx")
        dout = check_dout(dout, tuple(idx.shape) + dW.shape[1:], "Embedding.backward")
        if self._touched is not None:
            dW[self._touched] = 0
        scatter_add(dW, idx, dout)
        self._touched = idx.reshape(-1).copy()
        return None
