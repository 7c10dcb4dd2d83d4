"""Sparse co-occurrence counting and PPMI (book ch. 2), never allocating anything V x V.

The contract of the backend-level ops (every file in this folder implements it):

    cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id)
        -> (indptr int64, indices int32, data float64): canonical CSR parts (sorted, no
        duplicates) of the symmetric window counts of the (N,) int64 ``tokens``, counting only
        pairs whose right position is >= ``n_context`` (the first ``n_context`` tokens are
        context carried over from the previous chunk); see reference.py.
    csr_sum_indptr(indptr, indices, part_starts, part_indices) -> (V + 1,) int64 indptr of the
        sum of a canonical (V, V) CSR matrix (int64 indptr, int32 indices; may be empty) and k
        canonical CSR parts packed in one array: part q's row r is
        ``part_indices[part_starts[q, r]:part_starts[q, r + 1]]`` ((k, V + 1) int64
        ``part_starts``, each row non-decreasing, columns < V).
    csr_sum_into(indptr, indices, data, part_starts, part_indices, part_data, out_indptr, out_indices,
                 out_data) -> None: writes the canonical sum of the matrix (its first ``indptr[-1]``
        entries of ``indices`` / ``data``) and the parts (float64 ``part_data`` beside
        ``part_indices``) into ``out_indices`` / ``out_data`` (int32 / float64, room for
        ``out_indptr[-1]`` entries; ``out_indptr`` from ``csr_sum_indptr``). The output may be
        the matrix's own arrays, grown: each row is read before rows at or above it are written.
        Each sum starts from 0.0 and adds the matrix's value, then the parts' in order.
    ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps)
        -> (nnz,) float64 PPMI of every stored count, computed in log space.
    index_words(tokens, word_to_index) -> (N,) int64 index of every token (a list of str) in
        ``word_to_index`` (a dict of str -> int with the values 0..n-1); words not in it are
        added with the next index, in order of first appearance (the vocabulary pass of
        ``fastnlp.corpus_files``). Host only: it walks Python objects.

The public ``cooccurrence`` / ``ppmi`` below validate, stream chunks and build the matrices;
``csr_sum_indptr`` / ``csr_sum_into`` are how ``cooccurrence`` merges the chunks' counts into
its result (their inputs are the kernels' outputs).
"""
from __future__ import annotations

import os

import numpy as np

from .. import dispatch, registry
from ..validate import cast_exactly, check_ids

MAX_WINDOW = 255  # kernels keep pair distances in one byte


