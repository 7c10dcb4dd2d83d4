"""Recurrent language models (book ch. 5-7): SimpleRnnlm, Rnnlm, BetterRnnlm, with generation.

Every model maps ids (N, T) to scores (N, T, V) and carries its recurrent state across calls
(truncated BPTT); ``reset_state()`` clears it. ``forward(xs, ts)`` returns the mean
cross-entropy, ``backward()`` fills ``grads``; ``params``/``grads`` list arrays in layer
order, a tied weight twice (the optimizer step merges it, see ``fastnlp.optim.TiedParams``).
``seed`` makes the initialisation reproducible, and ``init`` chooses it: ``"book"`` (the default,
``None``) is the book's, value for value: embeddings N(0, 0.01^2), Xavier-style N(0, 1/fan_in)
weights elsewhere, zero biases. ``"scaled"`` takes the same draws but gives the embedding table
unit variance, N(0, 1) (PyTorch's ``nn.Embedding``), so the first LSTM's input is not a hundred
times smaller than its weights expect (BetterRnnlm's table, being also the output weight, gets
the dense scale N(0, 1/hidden_size) instead). On PTB the book's initialisation trains better, so
it stays the default (bench/compare_init.py: Rnnlm 100/100, two epochs of 400000 words,
validation perplexity 321.4 then 255.5 with the book's, 345.1 then 300.8 with the scaled one).
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from .. import functions as F
from ..device import DeviceMixin, host
from ..kernels.dispatch import array_module
from ..kernels.memory import aligned_array
from ..kernels.validate import as_id_array, check_ids
from ..layers.recurrent import (TimeAffine, TimeDropout, TimeEmbedding, TimeLSTM, TimeRNN,
                                TimeSoftmaxWithLoss)
from ..serialization import saveable
from .simple import resolve_init


class _LanguageModel(DeviceMixin):
    """predict / forward / backward / reset_state over ``self.layers``, plus generation."""

    layers: list
    loss_layer: TimeSoftmaxWithLoss

    def _collect(self):
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self.recurrent_layers = [layer for layer in self.layers if hasattr(layer, "reset_state")]
        self.dropout_layers = [layer for layer in self.layers if isinstance(layer, TimeDropout)]
        self._follow_default_device()

    @property
    def vocab_size(self) -> int:
        return self.layers[0].params[0].shape[0]

    def train(self, mode: bool = True):
        """Training mode (dropout on) or evaluation (``train(False)``, ``eval()``)."""
        for layer in self.dropout_layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def predict(self, xs, train_flg: bool | None = None):
        """Scores (N, T, V) for ids (N, T); ``train_flg`` sets the mode first, as in the book."""
        xs = self._check_xs(xs, f"{type(self).__name__}.predict")
        if train_flg is not None:
            self.train(train_flg)
        for layer in self.layers:  # the embedding, first, checks the ids' range
            xs = layer.forward(xs)
        return xs

    def forward(self, xs, ts, train_flg: bool | None = None):
        """The mean cross-entropy of predicting ``ts`` (ids (N, T), -1 for padding, or one-hot
        (N, T, V)) from ``xs`` (ids (N, T)). Both are checked before anything runs, so a refused
        call leaves the carried state (and the dropout generators) as they were."""
        who = f"{type(self).__name__}.forward"
        xs = self._check_xs(xs, who)
        ts = self._check_ts(ts, xs.shape, who)
        return self.loss_layer.forward(self.predict(xs, train_flg), ts)

    def _check_xs(self, xs, who):
        """Integer ids (N, T) with N, T >= 1 (the range is the embedding's check, which runs first)."""
        xs = _as_ids(xs, self.params[0], who, "xs")
        if xs.ndim != 2:
            raise ValueError(f"{who}: xs must be ids of shape (N, T), got shape {tuple(xs.shape)}")
        if xs.size == 0:
            raise ValueError(f"{who}: empty batch: xs must be ids (N, T) with N >= 1 and T >= 1, got shape "
                             f"{tuple(xs.shape)}")
        return xs

    def _check_ts(self, ts, shape, who):
        """Labels of xs's shape in [0, V) (or the loss's ignore label, -1: padding), or one-hot
        rows (N, T, V); returns the labels."""
        V = self.vocab_size
        ts = _as_array(ts, self.params[0], who, "ts")
        if ts.ndim == 3 and tuple(ts.shape) == tuple(shape) + (V,):
            return F.as_labels(ts, tuple(shape) + (V,))  # one-hot rows: numbers, one 1 per row
        if tuple(ts.shape) != tuple(shape):
            raise ValueError(f"{who}: ts of shape {tuple(ts.shape)} do not fit xs of shape {tuple(shape)}: ts must be "
                             f"labels of xs's shape (or one-hot rows of shape {tuple(shape) + (V,)})")
        if ts.dtype.kind not in "iu":
            raise TypeError(f"{who}: ts must be integer labels, got dtype {ts.dtype}")
        labels, ignore = ts, self.loss_layer.ignore_label
        if ignore is not None:
            keep = ts != ignore
            if not bool(keep.all()):
                labels = array_module(ts).where(keep, ts, 0)
        check_ids(labels, V, what="label")  # IndexError naming the label
        return ts

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def reset_state(self):
        for layer in self.recurrent_layers:
            layer.reset_state()

    def get_state(self) -> list:
        """The carried recurrent state, ``[(h, c), ...]`` per recurrent layer (None when reset)."""
        return [(layer.h, layer.c) for layer in self.recurrent_layers]

    def set_state(self, state) -> None:
        for layer, (h, c) in zip(self.recurrent_layers, state):
            layer.set_state(h, c)

    def generate(self, start_ids, length: int = 100, skip_ids=None, sampling: str = "sample",
                 temperature: float = 1.0, top_k: int | None = None, seed: int | None = None) -> list:
        """Continue ``start_ids`` (an id or a list of ids) by ``length`` ids; returns the start
        ids followed by the new ones. Ids are integers (Python or NumPy): floats, bools and
        strings, as start ids or ``skip_ids``, raise TypeError.

        ``sampling="sample"`` (the book's way) draws from the softmax of ``scores /
        temperature`` restricted to the ``top_k`` best ids (all when None), with ``seed`` for a
        repeatable draw; ``"greedy"`` takes the most probable next id. Ids in ``skip_ids`` (say ``<unk>``) are never
        produced. The model runs in evaluation mode from a fresh state, and its own state and
        mode are restored afterwards, so generating in the middle of training changes nothing.
        """
        start = _generation_ids(start_ids, "start_ids")
        if start.size == 0:
            raise ValueError("generate needs at least one start id")
        if sampling not in ("greedy", "sample"):
            raise ValueError(f"sampling must be 'greedy' or 'sample', got {sampling!r}")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"length must be a non-negative integer, got {length!r}")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be positive and finite, got {temperature}")
        V = self.vocab_size
        if top_k is not None and not (isinstance(top_k, (int, np.integer)) and 1 <= top_k <= V):
            raise ValueError(f"top_k must be an integer in [1, {V}], got {top_k!r}")
        outside = start[(start < 0) | (start >= V)]
        if outside.size:
            raise IndexError(f"start id {int(outside[0])} is out of range for a vocabulary of {V}")
        start = start.astype(np.int64).tolist()
        banned = np.zeros(V, dtype=bool)
        if skip_ids is not None:
            skip = _generation_ids(skip_ids, "skip_ids")
            outside = skip[(skip < 0) | (skip >= V)]
            if outside.size:
                raise IndexError(f"skip_ids must lie in [0, {V}), got {int(outside[0])}")
            banned[skip.astype(np.int64)] = True
        if banned.all():
            raise ValueError("skip_ids exclude every word; nothing can be generated")
        rng = np.random.default_rng(seed)
        saved_state = self.get_state()
        saved_modes = [layer.training for layer in self.dropout_layers]
        self.reset_state()
        self.eval()
        try:
            ids = list(start)
            xp = array_module(self.params[0])  # ids go where the model is; scores come back
            scores = self.predict(xp.asarray(np.array([start], dtype=np.int64)))[0, -1]
            for _ in range(length):
                next_id = self._pick(host(scores).astype(np.float64), banned, sampling, temperature, top_k, rng)
                ids.append(next_id)
                scores = self.predict(xp.asarray(np.array([[next_id]], dtype=np.int64)))[0, -1]
            return ids
        finally:
            self.set_state(saved_state)
            for layer, mode in zip(self.dropout_layers, saved_modes):
                layer.train(mode)

    @staticmethod
    def _pick(scores, banned, sampling, temperature, top_k, rng) -> int:
        scores = np.where(banned, -np.inf, scores)
        if top_k is not None and top_k < scores.size:
            cutoff = np.partition(scores, -top_k)[-top_k]
            scores = np.where(scores >= cutoff, scores, -np.inf)
        if sampling == "greedy":
            return int(np.argmax(scores))
        p = F.softmax(scores / temperature)
        return int(rng.choice(p.size, p=p / p.sum()))


