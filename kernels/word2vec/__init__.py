"""The word2vec training loop (skip-gram and CBOW; negative sampling and/or hierarchical softmax).

One call trains on one *job*: a few thousand words of whole sentences. The contract of the
backend-level ops ``word2vec_sg`` and ``word2vec_cbow`` (every file in this folder implements
it; reference.py is it written as code)::

    word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative,
                alpha_start, alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0)
                -> (loss, trained)

    syn0 (V, D), syn1neg (V, D) or (0, D), syn1 (S, D) or (0, D): float32/float64 weights, one
        dtype, C-contiguous, not sharing memory; written in place (input vectors, negative
        sampling outputs, Huffman inner-node outputs).
    tokens (N,) int32 ids in [0, V); sentence_ends (M,) int64, non-decreasing, last == N:
        sentence k is tokens[sentence_ends[k-1]:sentence_ends[k]] (empty sentences allowed).
    keep_below (V,) int64 in [0, 2**32]: a word is kept when the high 32 bits of its draw are
        below it, so 2**32 always keeps it (word2vec.c's subsampling, see keep_thresholds).
    alias_prob (A,) int64 in [0, 2**32], alias_index (A,) int32 in [0, V): Walker's alias table of
        the noise distribution (A = V when negative > 0, else may be 0).
    points, codes (V, L) int32 / uint8 and code_lengths (V,) int32 <= L: the Huffman path of each
        word (inner-node rows of syn1, branch bits); all three empty (0, 0) / (0,) without
        hierarchical softmax.
    sigmoid_tables (3, T) of the weights' dtype: sigmoid(x), -log(1 - sigmoid(x)),
        -log sigmoid(x) at x = (i / T * 2 - 1) * max_exp (see sigmoid_tables()).
    window in [1, 2**32), negative >= 0 ints; alpha_start, alpha_end floats; seed a uint64;
        shrink_windows a bool (False: every window is ``window`` words each side, the book's).
        A context never holds more than the job's N tokens, so scratch that grows with the
        window is sized by min(window, N) (``context_span``): a window longer than every
        sentence costs nothing. TrainingKernel, the entry the model uses, also caps negative
        at MAX_NEGATIVE and refuses a job whose scratch would pass MAX_SCRATCH_BYTES.
    private_rows >= 0, sync_tokens >= 0 ints: the first ``private_rows`` rows of syn0 and of
        syn1neg (the most frequent words': ids follow frequency) are the call's own. It trains
        copies of them, and after each range of sentences (a range ends with the first sentence
        ending ``sync_tokens`` or more tokens past its first token; 0: one range, the job)
        adds each copy's change over the range to the shared row, ``row += copy - copy at
        the range's start``, and restarts the copies from the shared rows. In one thread that is
        ``start + (trained - start)`` per range (reference.train_privately); what it is for is
        several threads at once: the rows every thread writes most (negatives are drawn from
        the frequent words all the time) stop bouncing between the cores' caches. 0: no private
        rows, every row shared as it is trained.
    Returns the loss (float, sum of the -log sigmoid terms) and trained (int, the words kept
    after subsampling).

A third op turns a job's sentences into ids (Python objects in, arrays out; Cython and the
reference have it, Numba and CuPy do not)::

    word2vec_encode(sentences, word_to_id) -> (ids, sentence_ends)
    sentences: a list of token sequences; word_to_id: a dict of word -> id in [0, 2**31).
    ids (int32) of the known tokens in order, sentence_ends (int64) counting them per sentence.

What one call does, sentence by sentence (word2vec.c's algorithm; the differences are marked *):

* the learning rate of a sentence starting at token s is alpha_start + (alpha_end -
  alpha_start) * (s / N), in double, then rounded to the weights' dtype;
* *randomness is counter-based*: draw number c of the stream ``seed`` is splitmix64's output at
  position c, so it does not depend on the draws before it. Token t (position in ``tokens``)
  owns the counters t*(negative+2) + 0 (subsampling), +1 (reduced window), +2+k (negative k),
  whatever the order tokens are visited in: a GPU kernel or another traversal can reproduce
  the same random choices;
* subsampling drops word w when draw >> 32 >= keep_below[w]; the window runs over the kept
  words only, reduced to r = 1 + ((draw >> 32) * window >> 32) words on each side (word2vec.c,
  which weights near contexts more), or r = window when ``shrink_windows`` is false (the book's
  fixed window; the draw is then unused);
* the outputs of a centre word are its Huffman path in syn1 (label 1 - code), then itself in
  syn1neg (label 1) and ``negative`` draws from the alias table (label 0): column
  c = (draw >> 32) * A >> 32, the word c if (draw & 0xffffffff) < alias_prob[c] else
  alias_index[c]. A draw equal to the centre word is skipped, as in word2vec.c (no redraw);
* skip-gram*: the 2r context words' syn0 rows are one batch of inputs against the centre's
  outputs, so the negatives are shared across the window (Ji et al. 2016, pWord2Vec): all
  scores f = x . y are computed from the weights before the step; g = (label - sigmoid(f)) *
  alpha; the input errors e_a = sum_o g * y_o are taken first, then each output row gets
  sum_inputs g * x (rows one after another: a row listed twice gets both updates), then each
  input row gets its error. CBOW: the one input is the mean of the context rows (summed in
  window order, divided by their number), the same batch rule, and the input error is added
  to every context row (word2vec.c's CBOW already shares one set of negatives per window);
* sigmoid and loss come from the tables; a term whose score is at or beyond +-max_exp is
  skipped (g = 0: no update from it), as gensim does for negative sampling and hierarchical
  softmax alike, and adds |f| or 0 to the loss. (word2vec.c instead clamps negative-sampling
  terms to sigmoid 0 or 1, which pushes a saturated wrong score by a whole alpha: over 9 seeds
  of PTB CBOW that cost 0.002 of WordSim-353 against skipping, in every seed but one);
* dot products sum x[j] * y[j] into 16 partial sums (j % 16) in order of j, then add those
  pairwise; the row updates accumulate sum_o g * y_o in order of o, then add to the row once.
  Written that way the compiled loops vectorise and still give the reference's bits.

The compiled versions run one job in the order above without the GIL; the Word2Vec model runs
several jobs on threads at once (Hogwild: rows shared between threads are updated without locks,
so results with workers > 1 are not reproducible bit for bit). Only the Cython loop keeps the
private rows in copies while it trains; Numba, the reference and CuPy train them in place and
apply the rule's arithmetic between the ranges (the same bits in one thread).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from .. import registry
from ..alias import ALWAYS, vose_alias

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# The reduced window is drawn as (32 random bits * window) >> 32 in 64-bit integers.
MAX_WINDOW = 2**32 - 1
# word2vec.c and gensim suggest 5-20 noise words; each costs a dot product and a row update per
# context word, so far beyond this a job only runs (nearly) forever: 2**31 took over 10 minutes.
MAX_NEGATIVE = 1024
# A worker's scratch for one job that grows with the window (see scratch_bytes); past this the
# window cannot be honoured and training raises ValueError instead of a bare MemoryError.
MAX_SCRATCH_BYTES = 1 << 30
MAX_EXP = 6.0
TABLE_SIZE = 1000
OPS = ("word2vec_sg", "word2vec_cbow")  # the training steps (word2vec_encode is the third op)
# Private rows with several workers (see the contract): copies of the most frequent words' rows
# up to this many bytes per weight matrix (L2-resident beside the rest of the step's data), and
# synchronised every SYNC_TOKENS tokens. On PTB, CBOW with 2 workers: 327 rows of 100 floats
# took the epoch from 0.18 to 0.14 s; synchronising only at the job's end (10,000 words) cost
# 0.002-0.004 of WordSim-353 over 12-30 seeds, every 2,500 tokens nothing measurable.
PRIVATE_BYTES = 128 << 10
SYNC_TOKENS = 2500


def private_rows_for(workers: int, vector_size: int, itemsize: int) -> int:
    """How many rows a job keeps private: none for one worker (nothing to share; the results
    stay those of the plain loop, bit for bit), else PRIVATE_BYTES of rows."""
    if workers <= 1:
        return 0
    return max(1, PRIVATE_BYTES // (max(1, vector_size) * itemsize))


# ----- the tables the kernels read ----------------------------------------------------------

def sigmoid_tables(dtype=np.float32, size: int = TABLE_SIZE, max_exp: float = MAX_EXP) -> np.ndarray:
    """(3, size): sigmoid, -log(1 - sigmoid), -log sigmoid at x_i = (i / size * 2 - 1) * max_exp,
    word2vec.c's EXP_TABLE (computed in float64, stored in ``dtype``)."""
    x = (np.arange(size, dtype=np.float64) / size * 2 - 1) * max_exp
    return np.ascontiguousarray(np.stack([1 / (1 + np.exp(-x)), np.logaddexp(0, x), np.logaddexp(0, -x)]),
                                dtype=dtype)


