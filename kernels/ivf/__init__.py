"""The list-major IVF scan: a batch of queries against the inverted lists they probe.

An IVF index (``WordVectors.build_index("ivf")``) stores its vectors sorted by list, one
contiguous block of rows per list. Scanning query by query reads every probed list once per
query that probes it, from memory; turned list-major, each probed list is read once for all the
queries of the batch that probe it, while it is in cache, so the scan is bound by arithmetic,
not by memory. The contract of the backend-level op (every file in this folder implements it)::

    ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k) -> (scores, found)
        queries (Q, D) and vectors (N, D) C-contiguous float32, finite (the wrapper checks the
        queries; the vectors, too many to check per call, are the caller's: WordVectors checks
        its vectors once, when they are made); ids (N,) int64, the id returned for each row
        (any values; -1 marks an empty slot in ``found``, so real ids are >= 0); offsets
        (L + 1,) int64 non-decreasing from 0 to N: list l is rows offsets[l]:offsets[l + 1].
        probes (Q, nprobe) int64: the lists each query probes, in [0, L) or -1 (an empty slot,
        skipped); only lists first_list <= l < last_list are scanned (0 <= first_list <=
        last_list <= L), so that threads can share a batch by ranges of lists. k >= 1.
        scores (Q, k) float32, found (Q, k) int64: row q holds the k best (inner product, id) of
        the rows of every list query q probes in that range, best first: a larger score ranks
        higher, equal scores by lower id. Fewer than k rows: the rest of the row is (-inf, -1).
        A list a query names twice is scanned twice (its rows can then come back twice).

The probes are turned list-major inside the op (a counting sort over the lists of the range:
per list, the queries that probe it), then each probed list is scanned once for all of them.
Scores are float32 inner products summed in any order (the tolerance of the op), so a backend
may vectorise its sums; selection itself involves no arithmetic. Nothing is written into the
inputs. Rows of disjoint sets of lists can be scanned on separate threads (the kernels release
the GIL) and the per-thread results merged by (score, id): ``fastnlp.vectors.indexes`` does so.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import registry

FLOAT32 = np.dtype(np.float32)


def ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k):
    """``(scores, found)``, (Q, k) each: per query the k best (inner product, id) of the rows
    of the lists it probes among ``first_list:last_list``, best first, ties by lower id,
    (-inf, -1) where fewer than k were scanned (see the module's contract)."""
    spec = registry.spec("ivf_scan")
    for name, array in (("queries", queries), ("vectors", vectors)):
        if not isinstance(array, np.ndarray) or array.ndim != 2:
            raise ValueError(f"ivf_scan: {name} must be a 2-D array, got {getattr(array, 'shape', type(array))}")
        spec.check_dtype(array.dtype, name)
    if queries.shape[1] != vectors.shape[1]:
        raise ValueError(f"ivf_scan: queries have {queries.shape[1]} dimensions, vectors {vectors.shape[1]}")
    if not np.isfinite(queries).all():
        raise ValueError("ivf_scan: queries hold NaN or inf")
    ids = np.asarray(ids)
    if ids.dtype != np.int64 or ids.shape != (vectors.shape[0],):
        raise TypeError(f"ivf_scan: ids must be int64 with one per vector ({vectors.shape[0]}), "
                        f"got {ids.dtype} shape {ids.shape}")
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.dtype != np.int64 or offsets.size < 1:
        raise TypeError(f"ivf_scan: offsets must be a 1-D int64 array, got {offsets.dtype} shape {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != vectors.shape[0] or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"ivf_scan: offsets must rise from 0 to the {vectors.shape[0]} vectors and never fall")
    n_lists = offsets.size - 1
    probes = np.asarray(probes)
    if probes.ndim != 2 or probes.shape[0] != queries.shape[0] or probes.dtype != np.int64:
        raise TypeError(f"ivf_scan: probes must be int64 (queries, nprobe) with one row per query "
                        f"({queries.shape[0]}), got {probes.dtype} shape {probes.shape}")
    if probes.size and (probes.min() < -1 or probes.max() >= n_lists):
        bad = probes[(probes < -1) | (probes >= n_lists)][0]
        raise IndexError(f"ivf_scan: list id {bad} is out of range for {n_lists} lists; probes must lie in "
                         f"[0, {n_lists}) or be -1 (an empty slot)")
    for name, value in (("first_list", first_list), ("last_list", last_list), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"ivf_scan: {name} must be an integer, got {value!r}")
    if not 0 <= first_list <= last_list <= n_lists:
        raise ValueError(f"ivf_scan: the lists scanned must satisfy 0 <= first_list <= last_list <= {n_lists}, "
                         f"got {first_list}:{last_list}")
    if k < 1:
        raise ValueError(f"ivf_scan: k must be a positive integer, got {k!r}")
    args = (np.ascontiguousarray(queries), np.ascontiguousarray(vectors), np.ascontiguousarray(ids),
            np.ascontiguousarray(offsets), np.ascontiguousarray(probes), int(first_list), int(last_list), int(k))
    return registry.kernel("ivf_scan", queries)(*args)


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _random_problem(rng, Q, N, D, L, nprobe, k, integers, lists_split=False):
    """One valid problem: N rows in L lists (some empty), each query probing ``nprobe`` lists
    (a tenth of them -1); with ``lists_split``, a random range of the lists scanned."""
    if integers:  # small integers: every order of summation gives the same float32 score, and ties
        queries = rng.integers(-2, 3, (Q, D)).astype(np.float32)
        vectors = rng.integers(-2, 3, (N, D)).astype(np.float32)
    else:
        queries = rng.standard_normal((Q, D)).astype(np.float32)
        vectors = rng.standard_normal((N, D)).astype(np.float32)
    ids = rng.permutation(max(N, 1) * 3)[:N].astype(np.int64)
    offsets = np.zeros(L + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(rng.integers(0, L, N), minlength=L))
    probes = np.stack([rng.permutation(L)[:nprobe] for _ in range(Q)]) if Q else np.zeros((0, nprobe), np.int64)
    if Q and nprobe > 1:
        probes[rng.random(probes.shape) < 0.1] = -1  # a quantizer's empty slots
    first_list, last_list = sorted(rng.integers(0, L + 1, 2)) if lists_split else (0, L)
    return (queries, vectors, ids, offsets, probes.astype(np.int64), int(first_list), int(last_list), k)


def _ivf_scan_examples():
    """Small-integer scores (exact in float32 whatever the order, many ties), empty lists, empty
    probe slots, ranges of lists, queries finding nothing, k above and below the rows scanned."""
    from hypothesis import strategies as st

    @st.composite
    def problem(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        Q = draw(st.sampled_from([0, 1, 2, 5, 17]))
        N = draw(st.sampled_from([0, 1, 7, 64, 300]))
        D = draw(st.sampled_from([1, 3, 16, 33]))
        L = draw(st.sampled_from([1, 2, 9, 40]))
        nprobe = draw(st.integers(1, L))
        k = draw(st.sampled_from([1, 3, 10, 70]))
        return _random_problem(rng, Q, N, D, L, nprobe, k, integers=True, lists_split=draw(st.booleans()))

    return problem()


def _ivf_scan_benchmark():
    """A batch of 256 queries against 65,536 rows of 100 dimensions in 256 lists, 8 probes each,
    the 10 best: each list is probed by 8 queries on average."""
    return _random_problem(np.random.default_rng(0), 256, 65536, 100, 256, 8, 10, integers=False)


registry.register(registry.OpSpec(
    name="ivf_scan", family="ivf", doc="a batch of queries against the inverted lists they probe, list by list",
    dtypes=(FLOAT32,), deterministic=registry.EVERY_BACKEND, exact=False,
    tolerance={FLOAT32: (1e-5, 1e-5)},
    examples=_ivf_scan_examples, benchmark_args=_ivf_scan_benchmark, dtype_of=lambda args: args[0].dtype,
    # The reference is a Python loop over queries: the last fallback, never worth timing.
    preference=("numba",),
    absent={"cython": "one compiled loop is enough: the Numba scan is bound by its float32 products, "
                      "which LLVM vectorises as a C loop would be",
            "cupy": "no GPU version: the index and its lists live on the host"}))
