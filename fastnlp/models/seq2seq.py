"""Sequence-to-sequence models of chapters 7 and 8: Seq2seq, PeekySeq2seq, AttentionSeq2seq.

The book's models, layer for layer (TimeEmbedding -> TimeLSTM encoder; TimeEmbedding ->
TimeLSTM -> (TimeAttention) -> TimeAffine decoder; TimeSoftmaxWithLoss). ``seed`` makes the
initialisation reproducible and ``init`` chooses it:

* ``"book"``: the book's, value for value: embeddings N(0, 0.01^2), Xavier-style N(0, 1/fan_in)
  LSTM and Affine weights, zero biases.
* ``"scaled"``: the same draws, but the two embedding tables N(0, 1) (PyTorch's ``nn.Embedding``);
  everything else as the book's. With the book's tables the encoder's input is about 25 times
  smaller than its LSTM's input weights (std 1/sqrt(wordvec_size)) expect, and the models sit on
  a long plateau before they learn.
* ``None`` (the default): the model's recommended one, chosen by measurement
  (bench/compare_init.py): ``"scaled"`` for AttentionSeq2seq (date task, test accuracy after
  epochs 1 and 2: 99.76%, 99.90% against the book's 0.00%, 78.44%; bidirectional 76.14%, 99.70%
  against 0.00%, 0.08%) and PeekySeq2seq (date after one epoch: 60.02% against 0.02%; addition:
  49.46% after 5 epochs against 6.86%, 92.30% after 10 against 85.18%); ``"book"`` for Seq2seq,
  where the scaled one is no better (date after one epoch: 0.06% against 0.00%; addition after 10
  epochs: 22.26% against 26.16%). Pass ``init="book"`` to reproduce the book's numbers.

The building blocks (Encoder, Decoder, ...) take ``init`` too, ``"book"`` by default.

``forward(xs, ts)`` takes questions (N, T_in) and answers (N, 1 + T_out) whose
first column is the start symbol, and returns the mean cross-entropy of predicting ``ts[:, 1:]``
from ``ts[:, :-1]``; ``backward()`` fills ``grads``; the Trainer and optimizers drive them.

``generate(xs, start_id, sample_size)`` decodes greedily and in batch: every question of
``xs`` (N, T_in) advances one step per iteration, and with ``end_id`` decoding stops as soon as
every sequence has produced it. It returns ids (N, sample_size). ``eval_seq2seq`` scores one
question as the book does; ``seq2seq_accuracy`` scores a whole set in batches and can print the
wrong answers.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..device import DeviceMixin, batch_to, host
from ..kernels.dispatch import array_module
from ..kernels.validate import as_id_array
from ..layers.attention import TimeAttention
from ..layers.recurrent import TimeAffine, TimeBiLSTM, TimeEmbedding, TimeLSTM, TimeSoftmaxWithLoss
from ..serialization import saveable
from .simple import resolve_init



def _init(rng, dtype, init="book"):
    """The initialisers: ``embed`` N(0, 0.01^2) (``"book"``) or N(0, 1) (``"scaled"``), ``dense``
    N(0, 1/fan_in), zeros. Both draw the same numbers from ``rng``."""
    def embed(V, D):
        if init == "book":
            return (rng.standard_normal((V, D)) / 100).astype(dtype)
        return rng.standard_normal((V, D)).astype(dtype)

    def dense(fan_in, fan_out):
        return (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(dtype)

    def zeros(n):
        return np.zeros(n, dtype=dtype)

    return embed, dense, zeros


def _sizes(vocab_size, wordvec_size, hidden_size):
    for name, value in (("vocab_size", vocab_size), ("wordvec_size", wordvec_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(vocab_size), int(wordvec_size), int(hidden_size)


def _collect(owner, layers):
    owner.params = [p for layer in layers for p in layer.params]
    owner.grads = [g for layer in layers for g in layer.grads]


def _ids(xs, who, vocab_size=None, what="questions"):
    """Integer ids (N, T) with T >= 1, in range when ``vocab_size`` is given."""
    xs = as_id_array(xs)
    if xs.dtype.kind not in "iu":
        raise TypeError(f"{who}: {what} must be integer ids, got dtype {xs.dtype}")
    if xs.ndim != 2 or xs.shape[1] == 0:
        raise ValueError(f"{who}: {what} must be ids of shape (N, T) with T >= 1, got shape {tuple(xs.shape)}")
    if vocab_size is not None and xs.size and (int(xs.min()) < 0 or int(xs.max()) >= vocab_size):
        bad = int(xs.min()) if int(xs.min()) < 0 else int(xs.max())
        raise IndexError(f"{who}: id {bad} in the {what} is outside the vocabulary of {vocab_size}")
    return xs


def _start_ids(start_id, N, xp):
    start = xp.asarray(start_id)
    if start.dtype.kind not in "iu" or start.ndim > 1 or (start.ndim == 1 and start.shape[0] != N):
        raise ValueError(f"start_id must be an integer id or one per question ({N}), got {start_id!r}")
    return xp.broadcast_to(start, (N,)).astype(np.int64).reshape(N, 1)


def _sample_size(sample_size):
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) or sample_size < 0:
        raise ValueError(f"sample_size must be a non-negative integer, got {sample_size!r}")
    return int(sample_size)


def _greedy(step, start, sample_size, end_id):
    """Run ``step(ids (N, 1)) -> scores (N, 1, V)`` greedily for ``sample_size`` steps; rows that
    emitted ``end_id`` keep emitting it, and the loop ends when all have."""
    xp = array_module(start)
    N = start.shape[0]
    out = xp.empty((N, sample_size), dtype=np.int64)
    ids, done = start, None
    for i in range(sample_size):
        ids = step(ids).argmax(axis=-1).reshape(N, 1)
        if end_id is not None:
            if done is not None:
                ids[done] = end_id
            done = (ids[:, 0] == end_id) if done is None else (done | (ids[:, 0] == end_id))
        out[:, i] = ids[:, 0]
        if done is not None and bool(done.all()):
            out[:, i + 1:] = end_id
            break
    return out


# ---- Seq2seq -----------------------------------------------------------------------------------

class Encoder:
    """Embedding -> LSTM over the question; ``forward`` returns the last hidden state (N, H).
    ``init``: ``"book"`` (default) or ``"scaled"``, as in the module's docstring."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng=None, dtype=np.float32, init="book"):
        V, D, H = _sizes(vocab_size, wordvec_size, hidden_size)
        embed, dense, zeros = _init(np.random.default_rng(rng), dtype, resolve_init(init, "book", "Encoder"))
        self.embed = TimeEmbedding(embed(V, D))
        self.lstm = TimeLSTM(dense(D, 4 * H), dense(H, 4 * H), zeros(4 * H), stateful=False)
        _collect(self, [self.embed, self.lstm])
        self.hs = None

    def forward(self, xs):
        self.hs = self.lstm.forward(self.embed.forward(xs))
        return self.hs[:, -1, :]

    def backward(self, dh):
        if self.hs is None:
            raise RuntimeError("Encoder.backward called before forward")
        dhs = array_module(dh).zeros_like(self.hs)
        dhs[:, -1, :] = dh
        self.embed.backward(self.lstm.backward(dhs))


