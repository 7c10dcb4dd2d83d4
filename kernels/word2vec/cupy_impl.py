"""CuPy wrapper of the word2vec training ops around word2vec.cu (inputs validated, see __init__.py).

The registered ops launch one block: sentences are trained one after another in the
reference's order of float operations, so the result equals the CPU's (the check the generated
tests make). ``train_hogwild`` launches many blocks that train sentences at once and update
shared rows without locks: the fast GPU mode, not reproducible bit for bit.
:class:`HogwildKernel` is the model's entry to it (``Word2Vec(device="cuda")``): weights and
tables on the device, checked once, each job's ids checked on the host and copied over, and
the loss left on the device until the caller asks for it, so the host prepares the next job
while the device trains this one.
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import typed_kernel
from . import FLOATS, MAX_SCRATCH_BYTES, MAX_WINDOW, Tables, check_job, check_problem, scratch_bytes
from .reference import train_privately

SOURCE = Path(__file__).with_name("word2vec.cu")
THREADS = 128  # a multiple of 16: one dot product per 16 threads
# Blocks of a Hogwild launch per streaming multiprocessor: a block's thread 0 does the serial part
# of each word (the window, the outputs, the gradients) while the others wait at a barrier, so
# several resident blocks per SM keep it busy; 8 blocks of 128 threads are half the 2,048 threads an SM
# holds (Ampere, Hopper).
BLOCKS_PER_SM = 8


def default_blocks(device_id=None) -> int:
    """Thread blocks for a Hogwild launch on device ``device_id`` (the current one by default):
    BLOCKS_PER_SM per streaming multiprocessor."""
    if device_id is None:
        device_id = cupy.cuda.Device().id
    return BLOCKS_PER_SM * int(cupy.cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"])


def launch_hogwild(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                   codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                   shrink_windows=True, blocks=1, first=0, stop=None):
    """One job (its sentences [first, stop), all by default) on ``blocks`` thread blocks,
    asynchronously: returns the device arrays of the loss and the trained words of each block
    (the host waits only when it reads them)."""
    V, D = syn0.shape
    N = tokens.shape[0]
    if V == 0 or N == 0:
        return cupy.zeros(1, dtype=cupy.float64), cupy.zeros(1, dtype=cupy.int64)
    hs = code_lengths.shape[0] > 0
    max_code = points.shape[1] if hs else 0
    max_out = max_code + (negative + 1 if negative > 0 else 0)
    span = min(window, N)  # as word2vec.cu lays out a block's scratch
    max_in = 2 * span if sg else 1
    block_reals = max_out + max_in * max_out + max_in * D + D + THREADS
    block_ints = 2 * span + max_out + max_in + 3
    reals = cupy.empty(blocks * block_reals, dtype=syn0.dtype)
    ints = cupy.empty(blocks * block_ints, dtype=cupy.int64)
    kept = cupy.empty(N, dtype=cupy.int32)
    kept_at = cupy.empty(N, dtype=cupy.int64)
    loss = cupy.zeros(blocks, dtype=cupy.float64)
    trained = cupy.zeros(blocks, dtype=cupy.int64)
    real = syn0.dtype.type
    T = sigmoid_tables.shape[1]
    typed_kernel(SOURCE, "word2vec_train", syn0.dtype)(
        (blocks,), (THREADS,),
        (np.int32(bool(sg)), syn0, syn1neg, syn1, np.int64(D), tokens, np.int64(N), sentence_ends,
         np.int64(first), np.int64(sentence_ends.shape[0] if stop is None else stop), keep_below, alias_prob,
         alias_index, np.int64(alias_prob.shape[0]),
         points, codes, code_lengths, np.int64(max_code), np.int32(hs), sigmoid_tables, np.int64(T),
         real(max_exp), real(T / (2.0 * max_exp)), np.int64(window), np.int64(negative), np.float64(alpha_start),
         np.float64(alpha_end), np.uint64(seed), np.int32(bool(shrink_windows)), kept, kept_at, reals, np.int64(block_reals), ints,
         np.int64(block_ints), loss, trained))
    return loss, trained


def train_hogwild(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                  codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                  shrink_windows=True, blocks=1, first=0, stop=None):
    """One job (sentences [first, stop)) on ``blocks`` thread blocks; returns (loss, trained)
    like the registered ops."""
    loss, trained = launch_hogwild(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                   alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                   negative, alpha_start, alpha_end, seed, shrink_windows, blocks, first, stop)
    return float(loss.sum()), int(trained.sum())


def _train_op(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points, codes,
              code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
              private_rows, sync_tokens):
    """The registered ops: one block, a launch per range of sentences when rows are private (the
    rule's arithmetic between the launches, reference.train_privately)."""
    return train_privately(
        lambda first, stop: train_hogwild(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                          alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                          negative, alpha_start, alpha_end, seed, shrink_windows, 1, first, stop),
        syn0, syn1neg, cupy.asnumpy(sentence_ends), private_rows, sync_tokens)


def word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _train_op(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                     codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                     shrink_windows, private_rows, sync_tokens)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _train_op(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                     codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                     shrink_windows, private_rows, sync_tokens)


class HogwildKernel:
    """A model's weights on the device (CuPy arrays) and its tables, checked once, and the
    multi-block Hogwild launch that trains a job on them: what ``TrainingKernel`` is on the host.

    The tables are checked on the host against the weights' row counts (``check_problem`` on
    zero-width stand-ins: the same checks, no copy of the weights) and then copied to the
    device; each job's ids are checked on the host (``check_job``) before they are copied.
    ``blocks`` blocks train a job's sentences at once (sentence s on block s % blocks), updating
    shared rows without locks: not reproducible bit for bit, whatever ``seed``.
    """

    backend = "cupy"

    def __init__(self, syn0, syn1neg, syn1, tables: Tables, *, sg: bool, window: int, negative: int,
                 shrink_windows: bool = True, blocks: int):
        for name, weights in (("syn0", syn0), ("syn1neg", syn1neg), ("syn1", syn1)):
            if not isinstance(weights, cupy.ndarray):
                raise TypeError(f"{name} must be a CuPy array on the device, got {type(weights).__name__}")
            if weights.ndim != 2 or weights.dtype != syn0.dtype or weights.shape[1] != syn0.shape[1] \
                    or not weights.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous (rows, {syn0.shape[1]}) {syn0.dtype}, got "
                                 f"{weights.shape} {weights.dtype}")
        if syn0.dtype not in FLOATS:
            raise TypeError(f"syn0 must be float32 or float64, got {syn0.dtype}")
        # Zero-width host arrays with the weights' rows: check_problem's checks of the tables
        # (ids in range of the rows they index) without copying a weight.
        check_problem(*(np.empty((w.shape[0], 0), dtype=syn0.dtype) for w in (syn0, syn1neg, syn1)), tables,
                      negative)
        if not 1 <= int(window) <= MAX_WINDOW:
            raise ValueError(f"window must be in [1, {MAX_WINDOW}], got {window}")
        if int(blocks) < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        self.device = syn0.device
        with self.device:
            self.tables = tuple(cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in tables.arrays())
        self.host_tables = tables
        self.weights = (syn0, syn1neg, syn1)
        self.sg, self.window, self.negative = bool(sg), int(window), int(negative)
        self.shrink_windows, self.blocks = bool(shrink_windows), int(blocks)

    def check_scratch(self, n_tokens: int) -> None:
        """Raise ValueError naming the window when a launch over ``n_tokens`` tokens would need
        more than MAX_SCRATCH_BYTES of scratch on the device for all its blocks together."""
        syn0 = self.weights[0]
        t = self.host_tables
        max_code = t.points.shape[1] if t.code_lengths.shape[0] else 0
        needed = self.blocks * scratch_bytes(sg=self.sg, window=self.window, negative=self.negative,
                                             max_code=max_code, vector_size=syn0.shape[1], n_tokens=n_tokens,
                                             itemsize=syn0.itemsize)
        if needed > MAX_SCRATCH_BYTES:
            raise ValueError(
                f"window={self.window} cannot be honoured on the device: a launch of {n_tokens} tokens on "
                f"{self.blocks} blocks would need {needed / 2**20:.0f} MiB of scratch (at most "
                f"{MAX_SCRATCH_BYTES >> 20} MiB): lower window or cut the long sentences")

    def upload(self, tokens, sentence_ends):
        """A job's ids on the device: host arrays are checked, then copied; device arrays (ids
        uploaded for an earlier epoch) pass as they are."""
        if isinstance(tokens, cupy.ndarray) and isinstance(sentence_ends, cupy.ndarray):
            return tokens, sentence_ends
        check_job(tokens, sentence_ends, self.weights[0].shape[0])
        with self.device:
            return cupy.asarray(tokens), cupy.asarray(sentence_ends)

    def launch(self, tokens, sentence_ends, alpha_start: float, alpha_end: float, seed: int):
        """Start training one job (ids from :meth:`upload`); returns the loss as a device array
        of one value per block, without waiting for the device."""
        if not (0 <= seed < 2**64):
            raise ValueError(f"seed must be a uint64, got {seed}")
        for name, value in (("alpha_start", alpha_start), ("alpha_end", alpha_end)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.check_scratch(tokens.shape[0])
        with self.device:
            loss, _ = launch_hogwild(self.sg, *self.weights, tokens, sentence_ends, *self.tables, self.window,
                                     self.negative, float(alpha_start), float(alpha_end), int(seed),
                                     self.shrink_windows, self.blocks)
        return loss

    @staticmethod
    def losses(launched) -> list:
        """The host values of the losses of several launches, in one transfer (this waits for them)."""
        if not launched:
            return []
        sums = cupy.stack([loss.sum() for loss in launched])
        return [float(x) for x in cupy.asnumpy(sums)]

    def __call__(self, tokens, sentence_ends, alpha_start: float, alpha_end: float, seed: int):
        """Train on one job and wait for it; returns ``(loss, None)`` (TrainingKernel's shape)."""
        loss = self.launch(*self.upload(tokens, sentence_ends), alpha_start, alpha_end, seed)
        return self.losses([loss])[0], None
