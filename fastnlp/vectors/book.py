"""The book's helpers, with the same signatures and printed output (chapters 2 and 4)."""
from __future__ import annotations

import numpy as np

from .ranking import row_norms


def _unit_rows(matrix, eps):
    """The book's ``x / (np.sqrt(np.sum(x ** 2)) + eps)`` for each row of a 2-D ``matrix``.

    Rows whose squares overflow or underflow in the matrix's dtype (float16 counts above 256,
    say, which the book's formula turns into zero vectors) are divided by a norm computed
    without such squares instead. Integers are squared as float64: int32 squares wrap around."""
    x = np.asarray(matrix)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # such rows are redone below
        sum_sq = np.sum(x ** 2, axis=1, keepdims=True)
        unit = x / (np.sqrt(sum_sq) + eps)
    info = np.finfo(sum_sq.dtype)
    risky = ~((sum_sq >= info.tiny / info.eps) & (sum_sq <= info.max))[:, 0]
    if risky.any():
        rows = x[risky]
        unit[risky] = rows / (row_norms(rows)[:, None] + eps)
    return unit


def cos_similarity(x, y, eps=1e-8):
    """Cosine similarity of two vectors; ``eps`` keeps a zero vector from dividing by zero."""
    x_unit = _unit_rows(np.asarray(x)[None, :], eps)[0]
    y_unit = _unit_rows(np.asarray(y)[None, :], eps)[0]
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
    unit_rows = _unit_rows(word_matrix, 1e-8)
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
    query = _unit_rows(query[None, :], 0.0)[0]
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