class Decoder:
    """Embedding -> LSTM (started from the encoder's state) -> Affine over the vocabulary.
    ``init``: ``"book"`` (default) or ``"scaled"``, as in the module's docstring."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng=None, dtype=np.float32, init="book"):
        V, D, H = _sizes(vocab_size, wordvec_size, hidden_size)
        embed, dense, zeros = _init(np.random.default_rng(rng), dtype, resolve_init(init, "book", "Decoder"))
        self.embed = TimeEmbedding(embed(V, D))
        self.lstm = TimeLSTM(dense(D, 4 * H), dense(H, 4 * H), zeros(4 * H), stateful=True)
        self.affine = TimeAffine(dense(H, V), zeros(V))
        _collect(self, [self.embed, self.lstm, self.affine])

    def forward(self, xs, h):
        self.lstm.set_state(h)
        return self.affine.forward(self.lstm.forward(self.embed.forward(xs)))

    def backward(self, dscore):
        self.embed.backward(self.lstm.backward(self.affine.backward(dscore)))
        return self.lstm.dh

    def generate(self, h, start_id, sample_size, end_id=None):
        """Greedy ids (N, sample_size) from the encoder states ``h`` (N, H)."""
        self.lstm.set_state(h)
        start = _start_ids(start_id, h.shape[0], array_module(h))

        def step(ids):
            return self.affine.forward(self.lstm.forward(self.embed.forward(ids)))

        return _greedy(step, start, _sample_size(sample_size), end_id)


class _Seq2seqBase(DeviceMixin):
    """forward / backward / generate for an encoder-decoder pair with a TimeSoftmaxWithLoss."""

    encoder: Encoder
    decoder: Decoder

    def _finish(self):
        self.softmax = TimeSoftmaxWithLoss()
        _collect(self, [self.encoder, self.decoder])
        self._follow_default_device()

    @property
    def vocab_size(self) -> int:
        return self.encoder.embed.params[0].shape[0]

    def _check(self, xs, ts=None, who="forward"):
        xs = _ids(xs, f"{type(self).__name__}.{who}", self.vocab_size)
        if ts is None:
            return xs
        ts = _ids(ts, f"{type(self).__name__}.{who}", self.vocab_size, what="answers")
        if ts.shape[0] != xs.shape[0]:
            raise ValueError(f"{type(self).__name__}.{who}: {xs.shape[0]} questions but {ts.shape[0]} answers")
        if ts.shape[1] < 2:
            raise ValueError(f"{type(self).__name__}.{who}: answers need the start symbol and at least one id, "
                             f"got shape {tuple(ts.shape)}")
        return xs, ts

    def forward(self, xs, ts):
        xs, ts = self._check(xs, ts)
        h = self.encoder.forward(xs)
        score = self.decoder.forward(ts[:, :-1], h)
        return self.softmax.forward(score, ts[:, 1:])

    def backward(self, dout=1):
        dh = self.decoder.backward(self.softmax.backward(dout))
        self.encoder.backward(dh)

    def generate(self, xs, start_id, sample_size, end_id=None):
        """Greedy answers (N, sample_size) for the questions ``xs`` (N, T_in), all decoded together.

        ``start_id``: the start symbol (one id, or one per question). With ``end_id`` the rows
        that produced it are padded with it and decoding stops once all have."""
        xs = batch_to(self._check(xs, who="generate"), self)  # decoded where the model is
        return self.decoder.generate(self.encoder.forward(xs), start_id, sample_size, end_id)


@saveable
class Seq2seq(_Seq2seqBase):
    """The book's seq2seq: the encoder's last hidden state starts the decoder.

    ``init``: ``None`` (default: ``"book"``, the book's values, embeddings N(0, 0.01^2)) or
    ``"scaled"`` (embeddings N(0, 1)); see the module's docstring."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float32, init=None):
        self.init = resolve_init(init, "book", "Seq2seq")
        rng = np.random.default_rng(seed)
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, rng, dtype, self.init)
        self.decoder = Decoder(vocab_size, wordvec_size, hidden_size, rng, dtype, self.init)
        self._finish()


