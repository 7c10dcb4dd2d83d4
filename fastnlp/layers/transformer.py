"""Transformer layers (Vaswani et al. 2017), the model chapter 8 points to, in the book's layer style.

``ScaledDotProductAttention``, ``MultiHeadAttention``, ``LayerNorm``, ``PositionwiseFeedForward``,
``PositionalEncoding``, and the residual blocks ``TransformerEncoderBlock`` and
``TransformerDecoderBlock`` (pre-norm: ``x + sublayer(LayerNorm(x))``, which trains without
learning-rate warm-up). Masks are boolean, True where a query may look at a key, and broadcast
against the scores (N, heads, T_q, T_k): ``padding_mask`` hides padded keys, ``causal_mask`` the
future. Every matrix product is ``fastnlp.kernels.gemm``: the projections one product over all
positions, the attention's batched (N, heads, ., .) products one stacked call each, transposes
as gemm's flags. (With keys different from values and masks, the attention ops of
``fastnlp.kernels`` do not apply here.)
"""
from __future__ import annotations

import operator

import numpy as np

from ..kernels.dispatch import array_module
from ..kernels.memory import aligned_zeros_like
from .base import FLOAT, Layer, check_dout, check_input, check_param
from .core import Affine, ReLU, add_bias, product, product_into, rows


# ---- masks and encodings ----------------------------------------------------------------------

def padding_mask(ids, pad_id: int):
    """(N, 1, 1, T) bool: True where ``ids`` (N, T) is not ``pad_id`` (keys a query may attend to)."""
    ids = array_module(ids).asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"padding_mask: ids must be (N, T), got shape {tuple(ids.shape)}")
    return (ids != pad_id)[:, None, None, :]


def causal_mask(T: int, xp=np):
    """(T, T) bool, lower triangular: query step i may attend to key steps 0..i."""
    return xp.tril(xp.ones((T, T), dtype=bool))


