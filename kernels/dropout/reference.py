"""NumPy reference of dropout_forward (contract in __init__.py): splitmix64 in uint64 arrays
(NumPy wraps array arithmetic modulo 2**64 silently)."""
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(seed, counters):
    """Draws ``counters`` (a uint64 array) of the stream ``seed``: kernels/include/fastnlp/rng.h."""
    z = np.uint64(seed) + (counters + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def dropout_forward(x, out, mask, keep_below, scale, seed, first):
    counters = np.arange(x.size, dtype=np.uint64) + np.uint64(first)
    kept = (splitmix64(seed, counters) >> np.uint64(32)) < np.uint64(keep_below)
    mask[...] = np.where(kept, x.dtype.type(scale), x.dtype.type(0)).reshape(x.shape)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        np.multiply(x, mask, out=out)
