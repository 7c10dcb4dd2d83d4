"""The public ops: validate once, normalise layout, then call the active backend's kernel.

Each op has one contract, stated in its docstring, that every backend implements; the
backend functions receive only checked, C-contiguous arrays of the documented dtypes.
"""
from __future__ import annotations

import numpy as np

from . import dispatch
from .validate import check_float_matrix, check_ids, check_same_device


def scatter_add(dW, idx, dout):
    """``dW[idx[i]] += dout[i]`` for every position i, duplicates summed; returns ``dW``.

    ``dW`` is (V, D) float32/float64 and updated in place; ``idx`` any integer shape with
    values in ``[0, V)``; ``dout`` float with shape ``idx.shape + (D,)`` (cast to dW's dtype).
    This is the backward of an embedding lookup.
    """
    check_float_matrix(dW, "dW")
    check_same_device(dW, idx, dout)
    xp = dispatch.array_module(dW)
    dout = xp.asarray(dout)
    idx_shape = tuple(np.shape(idx))
    expected = idx_shape + (dW.shape[1],)
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout has shape {tuple(dout.shape)} but idx shape {idx_shape} and dW width "
                         f"{dW.shape[1]} need {expected}")
    if dout.dtype.kind != "f":
        raise TypeError(f"dout must be a float array, got dtype {dout.dtype}")
    if not getattr(dW.flags, "writeable", True):  # CuPy arrays have no such flag
        raise ValueError("dW is read-only; scatter_add writes into it")
    backend = dispatch.backend_module(dW)
    flat_idx = check_ids(idx, dW.shape[0], backend=backend)
    if flat_idx.size == 0:
        return dW
    rows = xp.ascontiguousarray(dout.reshape(-1, dW.shape[1]), dtype=dW.dtype)
    kernel = backend.scatter_add
    if dW.flags.c_contiguous:
        kernel(dW, flat_idx, rows)
    else:  # kernels write through C-contiguous buffers only
        target = xp.ascontiguousarray(dW)
        kernel(target, flat_idx, rows)
        dW[...] = target
    return dW


def embedding_gather(W, idx):
    """``W[idx]``: rows of the (V, D) float matrix ``W`` for integer ids of any shape.

    Returns a new C-contiguous array of shape ``idx.shape + (D,)`` and W's dtype.
    """
    check_float_matrix(W, "W")
    check_same_device(W, idx)
    idx_shape = tuple(np.shape(idx))
    backend = dispatch.backend_module(W)
    flat_idx = check_ids(idx, W.shape[0], backend=backend)
    xp = dispatch.array_module(W)
    if flat_idx.size == 0:
        return xp.empty(idx_shape + (W.shape[1],), dtype=W.dtype)
    out = backend.embedding_gather(xp.ascontiguousarray(W), flat_idx)
    return out.reshape(idx_shape + (W.shape[1],))


MAX_WINDOW = 255  # kernels keep pair distances in one byte


