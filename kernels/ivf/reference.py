"""NumPy reference of the list-major IVF scan (contract in __init__.py)."""
import numpy as np


def ivf_scan(queries, vectors, ids, offsets, probes, first_list, last_list, k):
    """Per query, the rows of every list it probes (within first_list..last_list-1) gathered,
    scored with one product and fully sorted by (score descending, id ascending): the contract
    itself, hence the reference, not a contender. The compiled versions go list by list and
    keep a heap per query instead."""
    Q = queries.shape[0]
    scores = np.full((Q, k), -np.inf, np.float32)
    found = np.full((Q, k), -1, np.int64)
    for q in range(Q):
        lists = [lst for lst in probes[q] if first_list <= lst < last_list]
        if not lists:
            continue
        rows = np.concatenate([np.arange(offsets[lst], offsets[lst + 1]) for lst in lists])
        row_scores = vectors[rows] @ queries[q]
        order = np.lexsort((ids[rows], -row_scores))[:k]
        scores[q, :order.size] = row_scores[order]
        found[q, :order.size] = ids[rows][order]
    return scores, found
