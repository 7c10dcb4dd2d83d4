"""The book's helpers, with the same signatures and printed output (chapters 2 and 4)."""
from __future__ import annotations

import numpy as np


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
