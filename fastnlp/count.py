"""Count-based word vectors (book ch. 2): co-occurrence, PPMI, SVD, as one pipeline.

The dense functions keep the book's names and results for its small examples; the pipeline
uses the sparse kernels (fastnlp.kernels.cooccurrence / ppmi) and never builds a V x V array.
"""
from __future__ import annotations

import os
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


def count_vectors(corpus_or_paths, words=None, window=2, k=100, power=1.0, alpha=None, boundary_id=None,
                  weighting="uniform", method=None, seed=0, timings=None, memory_budget=None, client=None,
                  encoding="utf-8", eos="<eos>", min_count=1):
    """PPMI + truncated SVD word vectors for a corpus: co-occurrence within ``window`` -> sparse
    PPMI -> top-``k`` SVD -> ``U * S**power`` as ``WordVectors``.

    ``corpus_or_paths``: an array of ids (or chunks of ids, as ``cooccurrence`` takes), with
    ``words`` listing the word of each id (its length is the vocabulary size); or a text file
    path, or a list of them, counted as one stream without holding the corpus
    (``fastnlp.corpus_files``: ``eos`` ends every line, ``encoding`` decodes the files). For
    files, ``words`` (a list of words or a ``Vocabulary``) fixes the vocabulary; without it one
    pass over the files builds it, ids in order of first appearance and words seen fewer than
    ``min_count`` times left out, so the vectors equal those of the same corpus in memory.

    ``memory_budget`` bounds the counting's working memory (bytes or a size like ``"2G"``; see
    ``fastnlp.kernels.cooccurrence``). ``client``: a ``dask.distributed.Client``; the files are
    then counted as shards on its workers (``fastnlp.distributed.count_vectors_on_cluster``).
    ``method``: the SVD's, ``fastnlp.svd.DEFAULT_SVD_METHOD`` when None. The counts reach PPMI
    in float64, exact up to 2**53 (float32 would round every count above 2**24). Pass a dict as
    ``timings`` to get the seconds each stage took.
    """
    if client is not None:
        from .distributed import count_vectors_on_cluster

        return count_vectors_on_cluster(
            corpus_or_paths, words=words, window=window, k=k, power=power, alpha=alpha, boundary_id=boundary_id,
            weighting=weighting, method=method, seed=seed, timings=timings, memory_budget=memory_budget,
            encoding=encoding, eos=eos, min_count=min_count, client=client)
    from .svd import DEFAULT_SVD_METHOD, truncated_svd, word_vectors_from_svd
    from .wordvectors import WordVectors

    timings = {} if timings is None else timings
    start = time.perf_counter()
    if _is_paths(corpus_or_paths):
        from .corpus_files import count_files, vocabulary_from_files
        from .text import Vocabulary

        if words is None:
            vocabulary = vocabulary_from_files(corpus_or_paths, min_count=min_count, encoding=encoding, eos=eos)
            timings["vocabulary"] = time.perf_counter() - start
            start = time.perf_counter()
        else:
            vocabulary = words if isinstance(words, Vocabulary) else Vocabulary(_word_list(words))
        words = vocabulary.id_to_word
        C = count_files(corpus_or_paths, vocabulary, window, weighting=weighting, boundary_id=boundary_id,
                        memory_budget=memory_budget, encoding=encoding, eos=eos)
    else:
        if words is None:
            raise TypeError("count_vectors needs words (the word of each id) for a corpus of ids")
        words = _word_list(words)
        C = cooccurrence(corpus_or_paths, len(words), window, weighting=weighting, boundary_id=boundary_id,
                         dtype=np.float64, memory_budget=memory_budget)
    timings["cooccurrence"] = time.perf_counter() - start
    start = time.perf_counter()
    M = ppmi(C, alpha=alpha)
    timings["ppmi"] = time.perf_counter() - start
    start = time.perf_counter()
    U, S, _ = truncated_svd(M, k, method=DEFAULT_SVD_METHOD if method is None else method, seed=seed)
    vectors = word_vectors_from_svd(U, S, power=power).astype(np.float32)
    timings["svd"] = time.perf_counter() - start
    return WordVectors(vectors, words)


def _is_paths(corpus_or_paths) -> bool:
    """A path, or a non-empty list / tuple of paths (not of ids or id arrays)."""
    if isinstance(corpus_or_paths, (str, os.PathLike)):
        return True
    return (isinstance(corpus_or_paths, (list, tuple)) and len(corpus_or_paths) > 0
            and all(isinstance(item, (str, os.PathLike)) for item in corpus_or_paths))


def _word_list(words) -> list:
    if isinstance(words, (str, bytes)):
        raise TypeError("words must be a sequence of words (one per id), got a single string")
    return list(words)
