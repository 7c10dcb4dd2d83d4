"""Approximate nearest-neighbour indexes behind ``WordVectors.build_index`` (faiss, the ``ann`` extra).

Every index holds its own float32 copy of the unit vectors and scores by inner product, which
for unit vectors is the cosine: the cosines returned are those exact search computes (to float32
rounding); only which words are found is approximate.

Where the defaults come from (bench/README.md, "Nearest neighbours", measured with
bench/compare_neighbours.py on its synthetic 1,000,000 x 100 clustered set): see the comments at
``IVF_DEFAULTS`` and ``HNSW_DEFAULTS``.
"""
from __future__ import annotations

import numbers

import numpy as np

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
# Rows handed to faiss per add() call: a float32 copy of at most 64k rows at a time.
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
    """A built faiss index and its settings; ``candidates`` answers a batch in one call."""

    def __init__(self, method, index, settings, centroids=None):
        self.method = method
        self.index = index
        self.settings = settings
        # IVF with the flat quantizer: the list centroids, (nlist, dim) float32. The lists to
        # probe are then chosen by fastnlp's own exact search (kernels.gemm + kernels.topk) over
        # them, one product for the whole batch.
        self.centroids = centroids
        self.set_params(**{SEARCH_PARAMS[method]: settings[SEARCH_PARAMS[method]]})

    def set_params(self, **params):
        allowed = SEARCH_PARAMS[self.method]
        unknown = set(params) - {allowed}
        if unknown:
            raise TypeError(f"{self.method} index takes {allowed}=, got {sorted(unknown)}")
        for key, value in params.items():
            self.settings[key] = positive_int(value, key)
        if self.method == "hnsw":
            self.index.hnsw.efSearch = self.settings["ef_search"]
        else:
            self.index.nprobe = min(self.settings["nprobe"], self.index.nlist)

    def candidates(self, unit_queries, k):
        """``(ids, scores)``, (Q, k) each, from one batched search: best first, ``-1`` ids where
        fewer than k were found."""
        queries = np.ascontiguousarray(unit_queries, dtype=np.float32)
        if self.method == "hnsw":
            # faiss's HNSW returns at most efSearch results: widen it for this call when k is larger.
            self.index.hnsw.efSearch = max(self.settings["ef_search"], k)
            try:
                scores, ids = self.index.search(queries, k)
            finally:
                self.index.hnsw.efSearch = self.settings["ef_search"]
            return ids, scores
        if self.centroids is None:
            scores, ids = self.index.search(queries, k)
            return ids, scores
        from .ranking import exact_search

        nprobe = self.index.nprobe
        lists, list_scores = exact_search(queries, lambda start, stop: self.centroids[start:stop],
                                          self.centroids.shape[0], nprobe)
        scores, ids = self.index.search_preassigned(queries, k, lists, list_scores)
        return ids, scores


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
        _add(index, rows, n)
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
    if settings["quantizer"] == "hnsw":
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = 40
        quantizer.hnsw.efSearch = 64
    else:
        quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True  # the IVF index frees its quantizer; Python must not free it twice
    quantizer.this.disown()
    # k-means assigns the sample with an exact (BLAS) search, whatever the quantizer; the HNSW
    # quantizer gets the final centroids only.
    assign = faiss.IndexFlatIP(dim)
    index.clustering_index = assign
    index.cp.seed = int(seed)
    sample = np.sort(np.random.default_rng(seed).choice(n, min(n, train_size), replace=False))
    index.train(sample_rows(sample))
    index.clustering_index = None  # faiss does not own it, and ``assign`` goes out of scope
    _add(index, rows, n)
    centroids = None
    if settings["quantizer"] == "flat":
        centroids = np.ascontiguousarray(quantizer.reconstruct_n(0, nlist), dtype=np.float32)
    return ApproximateIndex(method, index, settings, centroids)


def _add(index, rows, n):
    for start in range(0, n, ADD_BLOCK):
        index.add(np.ascontiguousarray(rows(start, min(start + ADD_BLOCK, n)), dtype=np.float32))
