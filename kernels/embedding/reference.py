"""NumPy reference of the embedding ops: simple, obviously right, the truth in all tests.

Inputs arrive validated (see __init__.py): ids in range, C-contiguous, matching dtypes.
float16 / bfloat16 weights (the contract in __init__.py): the gather copies them; the
scatter-add converts the touched rows of dW and every row up to float32, sums in order of i
(np.add.at) and rounds each touched row once back to the storage dtype.
"""
import numpy as np

from ..validate import HALF_DTYPES


def scatter_add(dW, idx, rows):
    if dW.dtype in HALF_DTYPES:
        touched, where = np.unique(idx, return_inverse=True)
        sums = dW[touched].astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN as float32 gives them
            np.add.at(sums, where.reshape(-1), rows.astype(np.float32))
            dW[touched] = sums.astype(dW.dtype)
    else:
        np.add.at(dW, idx, rows)


def embedding_gather(W, idx):
    return W[idx]
