"""The fastText training loop (skip-gram and CBOW with negative sampling over subword rows).

fastText (Bojanowski et al. 2017) is word2vec whose input vector of a word is the mean of
several rows of the input matrix: the word's own row and one row per character n-gram of
"<word>" (hashed into buckets). The contract of the backend-level ops ``fasttext_sg`` and
``fasttext_cbow`` (reference.py is it written as code)::

    fasttext_sg(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below,
                alias_prob, alias_index, sigmoid_tables, max_exp, window, negative,
                alpha_start, alpha_end, seed, shrink_windows) -> (loss, trained)

    syn0 (R, D): float32/float64 input rows (the model stacks V word rows, then ``bucket`` n-gram
        rows); syn1neg (V, D) the output rows, same dtype, C-contiguous, not sharing memory;
        both written in place.
    tokens (N,) int32 ids in [0, V); sentence_ends (M,) int64 non-decreasing, last == N.
    subword_starts (V + 1,) int64, subword_starts[0] == 0, strictly increasing (every word has
        at least one row); subword_rows (subword_starts[V],) int32 in [0, R): the input rows of
        word w are subword_rows[subword_starts[w]:subword_starts[w + 1]] (a row listed twice
        counts twice, as in fastText).
    keep_below (V,), alias_prob (V,), alias_index (V,), sigmoid_tables (3, T), max_exp: as the
        word2vec op (kernels/word2vec: subsampling thresholds, Walker's alias table of the
        noise distribution, the sigmoid/loss tables).
    window in [1, MAX_WINDOW], negative in [0, 1024]; alpha_start, alpha_end floats; seed a
        uint64; shrink_windows a bool. Returns (loss, words kept after subsampling).

What one call does (word2vec's job loop; see kernels/word2vec for the shared rules: learning
rate per sentence, subsampling, reduced window, alias sampling, the sigmoid table (a score at or
beyond +-max_exp skipped: g = 0), the 16-lane dot product):

* the input vector h of a word is the mean of its rows (summed in list order, divided by
  their number); for CBOW h is the mean of every row of every context word (window order);
* skip-gram (fastText's direction): h of the centre word predicts each context word b in window
  order: output the context word (label 1), then ``negative`` draws (label 0; a draw equal to
  the target is skipped). Each output in turn: f = h . y, g = (label - sigmoid(f)) * alpha,
  e += g * y, then y += g * h. *h is computed once per centre word* (fastText and gensim
  recompute it per context word, adding e to the rows after each); after the whole window e is
  added to every row of the centre word. Measured on PTB (1 epoch, 5 seeds): the per-context
  update raised WordSim-353 by 0.002 on average, within the spread between seeds, and made the
  skip-gram op 1.3x slower; so the window's update stays one.
  CBOW: one target, the centre word, the same output rule; e is added to every row of every
  context word. The full e goes to each row (fastText's unsupervised update, gensim's too):
  h and the update are fastText's and gensim's CBOW rule for rule. One rule differs: a score
  at or beyond +-max_exp skips its update here (the word2vec family's rule, gensim's
  Word2Vec's), where gensim's FastText and fastText clamp the sigmoid to 0 or 1 and still
  update. Measured on PTB (CBOW, 1 epoch, 10 seeds): clamping gave WordSim-353 0.086 against
  0.085 and 0.100 against 0.096 on the pairs out of the vocabulary, within the spread between
  seeds (0.015 and 0.026), so the family's rule stays;
* counters: token t owns stride = 2 + 2*S*negative (skip-gram, S = min(window, N), at least 1)
  or 2 + negative (CBOW) draws from t * stride: +0 subsampling, +1 reduced window, then
  negative k of context slot b at +2 + b * negative + k (CBOW: b = 0).

The compiled versions (Numba, Cython) run a job without the GIL; the model runs jobs on
several threads at once (Hogwild: not reproducible bit for bit with workers > 1).

The initialisation of the input rows, ``fasttext_uniform_rows(rows, first_row, divisor, seed)
-> None`` (public: :func:`uniform_rows`): rows (n, D) float32/float64, C-contiguous, rows
``first_row`` to ``first_row + n - 1`` of a matrix of width D, written in place. Element
k = (first_row + i) * D + d of the matrix is (u * 2**-23 - 1) / divisor in the rows' dtype,
u the 24 bits 40-63 (k even) or 16-39 (k odd) of draw k >> 1 of stream ``seed``: uniform in
[-1, 1) / divisor (fastText's and gensim's initialisation with divisor = D), one draw for two
elements. u * 2**-23 - 1 is exact and the division rounds once, so every backend gives the
same bits, and a matrix filled in slices (any split, any order) equals one filled at once.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .. import registry
from ..alias import ALWAYS
from ..word2vec import FLOATS, MAX_EXP, MAX_NEGATIVE, Tables, alias_table, keep_thresholds, sigmoid_tables
from ..word2vec import _check_array, _check_range, check_job

# Counters of a skip-gram token grow with 2 * window * negative: keep them far inside 64 bits.
MAX_WINDOW = 1 << 16
OPS = ("fasttext_sg", "fasttext_cbow", "fasttext_uniform_rows")


def check_problem(syn0, syn1neg, subword_starts, subword_rows, tables: Tables, negative: int) -> None:
    """Check weights, subword lists and tables once: what makes the kernels' unchecked indexing safe."""
    if not isinstance(syn0, np.ndarray) or syn0.dtype not in FLOATS:
        raise TypeError(f"syn0 must be a float32 or float64 NumPy array, got {getattr(syn0, 'dtype', type(syn0))}")
    _check_array(syn0, "syn0", syn0.dtype, 2)
    _check_array(syn1neg, "syn1neg", syn0.dtype, 2)
    R, D = syn0.shape
    V = syn1neg.shape[0]
    if syn1neg.shape[1] != D:
        raise ValueError(f"syn1neg has width {syn1neg.shape[1]}, syn0 {D}")
    if not (syn0.flags.writeable and syn1neg.flags.writeable):
        raise ValueError("syn0 and syn1neg must be writeable")
    if syn0.size and syn1neg.size and np.may_share_memory(syn0, syn1neg):
        raise ValueError("syn0 and syn1neg must not share memory")
    if not 0 <= operator.index(negative) <= MAX_NEGATIVE:
        raise ValueError(f"negative must be in [0, {MAX_NEGATIVE}], got {negative}")
    _check_array(subword_starts, "subword_starts", np.int64, 1)
    _check_array(subword_rows, "subword_rows", np.int32, 1)
    if subword_starts.shape[0] != V + 1 or subword_starts[0] != 0 or subword_starts[-1] != subword_rows.shape[0]:
        raise ValueError(f"subword_starts must hold V + 1 = {V + 1} offsets from 0 to len(subword_rows)")
    if V and not (np.diff(subword_starts) > 0).all():
        raise ValueError("every word needs at least one input row (subword_starts strictly increasing)")
    _check_range(subword_rows, 0, R, "subword_rows")
    for name, array, dtype in (("keep_below", tables.keep_below, np.int64), ("alias_prob", tables.alias_prob, np.int64),
                               ("alias_index", tables.alias_index, np.int32)):
        _check_array(array, name, dtype, 1)
        if array.shape[0] != V:
            raise ValueError(f"{name} has {array.shape[0]} entries for {V} words")
    _check_range(tables.keep_below, 0, ALWAYS + 1, "keep_below")
    _check_range(tables.alias_prob, 0, ALWAYS + 1, "alias_prob")
    _check_range(tables.alias_index, 0, V, "alias_index")
    _check_array(tables.sigmoid, "sigmoid_tables", syn0.dtype, 2)
    if tables.sigmoid.shape[0] != 3 or tables.sigmoid.shape[1] < 1:
        raise ValueError(f"sigmoid_tables must have shape (3, T), got {tables.sigmoid.shape}")
    if not (math.isfinite(tables.max_exp) and tables.max_exp > 0):
        raise ValueError(f"max_exp must be positive and finite, got {tables.max_exp}")


