"""Shared pieces of nearest-neighbour ranking."""
from __future__ import annotations

import numbers

import numpy as np

from ..kernels.threads import blas_threads, pool

ANALOGY_METHODS = ("3cosadd", "3cosmul")
# Levy & Goldberg (2014): keeps 3CosMul's division finite when cos(x, a) is -1.
COSMUL_EPS = 1e-3
# Upper bound on the elements of one score matrix (queries x vocabulary) built at once:
# 2**24 float32 values is 64 MB, e.g. 1677 analogy questions against a 10000-word vocabulary.
MAX_SCORE_ELEMENTS = 1 << 24


def check_top(top, name="top"):
    """``top`` as an int >= 1. Anything else raises ValueError: NaN, for one, compares False
    with everything and would silently mean "the whole vocabulary"."""
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise ValueError(f"{name} must be a positive integer, got {top!r}")
    return int(top)


def row_normalize(matrix):
    """Rows scaled to unit length, accurately for any finite values; zero rows stay zero.

    Returns the matrix's float dtype (float64 for integers). Squares are summed in at least
    float32, since float16 squares overflow above a norm of 256. Rows whose sum of squares
    overflowed, or is too small to trust after squares underflowed (float32 norms beyond about
    1e19 or below about 3e-16), are redone from rows divided by their largest value: the common
    case costs one pass for the norms and one division."""
    matrix = np.asarray(matrix)
    out_dtype = matrix.dtype if np.issubdtype(matrix.dtype, np.floating) else np.dtype(np.float64)
    work = matrix.astype(np.result_type(out_dtype, np.float32), copy=False)
    info = np.finfo(work.dtype)
    with np.errstate(over="ignore"):
        sum_sq = np.einsum("ij,ij->i", work, work)
    # Below tiny / eps, the squares lost to underflow could matter; zero rows land here too.
    direct = (sum_sq >= info.tiny / info.eps) & (sum_sq <= info.max)
    norms = np.sqrt(sum_sq, out=np.ones_like(sum_sq), where=direct)
    unit = work / norms[:, None]
    if not direct.all():
        scaled, _ = _scaled_by_max_abs(work[~direct])
        scaled_norms = np.sqrt(np.einsum("ij,ij->i", scaled, scaled))[:, None]
        unit[~direct] = np.divide(scaled, scaled_norms, out=scaled, where=scaled_norms > 0)
    return unit.astype(out_dtype, copy=False)


def row_norms(matrix):
    """Euclidean norm of each row as float64, without overflow or underflow in the squares."""
    scaled, max_abs = _scaled_by_max_abs(np.asarray(matrix, dtype=np.float64))
    return max_abs[:, 0] * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))


def _scaled_by_max_abs(rows):
    """``rows`` divided by their largest absolute value, so that every square lies in [0, 1] and
    the largest is 1 (zero rows stay zero); and those largest values, as a column."""
    max_abs = np.max(np.abs(rows), axis=1, keepdims=True, initial=0)
    return np.divide(rows, max_abs, out=np.zeros_like(rows), where=max_abs > 0), max_abs


def top_k(scores, k):
    """Per row of ``scores`` (queries x candidates), the ``k`` best (indices, scores), best first.

    ``np.argpartition`` finds the k best in linear time; only those k are then sorted."""
    n_candidates = scores.shape[1]
    k = min(k, n_candidates)
    if k < n_candidates:
        candidates = np.argpartition(scores, n_candidates - k, axis=1)[:, n_candidates - k:]
    else:
        candidates = np.broadcast_to(np.arange(n_candidates), scores.shape)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-candidate_scores, axis=1, kind="stable")
    return (np.take_along_axis(candidates, order, axis=1),
            np.take_along_axis(candidate_scores, order, axis=1))