def keep_thresholds(counts, sample: float) -> np.ndarray:
    """keep_below per word for word2vec.c's subsampling: a word of count c is kept with
    probability (sqrt(c / (sample * total)) + 1) * (sample * total) / c (capped at 1), as a
    32-bit threshold; 2**32 when it is always kept or ``sample`` is 0."""
    counts = np.asarray(counts, dtype=np.float64)
    keep = np.full(counts.shape, ALWAYS, dtype=np.int64)
    if sample <= 0 or counts.size == 0:
        return keep
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        probability = (np.sqrt(counts / threshold) + 1) * (threshold / counts)
    drawn = (counts > 0) & (probability < 1)
    keep[drawn] = np.floor(probability[drawn] * ALWAYS).astype(np.int64)
    return keep


def noise_weights(counts, exponent: float = 0.75) -> np.ndarray:
    """counts**exponent scaled so the largest weight is 1 (float64), words of count 0 weighing 0.

    Computed in log space, exp(exponent * (log c - log c_ref)) with c_ref the count that weighs
    most (the largest for exponent > 0, the smallest positive one for exponent < 0), so every
    exponent is finite: counts**1000 would overflow to inf, and the table turn uniform. Large
    exponents concentrate the weight on the most frequent words (the rest underflow to 0),
    negative ones favour rare words, 0 is uniform over the words seen."""
    counts = np.asarray(counts, dtype=np.float64)
    if not math.isfinite(exponent):
        raise ValueError(f"the noise distribution's exponent (ns_exponent) must be finite, got {exponent}")
    seen = counts > 0
    if not seen.any():
        raise ValueError("the noise distribution needs at least one word with a positive count")
    log_counts = np.log(counts[seen])
    reference = log_counts.max() if exponent >= 0 else log_counts.min()
    weights = np.zeros(counts.shape[0])
    with np.errstate(over="ignore", under="ignore"):  # overflow to -inf gives weight 0, as it should
        weights[seen] = np.exp(exponent * (log_counts - reference))
    return weights


