"""The book's chapter-1 two-layer net."""
from __future__ import annotations

import numpy as np

from ..layers import Affine, Sigmoid, SoftmaxWithLoss
from ..serialization import saveable


@saveable
class TwoLayerNet:
    """Affine -> Sigmoid -> Affine, with softmax cross-entropy (book ch. 1)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, seed: int | None = None,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        W1 = (0.01 * rng.standard_normal((input_size, hidden_size))).astype(dtype)
        b1 = np.zeros(hidden_size, dtype=dtype)
        W2 = (0.01 * rng.standard_normal((hidden_size, output_size))).astype(dtype)
        b2 = np.zeros(output_size, dtype=dtype)
        self.layers = [Affine(W1, b1), Sigmoid(), Affine(W2, b2)]
        self.loss_layer = SoftmaxWithLoss()
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]

    def predict(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, x, t):
        return self.loss_layer.forward(self.predict(x), t)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def accuracy(self, x, t) -> float:
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        return float((self.predict(x).argmax(axis=1) == labels).mean())