def positional_encoding(T: int, D: int, dtype=np.float32):
    """The sinusoidal table (T, D): ``sin(t / 10000^(2i/D))`` in even columns, ``cos`` in odd."""
    position = np.arange(T)[:, None]
    rates = np.exp(-np.log(10000.0) * (np.arange(0, D, 2) / max(D, 1)))
    table = np.zeros((T, D))
    table[:, 0::2] = np.sin(position * rates)
    table[:, 1::2] = np.cos(position * rates[: D // 2])
    return table.astype(dtype)


def _check_mask(mask, scores_shape, who):
    if mask is None:
        return None
    xp = array_module(mask)
    mask = xp.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"{who}: mask must be boolean (True = may attend), got dtype {mask.dtype}")
    # To the scores' shape, not merely with it: a mask with a larger batch or more heads would
    # silently make the output larger than the input.
    try:
        fits = np.broadcast_shapes(tuple(mask.shape), tuple(scores_shape)) == tuple(scores_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{who}: mask of shape {tuple(mask.shape)} does not broadcast to the scores "
                         f"{tuple(scores_shape)}")
    return mask


def _positive_int(who, name, value) -> int:
    """``value`` as an int: a Python or NumPy integer >= 1 (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{who}: {name} must be an integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value}")
    return value


# ---- attention ---------------------------------------------------------------------------------

class ScaledDotProductAttention(Layer):
    """``softmax(q k^T / sqrt(d) masked) v`` over the last two axes; any leading (batch, head) axes.

    ``forward(q, k, v, mask=None)``: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v).
    ``backward(dout)`` returns ``(dq, dk, dv)``. ``attention_weights`` keeps the last weights.
    A query whose keys are all masked attends uniformly (no NaN).
    """

    def __init__(self):
        super().__init__()
        self.attention_weights = None

    def forward(self, q, k, v, mask=None):
        who = "ScaledDotProductAttention.forward"
        q, k, v = (check_input(x, who, FLOAT, what=name) for name, x in (("q", q), ("k", k), ("v", v)))
        if q.ndim < 2 or q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.shape[:-2] != k.shape[:-2]:
            raise ValueError(f"{who}: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit "
                             "(..., T_q, d), (..., T_k, d), (..., T_k, d_v)")
        self.scale = 1.0 / np.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
        scores = product(q, k, trans_b=True)  # q k^T
        scores *= q.dtype.type(self.scale)
        mask = _check_mask(mask, scores.shape, who)
        if mask is not None:
            scores = array_module(scores).where(mask, scores, np.finfo(scores.dtype).min)
        scores -= scores.max(axis=-1, keepdims=True)
        a = np.exp(scores)
        a /= a.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v, self.attention_weights = q, k, v, a
        return product(a, v)

    def backward(self, dout):
        q, k, v, a = self.saved("q", "k", "v", "attention_weights")
        dout = check_dout(dout, a.shape[:-1] + v.shape[-1:], "ScaledDotProductAttention.backward")
        dv = product(a, dout, trans_a=True)  # a^T dout
        da = product(dout, v, trans_b=True)  # dout v^T
        ds = a * (da - (a * da).sum(axis=-1, keepdims=True)) * a.dtype.type(self.scale)  # masked: a = 0
        return product(ds, k), product(ds, q, trans_a=True), dv


class MultiHeadAttention(Layer):
    """``n_heads`` scaled dot-product attentions over projections of the inputs, concatenated and
    projected back: ``forward(x_q, x_kv, mask=None)`` with (N, T_q, D) and (N, T_k, D) returns
    (N, T_q, D); ``backward(dout)`` returns ``(dx_q, dx_kv)`` (for self-attention, pass the same
    array twice and add the two gradients).

    ``params`` = [Wq, bq, Wk, bk, Wv, bv, Wo, bo], each W (D, D); D divisible by ``n_heads``.
    """

    def __init__(self, Wq, bq, Wk, bk, Wv, bv, Wo, bo, n_heads: int):
        params = [Wq, bq, Wk, bk, Wv, bv, Wo, bo]
        for name, p in zip(("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"), params):
            check_param(p, "MultiHeadAttention", name, 2 if name[0] == "W" else 1)
        D = Wq.shape[0]
        if any(W.shape != (D, D) for W in params[0::2]) or any(b.shape != (D,) for b in params[1::2]):
            raise ValueError(f"MultiHeadAttention: every W must be ({D}, {D}) and every b ({D},)")
        n_heads = _positive_int("MultiHeadAttention", "n_heads", n_heads)
        if D % n_heads:
            raise ValueError(f"MultiHeadAttention: n_heads must be a positive divisor of D = {D}, got {n_heads!r}")
        self.params, self.grads = params, [aligned_zeros_like(p) for p in params]
        self.n_heads = n_heads
        self.attention = ScaledDotProductAttention()
        self.x_q = None

    @classmethod
    def random(cls, D: int, n_heads: int, rng=None, dtype=np.float32):
        """Glorot-scaled weights, zero biases."""
        D = _positive_int("MultiHeadAttention.random", "D", D)
        rng = np.random.default_rng(rng)
        W = lambda: (rng.standard_normal((D, D)) / np.sqrt(D)).astype(dtype)  # noqa: E731
        b = lambda: np.zeros(D, dtype=dtype)  # noqa: E731
        return cls(W(), b(), W(), b(), W(), b(), W(), b(), n_heads)

    @property
    def attention_weights(self):
        """(N, heads, T_q, T_k) weights of the last forward."""
        return self.attention.attention_weights

    def _split(self, x):  # (N, T, D) -> (N, heads, T, D / heads), C-contiguous
        # Copied once here: the head views' rows are D apart, not D / heads, and gemm would copy
        # them at each of the (two or three) products that read them.
        N, T, D = x.shape
        return array_module(x).ascontiguousarray(x.reshape(N, T, self.n_heads, D // self.n_heads).transpose(0, 2, 1, 3))

    @staticmethod
    def _merge(x):  # (N, heads, T, d) -> (N, T, heads * d)
        N, heads, T, d = x.shape
        return x.transpose(0, 2, 1, 3).reshape(N, T, heads * d)

    def forward(self, x_q, x_kv, mask=None):
        who = "MultiHeadAttention.forward"
        Wq, bq, Wk, bk, Wv, bv, Wo, bo = self.params
        D = Wq.shape[0]
        x_q = check_input(x_q, who, FLOAT, what="x_q")
        x_kv = check_input(x_kv, who, FLOAT, what="x_kv")
        for name, x in (("x_q", x_q), ("x_kv", x_kv)):
            if x.ndim != 3 or x.shape[-1] != D:
                raise ValueError(f"{who}: {name} must be (N, T, {D}), got shape {tuple(x.shape)}")
        if x_q.shape[0] != x_kv.shape[0]:
            raise ValueError(f"{who}: x_q has batch {x_q.shape[0]} but x_kv has {x_kv.shape[0]}")
        # Checked here as well, so that an error names this layer and its heads.
        _check_mask(mask, (x_q.shape[0], self.n_heads, x_q.shape[1], x_kv.shape[1]), who)
        heads = self.attention.forward(self._split(add_bias(product(x_q, Wq), bq)),
                                       self._split(add_bias(product(x_kv, Wk), bk)),
                                       self._split(add_bias(product(x_kv, Wv), bv)), mask)
        self.merged = self._merge(heads)
        self.x_q, self.x_kv = x_q, x_kv
        return add_bias(product(self.merged, Wo), bo)

    # ---- inference with cached keys and values (incremental decoding; no backward) ----------

    def keys_values(self, x_kv):
        """The projected keys and values of ``x_kv`` (N, T_k, D), split into heads."""
        _, _, Wk, bk, Wv, bv, _, _ = self.params
        return self._split(add_bias(product(x_kv, Wk), bk)), self._split(add_bias(product(x_kv, Wv), bv))

    def attend(self, x_q, keys, values, mask=None):
        """``forward`` for queries ``x_q`` against keys and values from ``keys_values``."""
        Wq, bq, _, _, _, _, Wo, bo = self.params
        heads = self.attention.forward(self._split(add_bias(product(x_q, Wq), bq)), keys, values, mask)
        return add_bias(product(self._merge(heads), Wo), bo)

    def backward(self, dout):
        Wq, bq, Wk, bk, Wv, bv, Wo, bo = self.params
        x_q, x_kv, merged = self.saved("x_q", "x_kv", "merged")
        dout = check_dout(dout, merged.shape, "MultiHeadAttention.backward")
        g = self.grads
        product_into(rows(merged), rows(dout), g[6], trans_a=True)  # straight into the buffers
        g[7][...] = rows(dout).sum(axis=0)
        dq, dk, dv = (self._merge(d) for d in self.attention.backward(self._split(product(dout, Wo, trans_b=True))))
        for i, x, d in ((0, x_q, dq), (2, x_kv, dk), (4, x_kv, dv)):
            product_into(rows(x), rows(d), g[i], trans_a=True)
            g[i + 1][...] = rows(d).sum(axis=0)
        dx_kv = product(dk, Wk, trans_b=True)
        product_into(dv, Wv, dx_kv, trans_b=True, accumulate=True)  # + dv Wv^T, no temporary
        return product(dq, Wq, trans_b=True), dx_kv


# ---- per-position layers ------------------------------------------------------------------------

class LayerNorm(Layer):
    """Normalise the last axis to zero mean and unit variance, then ``* gamma + beta`` (D,)."""

    def __init__(self, gamma, beta, eps: float = 1e-5):
        check_param(gamma, "LayerNorm", "gamma", 1)
        if check_param(beta, "LayerNorm", "beta", 1).shape != gamma.shape:
            raise ValueError(f"LayerNorm: beta {tuple(beta.shape)} and gamma {tuple(gamma.shape)} differ")
        self.params, self.grads = [gamma, beta], [aligned_zeros_like(gamma), aligned_zeros_like(beta)]
        self.eps = float(eps)
        self.xhat = None

    @classmethod
    def ones(cls, D: int, dtype=np.float32):
        D = _positive_int("LayerNorm.ones", "D", D)
        return cls(np.ones(D, dtype=dtype), np.zeros(D, dtype=dtype))

    def forward(self, x):
        gamma, beta = self.params
        x = check_input(x, "LayerNorm.forward", FLOAT)
        if x.ndim == 0 or x.shape[-1] != gamma.shape[0]:
            raise ValueError(f"LayerNorm.forward: input of shape {tuple(x.shape)} needs a last axis of "
                             f"{gamma.shape[0]}")
        mu = x.mean(axis=-1, keepdims=True)
        centred = x - mu
        self.inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + x.dtype.type(self.eps))
        self.xhat = centred * self.inv_std
        return self.xhat * gamma + beta

    def backward(self, dout):
        gamma, _ = self.params
        xhat = self.saved("xhat")
        dout = check_dout(dout, xhat.shape, "LayerNorm.backward")
        D = xhat.shape[-1]
        self.grads[0][...] = (dout * xhat).reshape(-1, D).sum(axis=0)
        self.grads[1][...] = dout.reshape(-1, D).sum(axis=0)
        dxhat = dout * gamma
        return self.inv_std * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                               - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


class PositionwiseFeedForward(Layer):
    """``ReLU(x W1 + b1) W2 + b2`` at every position: (…, D) -> (…, D) through a hidden width F."""

    def __init__(self, W1, b1, W2, b2):
        self.layers = [Affine(W1, b1), ReLU(), Affine(W2, b2)]
        self.params = [W1, b1, W2, b2]
        self.grads = self.layers[0].grads + self.layers[2].grads

    @classmethod
    def random(cls, D: int, F: int, rng=None, dtype=np.float32):
        who = "PositionwiseFeedForward.random"
        D, F = _positive_int(who, "D", D), _positive_int(who, "F", F)
        rng = np.random.default_rng(rng)
        return cls((rng.standard_normal((D, F)) * np.sqrt(2.0 / D)).astype(dtype), np.zeros(F, dtype=dtype),
                   (rng.standard_normal((F, D)) / np.sqrt(F)).astype(dtype), np.zeros(D, dtype=dtype))

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class PositionalEncoding(Layer):
    """Adds the sinusoidal table to (N, T, D) inputs after scaling them by ``scale`` (the paper's
    sqrt(D) for embeddings); no parameters. The table grows on demand."""

    def __init__(self, D: int, scale: float = 1.0):
        super().__init__()
        self.D, self.scale = _positive_int("PositionalEncoding", "D", D), float(scale)
        self.table = positional_encoding(0, D, np.float64)
        self.shape = None

    def forward(self, x, offset: int = 0):
        """``x * scale + table[offset:offset + T]`` (``offset``: the position of x's first step)."""
        x = check_input(x, "PositionalEncoding.forward", FLOAT)
        if x.ndim != 3 or x.shape[-1] != self.D:
            raise ValueError(f"PositionalEncoding.forward: input must be (N, T, {self.D}), got {tuple(x.shape)}")
        end = offset + x.shape[1]
        if self.table.shape[0] < end:
            self.table = positional_encoding(max(end, 2 * self.table.shape[0]), self.D, np.float64)
            # (a host table; moved below when the inputs are on the GPU)
        self.shape = x.shape
        xp = array_module(x)
        if array_module(self.table) is not xp:  # kept where the inputs are: one copy, not one a call
            self.table = xp.asarray(self.table)
        table = self.table[offset:end].astype(x.dtype, copy=False)
        return x * x.dtype.type(self.scale) + table

    def backward(self, dout):
        return check_dout(dout, self.saved("shape"), "PositionalEncoding.backward") * dout.dtype.type(self.scale)


# ---- residual blocks -------------------------------------------------------------------------------

class _Composite(Layer):
    def _collect(self, layers):
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]