def alias_table(counts, exponent: float = 0.75):
    """Walker's alias table (Vose's construction) of the noise distribution counts**exponent
    (see ``noise_weights``): ``(alias_prob int64 thresholds out of 2**32, alias_index int32)``.
    Sampling costs one draw and two look-ups whatever the vocabulary size."""
    thresholds, alias = vose_alias(noise_weights(counts, exponent))
    return thresholds, alias.astype(np.int32)


@dataclass(frozen=True)
class Tables:
    """Everything a job reads besides weights and tokens (see the contract above)."""

    keep_below: np.ndarray
    alias_prob: np.ndarray
    alias_index: np.ndarray
    points: np.ndarray
    codes: np.ndarray
    code_lengths: np.ndarray
    sigmoid: np.ndarray
    max_exp: float = MAX_EXP

    @classmethod
    def build(cls, counts, *, sample, negative, ns_exponent=0.75, huffman=None, dtype=np.float32):
        """The tables of a vocabulary with ``counts``; ``huffman`` is ``(points, codes, lengths)``
        or None for no hierarchical softmax."""
        counts = np.asarray(counts, dtype=np.int64)
        if negative > 0:
            alias_prob, alias_index = alias_table(counts, ns_exponent)
        else:
            alias_prob, alias_index = np.zeros(0, np.int64), np.zeros(0, np.int32)
        if huffman is None:
            points, codes, lengths = np.zeros((0, 0), np.int32), np.zeros((0, 0), np.uint8), np.zeros(0, np.int32)
        else:
            points, codes, lengths = huffman
        return cls(keep_thresholds(counts, sample), alias_prob, alias_index, np.ascontiguousarray(points, np.int32),
                   np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(lengths, np.int32),
                   sigmoid_tables(dtype))

    def arrays(self) -> tuple:
        return (self.keep_below, self.alias_prob, self.alias_index, self.points, self.codes, self.code_lengths,
                self.sigmoid, float(self.max_exp))