# ---- Peeky --------------------------------------------------------------------------------------

class PeekyDecoder(Decoder):
    """The encoder's state is also concatenated to the LSTM's input and to the Affine's input
    at every step (the book's Peeky decoder). ``init`` as Decoder's."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng=None, dtype=np.float32, init="book"):
        V, D, H = _sizes(vocab_size, wordvec_size, hidden_size)
        embed, dense, zeros = _init(np.random.default_rng(rng), dtype, resolve_init(init, "book", "PeekyDecoder"))
        self.embed = TimeEmbedding(embed(V, D))
        self.lstm = TimeLSTM(dense(H + D, 4 * H), dense(H, 4 * H), zeros(4 * H), stateful=True)
        self.affine = TimeAffine(dense(H + H, V), zeros(V))
        _collect(self, [self.embed, self.lstm, self.affine])
        self.cache = None

    def _peek(self, xs, h):
        N, T = xs.shape
        hs = np.broadcast_to(h[:, None, :], (N, T, h.shape[1]))
        out = self.lstm.forward(np.concatenate((hs, self.embed.forward(xs)), axis=2))
        return self.affine.forward(np.concatenate((hs, out), axis=2))

    def forward(self, xs, h):
        self.lstm.set_state(h)
        self.cache = h.shape[1]
        return self._peek(xs, h)

    def backward(self, dscore):
        if self.cache is None:
            raise RuntimeError("PeekyDecoder.backward called before forward")
        H = self.cache
        dout = self.affine.backward(dscore)
        dhs0, dout = dout[:, :, :H], dout[:, :, H:]
        dout = self.lstm.backward(dout)
        dhs1, dembed = dout[:, :, :H], dout[:, :, H:]
        self.embed.backward(dembed)
        return self.lstm.dh + (dhs0 + dhs1).sum(axis=1)

    def generate(self, h, start_id, sample_size, end_id=None):
        self.lstm.set_state(h)
        start = _start_ids(start_id, h.shape[0], array_module(h))
        return _greedy(lambda ids: self._peek(ids, h), start, _sample_size(sample_size), end_id)


@saveable
class PeekySeq2seq(_Seq2seqBase):
    """Seq2seq with the Peeky decoder.

    ``init``: ``None`` (default: ``"scaled"``, embeddings N(0, 1)) or ``"book"`` (the book's
    values, embeddings N(0, 0.01^2)); see the module's docstring."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float32, init=None):
        self.init = resolve_init(init, "scaled", "PeekySeq2seq")
        rng = np.random.default_rng(seed)
        self.encoder = Encoder(vocab_size, wordvec_size, hidden_size, rng, dtype, self.init)
        self.decoder = PeekyDecoder(vocab_size, wordvec_size, hidden_size, rng, dtype, self.init)
        self._finish()


