"""The layer contract shared by every layer."""
from __future__ import annotations

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
