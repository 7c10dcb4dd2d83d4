"""Negative sampling (book ch. 4): EmbeddingDot, UnigramSampler, NegativeSamplingLoss.

The book builds ``sample_size + 1`` EmbeddingDot layers and as many SigmoidWithLoss layers, all
sharing one W; here one EmbeddingDot scores the positive and every negative in one call (the
gather_dot kernel) and the gradient of W stays row-sparse (RowSparseGrad), with the same loss
and gradients.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..kernels import gather_dot, gather_dot_backward, sample_negatives
from ..kernels.dispatch import array_module
from ..kernels.sgns import NoiseTable
from ..kernels.validate import as_id_array
from .base import Layer, check_dout, check_input, check_param
from .embedding import RowSparseGrad, SparseRows
from .losses import SigmoidWithLoss


class EmbeddingDot(Layer):
    """``out[n, ...] = W[idx[n, ...]] . h[n]``: the book's EmbeddingDot, for ids of shape (N,)
    (one score per row, as in the book) or (N, K, ...) (several words scored against each h[n]).

    ``forward(h, idx)`` takes h (N, D) float (cast to W's dtype) and integer ids in ``[0, V)``;
    ``backward(dout)`` returns dh (N, D) and writes the row-sparse gradient of W into
    ``grads[0]`` (a RowSparseGrad: dense array + the rows touched).
    """

    def __init__(self, W):
        self.params = [check_param(W, "EmbeddingDot", "W", 2)]
        self.grads = [RowSparseGrad.zeros_like(W)]
        self.h = self.idx = None
        self._rows = SparseRows()

    def forward(self, h, idx):
        (W,) = self.params
        h = check_input(h, "EmbeddingDot.forward", what="h")
        if h.ndim != 2 or h.shape[1] != W.shape[1]:
            raise ValueError(f"EmbeddingDot.forward: h must have shape (N, {W.shape[1]}), got {tuple(h.shape)}")
        h = h.astype(W.dtype, copy=False)
        out = gather_dot(W, idx, h)  # validates the ids and their shape against h
        self.h, self.idx = h, as_id_array(idx, like=W)
        return out

    def backward(self, dout):
        (W,), (dW,) = self.params, self.grads
        h, idx = self.saved("h", "idx")
        dout = check_dout(dout, idx.shape, "EmbeddingDot.backward")
        dh = gather_dot_backward(W, idx, h, dout, self._rows.clear(dW))
        self._rows.record(dW, idx)
        return dh


class UnigramSampler:
    """The book's UnigramSampler: ``sample_size`` negatives per target, drawn from the unigram
    distribution of ``corpus`` raised to ``power``, never the target itself.

    An alias table is built once (O(1) per draw; the book calls ``np.random.choice`` per row).
    Draws are counter-based (see fastnlp.kernels.sgns): the same ``seed`` gives the same
    negatives on every backend; ``counter`` (public, the index of the next draw slot) advances
    by ``target.size * sample_size`` per call, so resetting it replays the stream. ``seed=None``
    picks a random seed. Ids range over ``[0, max(corpus) + 1)``; words that never occur are
    never drawn. Unlike the book (``np.random.choice(..., replace=False)``) the negatives of one
    row are independent draws, as in word2vec.c and gensim: a row may repeat a negative.
    """

    def __init__(self, corpus, power: float, sample_size: int, seed: int | None = None):
        corpus = np.asarray(corpus.get() if hasattr(corpus, "get") else corpus)
        if corpus.size == 0:
            raise ValueError("UnigramSampler: empty corpus")
        if corpus.dtype.kind not in "iu":
            raise TypeError(f"UnigramSampler: corpus must hold integer word ids, got dtype {corpus.dtype}")
        if int(corpus.min()) < 0:
            raise ValueError(f"UnigramSampler: word ids must be >= 0, got {int(corpus.min())}")
        if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral) or sample_size < 1:
            raise ValueError(f"UnigramSampler: sample_size must be a positive integer, got {sample_size!r}")
        counts = np.bincount(corpus.reshape(-1).astype(np.int64))
        self.table = NoiseTable.from_counts(counts, power)
        self.vocab_size = counts.shape[0]
        self.power, self.sample_size = power, int(sample_size)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
            raise ValueError(f"UnigramSampler: seed must be an integer in [0, 2**64), got {seed!r}")
        self.seed, self.counter = int(seed), 0

    @property
    def word_p(self) -> np.ndarray:
        """The noise distribution actually sampled (the book's attribute)."""
        return self.table.probabilities

    def get_negative_sample(self, target):
        """int64 ids of shape ``target.shape + (sample_size,)``, each row free of its target."""
        out = sample_negatives(self.table, target, self.sample_size, self.seed, self.counter)
        self.counter += out.size
        return out


class NegativeSamplingLoss(Layer):
    """The book's NegativeSamplingLoss: SigmoidWithLoss over the positive (label 1) and
    ``sample_size`` negatives (label 0) scored against the output matrix ``W`` (V, D).

    ``forward(h, target)``: h (N, D), target (N,) as in the book, or (N, C) for C positives per
    row (skip-gram's 2 * window context words): the loss is the sum over the C positions of the
    book's loss (each: mean over the batch of -log sigma(s+) - sum_i log sigma(-s_i)).
    ``backward(dout=1)`` returns dh; ``grads[0]`` is W's row-sparse gradient. ``seed`` fixes
    the sampler; ``sampler.counter = 0`` replays its draws (as a gradient check needs).
    """

    def __init__(self, W, corpus, power: float = 0.75, sample_size: int = 5, seed: int | None = None):
        super().__init__()
        self.sample_size = sample_size
        self.sampler = UnigramSampler(corpus, power, sample_size, seed)
        self.embed_dot = EmbeddingDot(W)
        self.loss_layer = SigmoidWithLoss()
        if W.shape[0] < self.sampler.vocab_size:
            raise ValueError(f"NegativeSamplingLoss: W has {W.shape[0]} rows but the corpus has word id "
                             f"{self.sampler.vocab_size - 1}")
        self.params, self.grads = self.embed_dot.params, self.embed_dot.grads
        self._labels = {}
        self.terms = None

    def forward(self, h, target):
        target = as_id_array(target, like=self.params[0])
        who = "NegativeSamplingLoss.forward"
        if target.ndim not in (1, 2):
            raise ValueError(f"{who}: target must be (N,) or (N, C) ids, got shape {tuple(target.shape)}")
        if target.size == 0:
            raise ValueError(f"{who}: empty batch (target of shape {tuple(target.shape)}): nothing to score")
        # h is checked here, before the sampler draws: a refused call must not use up negatives.
        h = check_input(h, who, what="h")
        D = self.params[0].shape[1]
        if h.ndim != 2 or tuple(h.shape) != (target.shape[0], D):
            raise ValueError(f"{who}: h must have shape ({target.shape[0]}, {D}) (one row per target row), got "
                             f"shape {tuple(h.shape)}")
        negatives = self.sampler.get_negative_sample(target)  # (N, [C,] S); checks the ids first
        xp = array_module(negatives)
        idx = xp.concatenate([target.reshape(target.shape + (1,)).astype(np.int64), negatives], axis=-1)
        idx = idx.reshape(target.shape[0], -1)  # (N, C * (1 + S)): positive, then its negatives
        score = self.embed_dot.forward(h, idx)
        # SigmoidWithLoss averages over all N * C * (1 + S) scores; the book sums 1 + S means
        # over the batch (per context position), hence the factor.
        self.terms = idx.shape[1]
        return self.loss_layer.forward(score, self._labels_for(idx.shape, xp)) * self.terms

    def backward(self, dout=1):
        terms = self.saved("terms")
        dout = check_dout(dout, (), "NegativeSamplingLoss.backward")
        dscore = self.loss_layer.backward(dout * terms)
        return self.embed_dot.backward(dscore.astype(self.params[0].dtype, copy=False))

    def _labels_for(self, shape, xp):
        key = (shape, xp.__name__)
        labels = self._labels.get(key)
        if labels is None:
            labels = xp.zeros(shape, dtype=self.params[0].dtype)
            labels[:, 0::self.sample_size + 1] = 1
            self._labels = {key: labels}  # one batch shape at a time (the last batch may differ)
        return labels
