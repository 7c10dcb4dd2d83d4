"""NumPy reference of dropout_forward (contract in __init__.py): the draws are the sgns
reference's splitmix64 over uint64 arrays (kernels/include/fastnlp/rng.h)."""
import numpy as np

from ..sgns.reference import draw


def dropout_forward(x, out, mask, keep_below, scale, seed, first):
    counters = np.arange(x.size, dtype=np.uint64) + np.uint64(first)
    kept = (draw(np.uint64(seed), counters) >> np.uint64(32)) < np.uint64(keep_below)
    mask[...] = np.where(kept, x.dtype.type(scale), x.dtype.type(0)).reshape(x.shape)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        np.multiply(x, mask, out=out)