# ----- exact search: blocks of one matrix product each, then the compiled top-k --------------
# Queries and candidate rows go through the product in blocks, so the scores of one block
# (QUERY_BLOCK x ROW_BLOCK float32, 16 MB) are ranked while they are still in cache and a
# million-word vocabulary never needs a (queries x vocabulary) matrix. Long row blocks keep the
# top-k's per-block cost (a heap filled and sorted per query and block, and the merge) small:
# 1,000 queries against 262,144 rows, 1 thread, CPU time, best of 4 rounds: 256 x 16,384 blocks
# ran 1.3x the speed of 512 x 4,096 (1.1x in a second measurement of the product and top-k alone).
QUERY_BLOCK = 256
ROW_BLOCK = 16384


def compute_dtype(dtype):
    """float64 for float64 vectors, float32 for every other storage (float16, bfloat16, ints)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def search_threads():
    """Threads the search uses to rank blocks: those of NumPy's BLAS now (threadpoolctl's
    ``threadpool_limits`` or OMP/OPENBLAS_NUM_THREADS set them), so the product and the ranking
    run on the same number of cores."""
    return blas_threads()


def _topk_rows(scores, k, threads):
    """kernels.topk over the rows of ``scores``, split across ``threads`` (the kernels release
    the GIL)."""
    from ..kernels import topk

    if threads <= 1 or scores.shape[0] < 2 * threads:
        return topk(scores, k)
    bounds = np.linspace(0, scores.shape[0], threads + 1).astype(int)
    parts = list(pool(threads).map(lambda ab: topk(scores[ab[0]:ab[1]], k), zip(bounds[:-1], bounds[1:])))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def exact_search(queries, blocks, n_candidates, k, excluded=(), threads=None):
    """The ``k`` best candidates of each query by inner product: ``(ids, scores)``, (Q, k') each
    with k' = min(k, n_candidates), best first, ties to the lower id (excluded ids score -inf).

    ``queries`` (Q, D) of the compute dtype; ``blocks(start, stop)`` returns candidate rows
    ``start:stop`` (unit vectors) as a C-contiguous array of the same dtype. Each block of rows
    is one ``kernels.gemm`` product per block of queries and one ``kernels.topk``; the k best of
    every block, kept in block order, are ranked once more at the end. Their positions order
    ties exactly as the ids do (blocks in id order, each best first with ties by lower id), so
    the result is that of one top-k over the whole score matrix."""
    from ..kernels import gemm, topk

    threads = search_threads() if threads is None else threads
    Q = queries.shape[0]
    k = min(k, n_candidates)
    excluded = np.unique(np.asarray(list(excluded), dtype=np.int64))
    excluded = excluded[(excluded >= 0) & (excluded < n_candidates)]
    ids = np.empty((Q, k), np.int64)
    best = np.empty((Q, k), queries.dtype)
    row_block = ROW_BLOCK if n_candidates > ROW_BLOCK else n_candidates
    buffer = np.empty((min(QUERY_BLOCK, Q), row_block), queries.dtype)
    for q0 in range(0, Q, QUERY_BLOCK):
        q = queries[q0:q0 + QUERY_BLOCK]
        kept_scores, kept_ids = [], []
        for start in range(0, n_candidates, row_block):
            stop = min(start + row_block, n_candidates)
            scores = buffer.reshape(-1)[:q.shape[0] * (stop - start)].reshape(q.shape[0], stop - start)
            gemm(q, blocks(start, stop), scores, trans_b=True)
            inside = excluded[(excluded >= start) & (excluded < stop)]
            if inside.size:
                scores[:, inside - start] = -np.inf
            values, where = _topk_rows(scores, min(k, stop - start), threads)
            kept_scores.append(values)
            kept_ids.append(where + start)
        if len(kept_scores) == 1:
            best[q0:q0 + q.shape[0]], ids[q0:q0 + q.shape[0]] = kept_scores[0], kept_ids[0]
            continue
        values, position = topk(np.concatenate(kept_scores, axis=1), k)
        best[q0:q0 + q.shape[0]] = values
        ids[q0:q0 + q.shape[0]] = np.take_along_axis(np.concatenate(kept_ids, axis=1), position, axis=1)
    return ids, best