def cooccurrence(corpus, vocab_size, window=1, weighting="uniform", boundary_id=None, dtype=np.float32,
                 memory_budget=None, context=None):
    """Symmetric co-occurrence counts as a (V, V) ``scipy.sparse.csr_matrix``.

    ``C[w, c]`` counts how often ``c`` appears within ``window`` tokens on either side of ``w``,
    exactly as the book's ``create_co_matrix`` for ``weighting="uniform"``; ``"harmonic"``
    weights a pair at distance d by 1/d. With ``boundary_id`` (e.g. the id of ``<eos>``) no
    pair is counted across that token; the token itself still pairs with its own sentence.

    ``corpus`` is a 1-D integer array or list of ints, or an iterable of such chunks (a
    memory-mapped array split into pieces, say) treated as one stream with the same result; a
    generator may refill one buffer between chunks. ``context``: ids that come before the
    corpus (the end of the previous shard), counted only as the left side of pairs.

    ``memory_budget`` (bytes, or a size such as ``"512M"``; default ``default_memory_budget()``)
    bounds the working memory of the counting: the corpus is counted in chunks as large as the
    budget allows for their pairs (worst case: every pair distinct), and the chunks' partial
    counts are added into the result, in place, when the room left for the next chunk falls
    below half a chunk. Larger chunks are faster (merging costs about as much per entry as
    counting; see bench/README.md#co-occurrence-under-a-memory-budget), so the budget only
    trades speed for memory. The result itself is not bounded by the budget: it is what was
    asked for (12 bytes per stored count), held once. A budget too small for one token's window
    of pairs raises ``ValueError`` naming the minimum. Uniform counts do not depend on the
    chunking; harmonic sums may differ in the last bits (float additions in another order).

    Nothing of size V x V is ever allocated. Indices are sorted and duplicate-free (canonical
    CSR); values are summed in float64 and returned as ``dtype``; an integer ``dtype`` too
    narrow for the counts (or harmonic weights with fractions) raises instead of wrapping or
    truncating. A CuPy corpus gives a ``cupyx.scipy.sparse.csr_matrix`` on the device.
    """
    vocab_size = _positive_int(vocab_size, "vocab_size")
    window = _check_window(window)
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    harmonic = weighting == "harmonic"
    if boundary_id is None:
        boundary = -1
    else:
        boundary = _positive_int(boundary_id, "boundary_id", allow_zero=True)
        if boundary >= vocab_size:
            raise IndexError(f"boundary_id {boundary} is out of range for vocab_size {vocab_size}")

    if memory_budget is not None:
        memory_budget = parse_size(memory_budget)  # a bad setting fails before any reading
    if isinstance(corpus, (list, tuple)) and (not corpus or np.isscalar(corpus[0])):
        corpus = np.asarray(corpus, dtype=np.int64 if not corpus else None)  # one corpus, not chunks
    chunks = [corpus] if hasattr(corpus, "shape") else corpus
    xp, counts, tail, n_tokens = None, None, None, 0
    for chunk in chunks:
        if xp is None:
            xp = dispatch.array_module(chunk) if hasattr(chunk, "shape") else np
            budget = _Budget(memory_budget, vocab_size, window, backend=_backend_of(xp), xp=xp)
            counts = PartialCounts(vocab_size, xp)
            tail = _context_tail(context, vocab_size, window, xp)
        chunk = xp.asarray(chunk)
        if chunk.ndim != 1:
            raise ValueError(f"corpus chunks must be 1-D token ids, got shape {chunk.shape}")
        # Views as large as the room left in the budget, checked (and made int64) one at a
        # time so no copy of a whole large corpus is ever made.
        begin = 0
        while begin < chunk.shape[0]:
            room = budget.room_tokens(counts.pending_bytes)
            if room < max(1, budget.chunk_tokens // 2) and counts.pending_bytes:
                counts.merge()
                room = budget.chunk_tokens
            ids = check_ids(chunk[begin:begin + room], vocab_size, what="token id")
            begin += room
            n_tokens += ids.size
            # Carry the last `window` tokens so pairs that straddle chunks are counted once.
            tokens = xp.concatenate([tail, ids]) if tail is not None else ids
            kernel = registry.kernel("cooccurrence", tokens)
            counts.add(kernel(tokens, 0 if tail is None else tail.size, vocab_size, window, harmonic, boundary))
            tail = tokens[-window:].copy()  # a copy: the caller may refill this chunk's buffer
    if n_tokens == 0:
        raise ValueError("empty corpus: no token ids to count")
    total = counts.merge()
    values = cast_exactly(total.data, dtype, what="the co-occurrence matrix")
    return _sparse_module(xp).csr_matrix((values, total.indices, total.indptr), shape=total.shape)


def _check_window(window):
    window = _positive_int(window, "window")
    if window > MAX_WINDOW:
        raise ValueError(f"window must be at most {MAX_WINDOW}, got {window}")
    return window


def _context_tail(context, vocab_size, window, xp):
    """The last ``window`` ids of ``context`` (checked, int64), or None."""
    if context is None:
        return None
    context = xp.asarray(context)
    if context.ndim != 1:
        raise ValueError(f"context must be 1-D token ids, got shape {context.shape}")
    context = check_ids(context, vocab_size, what="context id")
    return context[-window:].copy() if context.size else None


# ----- memory budget ----------------------------------------------------------------------------

# Bytes the counting holds per pair of a chunk at its peak: the compiled kernels keep 10 bytes a
# pair through their two counting sorts, then 5 a pair + 12 a distinct pair (at most one per
# pair) while merging duplicates, then 12 + 12 while the chunk's part is copied to the pending
# ones; the NumPy reference and CuPy's COO -> CSR conversion hold int row, int column and float
# weight arrays, copied while summing.
PAIR_BYTES = {"numba": 24, "cython": 24, "numpy": 96, "cupy": 48}
# Per token: the int64 copy of a chunk check_ids makes and the chunk joined to its left context.
TOKEN_BYTES = 16
# Per vocabulary entry: a kernel's bucket starts, fill pointers and output indptr (a merge's
# accumulator and column stamps take less).
VOCAB_BYTES = 24
# Per partial count kept until the next merge: an int32 column and a float64 value per distinct
# pair, and its int64 indptr.
PART_NNZ_BYTES, PART_VOCAB_BYTES = 12, 8
# The default budget's share of the memory available: the result of the counting (not in the
# budget), the float64 copy PPMI makes of it and the SVD after it need the rest, and a machine
# counting several shards at once (Dask workers) runs several budgets side by side.
DEFAULT_BUDGET_SHARE = 8
# Measured (bench/README.md#co-occurrence-under-a-memory-budget): past 512 MiB a larger budget saves
# a few merges, a few percent of the time, while the process grows by all of it.
DEFAULT_BUDGET_CAP = 512 << 20
DEFAULT_BUDGET_WHEN_UNKNOWN = 512 << 20
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(size, name="memory_budget"):
    """Bytes from an int or a size string: ``"1500000"``, ``"512M"``, ``"2G"``, ``"64KiB"``
    (K, M, G, T are powers of 1024); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        value = int(size)
    elif isinstance(size, str):
        text = size.strip().upper().removesuffix("B").removesuffix("I")
        number, unit = (text[:-1], text[-1]) if text[-1:] in ("K", "M", "G", "T") else (text, "")
        try:
            value = int(float(number) * _SIZE_UNITS[unit])
        except (ValueError, OverflowError):  # not a number; inf
            raise ValueError(f"{name} must be a number of bytes or a size like 512M or 2G, got {size!r}") from None
    else:
        raise TypeError(f"{name} must be a number of bytes or a size like '512M', got {size!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return value


def available_memory_bytes(xp=np):
    """Bytes of memory free for new allocations (the device's for CuPy), or None if unknown."""
    if xp is not np:
        return int(xp.cuda.runtime.memGetInfo()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_budget(xp=np):
    """The budget ``cooccurrence`` uses without one: an eighth of the available memory, at most
    512 MiB (see ``DEFAULT_BUDGET_SHARE``), and 512 MiB where the available memory is unknown."""
    available = available_memory_bytes(xp)
    if available is None:
        return DEFAULT_BUDGET_WHEN_UNKNOWN
    return min(available // DEFAULT_BUDGET_SHARE, DEFAULT_BUDGET_CAP)


def _backend_of(xp):
    return "cupy" if xp is not np else registry.backend_for("cooccurrence")


class _Budget:
    """How many tokens a chunk may hold under a memory budget, and what a chunk costs."""

    def __init__(self, memory_budget, vocab_size, window, backend, xp=np):
        self.window = window
        self.vocab_bytes = VOCAB_BYTES * (vocab_size + 1)
        self.token_bytes = 2 * window * PAIR_BYTES.get(backend, max(PAIR_BYTES.values())) + TOKEN_BYTES
        # The least that counts anything: one token, its window of pairs, and their partial counts.
        least = self.working_bytes(1) + PART_VOCAB_BYTES * (vocab_size + 1) + PART_NNZ_BYTES * 2 * window
        self.least = least
        if memory_budget is None:  # never below what a vocabulary this large needs to count at all
            self.total = max(default_memory_budget(xp), least + self.token_bytes * 65536)
        else:
            self.total = parse_size(memory_budget)
        if self.total < least:
            raise ValueError(f"memory_budget={self.total} bytes is too small for one window of pairs: "
                             f"counting with window={window} over vocab_size={vocab_size} needs at least "
                             f"{least} bytes")
        self.part_vocab_bytes = PART_VOCAB_BYTES * (vocab_size + 1)
        self.chunk_tokens = max(1, self.room_tokens(0))

    def working_bytes(self, n_tokens):
        return self.vocab_bytes + self.token_bytes * (n_tokens + self.window)

    def room_tokens(self, pending_bytes):
        """The largest chunk whose counting fits beside ``pending_bytes`` of partial counts
        (with the indptr of its own part); 0 or less when none does."""
        room = self.total - pending_bytes - self.vocab_bytes - self.part_vocab_bytes
        return int(room // self.token_bytes - self.window)


def minimum_memory_budget(vocab_size, window):
    """The least ``memory_budget`` (bytes) ``cooccurrence`` takes for this vocabulary and window
    on this machine's backend: one token with its window of pairs at a time."""
    window = _check_window(window)
    vocab_size = _positive_int(vocab_size, "vocab_size")
    return _Budget(1 << 62, vocab_size, window, _backend_of(np)).least


def chunk_tokens_for_budget(memory_budget, vocab_size, window):
    """The chunk size (tokens) ``cooccurrence`` uses under ``memory_budget`` on this machine's
    backend: what a reader of a streamed corpus should hand it at a time."""
    window = _check_window(window)
    vocab_size = _positive_int(vocab_size, "vocab_size")
    return _Budget(memory_budget, vocab_size, window, _backend_of(np)).chunk_tokens


class PartialCounts:
    """The counts so far: one merged CSR matrix, plus the chunks' parts since the last merge
    packed one after another in two growing arrays (each part's rows start at its own indptr)."""

    def __init__(self, vocab_size, xp):
        self.xp = xp
        self.vocab_size = vocab_size
        self.merged = (xp.zeros(vocab_size + 1, dtype=np.int64), xp.zeros(0, dtype=np.int32),
                       xp.zeros(0, dtype=np.float64))
        self._clear()

    def _clear(self):
        xp = self.xp
        self.starts, self.part_indices, self.part_data = [], xp.zeros(0, np.int32), xp.zeros(0, np.float64)
        self.pending_bytes = 0

    def add(self, part):
        indptr, indices, data = part
        begin = self.part_indices.shape[0]
        end = begin + indices.shape[0]
        if self.xp is np:  # grown in place (see _grown); a device array is copied whole instead
            self.part_indices = _grown(self.part_indices, end, np)
            self.part_data = _grown(self.part_data, end, np)
            self.part_indices[begin:end] = indices
            self.part_data[begin:end] = data
        else:
            self.part_indices = self.xp.concatenate([self.part_indices, indices])
            self.part_data = self.xp.concatenate([self.part_data, data])
        self.starts.append(indptr + begin)
        self.pending_bytes = PART_NNZ_BYTES * end + PART_VOCAB_BYTES * (self.vocab_size + 1) * len(self.starts)

    def merge(self):
        """Add the parts to the merged matrix, in place (its arrays grow to the size of the sum,
        so the result is never held twice), and return it as a CSR matrix."""
        xp = self.xp
        indptr, indices, data = self.merged
        if len(self.starts) == 1 and indices.shape[0] == 0:  # nothing to add it to
            indptr, indices, data = self.starts[0], self.part_indices, self.part_data
        elif self.starts:
            starts = xp.stack(self.starts)
            out_indptr = registry.kernel("csr_sum_indptr", starts)(indptr, indices, starts, self.part_indices)
            n = int(out_indptr[-1])
            indices, data = _grown(indices, n, xp), _grown(data, n, xp)
            registry.kernel("csr_sum_into", data)(indptr, indices, data, starts, self.part_indices, self.part_data,
                                                  out_indptr, indices, data)  # in place
            indptr = out_indptr
        self.merged = (indptr, indices, data)
        self._clear()
        shape = (self.vocab_size, self.vocab_size)
        return _sparse_module(xp).csr_matrix((data, indices, indptr), shape=shape)


def _grown(array, size, xp):
    """``array`` with room for ``size`` entries, its first ones kept: resized where it owns its
    memory (``realloc``, which moves large blocks by remapping pages rather than copying them),
    else copied into a new array."""
    if xp is np and array.flags.owndata and array.base is None:
        try:
            array.resize(size, refcheck=False)
            return array
        except (ValueError, MemoryError):
            pass
    grown = xp.empty(size, dtype=array.dtype)
    grown[:array.shape[0]] = array
    return grown


def _sparse_module(xp):
    if xp is np:
        from scipy import sparse
    else:
        from cupyx.scipy import sparse
    return sparse


def ppmi(C, eps=1e-8, alpha=None, dtype=np.float32):
    """Positive PMI of a sparse count matrix, sparse in, sparse out (same sparsity pattern
    minus the entries that become 0).

    The book's definition, ``max(0, log2(C_wc * N / (S_w * S_c) + eps))`` with N the total
    count and S the row / column sums, evaluated only where C is non-zero (elsewhere the
    book's value is max(0, log2(eps)) = 0 too; a stored zero also gives 0). It is computed in
    log space from counts scaled by their maximum (PMI does not change under scaling), so
    counts of 1e200 or 1e-300 neither overflow nor underflow. ``alpha`` (e.g. 0.75) smooths
    the context distribution: S_c is replaced by N * S_c**alpha / sum(S**alpha) (Levy et al.
    2015). A ``cupyx.scipy.sparse`` matrix is processed on the device.
    """
    xp = dispatch.array_module(getattr(C, "data", None))
    sparse = _sparse_module(xp)
    if not sparse.issparse(C):
        raise TypeError(f"ppmi expects a scipy.sparse matrix (use fastnlp.ppmi_dense for arrays), "
                        f"got {type(C).__name__}")
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"co-occurrence matrix must be square, got shape {C.shape}")
    if not eps > 0 or not np.isfinite(eps):
        raise ValueError(f"eps must be positive and finite, got {eps}")
    if alpha is not None and not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if C.dtype.kind not in "iuf":
        raise TypeError(f"co-occurrence counts must be numbers, got dtype {C.dtype}")
    C = sparse.csr_matrix(C, dtype=np.float64, copy=True)  # never touch the caller's arrays
    C.sum_duplicates()
    if C.nnz and (not bool(xp.isfinite(C.data).all()) or float(C.data.min()) < 0):
        raise ValueError("co-occurrence counts must be finite and non-negative")
    if not (C.nnz and float(C.data.max()) > 0):
        raise ValueError("co-occurrence matrix is all zeros")
    values = registry.kernel("ppmi_values", C.data)(*_ppmi_arguments(C, eps, alpha, xp))
    result = sparse.csr_matrix((cast_exactly(values, dtype, what="the PPMI matrix"), C.indices, C.indptr),
                               shape=C.shape)
    result.eliminate_zeros()
    return result


def _ppmi_arguments(C, eps, alpha, xp):
    """The ``ppmi_values`` arguments of ``C`` (a float64 CSR matrix without duplicates, some count
    positive), whose counts this scales by their maximum in place."""
    C.data /= float(C.data.max())
    total = float(C.data.sum())
    with np.errstate(divide="ignore"):  # an empty row or column has log-sum -inf; no count uses it
        log_row_sums = xp.log2(xp.asarray(C.sum(axis=1)).ravel())
        log_col_sums = xp.log2(xp.asarray(C.sum(axis=0)).ravel())
    if alpha is None:
        log_context_weights = log_col_sums
    else:
        smoothed = alpha * log_col_sums
        peak = float(smoothed.max())
        log_norm = peak + float(xp.log2(xp.exp2(smoothed - peak).sum()))
        log_context_weights = np.log2(total) + smoothed - log_norm
    return (C.indptr.astype(np.int64), C.indices.astype(np.int32), C.data, log_row_sums, log_context_weights,
            float(np.log2(total)), float(np.log2(eps)))


def _positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return value


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _cooccurrence_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        vocab = draw(st.integers(1, 30))
        n = draw(st.sampled_from([1, 2, 3, 10, 57, 400]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        tokens = rng.integers(0, vocab, n).astype(np.int64)
        window = draw(st.sampled_from([1, 2, 3, 5, 12]))
        n_context = draw(st.sampled_from([0, 0, 1, window, n]))  # chunked input carries context
        n_context = min(n_context, n)
        harmonic = draw(st.booleans())
        boundary = draw(st.sampled_from([-1, 0, vocab - 1]))
        return tokens, n_context, vocab, window, harmonic, boundary

    return problems()


def _ppmi_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        from scipy import sparse

        vocab = draw(st.integers(1, 25))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        scale = draw(st.sampled_from([1.0, 1e-300, 1e200, 1e5]))
        dense = rng.integers(0, 4, (vocab, vocab)).astype(np.float64) * scale
        C = sparse.csr_matrix(dense)
        if draw(st.booleans()) and C.nnz:  # a stored zero, possibly in an otherwise empty row
            C.data[draw(st.integers(0, C.nnz - 1))] = 0.0
        C.data /= max(float(C.data.max()), 1e-300) if C.nnz else 1.0
        total = max(float(C.data.sum()), 1e-300)
        with np.errstate(divide="ignore"):
            log_rows = np.log2(np.asarray(C.sum(axis=1)).ravel())
            log_cols = np.log2(np.asarray(C.sum(axis=0)).ravel())
        eps = draw(st.sampled_from([1e-8, 1e-3, 1.0]))
        return (C.indptr.astype(np.int64), C.indices.astype(np.int32), C.data.astype(np.float64),
                log_rows, log_cols, float(np.log2(total)), float(np.log2(eps)))

    return problems()


# Benchmark size: the book's ch. 2 pipeline (fastnlp.count.count_vectors, window 2) on a corpus of
# 100,000 ids over V 10,000 (a ninth of PTB train), drawn from a Zipf-like unigram distribution.
_BENCH_VOCAB, _BENCH_TOKENS, _BENCH_WINDOW = 10_000, 100_000, 2


def _bench_corpus():
    from ..harness import zipf_probabilities

    rng = np.random.default_rng(0)
    return rng.choice(_BENCH_VOCAB, _BENCH_TOKENS, p=zipf_probabilities(_BENCH_VOCAB)).astype(np.int64)


def _cooccurrence_benchmark():
    """Uniform window-2 counts of the whole 100k-id corpus in one chunk."""
    return _bench_corpus(), 0, _BENCH_VOCAB, _BENCH_WINDOW, False, -1


def _ppmi_benchmark():
    """PPMI of that corpus' window-2 counts, prepared as ``ppmi`` prepares them."""
    from scipy import sparse

    C = sparse.csr_matrix(cooccurrence(_bench_corpus(), _BENCH_VOCAB, window=_BENCH_WINDOW, dtype=np.float64))
    C.sum_duplicates()
    return _ppmi_arguments(C, 1e-8, None, np)


def _packed(parts, gap=0):
    """``(part_starts, part_indices, part_data)`` of CSR parts packed after ``gap`` unused entries."""
    vocab_size = parts[0][0].shape[0] - 1 if parts else 0
    offsets = np.cumsum([gap] + [part[1].shape[0] for part in parts])
    starts = np.array([part[0] + offset for part, offset in zip(parts, offsets)], dtype=np.int64)
    part_indices = np.concatenate([np.zeros(gap, np.int32)] + [part[1] for part in parts]).astype(np.int32)
    part_data = np.concatenate([np.zeros(gap)] + [part[2] for part in parts]).astype(np.float64)
    return starts.reshape(len(parts), vocab_size + 1), part_indices, part_data


def _sum_arguments(indptr, indices, data, parts, gap, into):
    """The arguments of csr_sum_indptr, or of csr_sum_into with output arrays of the sum's size
    (filled with values the op must overwrite). ``cooccurrence`` passes the matrix's own grown
    arrays as the output; tests/test_count_streaming.py checks that this gives the same sum."""
    from .reference import csr_sum_indptr

    if not parts:  # shape (0, V + 1)
        starts, part_indices, part_data = np.zeros((0, indptr.shape[0]), np.int64), np.zeros(0, np.int32), np.zeros(0)
    else:
        starts, part_indices, part_data = _packed(parts, gap)
    if not into:
        return indptr, indices, starts, part_indices
    out_indptr = csr_sum_indptr(indptr, indices, starts, part_indices)
    n = int(out_indptr[-1])
    return (indptr, indices, data, starts, part_indices, part_data, out_indptr, np.full(n, -7, np.int32),
            np.full(n, np.nan))


def _csr_sum_examples(into):
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        from scipy import sparse

        vocab = draw(st.sampled_from([1, 2, 7, 63, 64, 65, 130, 4100]))  # around the bitmaps' 64s
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

        def counts():
            density = draw(st.sampled_from([0.0, 0.01, 0.2, 1.0])) if vocab < 200 else 0.001
            matrix = sparse.random(vocab, vocab, density=density, random_state=rng, format="csr",
                                   data_rvs=lambda n: rng.integers(1, 4, n) / rng.choice([1.0, 3.0, 7.0], n))
            matrix.sum_duplicates()
            return matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data.astype(np.float64)

        indptr, indices, data = counts()
        parts = [counts() for _ in range(draw(st.integers(0, 4)))]
        gap = draw(st.sampled_from([0, 3]))  # parts need not start at 0 in the packed arrays
        return _sum_arguments(indptr, indices, data, parts, gap, into)

    return problems()


def _csr_sum_benchmark(into):
    """One merge of ``cooccurrence`` on the 100k-id corpus (window 2): the counts of its first
    half, plus the parts of the next five chunks of 10k ids."""
    from .reference import cooccurrence as kernel

    corpus = _bench_corpus()
    half = _BENCH_TOKENS // 2
    indptr, indices, data = kernel(corpus[:half], 0, _BENCH_VOCAB, _BENCH_WINDOW, False, -1)
    parts = [kernel(corpus[start - _BENCH_WINDOW:start + 10_000], _BENCH_WINDOW, _BENCH_VOCAB, _BENCH_WINDOW,
                    False, -1) for start in range(half, _BENCH_TOKENS, 10_000)]
    return _sum_arguments(indptr, indices, data, parts, 0, into)


def _index_words_examples():
    from hypothesis import strategies as st

    words = st.sampled_from(["a", "b", "cat", "dog", "the", "é", "日本", "?", "a b"])
    known = st.dictionaries(words, st.just(0), max_size=4).map(lambda d: {w: i for i, w in enumerate(d)})
    return st.tuples(st.lists(words, max_size=40), known)


def _index_words_benchmark():
    """One block of a text file (about 1 MiB: 200k tokens) against a vocabulary that already
    holds most of its words, as in the middle of the vocabulary pass."""
    corpus = np.random.default_rng(0).zipf(1.1, 200_000) % 50_000
    return [f"w{i}" for i in corpus.tolist()], {f"w{i}": i for i in range(0, 50_000, 2)}


_FLOAT64 = np.dtype(np.float64)
registry.register(registry.OpSpec(
    name="cooccurrence", family="cooccurrence", doc="CSR parts of symmetric window counts",
    # CuPy sums duplicate pairs (COO -> CSR) with atomic adds: harmonic weights may differ
    # in the last bits run to run there.
    dtypes=(_FLOAT64,), deterministic=registry.EVERY_BACKEND - {"cupy"},
    # Harmonic weights (1/d) summed in another order differ in the last bits; uniform counts
    # are sums of ones and come out exact anyway.
    exact=False, tolerance={_FLOAT64: (0.0, 1e-13)},
    examples=_cooccurrence_examples, benchmark_args=_cooccurrence_benchmark, dtype_of=lambda args: _FLOAT64))
_INT64 = np.dtype(np.int64)
registry.register(registry.OpSpec(
    name="csr_sum_indptr", family="cooccurrence", doc="row sizes of a sum of canonical CSR count matrices",
    dtypes=(_INT64,), deterministic=registry.EVERY_BACKEND, exact=True, tolerance={_INT64: (0, 0)},
    examples=lambda: _csr_sum_examples(into=False), benchmark_args=lambda: _csr_sum_benchmark(into=False),
    dtype_of=lambda args: _INT64))
registry.register(registry.OpSpec(
    name="csr_sum_into", family="cooccurrence", doc="canonical CSR count matrices added in place",
    # CuPy sums through an unordered COO -> CSR conversion; the host loops add in the fixed order.
    dtypes=(_FLOAT64,), deterministic=registry.EVERY_BACKEND - {"cupy"},
    exact=True, tolerance={_FLOAT64: (0.0, 1e-13)}, writes=(7, 8),
    examples=lambda: _csr_sum_examples(into=True), benchmark_args=lambda: _csr_sum_benchmark(into=True),
    dtype_of=lambda args: _FLOAT64))
registry.register(registry.OpSpec(
    name="index_words", family="cooccurrence", doc="indices of tokens, new words added to the vocabulary",
    dtypes=(_INT64,), deterministic=registry.EVERY_BACKEND, exact=True, tolerance={_INT64: (0, 0)},
    examples=_index_words_examples, benchmark_args=_index_words_benchmark, dtype_of=lambda args: _INT64,
    preference=("cython", "numpy"),
    absent={"numba": "Numba compiles no loop over Python strings and dicts; the Cython loop does this one",
            "cupy": "text is read and indexed on the host"}))
registry.register(registry.OpSpec(
    name="ppmi_values", family="cooccurrence", doc="PPMI of every stored count, in log space",
    dtypes=(_FLOAT64,), deterministic=registry.EVERY_BACKEND,
    exact=False, tolerance={_FLOAT64: (1e-12, 1e-12)},  # log2 / exp2 of libm and NumPy may differ by an ulp
    examples=_ppmi_examples, benchmark_args=_ppmi_benchmark, dtype_of=lambda args: _FLOAT64))
