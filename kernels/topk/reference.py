"""NumPy reference of the top-k selection (contract in __init__.py)."""
import numpy as np


def topk(scores, k):
    """Per row of ``scores`` (Q, N) the ``k`` largest values and their indices, best first.

    A stable sort of the negated scores is the contract itself: larger values first, equal
    values by lower index (``-0.0 == 0.0`` tie), NaN after every number (NumPy sorts NaN last)
    and among themselves by lower index. A full sort, hence the reference, not a contender."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64, copy=False)
    return np.take_along_axis(scores, order, axis=1), np.ascontiguousarray(order)
