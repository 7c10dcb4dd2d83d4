"""The book's word2vec models (chapters 3 and 4), on the layer API and trained by the Trainer.

* ``SimpleCBOW`` / ``SimpleSkipGram``: one-hot inputs through MatMul, a full softmax over the
  vocabulary (chapter 3; the book's small example). W_in is shared by the input MatMuls (the
  Trainer's TiedParams merges their gradients, as the book's ``remove_duplicate``).
* ``CBOW`` / ``SkipGram``: an Embedding in, NegativeSamplingLoss out (chapter 4; the book trains
  them with window 5, hidden 100, batch 100 and Adam on PTB). The book's one Embedding layer per
  context position (all sharing W_in) is one Embedding over the (N, 2 * window) context ids, and
  its sample_size + 1 EmbeddingDot layers one gather over the positive and the negatives: same
  loss and gradients, and both gradients stay row-sparse, so the optimizer updates only the rows
  a batch touched (with ``optim.Adam(lazy=True)`` or SGD, see optim's docstring).

``word_vecs`` is W_in (V, hidden), as in the book. ``seed`` fixes the initial weights and the
negative sampler.
"""
from __future__ import annotations

import numpy as np

from ..kernels.dispatch import array_module
from ..layers import Embedding, MatMul, NegativeSamplingLoss, SoftmaxWithLoss


def _weights(rng, shape, dtype):
    return (0.01 * rng.standard_normal(shape)).astype(dtype)


def _sampler_seed(rng):
    return int(rng.integers(0, 2**63))


def _check_contexts(contexts, window_size, who):
    if contexts.ndim < 2 or contexts.shape[1] != 2 * window_size:
        raise ValueError(f"{who}: contexts must have {2 * window_size} columns (2 * window_size), got shape "
                         f"{tuple(contexts.shape)}")


class SimpleCBOW:
    """Chapter 3's CBOW: the mean of the one-hot contexts through W_in, W_out, softmax.

    ``forward(contexts, target)``: contexts one-hot (N, 2 * window_size, V), target one-hot
    (N, V) or ids (N,) (``convert_one_hot`` of ``create_contexts_target``'s output)."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int = 1, seed: int | None = None,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype)
        W_out = _weights(rng, (hidden_size, vocab_size), dtype)
        self.window_size = window_size
        self.in_layers = [MatMul(W_in) for _ in range(2 * window_size)]
        self.out_layer = MatMul(W_out)
        self.loss_layer = SoftmaxWithLoss()
        layers = self.in_layers + [self.out_layer]
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]
        self.word_vecs = W_in

    def forward(self, contexts, target):
        _check_contexts(contexts, self.window_size, "SimpleCBOW.forward")
        dtype = self.word_vecs.dtype
        h = sum(layer.forward(contexts[:, i].astype(dtype, copy=False)) for i, layer in enumerate(self.in_layers))
        h *= 1 / len(self.in_layers)
        score = self.out_layer.forward(h)
        return self.loss_layer.forward(score, target)

    def backward(self, dout=1):
        ds = self.loss_layer.backward(dout)
        da = self.out_layer.backward(ds)
        da *= 1 / len(self.in_layers)
        for layer in self.in_layers:
            layer.backward(da)
        return None


class SimpleSkipGram:
    """Chapter 3's skip-gram: the one-hot target through W_in, W_out, a softmax loss per
    context position (summed). ``forward(contexts, target)`` as SimpleCBOW's."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int = 1, seed: int | None = None,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype)
        W_out = _weights(rng, (hidden_size, vocab_size), dtype)
        self.window_size = window_size
        self.in_layer = MatMul(W_in)
        self.out_layer = MatMul(W_out)
        self.loss_layers = [SoftmaxWithLoss() for _ in range(2 * window_size)]
        self.params = self.in_layer.params + self.out_layer.params
        self.grads = self.in_layer.grads + self.out_layer.grads
        self.word_vecs = W_in

    def forward(self, contexts, target):
        _check_contexts(contexts, self.window_size, "SimpleSkipGram.forward")
        h = self.in_layer.forward(target.astype(self.word_vecs.dtype, copy=False))
        s = self.out_layer.forward(h)
        return sum(layer.forward(s, contexts[:, i]) for i, layer in enumerate(self.loss_layers))

    def backward(self, dout=1):
        ds = sum(layer.backward(dout) for layer in self.loss_layers)
        dh = self.out_layer.backward(ds)
        self.in_layer.backward(dh)
        return None


class _NegativeSamplingModel:
    """What CBOW and SkipGram share: W_in behind an Embedding, W_out behind NegativeSamplingLoss."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int, corpus, sample_size: int = 5,
                 power: float = 0.75, seed: int | None = None, dtype=np.float32):
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype)
        W_out = _weights(rng, (vocab_size, hidden_size), dtype)
        self.window_size = window_size
        self.in_layer = Embedding(W_in)
        self.ns_loss = NegativeSamplingLoss(W_out, corpus, power=power, sample_size=sample_size,
                                            seed=_sampler_seed(rng))
        self.params = self.in_layer.params + self.ns_loss.params
        self.grads = self.in_layer.grads + self.ns_loss.grads
        self.word_vecs = W_in


class CBOW(_NegativeSamplingModel):
    """Chapter 4's CBOW: the mean of the context words' W_in rows, negative sampling over W_out.

    ``forward(contexts, target)``: context ids (N, 2 * window_size), target ids (N,)
    (``create_contexts_target``'s output); the loss is the book's (positive plus ``sample_size``
    negatives, each a mean over the batch)."""

    def forward(self, contexts, target):
        _check_contexts(contexts, self.window_size, "CBOW.forward")
        h = self.in_layer.forward(contexts).sum(axis=1)  # (N, 2w, H) -> (N, H), in order of position
        h *= 1 / contexts.shape[1]
        return self.ns_loss.forward(h, target)

    def backward(self, dout=1):
        dh = self.ns_loss.backward(dout)
        dh *= 1 / (2 * self.window_size)
        idx = self.in_layer.saved("idx")
        self.in_layer.backward(array_module(dh).broadcast_to(dh[:, None, :], tuple(idx.shape) + dh.shape[1:]))
        return None


class SkipGram(_NegativeSamplingModel):
    """Chapter 4's skip-gram: the target's W_in row against each of the 2 * window_size context
    words and their negatives; the loss is the sum over context positions of the book's loss.
    ``forward(contexts, target)`` as CBOW's."""

    def forward(self, contexts, target):
        _check_contexts(contexts, self.window_size, "SkipGram.forward")
        h = self.in_layer.forward(target)
        return self.ns_loss.forward(h, contexts)  # each context word a positive, with its negatives

    def backward(self, dout=1):
        self.in_layer.backward(self.ns_loss.backward(dout))
        return None
