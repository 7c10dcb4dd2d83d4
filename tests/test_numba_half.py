"""kernels/_numba_half.py: the float16 / bfloat16 conversions the Numba kernels vectorise, bit for
bit against NumPy (float16) and ml_dtypes (bfloat16), on every float16 pattern and on float32
patterns that reach every rounding case (ties, subnormals, overflow, inf, NaN)."""
import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="the Numba backend's helpers need numba")

from fastnlp.kernels import _numba_common, _numba_half  # noqa: E402
from fastnlp.kernels.validate import BFLOAT16  # noqa: E402


@numba.njit
def _widen(bits, bf16, out):
    for j in range(bits.shape[0]):
        out[j] = _numba_half.half_to_f32(bits[j], bf16)


@numba.njit
def _narrow(values, bf16, out):
    for j in range(values.shape[0]):
        out[j] = _numba_half.f32_to_half(values[j], bf16)


def _float32_cases():
    rng = np.random.default_rng(16)
    every_pattern = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # Halfway cases of both formats (the low bits exactly one half unit) and their neighbours.
    halfway = (rng.integers(0, 2**16, 20_000, dtype=np.uint64).astype(np.uint32) << 16)
    ties = np.concatenate([halfway | 0x8000, halfway | 0x7FFF, (halfway >> 3) | 0x1000, (halfway >> 3) | 0xFFF])
    small = rng.standard_normal(50_000) * np.array([1e-5, 1e-7, 1e-40, 6e4])[rng.integers(0, 4, 50_000)]
    edges = [0.0, -0.0, 65504.0, 65519.99, 65520.0, 2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 2.0**-14, np.inf, -np.inf,
             np.nan, 1e-45, -1e-45, 3.4e38]
    values = np.concatenate([every_pattern, ties.view(np.float32), small.astype(np.float32), np.float32(edges)])
    # A signalling NaN is quieted by the conversion instructions (every arithmetic result is
    # quiet anyway); NumPy keeps it signalling, so they are left out of the comparison.
    bits = values.view(np.uint32)
    signalling = ((bits & 0x7F800000) == 0x7F800000) & ((bits & 0x7FFFFF) != 0) & ((bits & 0x400000) == 0)
    return values[~signalling]


def _same_bits_or_both_nan(got, expected, dtype):
    got_values, expected_values = got.view(dtype), expected.view(dtype)
    both_nan = np.isnan(got_values.astype(np.float32)) & np.isnan(expected_values.astype(np.float32))
    mismatch = (got != expected) & ~both_nan
    assert not mismatch.any(), f"{mismatch.sum()} mismatches, first at {np.flatnonzero(mismatch)[:5]}"


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BFLOAT16], ids=["float16", "bfloat16"])
def test_widening_every_pattern(dtype):
    patterns = np.arange(2**16, dtype=np.uint16)
    out = np.empty(patterns.size, np.float32)
    _widen(patterns, dtype == BFLOAT16, out)
    expected = patterns.view(dtype).astype(np.float32)
    quiet_nan = np.isnan(expected) & ((expected.view(np.uint32) & 0x400000) != 0)
    normal = ~np.isnan(expected)
    assert np.array_equal(out.view(np.uint32)[normal | quiet_nan], expected.view(np.uint32)[normal | quiet_nan])
    assert np.isnan(out[np.isnan(expected)]).all()


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BFLOAT16], ids=["float16", "bfloat16"])
def test_narrowing_rounds_to_nearest_even(dtype):
    values = _float32_cases()
    out = np.empty(values.size, np.uint16)
    _narrow(values, dtype == BFLOAT16, out)
    with np.errstate(over="ignore"):
        expected = values.astype(dtype).view(np.uint16)
    _same_bits_or_both_nan(out, expected, dtype)


def test_float16_fallback_matches_the_hardware_path():
    """The element-wise functions used where F16C is missing give the same bits."""
    values = _float32_cases()
    hardware = np.empty(values.size, np.uint16)
    _narrow(values, False, hardware)
    fallback = np.array([_numba_common.f32_bits_to_f16(u) for u in values.view(np.uint32)[:20_000]], np.uint16)
    _same_bits_or_both_nan(hardware[:20_000], fallback, np.float16)
