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
    """Rows scaled to unit length; zero rows stay zero (and raise no division warning)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


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