# ---- attention ----------------------------------------------------------------------------------

class AttentionEncoder(Encoder):
    """``forward`` returns every hidden state (N, T, H), which the decoder attends to.

    ``bidirectional=True`` runs a TimeBiLSTM of ``hidden_size // 2`` units per direction (outputs
    concatenated to H); the decoder then starts from the forward LSTM's last state and the
    backward LSTM's state after reading the whole question (at position 0). ``init`` as Encoder's."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng=None, dtype=np.float32, bidirectional=False,
                 init="book"):
        V, D, H = _sizes(vocab_size, wordvec_size, hidden_size)
        init = resolve_init(init, "book", "AttentionEncoder")
        self.bidirectional = bool(bidirectional)
        if not self.bidirectional:
            super().__init__(V, D, H, rng, dtype, init)
            return
        if H % 2:
            raise ValueError(f"a bidirectional encoder splits hidden_size between two directions: it must be even, "
                             f"got {H}")
        embed, dense, zeros = _init(np.random.default_rng(rng), dtype, init)
        half = H // 2
        self.embed = TimeEmbedding(embed(V, D))
        self.lstm = TimeBiLSTM(dense(D, 4 * half), dense(half, 4 * half), zeros(4 * half),
                               dense(D, 4 * half), dense(half, 4 * half), zeros(4 * half))
        _collect(self, [self.embed, self.lstm])
        self.hs = None

    def forward(self, xs):
        self.hs = self.lstm.forward(self.embed.forward(xs))
        return self.hs

    def backward(self, dhs):
        self.embed.backward(self.lstm.backward(dhs))

    def initial_state(self, hs):
        """The decoder's first state from the encoder states (N, T, H)."""
        if not self.bidirectional:
            return hs[:, -1]
        half = hs.shape[2] // 2
        return np.concatenate((hs[:, -1, :half], hs[:, 0, half:]), axis=1)

    def add_initial_state_gradient(self, dhs, dh):
        """Adds the gradient of ``initial_state`` into ``dhs`` in place."""
        if not self.bidirectional:
            dhs[:, -1] += dh
            return dhs
        half = dhs.shape[2] // 2
        dhs[:, -1, :half] += dh[:, :half]
        dhs[:, 0, half:] += dh[:, half:]
        return dhs


