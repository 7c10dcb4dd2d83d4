"""Approximate nearest-neighbour indexes behind ``WordVectors.build_index`` (faiss, the ``ann`` extra).

Every index holds its own float32 copy of the unit vectors and scores by inner product, which
for unit vectors is the cosine: the cosines returned are those exact search computes (to float32
rounding); only which words are found is approximate.

"hnsw" is faiss's graph index. "ivf" uses faiss only for its k-means (and, with
``quantizer="hnsw"``, a graph over the centroids): the inverted lists are fastnlp's own arrays,
the unit vectors sorted by list, and a batch of queries is scanned list by list
(``kernels.ivf_scan``): each probed list is read once for every query of the batch that probes
it, where faiss reads it once per query, from memory.

Where the defaults come from (bench/README.md, "Nearest neighbours", measured with
bench/compare_neighbours.py on its synthetic 1,000,000 x 100 clustered set): see the comments at
``IVF_DEFAULTS`` and ``HNSW_DEFAULTS``.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..kernels.threads import blas_threads, run_row_blocks

METHODS = ("exact", "hnsw", "ivf")
IVF_QUANTIZERS = ("flat", "hnsw")
# Search effort that can change without rebuilding, per method.
SEARCH_PARAMS = {"hnsw": "ef_search", "ivf": "nprobe"}

# Not tuned on the million-vector set (building M=32 there took longer than the benchmark's budget
# on 2 shared cores). M=16, ef_construction=40 reached recall@10 0.80-0.90 there; on its first
# 200,000 vectors M=32, ef_construction=100 reaches 0.97-0.99 at ef_search 32-64, but at 0.8-1.7x
# the speed of exact search: on that data IVF is the faster approximate index.
HNSW_DEFAULTS = {"M": 32, "ef_construction": 80, "ef_search": 64}
# nlist=None: about 4 sqrt(n) lists (4,000 for a million words); train_size=None: 40 words per list
# (at least 20,000), the sample faiss's k-means asks for. nprobe=24: the fewest probes with
# recall@10 >= 0.95 in every run on the million-vector set (0.958-0.961; 20 probes: 0.948-0.951).
IVF_DEFAULTS = {"nlist": None, "nprobe": 24, "quantizer": "flat", "train_size": None, "seed": 0}
# Queries x lists up to which the lists to probe come from one product and one topk (4 MB of
# scores); larger batches go through exact_search's blocks.
DIRECT_PROBE_SCORES = 1 << 20
# Scores (rows x queries) below which a scan stays on the calling thread: handing a part to the
# pool costs tens of microseconds, far more on a loaded machine (one query of the PTB index split
# over 2 threads ran at a quarter of its 1-thread speed), while 2^17 scores take about 0.5 ms.
PARALLEL_MIN_SCORES = 1 << 17
# Rows assigned to lists (or handed to faiss's HNSW) at a time: a float32 copy of at most 64k rows.
ADD_BLOCK = 1 << 16


def import_faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("approximate nearest-neighbour indexes (build_index('hnsw' / 'ivf')) need faiss-cpu: "
                          f'pip install "fastnlp[ann]" ({exc})') from None
    return faiss


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _settings(method, defaults, params):
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"build_index({method!r}) got unknown parameters {sorted(unknown)}; "
                        f"it takes {', '.join(sorted(defaults))}")
    settings = dict(defaults)
    settings.update(params)
    return settings


def _choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


class ApproximateIndex:
    """A built faiss HNSW index and its settings; ``candidates`` answers a batch in one call."""

    def __init__(self, method, index, settings):
        self.method = method
        self.index = index
        self.settings = settings
        self.set_params(**{SEARCH_PARAMS[method]: settings[SEARCH_PARAMS[method]]})

    def set_params(self, **params):
        _set_search_params(self, params)
        self.index.hnsw.efSearch = self.settings["ef_search"]

    def candidates(self, unit_queries, k):
        """``(ids, scores)``, (Q, k) each, from one batched search: best first, ``-1`` ids where
        fewer than k were found."""
        queries = np.ascontiguousarray(unit_queries, dtype=np.float32)
        # faiss's HNSW returns at most efSearch results: widen it for this call when k is larger.
        self.index.hnsw.efSearch = max(self.settings["ef_search"], k)
        try:
            scores, ids = self.index.search(queries, k)
        finally:
            self.index.hnsw.efSearch = self.settings["ef_search"]
        return ids, scores


class InvertedListIndex:
    """IVF: k-means lists over the unit vectors, stored list by list, scanned list-major.

    ``vectors`` (n, dim) float32: the unit vectors sorted by list (stable, so by id within a
    list); ``ids`` (n,) int64: the word id of each row; ``offsets`` (nlist + 1,): list l is rows
    ``offsets[l]:offsets[l + 1]``; ``centroids`` (nlist, dim) float32. ``quantizer`` is None when
    the lists to probe are chosen by fastnlp's exact search over the centroids (one gemm and
    topk for the whole batch), else faiss's HNSW graph over them."""

    method = "ivf"

    def __init__(self, settings, centroids, vectors, ids, offsets, quantizer=None):
        self.settings = settings
        self.centroids = centroids
        self.vectors = vectors
        self.ids = ids
        self.offsets = offsets
        self.quantizer = quantizer
        self.set_params(nprobe=settings["nprobe"])

    @property
    def nlist(self):
        return self.centroids.shape[0]

    def set_params(self, **params):
        _set_search_params(self, params)

    def probes(self, queries, nprobe):
        """The ``nprobe`` lists nearest each query (Q, nprobe) int64, nearest first (faiss's HNSW
        quantizer may leave -1 where it found fewer)."""
        if self.quantizer is None:
            if queries.shape[0] * self.nlist <= DIRECT_PROBE_SCORES:
                # One product and one topk, the answer of exact_search (one topk over all the
                # scores) without its blocking and bookkeeping, which cost a single query more
                # than the product itself.
                from ..kernels import gemm, topk

                return topk(gemm(queries, self.centroids, trans_b=True), nprobe)[1]
            from .ranking import exact_search

            return exact_search(queries, lambda start, stop: self.centroids[start:stop], self.nlist, nprobe)[0]
        ef_search = self.quantizer.hnsw.efSearch
        self.quantizer.hnsw.efSearch = max(ef_search, nprobe)
        try:
            return self.quantizer.search(queries, nprobe)[1]
        finally:
            self.quantizer.hnsw.efSearch = ef_search

    def candidates(self, unit_queries, k, threads=None):
        """``(ids, scores)``, (Q, k) each, from one batched search: best first (ties by lower
        id), ``-1`` ids where the probed lists hold fewer than k words. ``threads`` (default:
        NumPy's BLAS threads now) scan disjoint ranges of lists."""
        queries = np.ascontiguousarray(unit_queries, dtype=np.float32)
        probes = self.probes(queries, min(self.settings["nprobe"], self.nlist)).astype(np.int64, copy=False)
        scores, ids = scan_lists(queries, self.vectors, self.ids, self.offsets, probes, k,
                                 blas_threads() if threads is None else threads)
        return ids, scores


