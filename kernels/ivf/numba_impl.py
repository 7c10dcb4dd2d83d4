"""Numba version of the list-major IVF scan (contract in __init__.py).

Each probed list's rows are read once, in tiles of ``TILE`` rows that stay in L1, and scored
against every query that probes the list; each query keeps a heap of its k best so far whose
root (the worst kept) rejects almost every score with one comparison. The dot products run in
float32 with fastmath (sums in any order: within the op's tolerance, exact for small integers);
every other comparison is exact, so ties rank by lower id. Compiled on first call (cached on
disk); releases the GIL, so callers may scan disjoint lists on several threads."""
import numba
import numpy as np

# The k-best heap of the top-k op (the same order: a smaller score, then a larger id, ranks lower;
# its NaN rule never applies here, the vectors and queries being finite).
from ..topk.numba_impl import _sift_down, _worse, sort_heap

# Rows of a list scored per pass over its queries: 64 x 100 float32 (25 kB) stay in L1 while
# every query of the list reads them.
TILE = 64


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot(a, b):
    total = np.float32(0.0)
    for d in range(a.shape[0]):
        total += a[d] * b[d]
    return total


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot4(a, b, c, e, row):
    """Four dot products with ``row``: four queries with one row (each element of the row loaded
    once), or four rows with one query."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    for d in range(row.shape[0]):
        x = row[d]
        s0 += a[d] * x
        s1 += b[d] * x
        s2 += c[d] * x
        s3 += e[d] * x
    return s0, s1, s2, s3


@numba.njit(cache=True, nogil=True)
def _push(hv, hi, s, i, k):
    """Offer (s, i) to a heap of the k best: it replaces the root (the worst kept) if better."""
    if s >= hv[0] and _worse(hv[0], hi[0], s, i):
        hv[0] = s
        hi[0] = i
        _sift_down(hv, hi, k, 0)


@numba.njit(cache=True, nogil=True)
def _by_list(probes, first_list, last_list):
    """The probes of lists first_list..last_list-1 inverted, a counting sort: the lists probed,
    and per list (between pair_offsets[p] and pair_offsets[p + 1]) its queries, ascending."""
    span = last_list - first_list
    counts = np.zeros(span + 1, np.int64)
    for q in range(probes.shape[0]):
        for j in range(probes.shape[1]):
            lst = probes[q, j]
            if first_list <= lst < last_list:
                counts[lst - first_list + 1] += 1
    n_probed = 0
    for lst in range(span):
        n_probed += counts[lst + 1] > 0
        counts[lst + 1] += counts[lst]
    pair_queries = np.empty(counts[span], np.int64)
    filled = counts[:span].copy()
    for q in range(probes.shape[0]):
        for j in range(probes.shape[1]):
            lst = probes[q, j]
            if first_list <= lst < last_list:
                pair_queries[filled[lst - first_list]] = q
                filled[lst - first_list] += 1
    probed = np.empty(n_probed, np.int64)
    pair_offsets = np.empty(n_probed + 1, np.int64)
    pair_offsets[0] = 0
    p = 0
    for lst in range(span):
        if counts[lst + 1] > counts[lst]:
            probed[p] = first_list + lst
            pair_offsets[p + 1] = counts[lst + 1]
            p += 1
    return probed, pair_offsets, pair_queries


@numba.njit(cache=True, nogil=True)
def _scan(queries, vectors, ids, offsets, probed, pair_offsets, pair_queries, scores, found):
    """Fill the heaps ``scores``/``found`` (Q, k), started at (-inf, -1), with the rows of every
    list ``probed[p]``, for the queries ``pair_queries[pair_offsets[p]:pair_offsets[p + 1]]``.
    A tile of rows is scored against the list's queries four at a time (``_dot4``: 20% faster
    than one query at a time on the benchmark's problem), then the rest of the queries one by
    one, against four rows at a time (four independent sums: the lone query of a small batch)."""
    k = scores.shape[1]
    for p in range(probed.shape[0]):
        lst = probed[p]
        first, last = pair_offsets[p], pair_offsets[p + 1]
        for tile in range(offsets[lst], offsets[lst + 1], TILE):
            stop = min(tile + TILE, offsets[lst + 1])
            pair = first
            while pair + 4 <= last:
                q0 = pair_queries[pair]
                q1 = pair_queries[pair + 1]
                q2 = pair_queries[pair + 2]
                q3 = pair_queries[pair + 3]
                for row in range(tile, stop):
                    s0, s1, s2, s3 = _dot4(queries[q0], queries[q1], queries[q2], queries[q3], vectors[row])
                    i = ids[row]
                    _push(scores[q0], found[q0], s0, i, k)
                    _push(scores[q1], found[q1], s1, i, k)
                    _push(scores[q2], found[q2], s2, i, k)
                    _push(scores[q3], found[q3], s3, i, k)
                pair += 4
            while pair < last:  # the rest one by one, four rows at a time against the query
                q = pair_queries[pair]
                query = queries[q]
                hv = scores[q]
                hi = found[q]
                row = tile
                while row + 4 <= stop:
                    s0, s1, s2, s3 = _dot4(vectors[row], vectors[row + 1], vectors[row + 2], vectors[row + 3], query)
                    _push(hv, hi, s0, ids[row], k)
                    _push(hv, hi, s1, ids[row + 1], k)
                    _push(hv, hi, s2, ids[row + 2], k)
                    _push(hv, hi, s3, ids[row + 3], k)
                    row += 4
                while row < stop:
                    _push(hv, hi, _dot(query, vectors[row]), ids[row], k)
                    row += 1
                pair += 1


@numba.njit(cache=True, nogil=True)
def _sort_heaps(scores, found):
    """Each row's heap in place, best first (heapsort: the worst goes to the back)."""
    k = scores.shape[1]
    for q in range(scores.shape[0]):
        sort_heap(scores[q], found[q], k)


@numba.njit(cache=True, nogil=True)
def _ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k):
    # One compiled entry (inversion, allocation, scan, sort): a single query's call is dominated
    # by overheads, each entry from Python costing microseconds.
    probed, pair_offsets, pair_queries = _by_list(probes, first_list, last_list)
    scores = np.full((queries.shape[0], k), -np.inf, np.float32)
    found = np.full((queries.shape[0], k), -1, np.int64)
    _scan(queries, vectors, ids, offsets, probed, pair_offsets, pair_queries, scores, found)
    _sort_heaps(scores, found)
    return scores, found


def ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k):
    return _ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k)