def _as_array(x, like, who, what):
    """``x`` as an array on ``like``'s device (lists of ints allowed; a ragged one raises
    TypeError naming it)."""
    try:
        return as_id_array(x, like=like)
    except TypeError as exc:
        raise TypeError(f"{who}: {what}: {exc}") from None


def _as_ids(x, like, who, what):
    x = _as_array(x, like, who, what)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{who}: {what} must be integer ids, got dtype {x.dtype}")
    return x


def _generation_ids(ids, what):
    """``ids`` (an integer, or a list, tuple, iterable or array of them) as a flat host integer
    array; TypeError naming the type or dtype of anything else (floats, bools, strings, None)."""
    if hasattr(ids, "get") and hasattr(ids, "dtype"):  # a device array
        ids = ids.get()
    direct = (list, tuple, np.ndarray, np.generic, numbers.Number)  # what np.asarray reads as it is
    if isinstance(ids, (str, bytes)) or not isinstance(ids, direct + (Iterable,)):
        raise TypeError(f"{what} must be integer ids (an int, a list of ints or an integer array), got "
                        f"{type(ids).__name__}")
    if not isinstance(ids, direct):
        ids = list(ids)  # a set, a generator, dict keys ...
    try:
        array = np.asarray(ids)
    except ValueError:
        raise TypeError(f"{what} must be integer ids in a flat or rectangular list; got a ragged list") from None
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer ids, got dtype {array.dtype}")
    return array.reshape(-1)