def uniform_rows(rows, first_row: int, divisor: float, seed: int) -> None:
    """Fill ``rows``, rows ``first_row``.. of a matrix, in place with uniform values in
    [-1, 1) / divisor drawn from stream ``seed`` (the contract above: the value of an element
    depends only on its position in the matrix and the seed)."""
    if not isinstance(rows, np.ndarray) or rows.dtype not in FLOATS:
        raise TypeError(f"rows must be a float32 or float64 NumPy array, got {getattr(rows, 'dtype', type(rows))}")
    _check_array(rows, "rows", rows.dtype, 2)
    if not rows.flags.writeable:
        raise ValueError("rows must be writeable")
    first_row = operator.index(first_row)
    if first_row < 0 or (first_row + rows.shape[0]) * rows.shape[1] >= 2**63:
        raise ValueError(f"first_row must be >= 0 with every element's position below 2**63, got {first_row}")
    if isinstance(divisor, bool) or not isinstance(divisor, (int, float, np.integer, np.floating)):
        raise TypeError(f"divisor must be a number, got {type(divisor).__name__}")
    if not (math.isfinite(divisor) and divisor > 0):
        raise ValueError(f"divisor must be positive and finite, got {divisor!r}")
    if not 0 <= operator.index(seed) < 2**64:
        raise ValueError(f"seed must be a uint64, got {seed}")
    registry.kernel("fasttext_uniform_rows", rows)(rows, first_row, float(divisor), int(seed))


