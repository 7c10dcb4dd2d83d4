"""Numba version of the top-k selection: the heap loop of topk.h (contract in __init__.py).

Per row a heap of the k best so far, its root the worst kept; scores are scanned in blocks of
16, counting those above the root with compares LLVM vectorises, and only blocks with a
candidate are walked one by one. Compiled on first call (cached on disk); releases the GIL."""
import numba
import numpy as np

from .._numba_half import rounded, to_float32
from .reference import on_float32_rows

_BLOCK = 16


@numba.njit(cache=True, nogil=True, inline="always")
def _worse(av, ai, bv, bi):
    """True when (av, ai) ranks below (bv, bi): NaN below numbers, smaller value, larger index."""
    an = av != av
    bn = bv != bv
    if an != bn:
        return an
    if an:
        return ai > bi
    return av < bv or (av == bv and ai > bi)


@numba.njit(cache=True, nogil=True)
def _sift_down(hv, hi, n, pos):
    v = hv[pos]
    i = hi[pos]
    while True:
        c = 2 * pos + 1
        if c >= n:
            break
        if c + 1 < n and _worse(hv[c + 1], hi[c + 1], hv[c], hi[c]):
            c += 1
        if not _worse(hv[c], hi[c], v, i):
            break
        hv[pos] = hv[c]
        hi[pos] = hi[c]
        pos = c
    hv[pos] = v
    hi[pos] = i


@numba.njit(cache=True, nogil=True)
def _sift_up(hv, hi, pos):
    v = hv[pos]
    i = hi[pos]
    while pos > 0:
        p = (pos - 1) // 2
        if not _worse(v, i, hv[p], hi[p]):
            break
        hv[pos] = hv[p]
        hi[pos] = hi[p]
        pos = p
    hv[pos] = v
    hi[pos] = i


@numba.njit(cache=True, nogil=True)
def sort_heap(hv, hi, k):
    """A heap of k (root the worst) in place, best first: heapsort, the worst to the back."""
    for m in range(k - 1, 0, -1):
        v = hv[0]
        i = hi[0]
        hv[0] = hv[m]
        hi[0] = hi[m]
        hv[m] = v
        hi[m] = i
        _sift_down(hv, hi, m, 0)


@numba.njit(cache=True, nogil=True)
def _any_above(block, root):
    """Whether one of the 16 scores of ``block`` is above ``root`` (NaN is not): a count of
    compares, which LLVM vectorises (a max would need fastmath, which breaks NaN)."""
    above = 0
    for l in range(_BLOCK):
        above += block[l] > root
    return above != 0


@numba.njit(cache=True, nogil=True)
def _topk_rows(scores, k, values, indices):
    n = scores.shape[1]
    for r in range(scores.shape[0]):
        row = scores[r]
        hv = values[r]
        hi = indices[r]
        for j in range(k):
            hv[j] = row[j]
            hi[j] = j
            _sift_up(hv, hi, j)
        root = hv[0]
        j = k
        while j < n and root != root:  # a NaN kept: every number beats it (rare)
            v = row[j]
            if v == v:
                hv[0] = v
                hi[0] = j
                _sift_down(hv, hi, k, 0)
                root = hv[0]
            j += 1
        for b in range((n - j) // _BLOCK):
            start = j + b * _BLOCK
            if _any_above(row[start:start + _BLOCK], root):
                for l in range(_BLOCK):
                    v = row[start + l]
                    if v > root:
                        hv[0] = v
                        hi[0] = start + l
                        _sift_down(hv, hi, k, 0)
                        root = hv[0]
        j += (n - j) // _BLOCK * _BLOCK
        while j < n:
            v = row[j]
            if v > root:
                hv[0] = v
                hi[0] = j
                _sift_down(hv, hi, k, 0)
                root = hv[0]
            j += 1
        sort_heap(hv, hi, k)


def topk(scores, k):
    if scores.dtype.itemsize == 2:  # float32 copies of blocks of rows (exact), then the float32 loop
        return on_float32_rows(topk, scores, k, to_float32=to_float32, rounded=rounded)
    values = np.empty((scores.shape[0], k), scores.dtype)
    indices = np.empty((scores.shape[0], k), np.int64)
    if scores.shape[0]:
        _topk_rows(scores, k, values, indices)
    return values, indices
