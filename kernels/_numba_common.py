"""What the Numba kernels of several op families share (the C kernels' counterpart is
kernels/include/fastnlp/): the counter-based splitmix64 draw of kernels/include/fastnlp/rng.h.

uint64 constants keep the arithmetic in uint64 (mixing uint64 with int64 would give float64).
"""
import numba
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ONE = np.uint64(1)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


@numba.njit(cache=True, nogil=True, inline="always")
def splitmix64(seed, counter):
    """Draw ``counter`` of the stream ``seed`` (both taken as uint64), wrapping arithmetic."""
    z = seed + (np.uint64(counter) + _ONE) * GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)