# ----- validation and the public entry ------------------------------------------------------

def _check_array(array, name, dtype, ndim):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(array).__name__}")
    if array.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


def _check_range(array, low, high, name):
    if array.size and (int(array.min()) < low or int(array.max()) >= high):
        raise ValueError(f"{name} must lie in [{low}, {high}), found {int(array.min())}..{int(array.max())}")


def context_span(window: int, n_tokens: int) -> int:
    """Context words on each side that scratch must hold for a job of ``n_tokens`` tokens: a
    window never reaches past the job, so min(window, n_tokens), at least 1."""
    return max(1, min(window, n_tokens))


def scratch_bytes(*, sg: bool, window: int, negative: int, max_code: int, vector_size: int, n_tokens: int,
                  itemsize: int) -> int:
    """Bytes of the scratch that grows with the window in one job of ``n_tokens`` tokens (the
    Cython layout; the others need no more): context pointers, and for skip-gram one input per
    context word with its error row and its gradients against every output."""
    span = context_span(window, n_tokens)
    inputs = 2 * span if sg else 1
    outputs = max_code + (negative + 1 if negative > 0 else 0)
    return 8 * (2 * span + inputs) + itemsize * inputs * (outputs + vector_size)


def check_problem(syn0, syn1neg, syn1, tables: Tables, negative: int) -> None:
    """Check weights and tables once: what makes the kernels' unchecked indexing safe."""
    if not isinstance(syn0, np.ndarray) or syn0.dtype not in FLOATS:
        raise TypeError(f"syn0 must be a float32 or float64 NumPy array, got {getattr(syn0, 'dtype', type(syn0))}")
    _check_array(syn0, "syn0", syn0.dtype, 2)
    V, D = syn0.shape
    for name, m in (("syn1neg", syn1neg), ("syn1", syn1)):
        _check_array(m, name, syn0.dtype, 2)
        if m.shape[1] != D:
            raise ValueError(f"{name} has width {m.shape[1]}, syn0 {D}")
        if not m.flags.writeable:
            raise ValueError(f"{name} is read-only")
    if not syn0.flags.writeable:
        raise ValueError("syn0 is read-only")
    for a, b in ((syn0, syn1neg), (syn0, syn1), (syn1neg, syn1)):
        if a.size and b.size and np.may_share_memory(a, b):
            raise ValueError("syn0, syn1neg and syn1 must not share memory")
    if not 0 <= operator.index(negative) <= MAX_NEGATIVE:
        raise ValueError(f"negative must be in [0, {MAX_NEGATIVE}] (noise words per target), got {negative}")
    _check_array(tables.keep_below, "keep_below", np.int64, 1)
    if tables.keep_below.shape[0] != V:
        raise ValueError(f"keep_below has {tables.keep_below.shape[0]} entries for {V} words")
    _check_range(tables.keep_below, 0, ALWAYS + 1, "keep_below")
    _check_array(tables.alias_prob, "alias_prob", np.int64, 1)
    _check_array(tables.alias_index, "alias_index", np.int32, 1)
    if negative > 0:
        if syn1neg.shape[0] != V or tables.alias_prob.shape[0] != V or tables.alias_index.shape[0] != V:
            raise ValueError(f"negative sampling needs syn1neg ({V}, D) and an alias table of {V} words")
        _check_range(tables.alias_prob, 0, ALWAYS + 1, "alias_prob")
        _check_range(tables.alias_index, 0, V, "alias_index")
    _check_array(tables.points, "points", np.int32, 2)
    _check_array(tables.codes, "codes", np.uint8, 2)
    _check_array(tables.code_lengths, "code_lengths", np.int32, 1)
    if tables.code_lengths.shape[0]:
        points, codes = tables.points, tables.codes
        if tables.code_lengths.shape[0] != V or points.shape[0] != V or codes.shape != points.shape:
            raise ValueError(f"Huffman tables must hold one path per word ({V})")
        _check_range(tables.code_lengths, 0, tables.points.shape[1] + 1, "code_lengths")
        for word in np.flatnonzero(tables.code_lengths):
            length = tables.code_lengths[word]
            _check_range(tables.points[word, :length], 0, syn1.shape[0], f"points of word {word}")
            _check_range(tables.codes[word, :length], 0, 2, f"codes of word {word}")
    elif negative == 0:
        raise ValueError("nothing to train: negative == 0 and no Huffman tables (hierarchical softmax off)")
    _check_array(tables.sigmoid, "sigmoid_tables", syn0.dtype, 2)
    if tables.sigmoid.shape[0] != 3 or tables.sigmoid.shape[1] < 1:
        raise ValueError(f"sigmoid_tables must have shape (3, T), got {tables.sigmoid.shape}")
    if not (math.isfinite(tables.max_exp) and tables.max_exp > 0):
        raise ValueError(f"max_exp must be positive and finite, got {tables.max_exp}")


