"""Word vectors: nearest neighbours, analogies, standard evaluations and the word2vec file formats.

``WordVectors`` is the fast, batched tool; ``cos_similarity``, ``most_similar`` and ``analogy`` at the
bottom keep the book's signatures and printed output for readers following the book.
"""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np

from .serialization import atomic_write

__all__ = ["WordVectors", "analogy", "cos_similarity", "most_similar"]

_ANALOGY_METHODS = ("3cosadd", "3cosmul")
# Levy & Goldberg (2014): keeps 3CosMul's division finite when cos(x, a) is -1.
_COSMUL_EPS = 1e-3
# Upper bound on the elements of one score matrix (queries x vocabulary) built at once:
# 2**24 float32 values is 64 MB, e.g. 1677 analogy questions against a 10000-word vocabulary.
_MAX_SCORE_ELEMENTS = 1 << 24
# What the binary reader skips between rows: ASCII whitespace only, since the bytes of a UTF-8
# word (such as those of U+00A0) must never be mistaken for a separator.
_ASCII_WHITESPACE = b" \t\n\r\v\f"


def _row_normalize(matrix):
    """Rows scaled to unit length; zero rows stay zero (and raise no division warning)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _top_k(scores, k):
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


def _parse_header(line, path):
    fields = line.split()
    try:
        n_words, dim = (int(x) for x in fields)
    except ValueError:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; expected 'n_words dim'") from None
    if n_words < 0 or dim < 1:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; need n_words >= 0 and dim >= 1")
    return n_words, dim


class WordVectors:
    """A vocabulary of unique words and one vector per word (row ``i`` of ``vectors`` is ``words[i]``).

    The vectors keep their dtype (float32 is typical) and are exposed read-only, because a
    unit-length copy used for every cosine is computed once, lazily, and would go stale.
    """

    def __init__(self, vectors, words):
        vectors = np.asarray(vectors)
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
    def _unit_query(self, query):
        """(unit vector, id to exclude or None) for a word or a raw vector."""
        if isinstance(query, str):
            i = self._id(query)
            return self.unit_vectors[i], i
        vector = np.asarray(query, dtype=self._vectors.dtype)
        if vector.shape != (self.vector_size,):
            raise ValueError(f"query vector must have shape ({self.vector_size},), got {vector.shape}")
        return _row_normalize(vector[None, :])[0], None

    def similarity(self, a, b):
        """Cosine similarity of two words (or vectors)."""
        (ua, _), (ub, _) = self._unit_query(a), self._unit_query(b)
        return float(ua @ ub)

    def most_similar(self, word_or_vector, top=10, exclude=None):
        """The ``top`` words nearest by cosine, as ``[(word, cosine), ...]`` best first.

        A word query never returns itself; ``exclude`` names more words to leave out. A list of
        queries (words and/or vectors) or a 2-D array is answered with one matrix product and
        gives a list of such lists.
        """
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        batched = not isinstance(word_or_vector, str) and not _is_single_vector(word_or_vector)
        queries = list(word_or_vector) if batched else [word_or_vector]
        if not queries:
            return []
        unit_queries, self_ids = zip(*(self._unit_query(q) for q in queries))
        if isinstance(exclude, str):
            exclude = [exclude]  # one word, not its characters
        excluded = [self._id(w) for w in (exclude or ())]

        scores = np.stack(unit_queries) @ self.unit_vectors.T
        scores[:, excluded] = -np.inf
        rows = [r for r, i in enumerate(self_ids) if i is not None]
        scores[rows, [self_ids[r] for r in rows]] = -np.inf
        results = self._ranked(scores, top)
        return results if batched else results[0]

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
        Goldberg's multiplicative combination, usually better on the Google questions."""
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        ids = [self._id(w) for w in (a, b, c)]
        scores = self._analogy_scores([ids[0]], [ids[1]], [ids[2]], method)
        scores[0, ids] = -np.inf
        return self._ranked(scores, top)[0]

    # ----- evaluation -------------------------------------------------------------------------
    def _lookup(self, case_insensitive, restrict_vocab=None):
        """Map from (possibly lower-cased) word to id, over the first ``restrict_vocab`` words.

        With case folding, a word's first row wins: vocabularies are usually sorted by frequency,
        so that is the most frequent spelling."""
        limit = len(self) if restrict_vocab is None else min(int(restrict_vocab), len(self))
        if not case_insensitive:
            if limit == len(self):
                return self._word_to_id
            return {w: i for w, i in self._word_to_id.items() if i < limit}
        table = {}
        for i in range(limit):
            table.setdefault(self._words[i].lower(), i)
        return table

    def evaluate_word_pairs(self, path, delimiter="\t", case_insensitive=True):
        """Correlation of cosine similarities with human scores, for files such as WordSim-353.

        Lines are ``word1<delimiter>word2<delimiter>score``; lines starting with '#' and blank lines
        are skipped. Returns ``{"spearman", "pearson", "oov_ratio", "pairs", "oov"}``; pairs with a
        word outside the vocabulary are counted in ``oov`` and left out of the correlations."""
        lookup = self._lookup(case_insensitive)
        ids_1, ids_2, human, oov = [], [], [], 0
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                fields = line.rstrip("\r\n").split(delimiter)
                try:
                    w1, w2, score = fields[0].strip(), fields[1].strip(), float(fields[2])
                except (IndexError, ValueError):
                    raise ValueError(f"{path}:{line_no}: expected 'word1{delimiter!r}word2{delimiter!r}score', "
                                     f"got {line.rstrip()!r}") from None
                if case_insensitive:
                    w1, w2 = w1.lower(), w2.lower()
                if w1 not in lookup or w2 not in lookup:
                    oov += 1
                    continue
                ids_1.append(lookup[w1])
                ids_2.append(lookup[w2])
                human.append(score)
        if len(human) < 2:
            raise ValueError(f"{path}: only {len(human)} word pair(s) could be evaluated ({oov} had a word "
                             "outside the vocabulary); a correlation needs at least 2")
        unit = self.unit_vectors
        model = np.einsum("ij,ij->i", unit[ids_1], unit[ids_2])
        return {
            "spearman": float(_stats().spearmanr(model, human)[0]),
            "pearson": float(_stats().pearsonr(model, human)[0]),
            "oov_ratio": oov / (oov + len(human)),
            "pairs": len(human),
            "oov": oov,
        }

    def evaluate_analogies(self, path, case_insensitive=True, restrict_vocab=None, method="3cosadd"):
        """Accuracy on analogy questions such as Google's questions-words.txt.

        The file has ``: section`` headers followed by ``a b c d`` lines. A question counts as
        correct when the best word other than a, b and c is d. Questions with a word outside the
        (first ``restrict_vocab``) words are counted in ``skipped`` and not in ``total``.
        Returns ``{"accuracy", "correct", "total", "skipped", "sections"}``, ``sections`` mapping each
        name to ``{"correct", "total", "accuracy"}`` (accuracy is NaN for a section with no
        answerable question). Each section is scored in chunks, one matrix product per chunk.
        """
        if method not in _ANALOGY_METHODS:
            raise ValueError(f"unknown analogy method {method!r}; expected one of {_ANALOGY_METHODS}")
        lookup = self._lookup(case_insensitive, restrict_vocab)
        n_candidates = len(self) if restrict_vocab is None else min(int(restrict_vocab), len(self))
        questions = _read_analogy_questions(path)

        sections, correct, total, skipped = {}, 0, 0, 0
        for name, rows in questions.items():
            ids = []
            for words in rows:
                if case_insensitive:
                    words = [w.lower() for w in words]
                if all(w in lookup for w in words):
                    ids.append([lookup[w] for w in words])
                else:
                    skipped += 1
            section_correct = self._count_correct(np.array(ids, dtype=np.intp).reshape(-1, 4),
                                                  method, n_candidates, case_insensitive)
            sections[name] = {
                "correct": section_correct,
                "total": len(ids),
                "accuracy": section_correct / len(ids) if ids else float("nan"),
            }
            correct += section_correct
            total += len(ids)
        if total == 0:
            raise ValueError(f"{path}: no analogy question could be evaluated ({skipped} had a word "
                             "outside the vocabulary)")
        return {"accuracy": correct / total, "correct": correct, "total": total,
                "skipped": skipped, "sections": sections}

    def _count_correct(self, ids, method, n_candidates, case_insensitive):
        """How many rows ``(a, b, c, d)`` of ``ids`` have d as the best answer to a:b = c:?."""
        chunk = max(1, _MAX_SCORE_ELEMENTS // max(1, n_candidates))
        if method == "3cosmul":
            chunk = max(1, chunk // 3)  # its product holds three score rows per question
        correct = 0
        for start in range(0, len(ids), chunk):
            a, b, c, d = ids[start:start + chunk].T
            scores = self._analogy_scores(a, b, c, method, n_candidates)
            rows = np.arange(len(a))
            for excluded in (a, b, c):
                scores[rows, excluded] = -np.inf
            predicted = np.argmax(scores, axis=1)
            if case_insensitive:
                # Another spelling of d ("Paris" for "paris") is the same answer.
                correct += sum(self._words[p].lower() == self._words[e].lower()
                               for p, e in zip(predicted, d))
            else:
                correct += int(np.count_nonzero(predicted == d))
        return int(correct)

    # ----- word2vec formats -------------------------------------------------------------------
    def _check_words_fit_word2vec(self):
        for word in self._words:
            if word.split() != [word]:  # also catches the empty word
                raise ValueError(f"word {word!r} is empty or contains whitespace; the word2vec format "
                                 "separates fields by spaces and cannot hold it")

    def save_word2vec_format(self, path, binary=False):
        """Write the word2vec text (``binary=False``) or binary format, atomically.

        Text: a ``"n_words dim"`` line, then ``word v1 v2 ...`` per line (9 significant digits for
        float32 so values read back exactly, 17 for float64). Binary: the same header line, then
        per word its UTF-8 bytes, a space, ``dim`` little-endian float32 values and a newline."""
        self._check_words_fit_word2vec()
        header = f"{len(self)} {self.vector_size}\n".encode("ascii")

        if binary:
            rows = self._vectors.astype("<f4", copy=False)

            def write(f):
                f.write(header)
                for word, row in zip(self._words, rows):
                    f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            digits = 9 if self._vectors.dtype.itemsize <= 4 else 17
            row_format = " ".join([f"%.{digits}g"] * self.vector_size)

            def write(f):
                f.write(header)
                for word, row in zip(self._words, self._vectors):
                    f.write(f"{word} {row_format % tuple(row.tolist())}\n".encode("utf-8"))

        return atomic_write(path, write)

    @classmethod
    def load_word2vec_format(cls, path, binary=False, dtype=np.float32):
        """Read the word2vec text or binary format (see ``save_word2vec_format``).

        Tolerates trailing spaces, ``\\r\\n`` line ends and a missing final newline; raises
        ValueError naming the line (or word) for a malformed header, a row with the wrong number
        of values, a truncated file or a word count that disagrees with the header."""
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", errors="replace")
            n_words, dim = _parse_header(header, path)
            if binary:
                words, vectors = _read_binary_rows(f.read(), n_words, dim, path)
            else:
                words, vectors = _read_text_rows(f, n_words, dim, path)
        return cls(vectors.astype(dtype, copy=False), words)

    # ----- npz --------------------------------------------------------------------------------
    def save(self, path):
        """Save vectors and words to ``path`` as ``.npz`` (plain arrays, no pickle), atomically."""
        words = np.array(self._words, dtype=str)
        return atomic_write(path, lambda f: np.savez(f, vectors=self._vectors, words=words))

    @classmethod
    def load(cls, path):
        """Load what ``save`` wrote (the vectors keep their saved dtype)."""
        with np.load(Path(path), allow_pickle=False) as data:
            missing = {"vectors", "words"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a saved WordVectors file: missing {sorted(missing)}")
            return cls(data["vectors"], data["words"].tolist())


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


def _read_analogy_questions(path):
    """``{section: [[a, b, c, d], ...]}`` in file order, from ``: section`` / ``a b c d`` lines."""
    sections, current = {}, None
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                current = sections.setdefault(line[1:].strip(), [])
                continue
            words = line.split()
            if len(words) != 4:
                raise ValueError(f"{path}:{line_no}: expected 4 words 'a b c d', got {line!r}")
            if current is None:
                raise ValueError(f"{path}:{line_no}: question before the first ': section' header")
            current.append(words)
    return sections


def _read_text_rows(f, n_words, dim, path):
    words, vectors = [], np.empty((n_words, dim), dtype=np.float64)
    line_no = 1
    for line_no, line in enumerate(f, 2):
        fields = line.split()  # bytes.split: ASCII whitespace only, so UTF-8 words stay whole
        if not fields:
            continue
        if len(words) == n_words:
            raise ValueError(f"{path}:{line_no}: more rows than the {n_words} the header announces")
        if len(fields) != dim + 1:
            raise ValueError(f"{path}:{line_no}: expected a word and {dim} values, got {len(fields) - 1} values")
        try:
            vectors[len(words)] = np.array(fields[1:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: values are not all numbers") from None
        words.append(fields[0].decode("utf-8"))
    if len(words) != n_words:
        raise ValueError(f"{path}: the header announces {n_words} rows but the file has {len(words)}")
    return words, vectors


def _read_binary_rows(data, n_words, dim, path):
    words, vectors = [], np.empty((n_words, dim), dtype=np.float32)
    row_bytes = 4 * dim
    pos = 0
    for i in range(n_words):
        # Writers end each row with b"\n" but some omit it; skip whatever whitespace is there.
        while pos < len(data) and data[pos] in _ASCII_WHITESPACE:
            pos += 1
        space = data.find(b" ", pos)
        if space < 0:
            raise ValueError(f"{path}: truncated: word {i} of {n_words} is missing its ' ' separator")
        if space + 1 + row_bytes > len(data):
            raise ValueError(f"{path}: truncated: word {i} ({data[pos:space][:50]!r}) has fewer than {dim} values")
        words.append(data[pos:space].decode("utf-8"))
        vectors[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + row_bytes
    if data[pos:].strip(_ASCII_WHITESPACE):
        raise ValueError(f"{path}: data after the {n_words} rows the header announces "
                         f"(wrong dim {dim} in the header?)")
    return words, vectors


# ----- the book's helpers (same signatures and printed output) -----------------------------------

def cos_similarity(x, y, eps=1e-8):
    """Cosine similarity of two vectors; ``eps`` keeps a zero vector from dividing by zero."""
    x_unit = x / (np.sqrt(np.sum(x ** 2)) + eps)
    y_unit = y / (np.sqrt(np.sum(y ** 2)) + eps)
    return np.dot(x_unit, y_unit)


def most_similar(query, word_to_id, id_to_word, word_matrix, top=5):
    """Print the ``top`` words most similar to ``query`` (the book's ch. 2 helper).

    Prints ``[query] ...`` then `` word: score`` lines; an unknown query prints "... is not
    found" and returns None. Also returns the printed ``[(word, score), ...]``."""
    if query not in word_to_id:
        print("%s is not found" % query)
        return None
    print("\n[query] " + query)
    query_id = word_to_id[query]
    word_matrix = np.asarray(word_matrix)
    # All cosines at once, with the same eps placement as cos_similarity.
    unit_rows = word_matrix / (np.sqrt(np.sum(word_matrix ** 2, axis=1, keepdims=True)) + 1e-8)
    similarity = unit_rows @ unit_rows[query_id]
    shown = []
    for i in np.argsort(-similarity, kind="stable"):
        if i == query_id:
            continue
        print(" %s: %s" % (id_to_word[i], similarity[i]))
        shown.append((id_to_word[i], float(similarity[i])))
        if len(shown) >= top:
            break
    return shown


def analogy(a, b, c, word_to_id, id_to_word, word_matrix, top=5, answer=None):
    """Print the answers to a:b = c:? (the book's ch. 4 helper).

    Scores are dot products of the rows of ``word_matrix`` with the normalised ``b - a + c``
    (pass normalised vectors to get cosines, as the book does). With ``answer``, first prints its
    score after ``==>``. Unknown words print "... is not found" and return None; otherwise also
    returns the printed ``[(word, score), ...]``."""
    for word in (a, b, c):
        if word not in word_to_id:
            print("%s is not found" % word)
            return None
    print("\n[analogy] " + a + ":" + b + " = " + c + ":?")
    word_matrix = np.asarray(word_matrix)
    query = word_matrix[word_to_id[b]] - word_matrix[word_to_id[a]] + word_matrix[word_to_id[c]]
    query = query / np.sqrt(np.sum(query ** 2))
    similarity = word_matrix @ query
    if answer is not None:
        print("==>" + answer + ":" + str(np.dot(word_matrix[word_to_id[answer]], query)))
    shown = []
    for i in np.argsort(-similarity, kind="stable"):
        if np.isnan(similarity[i]) or id_to_word[i] in (a, b, c):
            continue
        print(" {0}: {1}".format(id_to_word[i], similarity[i]))
        shown.append((id_to_word[i], float(similarity[i])))
        if len(shown) >= top:
            break
    return shown


def _stats():
    # scipy.stats takes most of a second to import; only the evaluation needs it.
    from scipy import stats

    return stats