class TrainingKernel:
    """One model's weights, subword lists and tables, checked once, and the op that trains a job
    on them (the backend resolved here, in the calling thread). Calls from several threads at
    once run Hogwild on the shared weights."""

    def __init__(self, syn0, syn1neg, subword_starts, subword_rows, tables: Tables, *, sg: bool, window: int,
                 negative: int, shrink_windows: bool = True):
        check_problem(syn0, syn1neg, subword_starts, subword_rows, tables, negative)
        if not 1 <= operator.index(window) <= MAX_WINDOW:
            raise ValueError(f"window must be in [1, {MAX_WINDOW}], got {window}")
        self.op = "fasttext_sg" if sg else "fasttext_cbow"
        self.backend = registry.backend_for(self.op)
        self.function = registry.kernel(self.op)
        self.weights = (syn0, syn1neg)
        self.subwords = (subword_starts, subword_rows)
        self.tables = (tables.keep_below, tables.alias_prob, tables.alias_index, tables.sigmoid, float(tables.max_exp))
        self.window, self.negative, self.shrink_windows = int(window), int(negative), bool(shrink_windows)

    def check_scratch(self, n_tokens: int) -> None:
        """Scratch is O(job + min(window, job) * longest subword list + D) here: nothing to refuse
        (word2vec's kernel interface)."""

    def __call__(self, tokens, sentence_ends, alpha_start: float, alpha_end: float, seed: int):
        """Train on one job; returns ``(loss, trained words)``."""
        check_job(tokens, sentence_ends, self.weights[1].shape[0])
        if not (0 <= seed < 2**64):
            raise ValueError(f"seed must be a uint64, got {seed}")
        for name, value in (("alpha_start", alpha_start), ("alpha_end", alpha_end)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        return self.function(*self.weights, tokens, sentence_ends, *self.subwords, *self.tables, self.window,
                             self.negative, float(alpha_start), float(alpha_end), int(seed), self.shrink_windows)


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = draw(st.sampled_from(FLOATS))
        V = draw(st.integers(1, 10))
        buckets = draw(st.integers(0, 12))
        # widths on every path of the compiled loops (vectors of 8 or 4 columns summed in passes
        # of 4, then 1-3, then 4 and single columns; the 16-lane dot's tails)
        D = draw(st.sampled_from([1, 3, 16, 17, 40, 60, 79, 143]))
        negative = draw(st.integers(0, 4))
        window = draw(st.integers(1, 4))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        lengths = rng.integers(0, 10, draw(st.integers(1, 4)))
        tokens = rng.integers(0, V, int(lengths.sum())).astype(np.int32)
        ends = np.cumsum(lengths).astype(np.int64)
        scale = draw(st.sampled_from([0.1, 1.0, 8.0]))  # 8: many scores beyond +-max_exp
        syn0 = (rng.standard_normal((V + buckets, D)) * scale).astype(dtype)
        syn1neg = (rng.standard_normal((V, D)) * scale).astype(dtype)
        rows = [[w] + (rng.integers(V, V + buckets, rng.integers(0, 6)).tolist() if buckets else []) for w in range(V)]
        starts = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
        flat = np.array([r for word in rows for r in word], dtype=np.int32)
        counts = rng.integers(1, 50, V)
        sample = draw(st.sampled_from([0.0, 1e-3, 0.2]))
        alias_prob, alias_index = alias_table(counts)
        alpha_start = draw(st.sampled_from([0.025, 0.5]))
        alpha_end = draw(st.sampled_from([0.0001, alpha_start]))
        return (syn0, syn1neg, tokens, ends, starts, flat, keep_thresholds(counts, sample), alias_prob, alias_index,
                sigmoid_tables(dtype), MAX_EXP, window, negative, alpha_start, alpha_end,
                draw(st.integers(0, 2**64 - 1)), draw(st.booleans()))

    return problems()


# Benchmark size: one job of the FastText model's defaults (10,000 words, vector_size 100,
# window 5, negative 5, sample 1e-3) over V 10,000 words with ~14 n-grams each (PTB's words,
# n = 3..6); 100,000 buckets instead of the model's 2,000,000 keep the fresh arrays of each
# call at 40 MB (the rows a job touches, and so its speed, hardly depend on the bucket count).
_BENCH_V, _BENCH_D, _BENCH_WORDS, _BENCH_BUCKETS = 10_000, 100, 10_000, 100_000


def _training_benchmark():
    from ..harness import zipf_probabilities
    from ..word2vec import _bench_sentences

    rng = np.random.default_rng(0)
    tokens, ends = _bench_sentences(rng, _BENCH_V)
    counts = np.maximum(np.round(zipf_probabilities(_BENCH_V) * 1_000_000), 5).astype(np.int64)
    tables = Tables.build(counts, sample=1e-3, negative=5)
    R, D = _BENCH_V + _BENCH_BUCKETS, _BENCH_D
    syn0 = ((rng.random((R, D), dtype=np.float32) - np.float32(0.5)) / np.float32(D))
    syn1neg = np.zeros((_BENCH_V, D), np.float32)
    per_word = rng.integers(10, 19, _BENCH_V)
    starts = np.concatenate([[0], np.cumsum(per_word + 1)]).astype(np.int64)
    rows = np.empty(int(starts[-1]), np.int32)
    for w in range(_BENCH_V):
        rows[starts[w]] = w
        rows[starts[w] + 1:starts[w + 1]] = rng.integers(_BENCH_V, R, per_word[w])
    return (syn0, syn1neg, tokens.astype(np.int32), ends, starts, rows, tables.keep_below, tables.alias_prob,
            tables.alias_index, tables.sigmoid, MAX_EXP, 5, 5, 0.025, 0.0249, 1, True)


def _uniform_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = draw(st.sampled_from(FLOATS))
        # odd and even widths and first rows: slices that start or end in the middle of a draw
        shape = (draw(st.integers(0, 9)), draw(st.sampled_from([1, 2, 3, 7, 16, 33, 100])))
        return (np.full(shape, np.nan, dtype), draw(st.integers(0, 2**20)),
                draw(st.sampled_from([1.0, 3.0, 100.0, 0.7])), draw(st.integers(0, 2**64 - 1)))

    return problems()


def _uniform_benchmark():
    # Benchmark size: 25,000 rows of width 100 (10 MB of float32; the model fills V + 2,000,000
    # such rows once, in build_vocab, at the same speed per row).
    return np.empty((25_000, 100), np.float32), 10_000, 100.0, 1


_TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-3), np.dtype(np.float64): (1e-10, 1e-9)}
_ABSENT = {"cupy": "no GPU version: fastText trains on CPU threads (Hogwild) like gensim and fastText"}

