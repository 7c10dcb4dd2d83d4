"""Optimizers that update parameter arrays in place, plus the Trainer's gradient helpers."""
from __future__ import annotations

import numpy as np

from .kernels.dispatch import array_module


class Optimizer:
    """``update(params, grads)`` changes every ``params[i]`` in place from ``grads[i]``.

    Per-parameter state is keyed by position, so pass the lists in the same order each step.
    """

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = lr

    def update(self, params, grads):
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} params but {len(grads)} grads")
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f"param {i} has shape {p.shape} but its gradient {g.shape}")
        self._update(params, grads)

    def _state(self, params, name):
        """A zero buffer per parameter, created on first use."""
        buffers = getattr(self, name, None)
        if buffers is None:
            buffers = [array_module(p).zeros_like(p) for p in params]
            setattr(self, name, buffers)
        return buffers


class SGD(Optimizer):
    def __init__(self, lr: float = 0.01):
        super().__init__(lr)

    def _update(self, params, grads):
        for p, g in zip(params, grads):
            p -= self.lr * g


class Momentum(Optimizer):
    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self._state(params, "v")):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Nesterov(Optimizer):
    """Nesterov accelerated gradient in the book's reformulation (Sutskever et al. 2013)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self._state(params, "v")):
            v *= self.momentum
            v -= self.lr * g
            p += self.momentum * self.momentum * v
            p -= (1 + self.momentum) * self.lr * g


class AdaGrad(Optimizer):
    def __init__(self, lr: float = 0.01, eps: float = 1e-7):
        super().__init__(lr)
        self.eps = eps

    def _update(self, params, grads):
        for p, g, h in zip(params, grads, self._state(params, "h")):
            h += g * g
            p -= self.lr * g / (np.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, eps: float = 1e-7):
        super().__init__(lr)
        self.decay_rate, self.eps = decay_rate, eps

    def _update(self, params, grads):
        for p, g, h in zip(params, grads, self._state(params, "h")):
            h *= self.decay_rate
            h += (1 - self.decay_rate) * g * g
            p -= self.lr * g / (np.sqrt(h) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction folded into the step size."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.iter = 0

    def _update(self, params, grads):
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for p, g, m, v in zip(params, grads, self._state(params, "m"), self._state(params, "v")):
            m += (1 - self.beta1) * (g - m)
            v += (1 - self.beta2) * (g * g - v)
            p -= lr_t * m / (np.sqrt(v) + self.eps)


def global_norm(grads) -> float:
    return float(np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads)))


def clip_grads(grads, max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping. Raises FloatingPointError on a NaN/inf gradient, which
    would otherwise poison every parameter at the next update.
    """
    total = global_norm(grads)
    if not np.isfinite(total):
        raise FloatingPointError("gradient norm is not finite (NaN or inf in the gradients)")
    rate = max_norm / (total + 1e-6)
    if rate < 1:
        for g in grads:
            g *= rate
    return total


def remove_duplicate(params, grads):
    """Merge tied parameters (the same array, or one the transpose of another).

    Returns new lists; the gradients of a tied pair are summed into a new array so no layer's
    own gradient buffer is written by someone else (see Embedding's invariant).
    """
    params, grads = list(params), list(grads)
    while True:
        merged = False
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                if params[i] is params[j]:
                    grads[i] = grads[i] + grads[j]
                elif (params[i].ndim == 2 and params[j].ndim == 2 and params[i].T.shape == params[j].shape
                      and _shares_transposed(params[i], params[j])):
                    grads[i] = grads[i] + grads[j].T
                else:
                    continue
                params.pop(j)
                grads.pop(j)
                merged = True
                break
            if merged:
                break
        if not merged:
            return params, grads


def _root(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _shares_transposed(a, b) -> bool:
    """b is a transposed view of a's memory (tied input/output embeddings)."""
    return _root(a) is _root(b) and bool((a.T == b).all())
