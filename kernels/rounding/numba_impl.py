"""Numba kernel of round_to_format (inputs validated, see __init__.py): the reference's steps per
element, over blocks of the flat array on the BLAS threads (kernels/threads.py); the counter of
element i is i, so threads change no bit.

Not ``parallel=True``: Numba's OpenMP threading layer, at its first parallel launch, sets the
process's OpenMP thread count to NUMBA_NUM_THREADS (the core count unless set), so with
OMP_NUM_THREADS=1 oneDNN and every other library on libgomp ran on 2 threads after one rounding
(seen in `fastnlp backends --calibrate`: the gemm calibration took the process for a 2-thread one).
The library's threads are the BLAS's, as for every row-parallel op."""
import math

import numba
import numpy as np

from .._numba_common import splitmix64
from ..threads import parallel_rows
from .reference import OVERFLOW_TO_INF, OVERFLOW_TO_NAN, TWO_TO_MINUS_53


@numba.njit(cache=True, nogil=True, inline="always")
def _round_one(v, i, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    if math.isnan(v):
        return v
    magnitude = abs(v)
    u = 0.0
    if stochastic:
        u = np.float64(splitmix64(np.uint64(seed), i) >> np.uint64(11)) * TWO_TO_MINUS_53
    if math.isinf(v):
        y = magnitude
    else:
        _, exponent = math.frexp(magnitude)
        shift = max(exponent - 1, emin) - man_bits
        scaled = math.ldexp(magnitude, -shift)
        base = math.floor(scaled)
        fraction = scaled - base  # exact
        if stochastic:
            integral = base + 1.0 if u < fraction else base
        elif fraction > 0.5 or (fraction == 0.5 and base % 2.0 == 1.0):
            integral = base + 1.0
        else:
            integral = base
        y = math.ldexp(integral, shift)
        if not subnormals:
            smallest = math.ldexp(1.0, emin)
            if magnitude < smallest:
                if stochastic:
                    y = smallest if u < magnitude / smallest else 0.0
                else:
                    y = smallest if magnitude > smallest / 2 else 0.0
    if y > max_finite:
        if overflow == OVERFLOW_TO_INF:
            y = math.inf
        elif overflow == OVERFLOW_TO_NAN:
            return math.nan
        else:
            y = max_finite
    return math.copysign(y, v)


@numba.njit(cache=True, nogil=True)
def _round_range(x, out, begin, end, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    for i in range(begin, end):
        out[i] = _round_one(np.float64(x[i]), i, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed)


def round_to_format(x, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    out = np.empty(x.shape, x.dtype)  # C order: out.ravel() is a view, its flat index the counter
    flat_in, flat_out, seed = x.ravel(), out.ravel(), np.uint64(seed)

    def block(begin, end):
        _round_range(flat_in, flat_out, begin, end, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed)

    parallel_rows(block, x.size, x.size)
    return out
