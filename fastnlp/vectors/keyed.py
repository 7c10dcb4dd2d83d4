"""WordVectors: a vocabulary with one vector per word, nearest neighbours and analogies."""
from __future__ import annotations

import numbers
from types import MappingProxyType

import numpy as np

from ..serialization import register_class
from .evaluation import EvaluationMixin
from .formats import FormatsMixin
from .indexes import METHODS as _INDEX_METHODS, build as _build_index
from .ranking import (ANALOGY_METHODS as _ANALOGY_METHODS, COSMUL_EPS as _COSMUL_EPS, check_top as _check_top,
                      compute_dtype as _compute_dtype, exact_search as _exact_search, row_normalize as _row_normalize)


class _DefaultTop(int):
    """topn's default, 10, told apart from an explicit ``topn=10`` (to catch a conflicting ``top=``);
    also the default of the alias ``top``, meaning "not given"."""

    def __repr__(self):
        return "10"


_TOPN_DEFAULT = _DefaultTop(10)



@register_class
class WordVectors(EvaluationMixin, FormatsMixin):
    """A vocabulary of unique words and one vector per word (row ``i`` of ``vectors`` is ``words[i]``).

    The vectors keep their dtype (float32 is typical) and are exposed read-only, because a
    unit-length copy used for every cosine is computed once, lazily, and would go stale.

    ``unk_token`` (one of the words, say ``"<unk>"``, which a vocabulary with ``min_count`` maps
    rare words to): when set, a word not in the vocabulary is answered with that word's vector
    in lookups and queries instead of a ``KeyError``; ``word in vectors`` still says whether the
    word itself is there, and the evaluations still count it as out of the vocabulary.
    """

    def __init__(self, vectors, words, unk_token=None):
        mapped = vectors if isinstance(vectors, np.memmap) else None
        vectors = _real_array(vectors, "vectors")
        if mapped is not None and vectors.dtype == mapped.dtype:
            vectors = mapped  # np.asarray would hide that it is mapped
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n_words, dim), got shape {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.floating):
            vectors = vectors.astype(np.float32)
        # A memory-mapped matrix (load(mmap=True)) is not scanned: that would read the whole
        # file. save() writes only vectors that passed this check.
        if not isinstance(vectors, np.memmap) and not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or inf")
        words = tuple(words)
        if len(words) != vectors.shape[0]:
            raise ValueError(f"{len(words)} words for {vectors.shape[0]} vectors; they must match one to one")
        word_to_id = {}
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise ValueError(f"words must be strings, got {word!r} at position {i}")
            if word_to_id.setdefault(word, i) != i:
                raise ValueError(f"duplicate word {word!r} at positions {word_to_id[word]} and {i}")
        vectors = vectors.view()
        vectors.flags.writeable = False
        self._vectors = vectors
        self._words = words
        self._word_to_id = word_to_id
        self._unit = None
        self._index = None  # (method, faiss index, params) after build_index, None: exact search
        self.unk_token = unk_token

    @property
    def unk_token(self):
        """The word whose vector answers words not in the vocabulary, or None (KeyError)."""
        return self._unk_token

    @unk_token.setter
    def unk_token(self, token):
        if token is not None and token not in self._word_to_id:
            raise ValueError(f"unk_token {token!r} is not one of the words")
        self._unk_token = token

    # ----- vocabulary -------------------------------------------------------------------------
    @property
    def vectors(self):
        return self._vectors

    @property
    def words(self):
        return self._words

    @property
    def word_to_id(self):
        return MappingProxyType(self._word_to_id)

    @property
    def index_to_key(self):
        """gensim's name for ``words``: the word of each row."""
        return self._words

    @property
    def key_to_index(self):
        """gensim's name for ``word_to_id``: the row of each word (read-only)."""
        return MappingProxyType(self._word_to_id)

    @property
    def vector_size(self):
        return self._vectors.shape[1]

    def __len__(self):
        return len(self._words)

    def __contains__(self, word):
        return word in self._word_to_id

    def __getitem__(self, word):
        return self._vectors[self._id(word)]

    def __repr__(self):
        return f"WordVectors({len(self)} words, dim={self.vector_size}, dtype={self._vectors.dtype})"

    def _id(self, word):
        try:
            return self._word_to_id[word]
        except (KeyError, TypeError):
            if self._unk_token is not None and isinstance(word, str):
                return self._word_to_id[self._unk_token]
            raise KeyError(f"word {word!r} not in vocabulary") from None

    @property
    def unit_vectors(self):
        """Row-normalised copy of ``vectors`` (zero rows stay zero), computed on first use."""
        if self._unit is None:
            unit = _row_normalize(self._vectors)
            unit.flags.writeable = False
            self._unit = unit
        return self._unit

    # ----- similarity -------------------------------------------------------------------------
    def _checked_vector(self, query, label="query vector"):
        vector = _real_array(query, label)
        if vector.shape != (self.vector_size,):
            raise ValueError(f"{label} must have shape ({self.vector_size},), got {vector.shape}")
        if not np.isfinite(vector).all():
            raise ValueError(f"{label} contains NaN or inf")
        return vector

    def _unit_query(self, query, label="query vector"):
        """(unit vector, id to exclude or None) for a word or a raw vector."""
        if isinstance(query, str):
            i = self._id(query)
            if isinstance(self._vectors, np.memmap) or self._vectors.dtype == np.float16:
                # One row normalised in float32: no unit copy of a mapped or half-precision matrix.
                return _row_normalize(self._vectors[i:i + 1].astype(np.float32))[0], i
            return self.unit_vectors[i], i
        vector = self._checked_vector(query, label)
        # Normalised before the cast to the vectors' dtype, which might not hold its values.
        return _row_normalize(vector[None, :])[0].astype(self._vectors.dtype, copy=False), None

    def _query_direction(self, query, label="query vector"):
        """``_unit_query`` for a ranking: a zero vector has no direction, so every word would tie
        at cosine 0 and the "nearest" words would be arbitrary."""
        unit, i = self._unit_query(query, label)
        if not unit.any():
            what = f"word {query!r} has" if isinstance(query, str) else f"{label} is"
            raise ValueError(f"{what} a zero vector: it has no direction, so no word is nearer to it than another")
        return unit, i

    def _unit_query_rows(self, queries):
        """``_query_direction`` of every row of a (Q, D) array at once (the row named in errors)."""
        queries = _real_array(queries, "query 0")
        if queries.shape[1] != self.vector_size:
            raise ValueError(f"query 0 must have shape ({self.vector_size},), got {queries.shape[1:]}")
        finite = np.isfinite(queries).all(axis=1)
        if not finite.all():
            raise ValueError(f"query {int(np.argmin(finite))} contains NaN or inf")
        # Normalised before the cast to the vectors' dtype, which might not hold its values.
        unit = _row_normalize(queries).astype(self._vectors.dtype, copy=False)
        nonzero = unit.any(axis=1)
        if not nonzero.all():
            raise ValueError(f"query {int(np.argmin(nonzero))} is a zero vector: it has no direction, so no word "
                             "is nearer to it than another")
        return unit

    def similarity(self, a, b):
        """Cosine similarity of two words (or vectors); 0.0 when either is a zero vector."""
        (ua, _), (ub, _) = self._unit_query(a), self._unit_query(b)
        return float(ua @ ub)

    def most_similar(self, positive=None, negative=None, topn=_TOPN_DEFAULT, *, top=_TOPN_DEFAULT, exclude=None,
                     restrict_vocab=None):
        """The ``topn`` words nearest by cosine, as ``[(word, cosine), ...]`` best first (gensim's
        ``KeyedVectors.most_similar``, same rankings).

        ``positive`` and ``negative``: a word, a vector, or a list of words and/or vectors (an
        item may be a ``(word_or_vector, weight)`` pair, as in gensim). The query is the sum of
        the positive items minus the negative ones, words as unit vectors and vectors as given
        (as gensim does), then unit-normalised; the words given are never returned, nor those
        in ``exclude`` (a word or an iterable of words). ``most_similar("king", top=5)``,
        ``most_similar(vector)`` and ``most_similar(positive=["king", "woman"], negative=["man"])``
        all work. A 2-D array of queries, shape (Q, D), is answered with one matrix product and
        gives Q such lists (``negative`` must then be None; gensim would average the rows).

        ``topn`` (alias ``top``; giving both with different values is a TypeError) is a positive
        integer, default 10; ``topn=None`` returns, as gensim does, the cosine of the query with
        every word as an array (shape (V,), or (Q, V) for a 2-D query), nothing excluded.
        ``restrict_vocab=n`` ranks only the first n words. Unknown words raise KeyError naming
        the word; a query vector with NaN/inf, an item or a query that is a zero vector (it has
        no direction: every word would tie) raises ValueError.
        """
        topn = _resolve_top(topn, top)
        if isinstance(negative, numbers.Integral) and not isinstance(negative, bool):
            raise TypeError(f"negative must be words or vectors, got the number {negative!r}; the second "
                            "positional parameter is negative (as in gensim): pass the count as topn= or top=")
        n_candidates = len(self) if restrict_vocab is None else _check_top(restrict_vocab, "restrict_vocab")
        n_candidates = min(n_candidates, len(self))
        compute = _compute_dtype(self._vectors.dtype)
        batched = isinstance(positive, np.ndarray) and positive.ndim == 2
        if batched:
            if negative is not None:
                raise TypeError("negative= cannot be combined with a 2-D array of queries (one query per row); "
                                "subtract it from the rows first")
            if positive.shape[0] == 0:
                return np.zeros((0, n_candidates), self._vectors.dtype) if topn is None else []
            unit_queries = self._unit_query_rows(positive).astype(compute, copy=False)
            input_ids = []
        else:
            query, input_ids = self._combined_query(positive, negative)
            unit_queries = query.astype(compute)[None, :]
        if topn is None:
            scores = self._all_scores(unit_queries, n_candidates).astype(self._vectors.dtype, copy=False)
            return scores if batched else scores[0]
        excluded = self._excluded_ids(exclude) + input_ids
        if self._index is not None and n_candidates == len(self):
            ids, best = self._index_search(unit_queries, topn, excluded)
        else:
            ids, best = _exact_search(unit_queries, self._search_rows(), n_candidates, topn, excluded)
        results = self._results(ids, best)
        return results if batched else results[0]

    # ----- search: exact (gemm + topk) or an approximate index ------------------------------------
    def _search_rows(self):
        """``rows(start, stop)``: unit vectors of those words as a C-contiguous array of the
        compute dtype (float32, float64 for float64 vectors). float32/float64 vectors in memory
        use the cached ``unit_vectors``; memory-mapped or float16 vectors are normalised block by
        block in float32, so a search never holds a second copy of the whole matrix."""
        vectors = self._vectors
        if not isinstance(vectors, np.memmap) and vectors.dtype in (np.float32, np.float64):
            unit = self.unit_vectors
            return lambda start, stop: unit[start:stop]
        dtype = _compute_dtype(vectors.dtype)
        return lambda start, stop: np.ascontiguousarray(_row_normalize(vectors[start:stop].astype(dtype)))

    def _all_scores(self, unit_queries, n_candidates):
        """Cosines of the queries with the first ``n_candidates`` words, (Q, n_candidates)."""
        from ..kernels import gemm

        rows = self._search_rows()
        scores = np.empty((unit_queries.shape[0], n_candidates), unit_queries.dtype)
        step = 1 << 16
        for start in range(0, n_candidates, step):
            stop = min(start + step, n_candidates)
            scores[:, start:stop] = gemm(unit_queries, rows(start, stop), trans_b=True)
        return scores

    def _results(self, ids, best):
        return [[(self._words[i], float(s)) for i, s in zip(row_ids, row_scores) if s > -np.inf and i >= 0]
                for row_ids, row_scores in zip(ids.tolist(), best.tolist())]

    @property
    def index_method(self):
        """How ``most_similar`` searches now: "exact", "hnsw" or "ivf" (see ``build_index``)."""
        return "exact" if self._index is None else self._index.method

    def build_index(self, method="exact", **params):
        """Switch ``most_similar`` to an approximate nearest-neighbour index, or back to exact.

        ``method="exact"`` (the default search): every word is scored, one ``kernels.gemm``
        product per block and the compiled ``kernels.topk``.

        ``"hnsw"``: faiss's ``IndexHNSWFlat`` graph over the unit vectors. Parameters: ``M=32``
        (links per node), ``ef_construction=80``, ``ef_search=64`` (candidates explored per
        query: more is slower and finds more of the true neighbours).

        ``"ivf"``: inverted lists from faiss's k-means, stored by fastnlp sorted by list; a batch is
        scanned list-major (``kernels.ivf_scan``: each probed list read once for all the queries
        that probe it). ``nlist`` (default about 4 sqrt(n))
        k-means lists, trained on ``train_size`` (default 40 nlist, at least 20,000) words sampled
        with ``seed=0``; a query scans the ``nprobe=24`` lists whose centroids are nearest.
        ``quantizer="flat"`` chooses those lists with fastnlp's exact search over the centroids
        (one gemm for the whole batch); ``"hnsw"`` with faiss's HNSW graph over the centroids,
        for tens of thousands of lists. The defaults, and what they reach on a million vectors,
        are in bench/README.md, "Nearest neighbours" (bench/compare_neighbours.py).

        All score by the inner product of unit vectors (the cosine) and need faiss-cpu
        (``pip install "fastnlp[ann]"``). Queries by word or vector, batches of vectors (one
        call per batch), ``exclude`` and ``positive``/``negative`` work as with exact
        search; ``restrict_vocab`` and ``topn=None`` always search exactly. ``ef_search`` /
        ``nprobe`` can be changed later with ``set_index_params``. The index holds its own
        float32 copy of the unit vectors. Returns self.
        """
        if method == "exact":
            if params:
                raise TypeError(f"build_index('exact') takes no parameters, got {sorted(params)}")
            self._index = None
            return self
        if method not in _INDEX_METHODS:
            raise ValueError(f"unknown index method {method!r}; expected 'exact', 'hnsw' or 'ivf'")
        n, dim = self._vectors.shape
        self._index = None  # an index that fails to build leaves exact search, not the old index
        self._index = _build_index(method, params, self._search_rows(), n, dim, self._unit_float32)
        return self

    def set_index_params(self, **params):
        """Change the search effort of the index built without rebuilding it: ``ef_search``
        (hnsw) or ``nprobe`` (ivf). Returns self."""
        if self._index is None:
            raise ValueError("no approximate index: call build_index('hnsw' or 'ivf') first")
        self._index.set_params(**params)
        return self

    def _unit_float32(self, ids):
        return np.ascontiguousarray(_row_normalize(self._vectors[ids].astype(np.float32)), dtype=np.float32)

    def _index_search(self, unit_queries, top, excluded):
        """``(ids, scores)`` from the approximate index: ``top`` plus the excluded words asked
        for in one batched call, the excluded ones (and faiss's -1 fillers) dropped."""
        excluded = np.unique(np.asarray(excluded, dtype=np.int64))
        ids, scores = self._index.candidates(unit_queries, min(top + excluded.size, len(self)))
        if excluded.size:
            drop = np.isin(ids, excluded)
            ids, scores = np.where(drop, -1, ids), np.where(drop, -np.inf, scores)
            order = np.argsort(drop, axis=1, kind="stable")[:, :top]  # kept ones first, in order
            ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
        return ids[:, :top], scores[:, :top]

    def _combined_query(self, positive, negative):
        """(unit query vector, ids of the words given) for gensim's positive/negative lists."""
        items = [(item, weight, f"positive item {k}") for k, (item, weight)
                 in enumerate(_weighted_items(positive, 1.0, "positive"))]
        items += [(item, weight, f"negative item {k}") for k, (item, weight)
                  in enumerate(_weighted_items(negative, -1.0, "negative"))]
        if not items:
            raise ValueError("most_similar needs a query: a positive or negative word or vector")
        single = len(items) == 1 and not isinstance(positive, (list, tuple)) and negative is None
        total = np.zeros(self.vector_size, dtype=np.float64)
        ids = []
        for item, weight, label in items:
            if isinstance(item, str):
                unit, i = self._query_direction(item)
                ids.append(i)
                total += weight * unit.astype(np.float64)
            else:
                vector = self._checked_vector(item, "query vector" if single else label)
                if not vector.any():
                    raise ValueError(f"{'query vector' if single else label} is a zero vector: it has no "
                                     "direction, so no word is nearer to it than another")
                # Vectors count as given, not unit-normalised: gensim's get_mean_vector does so.
                total += weight * vector.astype(np.float64)
        query = _row_normalize(total[None, :])[0]
        if not query.any():
            raise ValueError("the query (positive items minus negative ones) is the zero vector: no word is "
                             "nearer to it than another")
        return query.astype(_compute_dtype(self._vectors.dtype), copy=False), ids

    def doesnt_match(self, words):
        """The word of ``words`` that goes least with the others (gensim's ``doesnt_match``): the
        one whose unit vector has the lowest cosine with the mean of all their unit vectors.
        Unknown words raise KeyError naming the word (gensim drops them with a warning)."""
        if isinstance(words, str):
            raise TypeError("doesnt_match takes a list of words, got a single str")
        words = list(words)
        if not words:
            raise ValueError("doesnt_match needs at least one word")
        unit = self.unit_vectors[[self._id(w) for w in words]].astype(np.float64)
        mean = _row_normalize(unit.mean(axis=0)[None, :])[0]
        return words[int(np.argmin(unit @ mean))]

    def get_vector(self, word, norm=False):
        """The vector of ``word`` (read-only); ``norm=True``: its unit-length version (gensim's name)."""
        i = self._id(word)
        return self.unit_vectors[i] if norm else self._vectors[i]

    def has_index_for(self, word):
        """True when ``word`` has a vector (gensim's name; ``word in vectors`` says the same)."""
        return word in self._word_to_id

    def get_index(self, word, default=None):
        """The row of ``word``; ``default`` when it is unknown, KeyError naming it if that is None."""
        i = self._word_to_id.get(word) if isinstance(word, str) else None
        if i is not None:
            return i
        if default is not None:
            return default
        raise KeyError(f"word {word!r} not in vocabulary")

    def _excluded_ids(self, exclude):
        """Ids of ``exclude``: None, one word, or any iterable of words (a NumPy array too)."""
        if exclude is None:
            return []
        if isinstance(exclude, str):
            return [self._id(exclude)]  # one word, not its characters
        try:
            words = list(exclude)
        except TypeError:
            raise TypeError(f"exclude must be a word or an iterable of words, got {type(exclude).__name__}") from None
        return [self._id(w) for w in words]

    def _ranked(self, scores, top):
        from ..kernels import topk

        scores = np.ascontiguousarray(scores, dtype=_compute_dtype(scores.dtype))
        best, ids = topk(scores, min(top, scores.shape[1]))
        return self._results(ids, best)

    # ----- analogies --------------------------------------------------------------------------
    def _analogy_scores(self, a_ids, b_ids, c_ids, method, n_candidates=None):
        """Scores (questions x candidates) for a:b = c:?, from one matrix product.

        The candidates are the first ``n_candidates`` words (all words by default)."""
        unit = self.unit_vectors
        candidates = unit if n_candidates is None else unit[:n_candidates]
        if method == "3cosadd":
            # cos(x, b - a + c) with unit a, b, c: Mikolov et al.'s vector offset.
            target = _row_normalize(unit[b_ids] - unit[a_ids] + unit[c_ids])
            return target @ candidates.T
        if method == "3cosmul":
            n = len(a_ids)
            # All three cosines in one product, each shifted from [-1, 1] to [0, 1] so that the
            # product and quotient stay meaningful.
            cos = (np.concatenate([unit[a_ids], unit[b_ids], unit[c_ids]]) @ candidates.T + 1) / 2
            cos_a, cos_b, cos_c = cos[:n], cos[n:2 * n], cos[2 * n:]
            return cos_b * cos_c / (cos_a + _COSMUL_EPS)
        raise ValueError(f"unknown analogy method {method!r}; expected one of {_ANALOGY_METHODS}")

    def analogy(self, a, b, c, top=5, method="3cosadd"):
        """Answers to a:b = c:? as ``[(word, score), ...]`` best first, never a, b or c.

        ``method="3cosadd"``: cosine with ``b - a + c`` (unit vectors); ``"3cosmul"``: Levy &
        Goldberg's multiplicative combination, usually better on the Google questions.
        ValueError when a word has a zero vector or ``b - a + c`` is zero: every candidate
        would tie and the answer would be arbitrary."""
        top = _check_top(top)
        ids = [self._id(w) for w in (a, b, c)]
        unit = self.unit_vectors
        for word, i in zip((a, b, c), ids):
            if not unit[i].any():
                raise ValueError(f"word {word!r} has a zero vector: it has no direction to take an analogy from")
        if method == "3cosadd":
            offset = unit[ids[1]].astype(np.float64) - unit[ids[0]] + unit[ids[2]]
            # Rounding leaves a few ulps where the offset cancels exactly; that is still zero.
            if np.linalg.norm(offset) <= 100 * np.finfo(unit.dtype).eps:
                raise ValueError(f"the analogy target {b!r} - {a!r} + {c!r} is the zero vector: "
                                 "no word is nearer to it than another")
        scores = self._analogy_scores([ids[0]], [ids[1]], [ids[2]], method)
        scores[0, ids] = -np.inf
        return self._ranked(scores, top)[0]


