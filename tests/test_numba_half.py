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


@numba.njit
def _sum_and_round(a_bits, b_bits, out):
    for j in range(a_bits.shape[0]):
        total = _numba_half.bf16_to_f32(a_bits[j]) + _numba_half.bf16_to_f32(b_bits[j])
        out[j] = _numba_half.f32_sum_to_bf16(total)


def test_rounding_of_sums_of_bfloat16_values_needs_no_nan_select():
    """f32_sum_to_bf16 (the NaN select left out) on sums of two bfloat16 values, every pattern
    class among them (NaN payloads, inf - inf, subnormal sums, ties): ml_dtypes' bits."""
    rng = np.random.default_rng(7)
    a, b = (rng.integers(0, 2**16, 300_000, dtype=np.uint64).astype(np.uint16) for _ in range(2))
    tiny = rng.integers(0, 3, a.size) == 0
    a[tiny], b[tiny] = a[tiny] & 0x80FF, b[tiny] & 0x80FF  # subnormal sums and their cancellations
    a[:4], b[:4] = [0x7F80, 0x7FC1, 0x7F81, 0x3F80], [0xFF80, 0x3F80, 0xFFC0, 0x3B80]  # inf - inf, NaNs, a tie
    out = np.empty(a.size, np.uint16)
    _sum_and_round(a, b, out)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = a.view(BFLOAT16).astype(np.float32) + b.view(BFLOAT16).astype(np.float32)
    _same_bits_or_both_nan(out, sums.astype(BFLOAT16).view(np.uint16), BFLOAT16)


@numba.njit
def _add_blocks(dst, src, out, starts):
    for start in starts:
        _numba_half.add_round_bf16_block(dst, start, src, start + 1, out, start)


def test_bfloat16_block_of_pairs_rounds_like_ml_dtypes():
    """add_round_bf16_block at even and odd offsets (the pairs need no alignment): each value the
    bfloat16 of the float32 sum of its two inputs, the other values of ``out`` untouched."""
    rng = np.random.default_rng(8)
    dst, src = (rng.integers(0, 2**16, 4096, dtype=np.uint64).astype(np.uint16) for _ in range(2))
    dst[::3] &= 0x80FF  # subnormal and tiny values, so sums round to and from subnormals
    src[1::3] &= 0x80FF
    starts = np.array([0, 33, 101, 500, 1023, 2000, 4064 - 1], np.int64)
    out = np.full(4096, 0x1234, np.uint16)
    _add_blocks(dst, src, out, starts)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = (dst[:-1].view(BFLOAT16).astype(np.float32) + src[1:].view(BFLOAT16).astype(np.float32)).astype(BFLOAT16)
    covered = np.zeros(4096, bool)
    for start in starts:
        covered[start:start + _numba_half.BF16_BLOCK] = True
    _same_bits_or_both_nan(out[:-1][covered[:-1]], sums.view(np.uint16)[covered[:-1]], BFLOAT16)
    assert (out[~covered] == 0x1234).all()
