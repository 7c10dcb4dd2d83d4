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
negative sampler. ``init`` chooses the initial weights: ``"book"`` (the default, ``None``) is the
book's, value for value: W_in and W_out N(0, 0.01^2). ``"scaled"`` takes the same draws with W_in,
a table of word vectors looked up, N(0, 1) (PyTorch's ``nn.Embedding``) and W_out, which scores a
hidden vector of ``hidden_size`` numbers, N(0, 1/hidden_size), so the first scores have about
unit spread. The book's small weights suit word2vec (the scores start near 0 and the vectors
grow as they learn), so it stays the default; ``"scaled"`` is there for comparison.
"""
from __future__ import annotations

import numpy as np

from .. import functions as F
from ..device import DeviceMixin
from ..kernels.dispatch import array_module
from ..kernels.validate import check_ids
from ..layers import Embedding, MatMul, NegativeSamplingLoss, SoftmaxWithLoss
from ..layers.base import check_input
from ..serialization import saveable
from .simple import resolve_init


def _weights(rng, shape, dtype, init="book", fan_in=None):
    """N(0, 0.01^2) (``"book"``); with ``"scaled"``, N(0, 1) for a table (``fan_in`` None) or
    N(0, 1/fan_in) for weights that score a hidden vector. The same draws either way."""
    draw = rng.standard_normal(shape)
    if init == "book":
        return (0.01 * draw).astype(dtype)
    return (draw if fan_in is None else draw / np.sqrt(fan_in)).astype(dtype)


def _sampler_seed(rng):
    return int(rng.integers(0, 2**63))


def _as_array(x, like, who, what):
    """``x`` as an array on ``like``'s device: arrays pass as they are, lists and tuples (of ids
    or of one-hot rows) become arrays; a ragged list raises TypeError naming it."""
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return x
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{who}: {what} must be an array or a (rectangular) list, got {type(x).__name__}")
    try:
        array = np.asarray(x)
    except ValueError:  # NumPy >= 1.24: inhomogeneous
        array = None
    if array is None or array.dtype == object:
        raise TypeError(f"{who}: {what} must be a rectangular list (or an array); got a ragged or mixed list")
    if array.size == 0 and array.dtype.kind == "f":  # an empty list: no floats in it
        array = array.astype(np.int64)
    return array_module(like).asarray(array)


def _ids(x, like, who, what):
    """Integer ids (an array or a list of ints): TypeError naming any other dtype."""
    x = _as_array(x, like, who, what)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{who}: {what} must be integer ids, got dtype {x.dtype}")
    return x


def _check_ids_in_range(x, upper, who, what):
    if x.size:
        try:
            check_ids(x, upper, what=what)  # IndexError naming the id
        except IndexError as exc:
            raise IndexError(f"{who}: {exc}") from None


def _columns(window_size):
    return f"{2 * window_size} columns (2 * window_size)"


def _labels(t, N, V, like, who, what):
    """Class ids (N,) from ids (N,) or one-hot rows (N, V), checked (dtype, shape, range)."""
    t = _as_array(t, like, who, what)
    if t.ndim == 2 and tuple(t.shape) == (N, V):
        return F.as_labels(t, (N, V))  # numbers, exactly one 1 per row
    if t.ndim != 1 or t.shape[0] != N:
        raise ValueError(f"{who}: {what} must be ids of shape ({N},) or one-hot rows of shape ({N}, {V}), "
                         f"got shape {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{who}: {what} ids must be integers, got dtype {t.dtype}")
    _check_ids_in_range(t, V, who, f"{what} id")
    return t


def _non_empty(N, who, shape):
    if N == 0:
        raise ValueError(f"{who}: empty batch (contexts of shape {tuple(shape)}): there is nothing to learn from")


@saveable
class SimpleCBOW(DeviceMixin):
    """Chapter 3's CBOW: the mean of the one-hot contexts through W_in, W_out, softmax.

    ``forward(contexts, target)``: contexts one-hot (N, 2 * window_size, V) of any real dtype,
    target one-hot (N, V) or ids (N,) (``convert_one_hot`` of ``create_contexts_target``'s
    output). Lists work as arrays; every input is checked (dtype, shape, range) before any
    layer runs. ``init``: ``"book"`` (default) or ``"scaled"``, see the module's docstring."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int = 1, seed: int | None = None,
                 dtype=np.float32, init: str | None = None):
        self.init = resolve_init(init, "book", type(self).__name__)
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype, self.init)
        W_out = _weights(rng, (hidden_size, vocab_size), dtype, self.init, fan_in=hidden_size)
        self.window_size = window_size
        self.in_layers = [MatMul(W_in) for _ in range(2 * window_size)]
        self.out_layer = MatMul(W_out)
        self.loss_layer = SoftmaxWithLoss()
        layers = self.in_layers + [self.out_layer]
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]
        self.word_vecs = W_in
        self._follow_default_device()

    @property
    def vocab_size(self) -> int:
        return self.word_vecs.shape[0]

    def forward(self, contexts, target):
        who, W, V, C = "SimpleCBOW.forward", self.word_vecs, self.vocab_size, 2 * self.window_size
        # Every check comes before the first layer runs: the input is cast to W's dtype below,
        # which would turn bool, complex or str arrays into numbers without a word.
        contexts = check_input(_as_array(contexts, W, who, "contexts"), who, what="contexts")
        if contexts.ndim != 3 or contexts.shape[1] != C or contexts.shape[2] != V:
            raise ValueError(f"{who}: contexts must be one-hot rows of shape (N, {C}, {V}) "
                             f"({_columns(self.window_size)}, each a one-hot row over the vocabulary of {V}), "
                             f"got shape {tuple(contexts.shape)}")
        _non_empty(contexts.shape[0], who, contexts.shape)
        target = _labels(target, contexts.shape[0], V, W, who, "target")
        dtype = W.dtype
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


