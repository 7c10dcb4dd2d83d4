"""Attention layers of chapter 8: WeightSum, AttentionWeight, Attention, TimeAttention.

Shapes follow the book: encoder states ``hs`` (N, T, H); one decoder state ``h`` (N, H) per
item, or several (N, Q, H) at once. The arithmetic is the attention ops of
``fastnlp.kernels`` (compiled loops, one pass per batch item); the layers hold what backward
needs and check their inputs. No parameters: the dtype is the inputs' (both cast to the wider
float type when they differ).
"""
from __future__ import annotations

import numpy as np

from .. import kernels
from .base import FLOAT, Layer, check_dout, check_input


def _float_inputs(who, **arrays):
    """Finite float arrays of one dtype (the wider of the given ones)."""
    checked = {name: check_input(x, who, FLOAT, what=name) for name, x in arrays.items()}
    dtype = np.result_type(*(x.dtype for x in checked.values()))
    return [x if x.dtype == dtype else x.astype(dtype) for x in checked.values()]


class WeightSum(Layer):
    """Context ``c = sum_t a_t hs_t``: ``forward(hs, a)`` with ``a`` (N, T) gives (N, H); with
    (N, Q, T), (N, Q, H). ``backward(dc)`` returns ``(dhs, da)``."""

    def __init__(self):
        super().__init__()
        self.hs = self.a = None

    def forward(self, hs, a):
        hs, a = _float_inputs("WeightSum.forward", hs=hs, a=a)
        c = kernels.weighted_sum(hs, a)
        self.hs, self.a, self.shape = hs, a, c.shape
        return c

    def backward(self, dc):
        hs, a = self.saved("hs", "a")
        dc = check_dout(dc, self.shape, "WeightSum.backward")
        return kernels.weighted_sum_backward(hs, a, dc.astype(hs.dtype, copy=False))


class AttentionWeight(Layer):
    """Weights ``a = softmax_t(h . hs_t)``: ``forward(hs, h)`` with ``h`` (N, H) gives (N, T);
    with (N, Q, H), (N, Q, T). ``backward(da)`` returns ``(dhs, dh)``."""

    def __init__(self):
        super().__init__()
        self.hs = self.h = self.a = None

    def forward(self, hs, h):
        hs, h = _float_inputs("AttentionWeight.forward", hs=hs, h=h)
        a = kernels.attention_weights(hs, h)
        self.hs, self.h, self.a = hs, h, a
        return a

    def backward(self, da):
        hs, h, a = self.saved("hs", "h", "a")
        da = check_dout(da, a.shape, "AttentionWeight.backward")
        return kernels.attention_weights_backward(hs, h, a, da.astype(hs.dtype, copy=False))


class Attention(Layer):
    """AttentionWeight then WeightSum, fused: ``forward(hs, h)`` returns the context vectors
    (shaped like ``h``), ``backward(dout)`` returns ``(dhs, dh)`` with both paths into ``hs``
    summed. ``attention_weight`` keeps the last weights (N, T) or (N, Q, T)."""

    def __init__(self):
        super().__init__()
        self.hs = self.h = self.attention_weight = None

    def forward(self, hs, h):
        hs, h = _float_inputs("Attention.forward", hs=hs, h=h)
        a, c = kernels.attention_context(hs, h)
        self.hs, self.h, self.attention_weight = hs, h, a
        return c

    def backward(self, dout):
        hs, h, a = self.saved("hs", "h", "attention_weight")
        dout = check_dout(dout, h.shape, "Attention.backward")
        return kernels.attention_context_backward(hs, h, a, dout.astype(hs.dtype, copy=False))


class TimeAttention(Layer):
    """Attention of every decoder step over the encoder states: ``forward(hs_enc, hs_dec)``
    with ``hs_enc`` (N, T_enc, H) and ``hs_dec`` (N, T_dec, H) returns the contexts
    (N, T_dec, H); ``backward(dout)`` returns ``(dhs_enc, dhs_dec)``.

    The book loops over the decoder steps with one Attention each; the steps are independent
    given ``hs_dec``, so here they are one call with T_dec queries per item (same numbers, one
    pass over ``hs_enc``). ``attention_weights`` (N, T_dec, T_enc) keeps the weights of the last
    forward for visualisation: row ``[n, j]`` is where output step j of item n looked.
    """

    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.attention_weights = None

    def forward(self, hs_enc, hs_dec):
        if np.ndim(hs_dec) != 3:
            raise ValueError(f"TimeAttention.forward: hs_dec must be (N, T_dec, H), got shape {np.shape(hs_dec)}")
        out = self.attention.forward(hs_enc, hs_dec)
        self.attention_weights = self.attention.attention_weight
        return out

    def backward(self, dout):
        return self.attention.backward(dout)

