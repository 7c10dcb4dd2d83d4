"""Numba version of dropout_forward (contract in __init__.py): one loop over the flat arrays,
the shared splitmix64 draw. Releases the GIL."""
import numba
import numpy as np

from .._numba_common import splitmix64

_S32 = np.uint64(32)


@numba.njit(cache=True, nogil=True)
def _forward(x, out, mask, keep_below, scale, zero, seed, first):
    for i in range(x.size):
        kept = (splitmix64(seed, first + np.uint64(i)) >> _S32) < keep_below
        m = scale if kept else zero
        mask[i] = m
        out[i] = x[i] * m


def dropout_forward(x, out, mask, keep_below, scale, seed, first):
    _forward(x.reshape(-1), out.reshape(-1), mask.reshape(-1), np.uint64(keep_below), x.dtype.type(scale),
             x.dtype.type(0), np.uint64(seed), np.uint64(first))
