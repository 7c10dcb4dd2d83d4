"""Standard evaluations of word vectors: word-pair similarity (WordSim-353) and analogies."""
from __future__ import annotations

import numpy as np

from .ranking import (ANALOGY_METHODS as _ANALOGY_METHODS, MAX_SCORE_ELEMENTS as _MAX_SCORE_ELEMENTS,
                      check_top as _check_top)


class EvaluationMixin:
    """Evaluation methods of WordVectors."""

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
                if not np.isfinite(score):
                    # One NaN would turn both correlations into NaN with no hint of why.
                    raise ValueError(f"{path}:{line_no}: score {fields[2].strip()!r} is not a finite number")
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
        if restrict_vocab is not None:
            restrict_vocab = _check_top(restrict_vocab, "restrict_vocab")
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


def _stats():
    # scipy.stats takes most of a second to import; only the evaluation needs it.
    from scipy import stats

    return stats
