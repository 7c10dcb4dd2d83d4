"""Shared pieces of nearest-neighbour ranking."""
from __future__ import annotations

import numbers

import numpy as np

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


