"""Truncated SVD of large sparse matrices (the book's PPMI -> word vectors step) without densifying.

The book runs a full dense SVD of the 10000 x 10000 PPMI matrix (800 MB, minutes) and mentions a
randomized one as the fast way. Here the randomized range finder of Halko, Martinsson & Tropp
(2011) is written out, with ARPACK (``scipy.sparse.linalg.svds``) as the reference method. Both only
ever multiply the input by thin dense blocks, so a sparse input stays sparse.
"""
from __future__ import annotations

import operator

import numpy as np

__all__ = ["DEFAULT_SVD_METHOD", "truncated_svd", "word_vectors_from_svd"]

_METHODS = ("randomized", "arpack")

# The method truncated_svd, count_vectors and the CLI use unless told otherwise: ARPACK, faster
# here at every shape measured (2-core machine, shared with other jobs, so the medians are noisy;
# methods interleaved so that both met the same load; float32 PPMI, k=100 unless stated):
#   PTB train PPMI, 10000 x 10000, window 2 (834,067 nonzeros): arpack 3.5 s (best of 4), randomized 20.1 s
#   PTB train PPMI, 10000 x 10000, window 1 (433,764 nonzeros): arpack 6.1 s, randomized 21.1 s
#   random sparse 2000 x 2000, 1% dense:                        arpack 0.59 s, randomized 3.3 s
#   random sparse 1000 x 800, 2% dense, k=50:                   arpack 0.27 s, randomized 0.95 s
#   random sparse 300 x 300, 5% dense, k=10:                    arpack 3 ms, randomized 9 ms
# ARPACK is also exact to its tolerance, where 20 power iterations leave the 100th singular value
# of the PTB matrix 0.8% low (see _DEFAULT_N_ITER).
DEFAULT_SVD_METHOD = "arpack"

# Default number of power iterations, chosen so the k-th singular value is within ~1% with the
# default 10 oversamples. Measured on the book's PTB PPMI matrix (10000 x 10000, window 1,
# 433,764 nonzeros, k=100), relative error of the 100th value against ARPACK:
#   n_iter   2: -12.5%   5: -5.1%   7: -3.5%   10: -2.2%   15: -1.3%   20: -0.8%
# (the top 10 values are exact to 1e-5 from n_iter=5 on; float32 and float64 agree to 0.01%).
# On a random 1000 x 800 sparse matrix (2% dense, k=50), n_iter=20 is -0.34% low.
# PPMI spectra decay slowly: each power iteration shrinks the error only by about
# sigma_{k+p+1} / sigma_k, which is close to 1, hence 20 iterations (42 sparse-times-thin
# products, 2.5-3 s on 2 cores for PTB, ARPACK 1.3 s). Raising oversamples buys accuracy more cheaply on such
# matrices: oversamples=50, n_iter=10 gives -0.5% in about the same time.
_DEFAULT_N_ITER = 20


def _check_matrix(M):
    """``M`` as CSR or ndarray; rejects anything that is not 2-D, finite and real."""
    import scipy.sparse as sp  # imported on use: scipy.sparse is slow to import

    if sp.issparse(M):
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        M = M.tocsr()
        values = M.data
    else:
        M = np.asarray(M)
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        values = M
    if not (np.issubdtype(M.dtype, np.floating) or np.issubdtype(M.dtype, np.integer)
            or M.dtype == np.bool_):
        raise TypeError(f"M must be a real numeric matrix, got dtype {M.dtype}")
    if np.issubdtype(M.dtype, np.floating) and not np.isfinite(values).all():
        raise ValueError("M contains NaN or inf")
    return M


def _working_dtype(M, dtype):
    # float32 inputs (typical for PPMI built to save memory) stay float32 unless asked otherwise:
    # the products dominate the cost and float32 halves it; everything else computes in float64.
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    return np.dtype(np.float32) if M.dtype == np.float32 else np.dtype(np.float64)


def _orthonormal_basis(Y):
    # Householder QR keeps the basis orthonormal to working precision; without it power iterations
    # collapse every column onto the top singular vector and the tail values are lost.
    Q, _ = np.linalg.qr(Y, mode="reduced")
    return Q


def _fix_signs(U, Vt):
    """Flip each singular pair so that the largest-magnitude entry of its U column is positive.

    Singular vectors are only defined up to sign; this makes results reproducible across methods
    and runs (a pair (u, v) and (-u, -v) describe the same component)."""
    largest = np.argmax(np.abs(U), axis=0)
    signs = np.sign(U[largest, np.arange(U.shape[1])])
    signs[signs == 0] = 1
    U *= signs
    Vt *= signs[:, None]
    return U, Vt