class AttentionDecoder:
    """Embedding -> LSTM -> TimeAttention over the encoder states -> Affine of [context, h].

    ``forward(xs, enc_hs, h=None)`` starts the LSTM from ``h`` (default ``enc_hs[:, -1]``, the
    book's choice); ``backward`` returns the gradient into ``enc_hs``, including that of the
    default start state (a given ``h`` gets its gradient in ``dh`` instead).
    ``attention.attention_weights`` (N, T_out, T_in) holds the weights of the last forward, and
    after ``generate`` those of every generated step. ``init`` as Decoder's."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, rng=None, dtype=np.float32, init="book"):
        V, D, H = _sizes(vocab_size, wordvec_size, hidden_size)
        embed, dense, zeros = _init(np.random.default_rng(rng), dtype, resolve_init(init, "book", "AttentionDecoder"))
        self.embed = TimeEmbedding(embed(V, D))
        self.lstm = TimeLSTM(dense(D, 4 * H), dense(H, 4 * H), zeros(4 * H), stateful=True)
        self.attention = TimeAttention()
        self.affine = TimeAffine(dense(2 * H, V), zeros(V))
        _collect(self, [self.embed, self.lstm, self.attention, self.affine])
        self.H = H
        self.dh = self._default_start = None

    def _step(self, xs, enc_hs):
        dec_hs = self.lstm.forward(self.embed.forward(xs))
        c = self.attention.forward(enc_hs, dec_hs)
        return self.affine.forward(np.concatenate((c, dec_hs), axis=2))

    def forward(self, xs, enc_hs, h=None):
        if enc_hs.ndim != 3 or enc_hs.shape[2] != self.H:
            raise ValueError(f"AttentionDecoder.forward: encoder states must be (N, T, {self.H}), "
                             f"got shape {tuple(enc_hs.shape)}")
        self._default_start = h is None
        self.lstm.set_state(enc_hs[:, -1] if h is None else h)
        return self._step(xs, enc_hs)

    def backward(self, dscore):
        if self._default_start is None:
            raise RuntimeError("AttentionDecoder.backward called before forward")
        H = self.H
        dout = self.affine.backward(dscore)
        dc, ddec_hs0 = dout[:, :, :H], dout[:, :, H:]
        denc_hs, ddec_hs1 = self.attention.backward(dc)
        self.embed.backward(self.lstm.backward(ddec_hs0 + ddec_hs1))
        self.dh = self.lstm.dh
        if self._default_start:
            denc_hs[:, -1] += self.dh
        return denc_hs

    def generate(self, enc_hs, start_id, sample_size, end_id=None, h=None):
        """Greedy ids (N, sample_size); afterwards ``attention.attention_weights`` holds the
        weights of the steps decoded (N, steps, T_in): fewer than ``sample_size`` when every
        row reached ``end_id`` early, none for ``sample_size=0``."""
        self.attention.attention_weights = None  # first: a failed call must not show the last call's weights
        self.lstm.set_state(enc_hs[:, -1] if h is None else h)
        xp = array_module(enc_hs)
        start = _start_ids(start_id, enc_hs.shape[0], xp)
        weights = []

        def step(ids):
            score = self._step(ids, enc_hs)
            weights.append(self.attention.attention_weights)
            return score

        out = _greedy(step, start, _sample_size(sample_size), end_id)
        N, T_in = enc_hs.shape[:2]
        self.attention.attention_weights = (xp.concatenate(weights, axis=1) if weights
                                            else xp.empty((N, 0, T_in), dtype=enc_hs.dtype))
        return out


@saveable
class AttentionSeq2seq(_Seq2seqBase):
    """Seq2seq with attention (book ch. 8); ``bidirectional=True`` for a TimeBiLSTM encoder.

    ``init``: ``None`` (default: ``"scaled"``, embeddings N(0, 1)) or ``"book"`` (the book's
    values, embeddings N(0, 0.01^2)); see the module's docstring. With the book's initialisation
    the model sits on a plateau before attention aligns (0% on the date task after one epoch,
    78% after two), and the bidirectional encoder stays there far longer (0.08% after two, 0.34%
    after three); with the scaled one both learn the date task in the first two epochs."""

    def __init__(self, vocab_size, wordvec_size, hidden_size, seed=None, dtype=np.float32, bidirectional=False,
                 init=None):
        self.init = resolve_init(init, "scaled", "AttentionSeq2seq")
        rng = np.random.default_rng(seed)
        self.encoder = AttentionEncoder(vocab_size, wordvec_size, hidden_size, rng, dtype, bidirectional, self.init)
        self.decoder = AttentionDecoder(vocab_size, wordvec_size, hidden_size, rng, dtype, self.init)
        self._finish()

    def forward(self, xs, ts):
        xs, ts = self._check(xs, ts)
        enc_hs = self.encoder.forward(xs)
        h = self.encoder.initial_state(enc_hs) if self.encoder.bidirectional else None
        score = self.decoder.forward(ts[:, :-1], enc_hs, h)
        return self.softmax.forward(score, ts[:, 1:])

    def backward(self, dout=1):
        denc_hs = self.decoder.backward(self.softmax.backward(dout))
        if self.encoder.bidirectional:
            self.encoder.add_initial_state_gradient(denc_hs, self.decoder.dh)
        self.encoder.backward(denc_hs)

    def generate(self, xs, start_id, sample_size, end_id=None):
        self.decoder.attention.attention_weights = None  # first: a refused call must not show the last call's
        xs = batch_to(self._check(xs, who="generate"), self)  # decoded where the model is
        enc_hs = self.encoder.forward(xs)
        h = self.encoder.initial_state(enc_hs) if self.encoder.bidirectional else None
        return self.decoder.generate(enc_hs, start_id, sample_size, end_id, h)

    @property
    def attention_weights(self):
        """(N, T_out, T_in): the decoder's attention weights of the last forward or generate (of
        the steps it decoded: T_out is 0 after ``sample_size=0``); None after a refused call."""
        return self.decoder.attention.attention_weights


# ---- evaluation ----------------------------------------------------------------------------------

def _to_text(ids, id_to_char):
    ids = np.asarray(ids.get() if hasattr(ids, "get") else ids).reshape(-1)
    if ids.size and int(ids.min()) < 0:  # a list or str id_to_char would read it from the end
        raise IndexError(f"id {int(ids.min())} is out of range: ids are >= 0")
    return "".join(id_to_char[int(i)] for i in ids)


def _correct_ids(correct, vocab_size):
    """The correct answer of eval_seq2seq as a flat integer array: the start symbol and at least
    one id, every id inside the vocabulary (when the model says how large it is)."""
    correct = as_id_array(correct.get() if hasattr(correct, "get") else correct)
    if correct.dtype.kind not in "iu":
        raise TypeError(f"eval_seq2seq: the correct answer must be integer ids, got dtype {correct.dtype}")
    correct = np.asarray(correct).reshape(-1)
    if correct.size < 2:
        raise ValueError(f"eval_seq2seq: the correct answer needs the start symbol and at least one id, got "
                         f"{correct.size} id(s)")
    low, high = int(correct.min()), int(correct.max())
    if low < 0 or (vocab_size is not None and high >= vocab_size):
        bad = low if low < 0 else high
        where = f"for the vocabulary of {vocab_size}" if vocab_size is not None else "(ids are >= 0)"
        raise IndexError(f"eval_seq2seq: id {bad} of the correct answer is out of range {where}")
    return correct


def eval_seq2seq(model, question, correct, id_to_char, verbose=False, is_reverse=False):
    """1 if ``model`` answers ``question`` (ids (1, T) or (T,)) exactly as ``correct`` (ids whose
    first is the start symbol, then at least one more), else 0. ``verbose`` prints question,
    answer and guess as the book does (``is_reverse``: the question was fed reversed and is
    printed the right way round). Float ids raise TypeError, ids outside the model's vocabulary
    IndexError, an answer of the start symbol alone ValueError."""
    correct = _correct_ids(correct, getattr(model, "vocab_size", None))
    question = np.asarray(host(question)).reshape(1, -1)
    start_id, correct = int(correct[0]), correct[1:]
    guess = _to_text(model.generate(question, start_id, len(correct)), id_to_char)
    want = _to_text(correct, id_to_char)
    if verbose:
        _print_case(_to_text(question, id_to_char), want, guess, is_reverse, sys.stdout)
    return int(guess == want)


def seq2seq_accuracy(model, x, t, id_to_char=None, batch_size: int = 1000, is_reverse=False, show_wrong: int = 0,
                     file=None, end_id=None):
    """Exact-match accuracy over questions ``x`` (N, T_in) and answers ``t`` (N, 1 + T_out),
    decoded ``batch_size`` at a time (greedy). Prints the first ``show_wrong`` wrong answers
    (needs ``id_to_char``) to ``file`` (default stdout). Returns a float in [0, 1].

    Checked before anything is decoded: ``batch_size`` a positive integer, ``x`` (N, T_in) and
    ``t`` (N, 1 + T_out) with the same N >= 1 and at least one id after the start column."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x, t = np.asarray(host(x)), np.asarray(host(t))
    if x.ndim != 2:
        raise ValueError(f"questions must be ids of shape (N, T_in), got shape {x.shape}")
    if t.ndim != 2 or t.shape[1] < 2:
        raise ValueError(f"answers must be ids of shape (N, 1 + T_out): the start symbol and at least one id, "
                         f"got shape {t.shape}")
    if len(x) != len(t):
        raise ValueError(f"{len(x)} questions but {len(t)} answers")
    if len(x) == 0:
        raise ValueError("no questions to evaluate")
    if show_wrong and id_to_char is None:
        raise ValueError("show_wrong needs id_to_char to print the answers")
    right, shown = 0, 0
    for begin in range(0, len(x), batch_size):
        xs, ts = x[begin:begin + batch_size], t[begin:begin + batch_size]
        guess = model.generate(xs, ts[:, 0], ts.shape[1] - 1, end_id)
        guess = guess.get() if hasattr(guess, "get") else guess
        ok = (guess == ts[:, 1:]).all(axis=1)
        right += int(ok.sum())
        for i in np.flatnonzero(~ok):
            if shown >= show_wrong:
                break
            _print_case(_to_text(xs[i], id_to_char), _to_text(ts[i, 1:], id_to_char),
                        _to_text(guess[i], id_to_char), is_reverse, file or sys.stdout)
            shown += 1
    return right / len(x)


def _print_case(question, correct, guess, is_reverse, file):
    if is_reverse:
        question = question[::-1]
    plain = os.name == "nt" or not getattr(file, "isatty", lambda: False)()
    if guess == correct:
        mark = "O" if plain else "\033[92m☑\033[0m"
    else:
        mark = "X" if plain else "\033[91m☒\033[0m"
    print(f"Q {question}\nT {correct}\n{mark} {guess}\n---", file=file)
