"""Sparse co-occurrence counting and PPMI (book ch. 2), never allocating anything V x V.

The contract of the backend-level ops (every file in this folder implements it):

    cooccurrence(tokens, n_context, vocab_size, window, harmonic, boundary_id)
        -> (indptr int64, indices int32, data float64): canonical CSR parts (sorted, no
        duplicates) of the symmetric window counts of the (N,) int64 ``tokens``, counting only
        pairs whose right position is >= ``n_context`` (the first ``n_context`` tokens are
        context carried over from the previous chunk); see reference.py.
    ppmi_values(indptr, indices, counts, log_row_sums, log_context_weights, log_total, log_eps)
        -> (nnz,) float64 PPMI of every stored count, computed in log space.

The public ``cooccurrence`` / ``ppmi`` below validate, stream chunks and build the matrices.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..validate import cast_exactly, check_ids

MAX_WINDOW = 255  # kernels keep pair distances in one byte


def cooccurrence(corpus, vocab_size, window=1, weighting="uniform", boundary_id=None, dtype=np.float32):
    """Symmetric co-occurrence counts as a (V, V) ``scipy.sparse.csr_matrix``.

    ``C[w, c]`` counts how often ``c`` appears within ``window`` tokens on either side of ``w``,
    exactly as the book's ``create_co_matrix`` for ``weighting="uniform"``; ``"harmonic"``
    weights a pair at distance d by 1/d. With ``boundary_id`` (e.g. the id of ``<eos>``) no
    pair is counted across that token; the token itself still pairs with its own sentence.

    ``corpus`` is a 1-D integer array or list of ints, or an iterable of such chunks (a
    memory-mapped array split into pieces, say) treated as one stream with the same result; a
    generator may refill one buffer between chunks. Nothing of size V x V is ever allocated.
    Indices are sorted and duplicate-free (canonical CSR); values are summed in float64 and
    returned as ``dtype``; an integer ``dtype`` too narrow for the counts (or harmonic weights
    with fractions) raises instead of wrapping or truncating. A CuPy corpus gives a ``cupyx.scipy.sparse.csr_matrix`` on the device.
    """
    vocab_size = _positive_int(vocab_size, "vocab_size")
    window = _positive_int(window, "window")
    if window > MAX_WINDOW:
        raise ValueError(f"window must be at most {MAX_WINDOW}, got {window}")
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    harmonic = weighting == "harmonic"
    if boundary_id is None:
        boundary = -1
    else:
        boundary = _positive_int(boundary_id, "boundary_id", allow_zero=True)
        if boundary >= vocab_size:
            raise IndexError(f"boundary_id {boundary} is out of range for vocab_size {vocab_size}")

    if isinstance(corpus, (list, tuple)) and (not corpus or np.isscalar(corpus[0])):
        corpus = np.asarray(corpus, dtype=np.int64 if not corpus else None)  # one corpus, not chunks
    chunks = [corpus] if hasattr(corpus, "shape") else corpus
    xp, parts, tail, n_tokens = None, [], None, 0
    for chunk in chunks:
        if xp is None:
            xp = dispatch.array_module(chunk) if hasattr(chunk, "shape") else np
        chunk = xp.asarray(chunk)
        if chunk.ndim != 1:
            raise ValueError(f"corpus chunks must be 1-D token ids, got shape {chunk.shape}")
        ids = check_ids(chunk, vocab_size, what="token id")
        if ids.size == 0:
            continue
        n_tokens += ids.size
        # Carry the last `window` tokens so pairs that straddle chunks are counted once.
        tokens = xp.concatenate([tail, ids]) if tail is not None else ids
        kernel = registry.kernel("cooccurrence", tokens)
        parts.append(kernel(tokens, 0 if tail is None else tail.size, vocab_size, window, harmonic, boundary))
        tail = tokens[-window:].copy()  # a copy: the caller may refill this chunk's buffer
    if n_tokens == 0:
        raise ValueError("empty corpus: no token ids to count")
    counts = _merge(parts, vocab_size, xp)
    values = cast_exactly(counts.data, dtype, what="the co-occurrence matrix")
    return _sparse_module(xp).csr_matrix((values, counts.indices, counts.indptr), shape=counts.shape)


def _merge(parts, vocab_size, xp):
    """One CSR matrix from the chunks' CSR parts, summed in one pass (not one add per chunk)."""
    sparse = _sparse_module(xp)
    shape = (vocab_size, vocab_size)
    if len(parts) == 1:
        indptr, indices, data = parts[0]
        return sparse.csr_matrix((data, indices, indptr), shape=shape)
    rows = xp.concatenate([xp.repeat(xp.arange(vocab_size, dtype=xp.int32), xp.diff(indptr))
                           for indptr, _, _ in parts])
    cols = xp.concatenate([indices for _, indices, _ in parts])
    data = xp.concatenate([values for _, _, values in parts])
    total = sparse.coo_matrix((data, (rows, cols)), shape=shape).tocsr()
    total.sum_duplicates()
    return total


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
registry.register(registry.OpSpec(
    name="ppmi_values", family="cooccurrence", doc="PPMI of every stored count, in log space",
    dtypes=(_FLOAT64,), deterministic=registry.EVERY_BACKEND,
    exact=False, tolerance={_FLOAT64: (1e-12, 1e-12)},  # log2 / exp2 of libm and NumPy may differ by an ulp
    examples=_ppmi_examples, benchmark_args=_ppmi_benchmark, dtype_of=lambda args: _FLOAT64))