def _randomized_svd(M, k, n_iter, oversamples, rng, dtype):
    m, n = M.shape
    n_samples = min(k + oversamples, min(m, n))
    # Gaussian test matrix: its range hits the top-k singular subspace with high probability.
    Omega = rng.standard_normal((n, n_samples)).astype(dtype, copy=False)
    Q = _orthonormal_basis(M @ Omega)
    for _ in range(n_iter):
        # Re-orthonormalise after every product (not only at the end) so that small singular
        # directions are not swamped by round-off relative to the largest one.
        Q = _orthonormal_basis(M.T @ Q)
        Q = _orthonormal_basis(M @ Q)
    # B = Q^T M, formed as (M^T Q)^T so that a sparse M is only ever multiplied on the left side.
    B = np.ascontiguousarray((M.T @ Q).T)
    U_small, S, Vt = np.linalg.svd(B, full_matrices=False)
    U = Q @ U_small
    return U[:, :k], S[:k], Vt[:k]


def _arpack_svd(M, k, rng, dtype):
    # A fixed start vector makes ARPACK reproducible (its default draws a fresh random one).
    v0 = rng.standard_normal(min(M.shape)).astype(dtype, copy=False)
    from scipy.sparse.linalg import svds

    U, S, Vt = svds(M, k=k, solver="arpack", v0=v0)
    order = np.argsort(S)[::-1]  # svds returns ascending values
    return U[:, order], S[order], Vt[order]


def truncated_svd(M, k, method=None, n_iter=None, oversamples=10, seed=0, dtype=None):
    """Top-``k`` singular triplets ``(U, S, Vt)`` of ``M``, ``S`` descending, ``M ~ U @ diag(S) @ Vt``.

    ``M`` is a scipy.sparse matrix (converted to CSR, never to dense) or a dense ndarray.
    ``method``: "arpack" (``scipy.sparse.linalg.svds``) or "randomized" (Halko et al. 2011 range
    finder with ``n_iter`` power iterations, default 20, and ``k + oversamples`` random
    directions); None means ``DEFAULT_SVD_METHOD``, "arpack", the faster of the two at every
    shape measured (PTB's 10000 x 10000 PPMI at k=100: 3.5 s against 20 s on 2 busy cores; a
    300 x 300 sparse matrix at k=10: 3 ms against 9 ms; the table is beside the constant).
    Results are float32 when ``M`` is float32 and ``dtype`` is None, float64 otherwise.
    Signs are fixed so that the largest-magnitude entry of every column of ``U`` is positive.
    """
    if method is None:
        method = DEFAULT_SVD_METHOD
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {_METHODS}")
    M = _check_matrix(M)
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"k must be an integer, got {k!r}") from None
    if not 1 <= k < min(M.shape):
        raise ValueError(f"k={k} must satisfy 1 <= k < min(M.shape) for M of shape {M.shape}")
    if n_iter is None:
        n_iter = _DEFAULT_N_ITER
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if oversamples < 0:
        raise ValueError(f"oversamples must be >= 0, got {oversamples}")

    dtype = _working_dtype(M, dtype)
    if M.dtype != dtype:
        M = M.astype(dtype)  # a sparse astype copies the nonzeros only
    rng = np.random.default_rng(seed)
    if method == "randomized":
        U, S, Vt = _randomized_svd(M, k, n_iter, oversamples, rng, dtype)
    else:
        U, S, Vt = _arpack_svd(M, k, rng, dtype)
    U = np.ascontiguousarray(U, dtype=dtype)
    Vt = np.ascontiguousarray(Vt, dtype=dtype)
    U, Vt = _fix_signs(U, Vt)
    return U, S.astype(dtype, copy=False), Vt


def word_vectors_from_svd(U, S, power=1.0):
    """Word vectors ``U * S**power`` from a truncated SVD of a word-context matrix.

    ``power=0`` gives the book's plain ``U``; ``0.5`` is the symmetric weighting that Levy,
    Goldberg & Dagan (2015) found to work better on similarity tasks; 1 is the classic LSA choice.
    """
    U = np.asarray(U)
    S = np.asarray(S)
    if U.ndim != 2 or S.ndim != 1 or U.shape[1] != S.shape[0]:
        raise ValueError(f"U {U.shape} and S {S.shape} do not match: need U of shape (n, k), S of shape (k,)")
    if power == 0:
        return U.copy()
    return U * (S ** power).astype(U.dtype, copy=False)