def check_job(tokens, sentence_ends, vocab_size: int) -> None:
    """Check one job's ids and sentence ends (cheap: two passes over ~10k numbers)."""
    _check_array(tokens, "tokens", np.int32, 1)
    _check_array(sentence_ends, "sentence_ends", np.int64, 1)
    _check_range(tokens, 0, vocab_size, "token ids")
    if sentence_ends.size:
        if sentence_ends[-1] != tokens.shape[0]:
            raise ValueError(f"the last sentence end is {int(sentence_ends[-1])}, there are {tokens.shape[0]} tokens")
        if int(sentence_ends[0]) < 0 or (sentence_ends.size > 1 and bool((np.diff(sentence_ends) < 0).any())):
            raise ValueError("sentence_ends must be non-negative and non-decreasing")
    elif tokens.shape[0]:
        raise ValueError("tokens without sentence_ends")


class TrainingKernel:
    """One model's weights and tables, checked once, and the op that trains a job on them.

    The backend is resolved when this is made (in the calling thread, so ``use_backend``
    blocks apply); calls from several threads at once run Hogwild on the shared weights.
    """

    def __init__(self, syn0, syn1neg, syn1, tables: Tables, *, sg: bool, window: int, negative: int,
                 shrink_windows: bool = True, private_rows: int = 0, sync_tokens: int = SYNC_TOKENS):
        check_problem(syn0, syn1neg, syn1, tables, negative)
        if not 1 <= operator.index(window) <= MAX_WINDOW:
            raise ValueError(f"window must be in [1, {MAX_WINDOW}], got {window}")
        for name, value in (("private_rows", private_rows), ("sync_tokens", sync_tokens)):
            if isinstance(value, (bool, np.bool_)) or operator.index(value) < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.private_rows, self.sync_tokens = int(private_rows), int(sync_tokens)
        self.op = "word2vec_sg" if sg else "word2vec_cbow"
        self.backend = registry.backend_for(self.op)
        self.function = registry.kernel(self.op)
        self.weights = (syn0, syn1neg, syn1)
        self.tables = tables.arrays()
        self.sg = bool(sg)
        self.window, self.negative, self.shrink_windows = int(window), int(negative), bool(shrink_windows)

    def check_scratch(self, n_tokens: int) -> None:
        """Raise ValueError naming the window when a job of ``n_tokens`` tokens would need more
        than MAX_SCRATCH_BYTES of scratch (a huge window over a huge sentence)."""
        syn0 = self.weights[0]
        max_code = self.tables[3].shape[1] if self.tables[5].shape[0] else 0
        needed = scratch_bytes(sg=self.sg, window=self.window, negative=self.negative, max_code=max_code,
                               vector_size=syn0.shape[1], n_tokens=n_tokens, itemsize=syn0.itemsize)
        if needed > MAX_SCRATCH_BYTES:
            raise ValueError(
                f"window={self.window} cannot be honoured: a job of {n_tokens} tokens would need "
                f"{needed / 2**20:.0f} MiB of scratch per worker for its {2 * context_span(self.window, n_tokens)} "
                f"context words (at most {MAX_SCRATCH_BYTES >> 20} MiB): lower window or cut the long sentences")

    def __call__(self, tokens, sentence_ends, alpha_start: float, alpha_end: float, seed: int):
        """Train on one job; returns ``(loss, trained words)``."""
        check_job(tokens, sentence_ends, self.weights[0].shape[0])
        self.check_scratch(tokens.shape[0])
        if not (0 <= seed < 2**64):
            raise ValueError(f"seed must be a uint64, got {seed}")
        for name, value in (("alpha_start", alpha_start), ("alpha_end", alpha_end)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        return self.function(*self.weights, tokens, sentence_ends, *self.tables, self.window, self.negative,
                             float(alpha_start), float(alpha_end), int(seed), self.shrink_windows, self.private_rows,
                             self.sync_tokens)


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = draw(st.sampled_from(FLOATS))
        V = draw(st.integers(1, 12))
        D = draw(st.sampled_from([1, 3, 16, 17, 40]))
        negative = draw(st.integers(0, 4))
        hs = True if negative == 0 else draw(st.booleans())
        window = draw(st.integers(1, 4))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        lengths = rng.integers(0, 10, draw(st.integers(1, 4)))
        tokens = rng.integers(0, V, int(lengths.sum())).astype(np.int32)
        ends = np.cumsum(lengths).astype(np.int64)
        scale = draw(st.sampled_from([0.1, 1.0, 8.0]))  # 8: many scores beyond +-max_exp
        syn0 = (rng.standard_normal((V, D)) * scale).astype(dtype)
        syn1neg = (rng.standard_normal((V if negative else 0, D)) * scale).astype(dtype)
        counts = rng.integers(1, 50, V)
        sample = draw(st.sampled_from([0.0, 1e-3, 0.2]))
        keep = keep_thresholds(counts, sample)
        alias_prob, alias_index = alias_table(counts) if negative else (np.zeros(0, np.int64), np.zeros(0, np.int32))
        if hs:
            L = 4
            inner = max(V - 1, 1)
            points = rng.integers(0, inner, (V, L)).astype(np.int32)
            codes = rng.integers(0, 2, (V, L)).astype(np.uint8)
            lengths_hs = rng.integers(0 if V == 1 else 1, L + 1, V).astype(np.int32)
            syn1 = (rng.standard_normal((inner, D)) * scale).astype(dtype)
        else:
            points, codes, lengths_hs = np.zeros((0, 0), np.int32), np.zeros((0, 0), np.uint8), np.zeros(0, np.int32)
            syn1 = np.zeros((0, D), dtype)
        alpha_start = draw(st.sampled_from([0.025, 0.5]))
        alpha_end = draw(st.sampled_from([0.0001, alpha_start]))
        seed = draw(st.integers(0, 2**64 - 1))
        shrink_windows = draw(st.booleans())
        private_rows = draw(st.sampled_from([0, 0, 1, 3, V + 2]))  # V + 2: every row, and past the end
        sync_tokens = draw(st.sampled_from([0, 1, 7]))  # 1: a range per sentence
        return (syn0, syn1neg, syn1, tokens, ends, keep, alias_prob, alias_index, points, codes, lengths_hs,
                sigmoid_tables(dtype), MAX_EXP, window, negative, alpha_start, alpha_end, seed, shrink_windows,
                private_rows, sync_tokens)

    return problems()


# Benchmark size: one job of the Word2Vec model with its defaults (batch_words 10,000 words,
# vector_size 100, window 5, negative 5, sample 1e-3, no hierarchical softmax) over V 10,000 words:
# a synthetic corpus drawn from a Zipf-like unigram distribution, in sentences of ~20 words (PTB's).
_BENCH_V, _BENCH_D, _BENCH_WORDS = 10_000, 100, 10_000


def _bench_sentences(rng, vocab):
    """Zipf-distributed ids (p ~ 1/rank) over ``vocab`` words, cut into sentences of 1..39 words."""
    from ..harness import zipf_probabilities

    tokens = rng.choice(vocab, _BENCH_WORDS, p=zipf_probabilities(vocab))
    ends = np.cumsum(rng.integers(1, 40, _BENCH_WORDS))
    ends = np.append(ends[ends < _BENCH_WORDS], _BENCH_WORDS).astype(np.int64)
    return tokens, ends


def _training_benchmark():
    """One job at the model's defaults; weights initialised as Word2Vec.build_vocab does."""
    rng = np.random.default_rng(0)
    tokens, ends = _bench_sentences(rng, _BENCH_V)
    from ..harness import zipf_probabilities

    counts = np.maximum(np.round(zipf_probabilities(_BENCH_V) * 1_000_000), 5).astype(np.int64)  # ~1M words, min 5
    tables = Tables.build(counts, sample=1e-3, negative=5)
    syn0 = (rng.random((_BENCH_V, _BENCH_D), dtype=np.float32) * np.float32(2) - np.float32(1)) / np.float32(_BENCH_D)
    syn1neg = np.zeros((_BENCH_V, _BENCH_D), np.float32)
    syn1 = np.zeros((0, _BENCH_D), np.float32)
    return (syn0, syn1neg, syn1, tokens.astype(np.int32), ends, *tables.arrays(), 5, 5, 0.025, 0.0249, 1, True,
            0, SYNC_TOKENS)


# Ordered CPU backends follow the reference's operations exactly. The CUDA kernel, in its
# one-block mode, does too (with _rn intrinsics, no FMA contraction); the tolerance is there
# for a table index that a different rounding on the device could move by one.
_TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-3), np.dtype(np.float64): (1e-10, 1e-9)}

