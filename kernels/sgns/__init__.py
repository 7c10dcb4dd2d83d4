"""Negative sampling (book ch. 4): the gathered dot products, their backward, and the sampler.

The contract of the backend-level ops (every file in this folder implements it; reference.py is
it written as code):

    gather_dot(W, idx, h) -> out
        W (V, D) float64/float32/float16/bfloat16; idx (N, K) int64 in [0, V); h (N, D) of W's dtype; all
        C-contiguous, N, K, D >= 1. out (N, K) new array: out[n, k] = W[idx[n, k]] . h[n].
    gather_dot_backward(W, idx, h, dout, dW) -> dh
        as above, dout (N, K) and dW (V, D) of W's dtype, dW written in place and sharing no
        memory with the inputs. dh (N, D) new: dh[n] = sum_k dout[n, k] * W[idx[n, k]] (summed
        in order of k, from zero); dW[idx[n, k]] += dout[n, k] * h[n] in order of (n, k), so
        repeated ids are summed.
    sample_negatives(alias_prob, alias_index, cumulative, target, sample_size, seed, counter) -> out
        the arrays of a NoiseTable (below) over V words; target (N,) int64 in [0, V);
        sample_size >= 1; seed, counter numpy.uint64 with counter + N * sample_size <= 2**61.
        out (N, sample_size) int64: negatives drawn from the table, never equal to the row's target.

Float arithmetic is fixed so every CPU backend gives the reference's bits:

* a dot product x . y sums the rounded products x[j] * y[j] into 16 partial sums (lane j % 16)
  in order of j, then adds the partial sums pairwise (0+1, 2+3, ..., then pairs of those): the
  compiled loops vectorise and still match. Products are never fused with the following add
  (no FMA contraction: the C header turns it off, Numba never contracts, CUDA uses __fmul_rn);
* dW's updates are rounded products added one at a time in order of (n, k). On the GPU they are
  atomic adds in any order: the one inexact output, held to the spec's tolerance.

Randomness is counter-based, so the same (seed, counter) gives the same negatives on every
backend and in any traversal order:

* draw c of the stream ``seed`` is splitmix64's output at position c:
  ``mix64(seed + (c + 1) * 0x9E3779B97F4A7C15)`` in uint64 arithmetic (as kernels/word2vec);
* slot i = n * sample_size + s (row n, negative s) owns the 8 counters (counter + i) * 8 + a,
  a = 0..7. Attempts a = 0..6 pick from Walker's alias table: column c = ((d >> 32) * V) >> 32,
  the word c if (d & 0xffffffff) < alias_prob[c], else alias_index[c]; the first pick that is
  not the target is the slot's negative (a redraw, so the negatives follow the noise
  distribution conditioned on "not the target", exactly);
* if all 7 picks hit the target (only likely when the target carries most of the noise mass),
  draw a = 7 samples that conditional distribution directly by inverse CDF over the table's
  integer masses: with q = cumulative[t + 1] - cumulative[t] and rest = cumulative[V] - q,
  r = min(int(double(d >> 11) * 2**-53 * double(rest)), rest - 1) (IEEE double, truncation),
  r += q if r >= cumulative[t], and the negative is the w with cumulative[w] <= r < cumulative[w + 1].

float16 / bfloat16 storage (ml_dtypes' bfloat16): the float32 ops above on the inputs converted
up, each output rounded once to the storage dtype (to nearest, ties to even): out and dh from
their float32 sums; each row of dW that idx touches converted up once, its float32 updates
added in order of (n, k), the sum rounded once (as the embedding scatter-add does). The CPU
backends match the reference bit for bit.

The public ``gather_dot`` / ``gather_dot_backward`` / ``sample_negatives`` below take any id
shape (ids as arrays, lists or tuples) and validate once before the unchecked loops.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .. import dispatch, registry
from ..alias import ALWAYS, vose_alias
from ..validate import (BFLOAT16, HALF_DTYPES, as_id_array, check_float_matrix, check_ids, check_same_device,
                        is_float_dtype)

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
STORAGE = FLOATS + HALF_DTYPES  # the dtypes W, h, dout and dW may have
MAX_SLOTS = 1 << 61  # a slot's 8 counters, (counter + i) * 8 + a, must not wrap around 2**64

# Dot products and dh are exact on every backend; dW's atomic adds on the GPU are summed in any
# order: for the unit-scale examples below (a few hundred terms per row at most) a float32
# reordering moves a sum by well under 1e-4.
# float16 / bfloat16: the same float32 sums rounded once, so a reordered dW sum may land one
# storage ulp away (2^-10, 2^-7 relative).
_GPU_TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-12, 1e-12),
                  np.dtype(np.float16): (1e-4, 2e-3), BFLOAT16: (1e-4, 1.6e-2)}
# CuPy (13) has no bfloat16 dtype: a device array cannot hold one, so no CuPy call can carry it.
_CUPY_NO_BF16 = "CuPy arrays cannot hold ml_dtypes.bfloat16"
_EXACT_IDS = {np.dtype(np.int64): (0, 0)}


# ----- the noise distribution ---------------------------------------------------------------

def _integer_mass(alias_prob, alias_index):
    """Each word's share of the table, in units of 2**-32 of a column: its own column's
    threshold plus what the other columns alias to it."""
    mass = np.asarray(alias_prob, dtype=np.int64).copy()
    np.add.at(mass, np.asarray(alias_index, dtype=np.int64), ALWAYS - np.asarray(alias_prob, dtype=np.int64))
    return mass


@dataclass(frozen=True, eq=False)
class NoiseTable:
    """Walker's alias table of a noise distribution over V words, built once (Vose's method).

    ``alias_prob`` (V,) int64 thresholds out of 2**32 and ``alias_index`` (V,) int64 ids are
    the table; ``cumulative`` (V + 1,) int64, derived from them, is the running sum of the
    integer mass each word gets (units of 2**-32 of a column; ``cumulative[V] == V * 2**32``).
    Drawing costs one random number and two look-ups, whatever V is. ``probabilities`` is the
    exact distribution the table samples (the weights' up to rounding to 2**-32 of a column).
    Built with :meth:`from_counts` / :meth:`from_weights`, or from alias arrays, which are
    checked here (the sampling loops index through them unchecked).
    """

    alias_prob: np.ndarray
    alias_index: np.ndarray
    cumulative: np.ndarray = field(init=False)
    _on_device: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        prob = np.ascontiguousarray(self.alias_prob)
        alias = np.ascontiguousarray(self.alias_index)
        if prob.ndim != 1 or prob.dtype.kind not in "iu" or alias.shape != prob.shape or alias.dtype.kind not in "iu":
            raise ValueError("alias_prob and alias_index must be 1-D integer arrays of one length")
        n = prob.shape[0]
        if n >= 1 << 31:  # V * 2**32 integer masses must fit an int64
            raise ValueError(f"the alias table holds fewer than 2**31 words, got {n}")
        if n and (prob.min() < 0 or prob.max() > ALWAYS):
            raise ValueError("alias_prob must lie in [0, 2**32]")
        if n and (alias.min() < 0 or alias.max() >= n):
            raise ValueError(f"alias_index must lie in [0, {n})")
        prob, alias = prob.astype(np.int64), alias.astype(np.int64)
        mass = _integer_mass(prob, alias)
        if np.count_nonzero(mass) < 2:
            raise ValueError("the noise distribution must give a positive probability to at least two "
                             "words: a negative sample can never be its own target")
        cumulative = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(mass, out=cumulative[1:])
        for name, value in (("alias_prob", prob), ("alias_index", alias), ("cumulative", cumulative)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @classmethod
    def from_weights(cls, weights) -> "NoiseTable":
        """The table of the distribution proportional to ``weights`` (1-D, finite, >= 0).

        Raises ValueError unless at least two words get a positive probability: a negative
        must differ from its target, so a one-word distribution has nothing to draw."""
        weights = np.asarray(weights)
        if weights.ndim != 1 or weights.dtype.kind not in "iuf":
            raise ValueError(f"noise weights must be a 1-D array of real numbers, got shape {weights.shape} "
                             f"and dtype {weights.dtype}")
        weights = weights.astype(np.float64)
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("noise weights must be finite and non-negative")
        total = weights.sum()
        if not total > 0 or not np.isfinite(total):
            raise ValueError("noise weights must have a positive, finite sum")
        positive = np.count_nonzero(weights)
        if positive < 2:
            raise ValueError(f"noise weights must be positive for at least two words, got {positive}: a negative "
                             "sample can never be its own target")
        table = vose_alias(weights)
        if np.count_nonzero(_integer_mass(*table)) < 2:
            second, first = np.partition(weights, -2)[-2:]
            raise ValueError(f"noise weights are positive for {positive} words, but the largest is {first / second:.3g} "
                             "times the next, beyond the alias table's resolution of 2**-32: every draw would "
                             "be one word. Flatten the weights (a smaller power) or drop that word")
        return cls(*table)

    @classmethod
    def from_counts(cls, counts, power: float = 0.75) -> "NoiseTable":
        """The unigram distribution raised to ``power`` (word2vec's 0.75), from word counts."""
        counts = np.asarray(counts)
        if counts.dtype.kind not in "iuf":
            raise TypeError(f"counts must be real numbers, got dtype {counts.dtype}")
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or not np.isfinite(power):
            raise ValueError(f"power must be a finite number, got {power!r}")
        counts = counts.astype(np.float64)
        if (counts < 0).any():
            raise ValueError("counts must be non-negative")
        # 0 ** power is 1 for power == 0: a word never seen stays out of the distribution.
        weights = np.zeros_like(counts)
        seen = counts > 0
        weights[seen] = counts[seen] ** float(power)
        return cls.from_weights(weights)

    @property
    def vocab_size(self) -> int:
        return self.alias_prob.shape[0]

    @property
    def probabilities(self) -> np.ndarray:
        """(V,) float64: the probability of each word under this table."""
        return np.diff(self.cumulative) / float(self.cumulative[-1])

    def arrays(self, like=None) -> tuple:
        """(alias_prob, alias_index, cumulative) on ``like``'s device (copied there once)."""
        if like is None or type(like) is np.ndarray or not dispatch.is_device_array(like):
            return self.alias_prob, self.alias_index, self.cumulative
        xp = dispatch.array_module(like)
        key = xp.__name__
        if key not in self._on_device:
            self._on_device[key] = tuple(xp.asarray(a) for a in (self.alias_prob, self.alias_index, self.cumulative))
        return self._on_device[key]


# ----- public ops ----------------------------------------------------------------------------

def _rows_and_ids(W, idx, h, who):
    """Validated (xp, idx as given, (N, K) int64 ids, h as an (N, D) array of W's dtype)."""
    check_float_matrix(W, "W")
    xp = dispatch.array_module(W)
    idx = as_id_array(idx, like=W)
    check_same_device(W, idx, h)
    if not (hasattr(h, "dtype") and hasattr(h, "shape")):
        h = xp.asarray(h)
    if not is_float_dtype(h.dtype):
        raise TypeError(f"{who}: h must be a float array, got dtype {h.dtype}")
    if h.ndim != 2 or h.shape[1] != W.shape[1]:
        raise ValueError(f"{who}: h must have shape (N, {W.shape[1]}) to meet W's rows, got {tuple(h.shape)}")
    if idx.ndim == 0 or idx.shape[0] != h.shape[0]:
        raise ValueError(f"{who}: idx of shape {tuple(idx.shape)} needs a first axis of {h.shape[0]} "
                         f"(one row of ids per row of h)")
    flat = check_ids(idx, W.shape[0])
    n = h.shape[0]
    k = flat.size // n if n else 0
    return xp, idx, flat.reshape(n, k), h


def gather_dot(W, idx, h):
    """``out[n, ...] = W[idx[n, ...]] . h[n]``: the scores of word2vec's output layer.

    ``W`` (V, D) float32/float64; ``idx`` integer ids in ``[0, V)`` with shape (N, ...) (an
    array, list or tuple: one row of ids per row of h); ``h`` (N, D) float, cast to W's dtype.
    Returns a new array of idx's shape and W's dtype. Each dot product is summed in the order
    the module docstring fixes, so every CPU backend returns the same bits.
    """
    xp, idx, ids, h = _rows_and_ids(W, idx, h, "gather_dot")
    if ids.size == 0:
        return xp.empty(tuple(idx.shape), dtype=W.dtype)
    if W.shape[1] == 0:
        return xp.zeros(tuple(idx.shape), dtype=W.dtype)
    h = xp.ascontiguousarray(h, dtype=W.dtype)
    out = registry.kernel("gather_dot", W)(xp.ascontiguousarray(W), ids, h)
    return out.reshape(tuple(idx.shape))


def gather_dot_backward(W, idx, h, dout, dW):
    """The backward of :func:`gather_dot`: returns ``dh`` and adds into ``dW``.

    ``dh[n] = sum_k dout[n, k] * W[idx[n, k]]`` (a new (N, D) array of W's dtype) and
    ``dW[idx[n, k]] += dout[n, k] * h[n]`` in place, repeated ids summed; returns ``dh``.
    ``dout`` has idx's shape (cast to W's dtype); ``dW`` has W's shape and dtype. Every input is
    read before dW changes, even when one shares memory with it (such inputs are copied first).
    """
    xp, idx, ids, h = _rows_and_ids(W, idx, h, "gather_dot_backward")
    check_float_matrix(dW, "dW")
    check_same_device(W, dW, dout)
    if dW.shape != W.shape or dW.dtype != W.dtype:
        raise ValueError(f"dW must have W's shape {tuple(W.shape)} and dtype {W.dtype}, got "
                         f"{tuple(dW.shape)} {dW.dtype}")
    if not getattr(dW.flags, "writeable", True):  # CuPy arrays have no such flag
        raise ValueError("dW is read-only; gather_dot_backward writes into it")
    if not (hasattr(dout, "dtype") and hasattr(dout, "shape")):
        dout = xp.asarray(dout)
    if not is_float_dtype(dout.dtype):
        raise TypeError(f"gather_dot_backward: dout must be a float array, got dtype {dout.dtype}")
    if tuple(dout.shape) != tuple(idx.shape):
        raise ValueError(f"gather_dot_backward: dout has shape {tuple(dout.shape)}, idx {tuple(idx.shape)}")
    n, width = h.shape
    if ids.size == 0 or width == 0:
        return xp.zeros((n, width), dtype=W.dtype)
    # The kernels read W, ids, h and dout while writing dW: whatever shares its memory is
    # copied first, so the answer is the same on every backend.
    W, h, dout = (a.copy() if xp.may_share_memory(a, dW) else a for a in (W, h, dout))
    if xp.may_share_memory(ids, dW):
        ids = ids.copy()
    W = xp.ascontiguousarray(W)
    h = xp.ascontiguousarray(h, dtype=W.dtype)
    dout = xp.ascontiguousarray(dout.reshape(ids.shape), dtype=W.dtype)
    kernel = registry.kernel("gather_dot_backward", W)
    if dW.flags.c_contiguous:
        return kernel(W, ids, h, dout, dW)
    target = xp.ascontiguousarray(dW)  # kernels write through C-contiguous buffers only
    dh = kernel(W, ids, h, dout, target)
    dW[...] = target
    return dh


def _physical_memory() -> int:
    """Bytes of RAM on this machine (a huge number where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 62


def sample_negatives(table, target, sample_size: int, seed: int = 0, counter: int = 0):
    """``sample_size`` negatives per target id, never the target itself: int64, shape
    ``target.shape + (sample_size,)``.

    ``table`` is a :class:`NoiseTable` (build it once: ``NoiseTable.from_counts(counts, 0.75)``)
    or 1-D noise weights (a table is built for this call). ``seed`` (an int in [0, 2**64)) and
    ``counter`` (the index of the first slot, >= 0) pick the draws: the same arguments give the
    same negatives on every backend; a caller drawing batch after batch advances ``counter`` by
    ``target.size * sample_size`` each time (as UnigramSampler does). Device targets give
    device negatives.
    """
    if not isinstance(table, NoiseTable):
        table = NoiseTable.from_weights(table if not dispatch.is_device_array(table) else table.get())
    sample_size = _non_negative_int(sample_size, "sample_size")
    seed = _non_negative_int(seed, "seed")
    counter = _non_negative_int(counter, "counter")
    if seed >= 1 << 64:
        raise ValueError(f"seed must be below 2**64, got {seed}")
    target = as_id_array(target)
    xp = dispatch.array_module(target)
    flat = check_ids(target, table.vocab_size, what="target id")
    shape = tuple(target.shape) + (sample_size,)
    if counter + flat.size * sample_size > MAX_SLOTS:
        raise ValueError(f"counter {counter} + {flat.size * sample_size} slots passes 2**61; start a new seed")
    result_bytes = flat.size * sample_size * np.dtype(np.int64).itemsize
    if result_bytes > _physical_memory():  # refused here, not by an allocator mid-kernel (or the OOM killer)
        raise ValueError(f"sample_size {sample_size} for {flat.size} target(s) needs {result_bytes / 2**30:,.0f} GiB "
                         f"of negatives, more than this machine's {_physical_memory() / 2**30:,.0f} GiB of memory")
    if flat.size == 0 or sample_size == 0:
        return xp.empty(shape, dtype=np.int64)
    alias_prob, alias_index, cumulative = table.arrays(like=flat)
    out = registry.kernel("sample_negatives", flat)(alias_prob, alias_index, cumulative, flat, sample_size,
                                                    np.uint64(seed), np.uint64(counter))
    return out.reshape(shape)


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _dot_problems(dtype=None):
    """(W, idx, h, dout, dW) of storage dtype ``dtype`` (any of STORAGE when None); values drawn
    in float64 and rounded to the dtype, so each is one the dtype holds."""
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        chosen = np.dtype(dtype) if dtype is not None else draw(st.sampled_from(STORAGE))
        vocab = draw(st.integers(1, 40))  # small vocabularies: repeated ids are the common case
        width = draw(st.sampled_from([1, 2, 3, 15, 16, 17, 33, 100]))
        n = draw(st.sampled_from([1, 2, 5, 33]))
        k = draw(st.sampled_from([1, 2, 6]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        W = rng.standard_normal((vocab, width)).astype(chosen)
        idx = rng.integers(0, vocab, (n, k)).astype(np.int64)
        if draw(st.booleans()):
            idx[:, -1] = idx[:, 0]  # the same id twice in one row, too
        h = rng.standard_normal((n, width)).astype(chosen)
        dout = rng.standard_normal((n, k)).astype(chosen)
        dW = rng.standard_normal((vocab, width)).astype(chosen)
        return W, idx, h, dout, dW

    return problems()


def _gather_dot_examples(dtype=None):
    return _dot_problems(dtype).map(lambda p: p[:3])


def _gather_dot_backward_examples(dtype=None):
    return _dot_problems(dtype)


def _sample_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        vocab = draw(st.integers(2, 40))
        kind = draw(st.sampled_from(["counts", "uniform", "dominant", "sparse"]))
        if kind == "counts":
            weights = rng.zipf(1.5, vocab).astype(np.float64) ** 0.75
        elif kind == "uniform":
            weights = np.ones(vocab)
        elif kind == "dominant":  # the target usually hits itself: the inverse-CDF path runs
            weights = np.full(vocab, 1e-3)
            weights[0] = 1.0
        else:
            weights = rng.random(vocab) * (rng.random(vocab) < 0.4)
            weights[rng.choice(vocab, 2, replace=False)] = 1.0
        table = NoiseTable.from_weights(weights)
        n = draw(st.sampled_from([1, 3, 20, 64]))
        target = rng.integers(0, vocab, n).astype(np.int64)
        if kind == "dominant":
            target[: n // 2 + 1] = 0
        sample_size = draw(st.sampled_from([1, 5, 17]))
        seed = np.uint64(draw(st.integers(0, 2**64 - 1)))
        counter = np.uint64(draw(st.sampled_from([0, 1, 12345, 2**40])))
        return (table.alias_prob, table.alias_index, table.cumulative, target, sample_size, seed, counter)

    return problems()


# Benchmark size (bench/test_bench_sgns.py): the book's CBOW with negative sampling (ch. 4), V 10000,
# D 100, a batch of 100 targets, each scored against itself and 5 negatives (K = 6).
_BENCH_V, _BENCH_D, _BENCH_N, _BENCH_NEGATIVES = 10000, 100, 100, 5


def _dot_benchmark():
    rng = np.random.default_rng(0)
    W = (0.01 * rng.standard_normal((_BENCH_V, _BENCH_D))).astype(np.float32)
    idx = rng.integers(0, _BENCH_V, (_BENCH_N, 1 + _BENCH_NEGATIVES)).astype(np.int64)
    h = rng.standard_normal((_BENCH_N, _BENCH_D)).astype(np.float32)
    dout = rng.standard_normal(idx.shape).astype(np.float32)
    return W, idx, h, dout, np.zeros_like(W)


def _gather_dot_benchmark():
    return _dot_benchmark()[:3]


def _sample_benchmark():
    """5 negatives for each of 100 targets from the 0.75-power unigram table of Zipf-like counts."""
    rng = np.random.default_rng(0)
    counts = np.bincount(np.minimum(rng.zipf(1.2, 200_000) - 1, _BENCH_V - 1), minlength=_BENCH_V)
    table = NoiseTable.from_counts(counts, 0.75)
    target = rng.integers(0, _BENCH_V, _BENCH_N).astype(np.int64)
    return (table.alias_prob, table.alias_index, table.cumulative, target, _BENCH_NEGATIVES, np.uint64(1),
            np.uint64(0))


registry.register(registry.OpSpec(
    name="gather_dot", family="sgns", doc="out[n, k] = W[idx[n, k]] . h[n] (16-lane dot)",
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND, exact=True, tolerance=_GPU_TOLERANCE,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_gather_dot_examples, benchmark_args=_gather_dot_benchmark, dtype_of=lambda args: args[0].dtype))
registry.register(registry.OpSpec(
    name="gather_dot_backward", family="sgns",
    doc="dh[n] = sum_k dout[n, k] W[idx[n, k]]; dW[idx[n, k]] += dout[n, k] h[n]",
    # dW's scatter on the GPU is atomicAdd (sgns.cu); the CPU loops add in order of (n, k).
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND - {"cupy"}, exact=True, tolerance=_GPU_TOLERANCE,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_gather_dot_backward_examples, benchmark_args=_dot_benchmark, writes=(4,),
    dtype_of=lambda args: args[0].dtype))
registry.register(registry.OpSpec(
    name="sample_negatives", family="sgns",
    doc="alias-table negatives, never the target; counter-based splitmix64 draws",
    dtypes=(np.dtype(np.int64),), deterministic=registry.EVERY_BACKEND, exact=True, tolerance=_EXACT_IDS,
    examples=_sample_examples, benchmark_args=_sample_benchmark, dtype_of=lambda args: args[3].dtype))
