"""An encoder-decoder Transformer for the same tasks as the seq2seq models, on the same Trainer.

Embeddings scaled by sqrt(D) plus the sinusoidal positions, ``n_layers`` pre-norm encoder
blocks, ``n_layers`` decoder blocks (causal self-attention, then attention over the encoder's
output), a final LayerNorm on each side and an Affine over the vocabulary; the loss is
TimeSoftmaxWithLoss. The interface is the seq2seq models': ``forward(xs, ts)`` with ``ts[:, 0]``
the start symbol, ``backward()``, ``params``/``grads``, and batched greedy
``generate(xs, start_id, sample_size)``. With ``pad_id`` the padded question positions are
masked out of every attention and padded answer positions out of the loss.
"""
from __future__ import annotations

import numpy as np

from ..device import DeviceMixin, batch_to
from ..kernels.dispatch import array_module
from ..layers.recurrent import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from ..layers.transformer import (LayerNorm, PositionalEncoding, TransformerDecoderBlock, TransformerEncoderBlock,
                                  _positive_int, causal_mask, padding_mask)
from .seq2seq import _greedy, _ids, _sample_size, _sizes, _start_ids
from ..serialization import saveable
from .simple import resolve_init


@saveable
class Transformer(DeviceMixin):
    """``Transformer(vocab_size, d_model=64, n_heads=4, d_ff=128, n_layers=2)``: the defaults learn the date
    task to over 99% in a few epochs (bench/train_seq2seq.py).

    The sizes are Python or NumPy integers; ``n_heads`` must divide ``d_model``. ``pad_id``: None
    or an id in the vocabulary.

    ``init``: ``"scaled"`` (the default, ``None``): embedding tables N(0, 1/d_model), which the
    sqrt(d_model) scaling before the positions brings to unit size; Glorot-scaled attention
    weights, He-scaled first feed-forward weight, N(0, 1/fan_in) otherwise, zero biases, unit
    LayerNorm gains. ``"book"``: the book's embedding scale, tables N(0, 0.01^2) (so the token
    signal starts well below the positional one); everything else as ``"scaled"``, with the same
    draws. The book has no Transformer: this is for comparison with its recurrent models."""

    def __init__(self, vocab_size, d_model: int = 64, n_heads: int = 4, d_ff: int = 128, n_layers: int = 2,
                 pad_id: int | None = None, seed=None, dtype=np.float32, init: str | None = None):
        self.init = resolve_init(init, "scaled", "Transformer")
        V, D, F = _sizes(vocab_size, d_model, d_ff)
        if isinstance(n_layers, bool) or not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
        n_heads = _positive_int("Transformer", "n_heads", n_heads)
        if D % n_heads:
            raise ValueError(f"Transformer: n_heads must be a positive divisor of d_model = {D}, got {n_heads}")
        if pad_id is not None:
            if isinstance(pad_id, (bool, np.bool_)) or not isinstance(pad_id, (int, np.integer)):
                raise TypeError(f"Transformer: pad_id must be None or an integer id, got {pad_id!r}")
            if not 0 <= pad_id < V:
                raise ValueError(f"Transformer: pad_id {pad_id} is outside the vocabulary of {V}")
            pad_id = int(pad_id)
        rng = np.random.default_rng(seed)
        # Embeddings N(0, 1/D): unit size once PositionalEncoding scales them by sqrt(D) (the
        # book's N(0, 0.01^2) with init="book").
        embed_scale = np.sqrt(D) if self.init == "scaled" else 100
        embed = lambda: (rng.standard_normal((V, D)) / embed_scale).astype(dtype)  # noqa: E731
        self.src_embed, self.tgt_embed = TimeEmbedding(embed()), TimeEmbedding(embed())
        self.src_position, self.tgt_position = PositionalEncoding(D, np.sqrt(D)), PositionalEncoding(D, np.sqrt(D))
        self.encoder_blocks = [TransformerEncoderBlock.random(D, n_heads, F, rng, dtype) for _ in range(n_layers)]
        self.decoder_blocks = [TransformerDecoderBlock.random(D, n_heads, F, rng, dtype) for _ in range(n_layers)]
        self.encoder_norm, self.decoder_norm = LayerNorm.ones(D, dtype), LayerNorm.ones(D, dtype)
        self.affine = TimeAffine((rng.standard_normal((D, V)) / np.sqrt(D)).astype(dtype), np.zeros(V, dtype=dtype))
        self.softmax = TimeSoftmaxWithLoss(ignore_label=-1)
        self.pad_id = pad_id
        layers = [self.src_embed, *self.encoder_blocks, self.encoder_norm, self.tgt_embed, *self.decoder_blocks,
                  self.decoder_norm, self.affine]
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]
        self.vocab_size = V
        self._step_weights = None
        self._follow_default_device()

    # ---- the two stacks -------------------------------------------------------------------------

    def encode(self, xs):
        """Encoder output (N, T_in, D) for question ids (N, T_in); keeps the padding mask."""
        self.src_mask = None if self.pad_id is None else padding_mask(xs, self.pad_id)
        h = self.src_position.forward(self.src_embed.forward(xs))
        for block in self.encoder_blocks:
            h = block.forward(h, self.src_mask)
        return self.encoder_norm.forward(h)

    def decode(self, ys, memory):
        """Scores (N, T_out, V) for answer prefixes ``ys`` (N, T_out) given the encoder output."""
        mask = causal_mask(ys.shape[1], array_module(memory))
        h = self.tgt_position.forward(self.tgt_embed.forward(ys))
        for block in self.decoder_blocks:
            h = block.forward(h, memory, mask, self.src_mask)
        return self.affine.forward(self.decoder_norm.forward(h))

    # ---- the seq2seq interface ----------------------------------------------------------------

    def forward(self, xs, ts):
        who = "Transformer.forward"
        xs = _ids(xs, who, self.vocab_size)
        ts = _ids(ts, who, self.vocab_size, what="answers")
        if ts.shape[0] != xs.shape[0]:
            raise ValueError(f"{who}: {xs.shape[0]} questions but {ts.shape[0]} answers")
        if ts.shape[1] < 2:
            raise ValueError(f"{who}: answers need the start symbol and at least one id, got shape {tuple(ts.shape)}")
        self._step_weights = None
        score = self.decode(ts[:, :-1], self.encode(xs))
        target = ts[:, 1:]
        if self.pad_id is not None:
            target = array_module(target).where(target == self.pad_id, -1, target)
        return self.softmax.forward(score, target)

    def backward(self, dout=1):
        dh = self.decoder_norm.backward(self.affine.backward(self.softmax.backward(dout)))
        dmemory = 0
        for block in reversed(self.decoder_blocks):
            dh, dm = block.backward(dh)
            dmemory = dmemory + dm
        self.tgt_embed.backward(self.tgt_position.backward(dh))
        dh = self.encoder_norm.backward(dmemory)
        for block in reversed(self.encoder_blocks):
            dh = block.backward(dh)
        self.src_embed.backward(self.src_position.backward(dh))

    def generate(self, xs, start_id, sample_size, end_id=None):
        """Greedy answers (N, sample_size), all questions decoded together. Incremental: each
        step runs the decoder on the newest position only, against cached keys and values (the
        encoder's, once; the earlier positions', which causal attention never changes)."""
        self._step_weights = []  # first: a refused call shows no weights rather than the last call's
        xs = batch_to(_ids(xs, "Transformer.generate", self.vocab_size), self)  # decoded where the model is
        memory = self.encode(xs)
        memory_kv = [block.cross_attention.keys_values(memory) for block in self.decoder_blocks]
        caches = [{} for _ in self.decoder_blocks]
        position = [0]

        def step(ids):
            h = self.tgt_position.forward(self.tgt_embed.forward(ids), offset=position[0])
            for block, cache, kv in zip(self.decoder_blocks, caches, memory_kv):
                h = block.step(h, cache, kv, self.src_mask)
            position[0] += 1
            self._step_weights.append(self.decoder_blocks[-1].cross_attention.attention_weights)
            return self.affine.forward(self.decoder_norm.forward(h))

        xp = array_module(memory)
        start = _start_ids(start_id, xs.shape[0], xp)
        # No steps yet, but shaped (N, heads, 0, T_in): sample_size=0 then gives (N, 0, T_in) weights.
        heads = self.decoder_blocks[-1].cross_attention.n_heads
        self._step_weights = [xp.empty((xs.shape[0], heads, 0, xs.shape[1]), dtype=memory.dtype)]
        return _greedy(step, start, _sample_size(sample_size), end_id)

    @property
    def attention_weights(self):
        """(N, T_out, T_in): the last decoder block's attention over the question, heads averaged,
        of the last forward or of every step of the last generate (T_out = the steps decoded: 0
        for ``sample_size=0``); None before either and after a refused generate."""
        if self._step_weights:
            return array_module(self._step_weights[0]).concatenate(self._step_weights, axis=2).mean(axis=1)
        weights = self.decoder_blocks[-1].cross_attention.attention_weights
        return None if weights is None or self._step_weights is not None else weights.mean(axis=1)
