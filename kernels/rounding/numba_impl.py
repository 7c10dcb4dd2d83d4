"""Numba kernel of round_to_format (inputs validated, see __init__.py): the reference's steps per
element, in parallel chunks; the counter of element i is i, so threads change no bit."""
import math

import numba
import numpy as np

from .._numba_common import splitmix64
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


@numba.njit(cache=True, nogil=True, parallel=True)
def _round_all(x, out, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    for i in numba.prange(x.size):
        out[i] = _round_one(np.float64(x[i]), i, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed)


def round_to_format(x, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    out = np.empty_like(x)
    _round_all(x.ravel(), out.ravel(), man_bits, emin, max_finite, subnormals, overflow, stochastic,
               np.uint64(seed))
    return out
