"""Numba version of exp_row_sums (contract in __init__.py): one loop per row, math.exp per
value, the row's sum accumulated in float64. Compiled on first call; releases the GIL."""
import math

import numba


@numba.njit(cache=True, nogil=True)
def _rows(x, y, sums):
    for r in range(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            v = math.exp(x[r, j])
            y[r, j] = v
            total += y[r, j]
        sums[r] = total


def exp_row_sums(x, y, sums):
    _rows(x, y, sums)