for _op, _doc in (("fasttext_sg", "fastText skip-gram step over a job (subword inputs, negative sampling)"),
                  ("fasttext_cbow", "fastText CBOW step over a job (subword inputs, negative sampling)")):
    registry.register(registry.OpSpec(
        name=_op, family="fasttext", doc=_doc, dtypes=FLOATS, deterministic=registry.EVERY_BACKEND, exact=True,
        tolerance=_TOLERANCE, examples=_examples, benchmark_args=_training_benchmark, writes=(0, 1),
        # The reference is a Python loop (seconds a job): the last fallback, never worth timing.
        dtype_of=lambda args: args[0].dtype, preference=("cython", "numba"), absent=dict(_ABSENT)))

registry.register(registry.OpSpec(
    name="fasttext_uniform_rows", family="fasttext", doc="uniform [-1, 1) / divisor initial rows (counter-based)",
    dtypes=FLOATS, deterministic=registry.EVERY_BACKEND, exact=True, tolerance={d: (0.0, 0.0) for d in FLOATS},
    examples=_uniform_examples, benchmark_args=_uniform_benchmark, writes=(0,), dtype_of=lambda args: args[0].dtype,
    preference=("cython", "numba", "numpy"),
    absent={"cupy": "no GPU version: the model's input rows live on the host (fastText trains on CPU threads)"}))
