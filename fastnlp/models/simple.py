"""The book's chapter-1 two-layer net, and the ``init`` argument every model shares.

``init`` chooses a model's initial weights: ``"book"`` is the book's initialisation, exactly
(same draws, same values for a given ``seed``); ``"scaled"`` keeps every draw but gives each
table the scale its consumer expects (embeddings N(0, 1), so an LSTM's input arrives at unit
size as with PyTorch's ``nn.Embedding``); ``None`` (the default) is the model's recommended one.
Each model's docstring says what the two mean for it and which it recommends.
"""
from __future__ import annotations

import numpy as np

from ..device import DeviceMixin
from ..layers import Affine, Sigmoid, SoftmaxWithLoss
from ..serialization import saveable


INITS = ("book", "scaled")


def resolve_init(init, default: str, who: str) -> str:
    """``init`` checked (one of :data:`INITS`, or None for the model's ``default``)."""
    if init is None:
        return default
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"{who}: init must be one of {', '.join(map(repr, INITS))} or None (the model's default, "
                         f"{default!r}), got {init!r}")
    return init


@saveable
class TwoLayerNet(DeviceMixin):
    """Affine -> Sigmoid -> Affine, with softmax cross-entropy (book ch. 1).

    ``init``: ``"book"`` (the default, ``None``): weights N(0, 0.01^2), zero biases, the book's;
    ``"scaled"``: weights N(0, 1/fan_in) (Xavier-style, the scale of the other models' dense
    layers), zero biases. Same draws for a given ``seed``; only the scale differs."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, seed: int | None = None,
                 dtype=np.float32, init: str | None = None):
        self.init = resolve_init(init, "book", "TwoLayerNet")
        rng = np.random.default_rng(seed)

        def weight(fan_in, fan_out):
            draw = rng.standard_normal((fan_in, fan_out))
            return (0.01 * draw if self.init == "book" else draw / np.sqrt(fan_in)).astype(dtype)

        W1 = weight(input_size, hidden_size)
        b1 = np.zeros(hidden_size, dtype=dtype)
        W2 = weight(hidden_size, output_size)
        b2 = np.zeros(output_size, dtype=dtype)
        self.layers = [Affine(W1, b1), Sigmoid(), Affine(W2, b2)]
        self.loss_layer = SoftmaxWithLoss()
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self._follow_default_device()

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
