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


# float16 and bfloat16 storage (the counterpart of kernels/include/fastnlp/half.h). Numba has no
# float16 on the CPU (NotImplementedError) and does not know ml_dtypes' bfloat16, so kernels see
# such arrays as uint16 bit patterns and convert to and from float32 *bit patterns* (uint32,
# written through a uint32 view of a float32 scratch array: Numba has no scalar bit cast).
# Rounding is to nearest, ties to even, exactly as NumPy and ml_dtypes round; a NaN stays a
# quiet NaN. Everything is uint32 so no operation widens to int64 or float64.
_U16_SIGN, _F16_INF, _F16_QUIET = np.uint32(0x8000), np.uint32(0x7C00), np.uint32(0x7E00)
_F32_ABS, _F32_INF, _F32_EXP = np.uint32(0x7FFFFFFF), np.uint32(0x7F800000), np.uint32(0x7FFFFF)
_U0, _U1, _U10, _U13, _U16, _U23 = (np.uint32(v) for v in (0, 1, 10, 13, 16, 23))


@numba.njit(cache=True, nogil=True, inline="always")
def bf16_to_f32_bits(h):
    return np.uint32(h) << _U16


@numba.njit(cache=True, nogil=True, inline="always")
def f32_bits_to_bf16(u):
    u = np.uint32(u)
    if (u & _F32_ABS) > _F32_INF:
        return np.uint16((u >> _U16) | np.uint32(0x40))
    return np.uint16((u + np.uint32(0x7FFF) + ((u >> _U16) & _U1)) >> _U16)


@numba.njit(cache=True, nogil=True, inline="always")
def f16_to_f32_bits(h):
    h = np.uint32(h)
    sign = (h & _U16_SIGN) << _U16
    exponent = (h >> _U10) & np.uint32(0x1F)
    mantissa = h & np.uint32(0x3FF)
    if exponent == np.uint32(0x1F):
        return sign | _F32_INF | (mantissa << _U13)
    if exponent != _U0:
        return sign | ((exponent + np.uint32(112)) << _U23) | (mantissa << _U13)
    if mantissa == _U0:
        return sign
    exponent = np.uint32(113)
    while (mantissa & np.uint32(0x400)) == _U0:
        mantissa = mantissa << _U1
        exponent = exponent - _U1
    return sign | (exponent << _U23) | ((mantissa & np.uint32(0x3FF)) << _U13)


@numba.njit(cache=True, nogil=True, inline="always")
def f32_bits_to_f16(u):
    u = np.uint32(u)
    sign = (u >> _U16) & _U16_SIGN
    x = u & _F32_ABS
    if x > _F32_INF:
        return np.uint16(sign | _F16_QUIET | ((x >> _U13) & np.uint32(0x3FF)))
    if x >= np.uint32(0x47800000):
        return np.uint16(sign | _F16_INF)
    if x >= np.uint32(0x38800000):
        x = x + np.uint32(0xFFF) + ((x >> _U13) & _U1)
        return np.uint16(sign | ((x - np.uint32(0x38000000)) >> _U13))
    if x <= np.uint32(0x33000000):
        return np.uint16(sign)
    shift = np.uint32(126) - (x >> _U23)
    mantissa = (x & _F32_EXP) | np.uint32(0x800000)
    h = mantissa >> shift
    rest = mantissa & ((_U1 << shift) - _U1)
    half = _U1 << (shift - _U1)
    if rest > half or (rest == half and (h & _U1) != _U0):
        h = h + _U1
    return np.uint16(sign | h)


_MASK64 = (1 << 64) - 1


def combine_seeds(first: int, *more: int) -> int:
    """One 64-bit seed from several integers (a seed, an epoch, a job number...): splitmix64's
    finalizer over the running sum, in Python integers. The word2vec job streams and the
    stochastic-rounding streams of the trainers both derive their seeds this way."""
    z = _finalize(first & _MASK64)
    for part in more:
        z = _finalize((z + part) & _MASK64)
    return z


def _finalize(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)