class TransformerEncoderBlock(_Composite):
    """``h = x + SelfAttention(LN(x)); y = h + FFN(LN(h))``. ``forward(x, mask=None)``, (N, T, D)."""

    def __init__(self, self_attention: MultiHeadAttention, feed_forward: PositionwiseFeedForward,
                 norm1: LayerNorm, norm2: LayerNorm):
        self.self_attention, self.feed_forward, self.norm1, self.norm2 = self_attention, feed_forward, norm1, norm2
        self._collect([norm1, self_attention, norm2, feed_forward])

    @classmethod
    def random(cls, D: int, n_heads: int, F: int, rng=None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        return cls(MultiHeadAttention.random(D, n_heads, rng, dtype), PositionwiseFeedForward.random(D, F, rng, dtype),
                   LayerNorm.ones(D, dtype), LayerNorm.ones(D, dtype))

    def forward(self, x, mask=None):
        z = self.norm1.forward(x)
        h = x + self.self_attention.forward(z, z, mask)
        return h + self.feed_forward.forward(self.norm2.forward(h))

    def backward(self, dout):
        dh = dout + self.norm2.backward(self.feed_forward.backward(dout))
        dz_q, dz_kv = self.self_attention.backward(dh)
        return dh + self.norm1.backward(dz_q + dz_kv)


class TransformerDecoderBlock(_Composite):
    """``h1 = y + SelfAttention(LN(y), causal); h2 = h1 + CrossAttention(LN(h1), memory);
    out = h2 + FFN(LN(h2))``. ``forward(y, memory, self_mask=None, memory_mask=None)``;
    ``backward(dout)`` returns ``(dy, dmemory)``."""

    def __init__(self, self_attention: MultiHeadAttention, cross_attention: MultiHeadAttention,
                 feed_forward: PositionwiseFeedForward, norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm):
        self.self_attention, self.cross_attention, self.feed_forward = self_attention, cross_attention, feed_forward
        self.norm1, self.norm2, self.norm3 = norm1, norm2, norm3
        self._collect([norm1, self_attention, norm2, cross_attention, norm3, feed_forward])

    @classmethod
    def random(cls, D: int, n_heads: int, F: int, rng=None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        return cls(MultiHeadAttention.random(D, n_heads, rng, dtype), MultiHeadAttention.random(D, n_heads, rng, dtype),
                   PositionwiseFeedForward.random(D, F, rng, dtype),
                   LayerNorm.ones(D, dtype), LayerNorm.ones(D, dtype), LayerNorm.ones(D, dtype))

    def forward(self, y, memory, self_mask=None, memory_mask=None):
        z = self.norm1.forward(y)
        h1 = y + self.self_attention.forward(z, z, self_mask)
        h2 = h1 + self.cross_attention.forward(self.norm2.forward(h1), memory, memory_mask)
        return h2 + self.feed_forward.forward(self.norm3.forward(h2))

    def step(self, y, cache, memory_kv, memory_mask=None):
        """Inference for the newest position(s) ``y`` (N, 1, D): ``cache`` (a dict, empty at
        the start) keeps the self-attention keys and values of the earlier positions, which a
        causal decoder never recomputes; ``memory_kv`` is ``cross_attention.keys_values(memory)``.
        Gives what ``forward`` gives at those positions; no backward."""
        z = self.norm1.forward(y)
        keys, values = self.self_attention.keys_values(z)
        if cache:
            keys = np.concatenate((cache["keys"], keys), axis=2)
            values = np.concatenate((cache["values"], values), axis=2)
        cache["keys"], cache["values"] = keys, values
        h1 = y + self.self_attention.attend(z, keys, values)
        h2 = h1 + self.cross_attention.attend(self.norm2.forward(h1), *memory_kv, memory_mask)
        return h2 + self.feed_forward.forward(self.norm3.forward(h2))

    def backward(self, dout):
        dh2 = dout + self.norm3.backward(self.feed_forward.backward(dout))
        dq, dmemory = self.cross_attention.backward(dh2)
        dh1 = dh2 + self.norm2.backward(dq)
        dz_q, dz_kv = self.self_attention.backward(dh1)
        return dh1 + self.norm1.backward(dz_q + dz_kv), dmemory