for _op, _doc in (("word2vec_sg", "skip-gram step over a job of sentences (window-batched, shared negatives)"),
                  ("word2vec_cbow", "CBOW step over a job of sentences")):
    registry.register(registry.OpSpec(
        # One call is one thread (the CUDA op: one block); Hogwild needs several callers at once.
        name=_op, family="word2vec", doc=_doc, dtypes=FLOATS, deterministic=registry.EVERY_BACKEND, exact=True,
        tolerance=_TOLERANCE, examples=_examples, benchmark_args=_training_benchmark, writes=(0, 1, 2),
        dtype_of=lambda args: args[0].dtype,
        # The reference is a Python loop (seconds a job): the last fallback, never worth timing.
        preference=("cython", "numba")))


def _encode_examples():
    from hypothesis import strategies as st

    words = st.sampled_from(["a", "b", "cat", "dog", "the", "é", "unknown", "?"])
    sentences = st.lists(st.lists(words, max_size=12), max_size=8)
    known = {"a": 0, "b": 1, "cat": 2, "dog": 3, "the": 4, "é": 5}
    return sentences.map(lambda batch: (batch, dict(known)))


def _encode_benchmark():
    """The sentences of one job (10,000 words) as token lists, against a vocabulary of 10,000
    words; the Zipf tail beyond it (~2% of the tokens) is unknown, as min_count leaves it."""
    tokens, ends = _bench_sentences(np.random.default_rng(0), _BENCH_V + 2_000)
    words = [f"w{i}" for i in tokens.tolist()]
    sentences = [words[start:end] for start, end in zip([0, *ends[:-1].tolist()], ends.tolist())]
    return sentences, {f"w{i}": i for i in range(_BENCH_V)}


registry.register(registry.OpSpec(
    name="word2vec_encode", family="word2vec", doc="ids and sentence ends of a batch of token lists",
    dtypes=(np.dtype(np.int32),), deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={np.dtype(np.int32): (0, 0)},
    examples=_encode_examples, benchmark_args=_encode_benchmark, dtype_of=lambda args: np.dtype(np.int32),
    preference=("cython", "numpy")))