def _init(rng, shape, scale, dtype):
    # 64-byte aligned: the products that read and write the weights in place run faster so
    # (see kernels.memory.aligned_zeros_like)
    return aligned_array((rng.standard_normal(shape) * scale).astype(dtype))


def _embedding_scale(init):
    return 0.01 if init == "book" else 1.0


@saveable
class SimpleRnnlm(_LanguageModel):
    """Embedding -> TimeRNN -> TimeAffine, softmax loss (book ch. 5).

    ``init``: ``"book"`` (default) or ``"scaled"`` (embeddings N(0, 1)), see the module's docstring."""

    def __init__(self, vocab_size: int, wordvec_size: int, hidden_size: int, seed: int | None = None,
                 dtype=np.float32, init: str | None = None):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.init = resolve_init(init, "book", "SimpleRnnlm")
        rng = np.random.default_rng(seed)
        self.layers = [
            TimeEmbedding(_init(rng, (V, D), _embedding_scale(self.init), dtype)),
            TimeRNN(_init(rng, (D, H), 1 / np.sqrt(D), dtype), _init(rng, (H, H), 1 / np.sqrt(H), dtype),
                    np.zeros(H, dtype=dtype), stateful=True),
            TimeAffine(_init(rng, (H, V), 1 / np.sqrt(H), dtype), np.zeros(V, dtype=dtype)),
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.rnn_layer = self.layers[1]
        self._collect()


@saveable
class Rnnlm(_LanguageModel):
    """Embedding -> TimeLSTM -> TimeAffine, softmax loss (book ch. 6).

    ``init``: ``"book"`` (default) or ``"scaled"`` (embeddings N(0, 1)), see the module's docstring."""

    def __init__(self, vocab_size: int = 10000, wordvec_size: int = 100, hidden_size: int = 100,
                 seed: int | None = None, dtype=np.float32, init: str | None = None):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.init = resolve_init(init, "book", "Rnnlm")
        rng = np.random.default_rng(seed)
        self.layers = [
            TimeEmbedding(_init(rng, (V, D), _embedding_scale(self.init), dtype)),
            TimeLSTM(_init(rng, (D, 4 * H), 1 / np.sqrt(D), dtype), _init(rng, (H, 4 * H), 1 / np.sqrt(H), dtype),
                     np.zeros(4 * H, dtype=dtype), stateful=True),
            TimeAffine(_init(rng, (H, V), 1 / np.sqrt(H), dtype), np.zeros(V, dtype=dtype)),
        ]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.lstm_layer = self.layers[1]
        self._collect()


@saveable
class BetterRnnlm(_LanguageModel):
    """Two LSTM layers with dropout before, between and after them, and the output weight tied
    to the embedding (book ch. 6.5): Embedding -> Dropout -> LSTM -> Dropout -> LSTM -> Dropout
    -> Affine.

    The tie: the affine weight is ``embed_W.T``, a view of the one embedding array, so an
    update of either is an update of both (which is why ``wordvec_size`` must equal
    ``hidden_size``). ``variational=True`` shares each dropout mask over the time steps.

    ``init``: ``"book"`` (default) or ``"scaled"``: the tied table N(0, 1/hidden_size), the scale
    of a dense layer of fan-in ``hidden_size``, since it is also the output weight (N(0, 1) would
    start the scores at a spread of about sqrt(hidden_size) times the LSTM's output).
    """

    def __init__(self, vocab_size: int = 10000, wordvec_size: int = 650, hidden_size: int = 650,
                 dropout_ratio: float = 0.5, seed: int | None = None, dtype=np.float32,
                 variational: bool = False, init: str | None = None):
        V, D, H = vocab_size, wordvec_size, hidden_size
        self.init = resolve_init(init, "book", "BetterRnnlm")
        if D != H:
            raise ValueError(f"weight tying needs wordvec_size == hidden_size, got {D} and {H}")
        rng = np.random.default_rng(seed)
        embed_W = _init(rng, (V, D), 0.01 if self.init == "book" else 1 / np.sqrt(H), dtype)
        lstm1 = TimeLSTM(_init(rng, (D, 4 * H), 1 / np.sqrt(D), dtype), _init(rng, (H, 4 * H), 1 / np.sqrt(H), dtype),
                         np.zeros(4 * H, dtype=dtype), stateful=True)
        lstm2 = TimeLSTM(_init(rng, (H, 4 * H), 1 / np.sqrt(H), dtype), _init(rng, (H, 4 * H), 1 / np.sqrt(H), dtype),
                         np.zeros(4 * H, dtype=dtype), stateful=True)
        seeds = rng.integers(0, 2**63, size=3)
        drops = [TimeDropout(dropout_ratio, variational=variational, seed=int(s)) for s in seeds]
        self.layers = [TimeEmbedding(embed_W), drops[0], lstm1, drops[1], lstm2, drops[2],
                       TimeAffine(embed_W.T, np.zeros(V, dtype=dtype))]
        self.loss_layer = TimeSoftmaxWithLoss()
        self.lstm_layers = [lstm1, lstm2]
        self.drop_layers = drops
        self._collect()

    def forward(self, xs, ts, train_flg: bool = True):
        """The book's default: the loss in training mode (pass ``train_flg=False`` to evaluate)."""
        return super().forward(xs, ts, train_flg)