def cooccurrence(corpus, vocab_size, window=1, weighting="uniform", boundary_id=None, dtype=np.float32):
    """Symmetric co-occurrence counts as a (V, V) ``scipy.sparse.csr_matrix``.

    ``C[w, c]`` counts how often ``c`` appears within ``window`` tokens on either side of ``w``,
    exactly as the book's ``create_co_matrix`` for ``weighting="uniform"``; ``"harmonic"``
    weights a pair at distance d by 1/d. With ``boundary_id`` (e.g. the id of ``<eos>``) no
    pair is counted across that token; the token itself still pairs with its own sentence.

    ``corpus`` is a 1-D integer array, or an iterable of such chunks (a memory-mapped array
    split into pieces, say) that are treated as one stream with the same result. Nothing of
    size V x V is ever allocated. Indices are sorted and duplicate-free (canonical CSR);
    values are summed in float64 and returned as ``dtype``. A CuPy corpus gives a
    ``cupyx.scipy.sparse.csr_matrix`` on the device.
    """
    from scipy import sparse

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

    if dispatch.is_device_array(corpus):
        return _cooccurrence_on_device(corpus, vocab_size, window, harmonic, boundary, dtype)

    if isinstance(corpus, (list, tuple)) and (not corpus or np.isscalar(corpus[0])):
        corpus = np.asarray(corpus)  # a plain list of ids is one corpus, not chunks
    chunks = [corpus] if hasattr(corpus, "shape") else corpus
    backend = dispatch.backend_module(np.empty(0))
    total, tail, n_tokens = None, np.empty(0, np.int64), 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 1:
            raise ValueError(f"corpus chunks must be 1-D token ids, got shape {chunk.shape}")
        ids = check_ids(chunk, vocab_size, what="token id", backend=backend)
        if ids.size == 0:
            continue
        n_tokens += ids.size
        # Carry the last `window` tokens so pairs that straddle chunks are counted once.
        tokens = np.concatenate([tail, ids]) if tail.size else ids
        parts = backend.cooccurrence(tokens, tail.size, vocab_size, window, harmonic, boundary)
        piece = sparse.csr_matrix(parts[::-1], shape=(vocab_size, vocab_size))
        total = piece if total is None else total + piece
        tail = tokens[-window:]
    if n_tokens == 0:
        raise ValueError("empty corpus: no token ids to count")
    total.sort_indices()
    return total.astype(dtype)


def _cooccurrence_on_device(corpus, vocab_size, window, harmonic, boundary, dtype):
    if corpus.ndim != 1:
        raise ValueError(f"corpus must be 1-D token ids, got shape {corpus.shape}")
    backend = dispatch.backend_module(corpus)
    ids = check_ids(corpus, vocab_size, what="token id", backend=backend)
    if ids.size == 0:
        raise ValueError("empty corpus: no token ids to count")
    return backend.cooccurrence_matrix(ids, vocab_size, window, harmonic, boundary).astype(dtype)


def ppmi(C, eps=1e-8, alpha=None, dtype=np.float32):
    """Positive PMI of a sparse count matrix, sparse in, sparse out (same sparsity pattern
    minus the entries that become 0).

    The book's definition, ``max(0, log2(C_wc * N / (S_w * S_c) + eps))`` with N the total
    count and S the row / column sums, evaluated only where C is non-zero (elsewhere the
    book's value is max(0, log2(eps)) = 0 too). ``alpha`` (e.g. 0.75) smooths the context
    distribution: S_c is replaced by N * S_c**alpha / sum(S**alpha) (Levy et al. 2015).
    A ``cupyx.scipy.sparse`` matrix is processed on the device.
    """
    on_device = dispatch.is_device_array(getattr(C, "data", None))
    if on_device:
        from cupyx.scipy import sparse
    else:
        from scipy import sparse
    if not sparse.issparse(C):
        raise TypeError(f"ppmi expects a scipy.sparse matrix (use fastnlp.ppmi_dense for arrays), "
                        f"got {type(C).__name__}")
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"co-occurrence matrix must be square, got shape {C.shape}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if alpha is not None and not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    xp = dispatch.array_module(C.data)
    C = sparse.csr_matrix(C, dtype=np.float64, copy=True)  # never touch the caller's arrays
    C.sum_duplicates()
    if C.nnz and (not bool(xp.isfinite(C.data).all()) or float(C.data.min()) < 0):
        raise ValueError("co-occurrence counts must be finite and non-negative")
    total = float(C.data.sum())
    if total == 0:
        raise ValueError("co-occurrence matrix is all zeros")
    row_sums = xp.asarray(C.sum(axis=1)).ravel()
    col_sums = xp.asarray(C.sum(axis=0)).ravel()
    if alpha is None:
        context_weights = col_sums
    else:
        smoothed = col_sums ** alpha
        context_weights = total * smoothed / smoothed.sum()
    backend = dispatch.backend_module(C.data)
    values = backend.ppmi_values(C.indptr.astype(np.int64), C.indices.astype(np.int32), C.data,
                                 row_sums, context_weights, total, float(eps))
    result = sparse.csr_matrix((values.astype(dtype), C.indices, C.indptr), shape=C.shape)
    result.eliminate_zeros()
    return result


def _positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return value