@saveable
class SimpleSkipGram(DeviceMixin):
    """Chapter 3's skip-gram: the one-hot target through W_in, W_out, a softmax loss per
    context position (summed).

    ``forward(contexts, target)``: target one-hot (N, V); contexts one-hot (N, 2 * window_size, V)
    or ids (N, 2 * window_size) (``convert_one_hot`` of ``create_contexts_target``'s output, as in
    the book, or the contexts left as ids). ``init``: ``"book"`` (default) or ``"scaled"``, see the
    module's docstring."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int = 1, seed: int | None = None,
                 dtype=np.float32, init: str | None = None):
        self.init = resolve_init(init, "book", type(self).__name__)
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype, self.init)
        W_out = _weights(rng, (hidden_size, vocab_size), dtype, self.init, fan_in=hidden_size)
        self.window_size = window_size
        self.in_layer = MatMul(W_in)
        self.out_layer = MatMul(W_out)
        self.loss_layers = [SoftmaxWithLoss() for _ in range(2 * window_size)]
        self.params = self.in_layer.params + self.out_layer.params
        self.grads = self.in_layer.grads + self.out_layer.grads
        self.word_vecs = W_in
        self._follow_default_device()

    @property
    def vocab_size(self) -> int:
        return self.word_vecs.shape[0]

    def forward(self, contexts, target):
        who, W, V, C = "SimpleSkipGram.forward", self.word_vecs, self.vocab_size, 2 * self.window_size
        target = check_input(_as_array(target, W, who, "target"), who, what="target")  # before the cast below
        if target.ndim != 2 or target.shape[1] != V:
            raise ValueError(f"{who}: target must be one-hot rows of shape (N, {V}) (one row over the vocabulary "
                             f"of {V} per target word), got shape {tuple(target.shape)}")
        N = target.shape[0]
        contexts = _as_array(contexts, W, who, "contexts")
        if contexts.ndim == 3 and tuple(contexts.shape) == (N, C, V):
            contexts = F.as_labels(contexts, (N, C, V))  # one-hot rows, as the book passes them
        elif contexts.ndim == 2 and tuple(contexts.shape) == (N, C):
            if contexts.dtype.kind not in "iu":
                raise TypeError(f"{who}: contexts ids must be integers, got dtype {contexts.dtype}")
            _check_ids_in_range(contexts, V, who, "context id")
        else:
            raise ValueError(f"{who}: contexts must be ids of shape ({N}, {C}) or one-hot rows of shape "
                             f"({N}, {C}, {V}) ({_columns(self.window_size)}, a row per target row), got shape "
                             f"{tuple(contexts.shape)}")
        _non_empty(N, who, contexts.shape)
        h = self.in_layer.forward(target.astype(W.dtype, copy=False))
        s = self.out_layer.forward(h)
        return sum(layer.forward(s, contexts[:, i]) for i, layer in enumerate(self.loss_layers))

    def backward(self, dout=1):
        ds = sum(layer.backward(dout) for layer in self.loss_layers)
        dh = self.out_layer.backward(ds)
        self.in_layer.backward(dh)
        return None


class _NegativeSamplingModel(DeviceMixin):
    """What CBOW and SkipGram share: W_in behind an Embedding, W_out behind NegativeSamplingLoss."""

    def __init__(self, vocab_size: int, hidden_size: int, window_size: int, corpus, sample_size: int = 5,
                 power: float = 0.75, seed: int | None = None, dtype=np.float32, init: str | None = None):
        self.init = resolve_init(init, "book", type(self).__name__)
        rng = np.random.default_rng(seed)
        W_in = _weights(rng, (vocab_size, hidden_size), dtype, self.init)
        W_out = _weights(rng, (vocab_size, hidden_size), dtype, self.init, fan_in=hidden_size)
        self.window_size = window_size
        self.in_layer = Embedding(W_in)
        self.ns_loss = NegativeSamplingLoss(W_out, corpus, power=power, sample_size=sample_size,
                                            seed=_sampler_seed(rng))
        self.params = self.in_layer.params + self.ns_loss.params
        self.grads = self.in_layer.grads + self.ns_loss.grads
        self.word_vecs = W_in
        self._follow_default_device()

    @property
    def vocab_size(self) -> int:
        return self.word_vecs.shape[0]

    def _batch(self, contexts, target, who):
        """Both inputs as integer arrays of the documented shapes, checked before anything runs
        (so a refused call draws no negatives). Ranges are checked by the Embedding and the
        sampler, both before anything changes."""
        W, C = self.word_vecs, 2 * self.window_size
        contexts = _ids(contexts, W, who, "contexts")
        target = _ids(target, W, who, "target")
        if contexts.ndim != 2 or contexts.shape[1] != C:
            raise ValueError(f"{who}: contexts must be ids (N, {C}) with {_columns(self.window_size)}, got shape "
                             f"{tuple(contexts.shape)}")
        if target.ndim != 1:
            raise ValueError(f"{who}: target must be ids of shape (N,) (one word per row), got shape "
                             f"{tuple(target.shape)}")
        if target.shape[0] != contexts.shape[0]:
            raise ValueError(f"{who}: contexts of shape {tuple(contexts.shape)} and target of shape "
                             f"{tuple(target.shape)} differ in their number of rows")
        _non_empty(contexts.shape[0], who, contexts.shape)
        return contexts, target


@saveable
class CBOW(_NegativeSamplingModel):
    """Chapter 4's CBOW: the mean of the context words' W_in rows, negative sampling over W_out.

    ``forward(contexts, target)``: context ids (N, 2 * window_size), target ids (N,)
    (``create_contexts_target``'s output); the loss is the book's (positive plus ``sample_size``
    negatives, each a mean over the batch). ``init``: ``"book"`` (default) or ``"scaled"``, see the
    module's docstring."""

    def forward(self, contexts, target):
        contexts, target = self._batch(contexts, target, "CBOW.forward")
        h = self.in_layer.forward(contexts).sum(axis=1)  # (N, 2w, H) -> (N, H), in order of position
        h *= 1 / contexts.shape[1]
        return self.ns_loss.forward(h, target)

    def backward(self, dout=1):
        dh = self.ns_loss.backward(dout)
        dh *= 1 / (2 * self.window_size)
        idx = self.in_layer.saved("idx")
        self.in_layer.backward(array_module(dh).broadcast_to(dh[:, None, :], tuple(idx.shape) + dh.shape[1:]))
        return None


@saveable
class SkipGram(_NegativeSamplingModel):
    """Chapter 4's skip-gram: the target's W_in row against each of the 2 * window_size context
    words and their negatives; the loss is the sum over context positions of the book's loss.
    ``forward(contexts, target)`` as CBOW's; ``init`` too."""

    def forward(self, contexts, target):
        contexts, target = self._batch(contexts, target, "SkipGram.forward")
        h = self.in_layer.forward(target)
        return self.ns_loss.forward(h, contexts)  # each context word a positive, with its negatives

    def backward(self, dout=1):
        self.in_layer.backward(self.ns_loss.backward(dout))
        return None
