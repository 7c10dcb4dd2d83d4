"""NumPy reference of round_to_format: one rounding in float64, element by element.

Every magnitude of a simulated format with ``man_bits`` fraction bits is ``r * 2**(E - man_bits)``
for an integer ``r``, where ``E`` is the value's binary exponent, held at ``emin`` and below
(the subnormals). Dividing by that power of two is exact, so rounding the quotient to an
integer (half to even; or up when the element's uniform draw is below the fraction) and
multiplying back is the one rounding of the exact input. float32 and float64 inputs are both exact in float64.
"""
import numpy as np

from ..sgns.reference import draw

TWO_TO_MINUS_53 = 2.0 ** -53
# What a finite value beyond max_finite, and an infinite input, become (see __init__.py).
OVERFLOW_TO_INF, OVERFLOW_TO_NAN, OVERFLOW_SATURATES = 0, 1, 2


def round_to_format(x, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    v = x.astype(np.float64).ravel()
    with np.errstate(invalid="ignore"):  # inf - inf for infinite inputs, replaced below
        y = _rounded(v, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed)
    return y.astype(x.dtype).reshape(x.shape)


def _rounded(v, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed):
    magnitude = np.abs(v)
    _, exponent = np.frexp(magnitude)  # magnitude = f * 2**exponent with f in [0.5, 1)
    shift = np.maximum(exponent - 1, emin) - man_bits
    scaled = np.ldexp(magnitude, -shift)
    if stochastic:  # up with probability equal to the fraction: unbiased
        u = (draw(np.uint64(seed), np.arange(v.size, dtype=np.uint64)) >> np.uint64(11)) * TWO_TO_MINUS_53
        below = np.floor(scaled)
        integral = below + (u < scaled - below)
    else:
        integral = np.rint(scaled)  # half to even
    y = np.ldexp(integral, shift)
    if not subnormals:  # below the smallest normal only 0 and that normal remain
        smallest = np.ldexp(1.0, emin)
        tiny = magnitude < smallest
        if stochastic:
            up = u < magnitude / smallest
        else:
            up = magnitude > smallest / 2  # a tie goes to 0, the even one
        y = np.where(tiny, np.where(up, smallest, 0.0), y)
    y = np.copysign(y, v)  # rounded as a magnitude; zeros keep their sign, and so do values rounded to zero
    too_big = (np.abs(y) > max_finite) | np.isinf(v)
    if overflow == OVERFLOW_TO_INF:
        y = np.where(too_big, np.copysign(np.inf, v), y)
    elif overflow == OVERFLOW_TO_NAN:
        y = np.where(too_big, np.nan, y)
    else:
        y = np.where(too_big, np.copysign(max_finite, v), y)
    return np.where(np.isnan(v), v, y)
