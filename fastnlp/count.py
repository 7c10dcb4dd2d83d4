"""Count-based word vectors (book ch. 2): co-occurrence, PPMI, SVD, as one pipeline.

The dense functions keep the book's names and results for its small examples; the pipeline
uses the sparse kernels (fastnlp.kernels.cooccurrence / ppmi) and never builds a V x V array.
"""
from __future__ import annotations

import time

import numpy as np

from .kernels import cooccurrence, ppmi


def create_co_matrix(corpus, vocab_size, window_size=1):
    """The book's dense co-occurrence matrix (int32), computed by the sparse kernel (counted
    as int32 from the start: through float32 counts above 2**24 would be rounded)."""
    return cooccurrence(np.asarray(corpus), vocab_size, window_size, dtype=np.int32).toarray()


def ppmi_dense(C, verbose=False, eps=1e-8):
    """The book's ``ppmi`` on a dense matrix (float32), vectorised instead of two Python loops.

    Same values: max(0, log2(C_ij * N / (S_i * S_j) + eps)) with S the column sums; entries
    whose count is 0 (including rows of words that never co-occur) are 0, as in the book.
    """
    C = np.asarray(C)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"co-occurrence matrix must be square, got shape {C.shape}")
    counts = C.astype(np.float64)
    total = counts.sum()
    S = counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log2(counts * total / (S[:, None] * S[None, :]) + eps)
    M = np.where(counts > 0, np.maximum(pmi, 0.0), 0.0).astype(np.float32)
    if verbose:
        print(f"ppmi: {C.size} entries done")
    return M


def count_vectors(corpus, words, window=2, k=100, power=1.0, alpha=None, boundary_id=None,
                  weighting="uniform", method=None, seed=0, timings=None):
    """PPMI + truncated SVD word vectors for a corpus of ids: co-occurrence within
    ``window`` -> sparse PPMI -> top-``k`` SVD -> ``U * S**power`` as ``WordVectors``.

    ``words`` lists the word of each id (its length is the vocabulary size). ``method``: the
    SVD's, ``fastnlp.svd.DEFAULT_SVD_METHOD`` when None. The counts reach PPMI in float64,
    exact up to 2**53 (float32 would round every count above 2**24). Pass a dict as
    ``timings`` to get the seconds each stage took.
    """
    from .svd import DEFAULT_SVD_METHOD, truncated_svd, word_vectors_from_svd
    from .wordvectors import WordVectors

    words = list(words)
    timings = {} if timings is None else timings
    start = time.perf_counter()
    C = cooccurrence(corpus, len(words), window, weighting=weighting, boundary_id=boundary_id, dtype=np.float64)
    timings["cooccurrence"] = time.perf_counter() - start
    start = time.perf_counter()
    M = ppmi(C, alpha=alpha)
    timings["ppmi"] = time.perf_counter() - start
    start = time.perf_counter()
    U, S, _ = truncated_svd(M, k, method=DEFAULT_SVD_METHOD if method is None else method, seed=seed)
    vectors = word_vectors_from_svd(U, S, power=power).astype(np.float32)
    timings["svd"] = time.perf_counter() - start
    return WordVectors(vectors, words)
