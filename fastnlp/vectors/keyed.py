"""WordVectors: a vocabulary with one vector per word, nearest neighbours and analogies."""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from ..serialization import register_class
from .evaluation import EvaluationMixin
from .formats import FormatsMixin
from .ranking import (ANALOGY_METHODS as _ANALOGY_METHODS, COSMUL_EPS as _COSMUL_EPS, check_top as _check_top,
                      row_normalize as _row_normalize, top_k as _top_k)


@register_class
class WordVectors(EvaluationMixin, FormatsMixin):
    """A vocabulary of unique words and one vector per word (row ``i`` of ``vectors`` is ``words[i]``).

    The vectors keep their dtype (float32 is typical) and are exposed read-only, because a
    unit-length copy used for every cosine is computed once, lazily, and would go stale.
    """

    def __init__(self, vectors, words):
        vectors = _real_array(vectors, "vectors")
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n_words, dim), got shape {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.floating):
            vectors = vectors.astype(np.float32)
        if not np.isfinite(vectors).all():
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
    def _unit_query(self, query, label="query vector"):
        """(unit vector, id to exclude or None) for a word or a raw vector."""
        if isinstance(query, str):
            i = self._id(query)
            return self.unit_vectors[i], i
        vector = _real_array(query, label)
        if vector.shape != (self.vector_size,):
            raise ValueError(f"{label} must have shape ({self.vector_size},), got {vector.shape}")
        if not np.isfinite(vector).all():
            raise ValueError(f"{label} contains NaN or inf")
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

    def similarity(self, a, b):
        """Cosine similarity of two words (or vectors); 0.0 when either is a zero vector."""
        (ua, _), (ub, _) = self._unit_query(a), self._unit_query(b)
        return float(ua @ ub)

    def most_similar(self, word_or_vector, top=10, exclude=None):
        """The ``top`` words nearest by cosine, as ``[(word, cosine), ...]`` best first.

        A word query never returns itself; ``exclude`` names more words to leave out. A list of
        queries (words and/or vectors) or a 2-D array is answered with one matrix product and
        gives a list of such lists. ``top`` is a positive integer; a query vector with NaN/inf,
        or a zero query (vector or word), raises ValueError.
        """
        top = _check_top(top)
        batched = not isinstance(word_or_vector, str) and not _is_single_vector(word_or_vector)
        queries = list(word_or_vector) if batched else [word_or_vector]
        if not queries:
            return []
        unit_queries, self_ids = zip(*(self._query_direction(q, f"query {k}" if batched else "query vector")
                                       for k, q in enumerate(queries)))
        excluded = self._excluded_ids(exclude)

        scores = np.stack(unit_queries) @ self.unit_vectors.T
        scores[:, excluded] = -np.inf
        rows = [r for r, i in enumerate(self_ids) if i is not None]
        scores[rows, [self_ids[r] for r in rows]] = -np.inf
        results = self._ranked(scores, top)
        return results if batched else results[0]

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
        ids, best = _top_k(scores, top)
        return [[(self._words[i], float(s)) for i, s in zip(row_ids, row_scores) if s > -np.inf]
                for row_ids, row_scores in zip(ids, best)]

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


def _is_single_vector(query):
    """True for one query vector (1-D array or flat list of numbers), False for a batch."""
    if isinstance(query, np.ndarray):
        if query.ndim not in (1, 2):
            raise ValueError(f"query array must be 1-D (one vector) or 2-D (a batch), got {query.ndim}-D")
        return query.ndim == 1
    items = list(query) if isinstance(query, (list, tuple)) else None
    if items is None:
        raise TypeError(f"query must be a word, a vector or a list of them, got {type(query).__name__}")
    return bool(items) and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in items)