def _real_array(values, label):
    """``values`` as an array of real numbers (integer or floating dtype), else TypeError: casting
    complex numbers to float silently drops their imaginary part, and bool, str or object arrays
    are not coordinates."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{label} must hold real numbers (an integer or floating dtype), got dtype {array.dtype}")
    return array


def _resolve_top(topn, top):
    """The number of neighbours asked for by ``topn`` and its alias ``top``: None (every
    similarity) or a positive integer."""
    if top is not _TOPN_DEFAULT:
        if topn is not _TOPN_DEFAULT and topn != top:
            raise TypeError(f"most_similar got top={top!r} and topn={topn!r}; top is an alias of topn: give one")
        topn, name = top, "top"
    else:
        name = "topn"
    if topn is None:
        return None
    return _check_top(int(topn) if topn is _TOPN_DEFAULT else topn, name)


def _weighted_items(value, default_weight, name):
    """gensim's forms of positive/negative as (word or vector, weight) pairs: None, one word, one
    vector (1-D array or flat list of numbers), or a list of words, vectors and (item, weight)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, default_weight)]
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return [(value, default_weight)]
        if value.ndim == 2:
            return [(row, default_weight) for row in value]
        raise ValueError(f"{name} as an array must be 1-D (one vector) or 2-D, got {value.ndim}-D")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a word, a vector or a list of them, got {type(value).__name__}")
    if _is_number_list(value):
        return [(value, default_weight)]  # one vector written as a list of numbers
    pairs = []
    for item in value:
        if (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (str, np.ndarray))
                and isinstance(item[1], numbers.Real) and not isinstance(item[1], bool)):
            pairs.append((item[0], float(item[1])))
        elif isinstance(item, (str, np.ndarray, list, tuple)):
            pairs.append((item, default_weight))
        else:
            raise TypeError(f"{name} items must be words, vectors or (word, weight) pairs, got {item!r}")
    return pairs


def _is_number_list(items):
    return bool(items) and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in items)