def scan_lists(queries, vectors, ids, offsets, probes, k, threads):
    """``kernels.ivf_scan`` with the lists split into ``threads`` ranges of about equal work
    (rows x queries probing them), one per thread (the kernel releases the GIL), each keeping
    its own k best per query; the parts are then merged by (score, id). No split for one
    thread, or for fewer than PARALLEL_MIN_SCORES scores to compute (about: probes x mean list).

    The list-major scan serves every batch size, so there is no per-query path to switch to: a
    single query is its own list-major batch (each of its lists read once, as a query-by-query
    scan reads them). One query per call it ran within 15% of faiss's scan of the same lists, on
    either side (bench/README.md, "Nearest neighbours"); batches of 1,000 ran 2.8x faster."""
    from ..kernels.ivf import ivf_scan

    n_lists = offsets.size - 1
    threads = max(1, min(int(threads), n_lists))
    if threads == 1 or probes.size * offsets[-1] < PARALLEL_MIN_SCORES * n_lists:
        return ivf_scan(queries, vectors, ids, offsets, probes, 0, n_lists, k)
    probed = probes[probes >= 0]
    work = np.cumsum(np.bincount(probed, minlength=n_lists) * np.diff(offsets) + 1)
    bounds = np.searchsorted(work, work[-1] * np.arange(1, threads) / threads, side="right")
    bounds = [0, *bounds.tolist(), n_lists]
    parts = [None] * threads

    def scan_part(first, last):
        for part in range(first, last):
            parts[part] = ivf_scan(queries, vectors, ids, offsets, probes, bounds[part], bounds[part + 1], k)

    run_row_blocks(scan_part, threads, threads)
    scores = np.concatenate([p[0] for p in parts], axis=1)
    found = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((found, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(found, order, axis=1)


def _set_search_params(index, params):
    allowed = SEARCH_PARAMS[index.method]
    unknown = set(params) - {allowed}
    if unknown:
        raise TypeError(f"{index.method} index takes {allowed}=, got {sorted(unknown)}")
    for key, value in params.items():
        index.settings[key] = positive_int(value, key)


def build(method, params, rows, n, dim, sample_rows):
    """The index of ``method`` ("hnsw" or "ivf") over ``n`` unit vectors.

    ``rows(start, stop)``: unit vectors ``start:stop`` (any float dtype); ``sample_rows(ids)``: the
    unit vectors of sorted ``ids`` as float32, for training IVF's k-means."""
    faiss = import_faiss()
    if method == "hnsw":
        settings = _settings(method, HNSW_DEFAULTS, params)
        for key in ("M", "ef_construction", "ef_search"):
            settings[key] = positive_int(settings[key], key)
        index = faiss.IndexHNSWFlat(dim, settings["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings["ef_construction"]
        for start in range(0, n, ADD_BLOCK):
            index.add(np.ascontiguousarray(rows(start, min(start + ADD_BLOCK, n)), dtype=np.float32))
        return ApproximateIndex(method, index, settings)
    settings = _settings(method, IVF_DEFAULTS, params)
    if settings["nlist"] is None:
        settings["nlist"] = max(1, min(n, int(round(4 * np.sqrt(max(n, 1))))))
    for key in ("nlist", "nprobe"):
        settings[key] = positive_int(settings[key], key)
    seed = settings["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1 <= settings["nlist"] <= n:
        raise ValueError(f"nlist must be between 1 and the {n} words, got {settings['nlist']}")
    _choice(settings["quantizer"], IVF_QUANTIZERS, "quantizer")
    train_size = settings["train_size"]
    train_size = max(40 * settings["nlist"], 20000) if train_size is None else positive_int(train_size, "train_size")
    nlist = settings["nlist"]
    sample = np.sort(np.random.default_rng(seed).choice(n, min(n, train_size), replace=False))
    centroids = _kmeans(faiss, sample_rows(sample), dim, nlist, seed)
    quantizer = None
    if settings["quantizer"] == "hnsw":
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = 40
        quantizer.hnsw.efSearch = 64
        quantizer.add(centroids)
    index = InvertedListIndex(settings, centroids, None, None, None, quantizer)
    # Each word goes to its nearest centroid (the list faiss's add would choose), then the
    # vectors are copied list by list; within a list they stay in id order.
    assignment = np.empty(n, np.int64)
    for start in range(0, n, ADD_BLOCK):
        block = np.ascontiguousarray(rows(start, min(start + ADD_BLOCK, n)), dtype=np.float32)
        assignment[start:start + block.shape[0]] = index.probes(block, 1)[:, 0]
    order = np.argsort(assignment, kind="stable")
    offsets = np.zeros(nlist + 1, np.int64)
    np.cumsum(np.bincount(assignment, minlength=nlist), out=offsets[1:])
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    del assignment
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, ADD_BLOCK):
        stop = min(start + ADD_BLOCK, n)
        vectors[position[start:stop]] = rows(start, stop)
    index.vectors, index.ids, index.offsets = vectors, order.astype(np.int64, copy=False), offsets
    return index


def _kmeans(faiss, sample, dim, nlist, seed):
    """The ``nlist`` centroids faiss's IndexIVFFlat (inner product) trains on ``sample``, as
    (nlist, dim) float32: its k-means, assigning the sample with an exact (BLAS) search."""
    quantizer = faiss.IndexFlatIP(dim)
    trainer = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    assign = faiss.IndexFlatIP(dim)
    trainer.clustering_index = assign
    trainer.cp.seed = int(seed)
    trainer.train(sample)
    trainer.clustering_index = None  # faiss does not own it, and ``assign`` goes out of scope
    return np.ascontiguousarray(quantizer.reconstruct_n(0, nlist), dtype=np.float32)
