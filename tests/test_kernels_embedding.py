"""The public scatter_add / embedding_gather: layout, casting and bad input on every CPU backend
(backend equivalence on generated inputs is in test_kernels_registry.py)."""
import numpy as np
import pytest

from fastnlp.kernels import embedding_gather, scatter_add



def test_scatter_add_returns_dW_and_sums_duplicates(cpu_backend):
    dW = np.zeros((3, 2), np.float32)
    out = scatter_add(dW, np.array([2, 0, 2, 2]), np.ones((4, 2), np.float32))
    assert out is dW
    np.testing.assert_array_equal(dW, [[1, 1], [0, 0], [3, 3]])


def test_scatter_add_into_non_contiguous_dW(cpu_backend):
    base = np.zeros((4, 6), np.float64)
    view = base[:, ::2]
    scatter_add(view, np.array([[1, 3], [1, 0]]), np.ones((2, 2, 3)))
    np.testing.assert_array_equal(base[:, ::2], [[1] * 3, [2] * 3, [0] * 3, [1] * 3])
    np.testing.assert_array_equal(base[:, 1::2], 0)


def test_dout_of_another_float_dtype_is_cast(cpu_backend):
    dW = np.zeros((2, 2), np.float32)
    scatter_add(dW, np.array([1]), np.full((1, 2), 0.5, np.float64))
    assert dW.dtype == np.float32 and dW[1, 0] == 0.5


# Bad input: a clear exception that names the problem, and dW untouched.

@pytest.mark.parametrize("bad_id, message", [(10, "id 10 is out of range for 10 rows"),
                                             (-1, "id -1 is negative")])
def test_out_of_range_ids_raise_index_error_naming_the_id(cpu_backend, bad_id, message):
    dW = np.zeros((10, 3), np.float32)
    with pytest.raises(IndexError, match=message):
        scatter_add(dW, np.array([1, bad_id, 2]), np.ones((3, 3), np.float32))
    assert not dW.any()
    with pytest.raises(IndexError, match=message):
        embedding_gather(dW, np.array([[bad_id]]))


def test_huge_id_does_not_crash(cpu_backend):
    with pytest.raises(IndexError, match="out of range"):
        scatter_add(np.zeros((4, 2)), np.array([2**62]), np.ones((1, 2)))


def test_float_ids_raise_type_error(cpu_backend):
    with pytest.raises(TypeError, match="ids must be an integer array, got dtype float64"):
        scatter_add(np.zeros((4, 2)), np.array([1.0, 2.0]), np.ones((2, 2)))
    with pytest.raises(TypeError, match="integer"):
        embedding_gather(np.zeros((4, 2)), np.array([True]))


def test_shape_mismatch_raises_value_error(cpu_backend):
    with pytest.raises(ValueError, match=r"dout has shape \(3, 2\) but idx shape \(3,\) and dW width 4"):
        scatter_add(np.zeros((5, 4)), np.array([0, 1, 2]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="must be 2-D"):
        scatter_add(np.zeros(5), np.array([0]), np.ones((1,)))


def test_unsupported_weight_dtype_raises(cpu_backend):
    with pytest.raises(TypeError, match="dW has dtype int64; scatter_add takes float32, float64, float16, bfloat16"):
        scatter_add(np.zeros((3, 2), np.int64), np.array([0]), np.ones((1, 2)))
    with pytest.raises(TypeError, match="dout must be a float array"):
        scatter_add(np.zeros((3, 2)), np.array([0]), np.ones((1, 2), np.int32))


def test_read_only_dW_is_refused(cpu_backend):
    dW = np.zeros((3, 2))
    dW.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        scatter_add(dW, np.array([0]), np.ones((1, 2)))


def _sixteen_bit_patterns(rng, shape, dtype):
    """Random float16 / bfloat16 values, a third of them subnormal or tiny (so sums round to and
    from subnormals), with inf and NaN among the rest; no signalling NaNs (the conversion
    instructions quiet them, NumPy keeps them, and no arithmetic result is one)."""
    bits = rng.integers(0, 2**16, shape, dtype=np.uint64).astype(np.uint16)
    tiny_mask = np.uint16(0x83FF if dtype == np.float16 else 0x80FF)
    bits = np.where(rng.integers(0, 3, shape) == 0, bits & tiny_mask, bits).astype(np.uint16)
    values = bits.view(dtype)
    quiet_bit = np.uint16(0x0200 if dtype == np.float16 else 0x0040)
    bits[np.isnan(values.astype(np.float32))] |= quiet_bit
    return bits.view(dtype)


@pytest.mark.parametrize("width", [650, 33, 16, 7])
@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_16_bit_scatter_add_matches_the_reference_bit_for_bit(cpu_backend, dtype_name, width):
    """The fast row passes (a row of 32 or more values: AVX512-FP16's vaddph for float16,
    vcvtneps2bf16 with its subnormal fix for bfloat16; Numba's vectorised conversions) and the
    float32 row of repeated ids, on every 16-bit pattern class: the reference's bits, NaN for NaN."""
    from fastnlp.kernels.embedding import reference
    from fastnlp.kernels.validate import BFLOAT16

    dtype = np.dtype(np.float16) if dtype_name == "float16" else BFLOAT16
    rng = np.random.default_rng(width)
    dW = _sixteen_bit_patterns(rng, (60, width), dtype)
    idx = np.concatenate([rng.permutation(60)[:40], rng.integers(0, 8, 40)])  # unique ids and repeated ones
    rows = _sixteen_bit_patterns(rng, (idx.size, width), dtype)
    expected = dW.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        reference.scatter_add(expected, idx, rows)
        scatter_add(dW, idx, rows)
    got_bits, want_bits = dW.view(np.uint16), expected.view(np.uint16)
    both_nan = np.isnan(dW.astype(np.float32)) & np.isnan(expected.astype(np.float32))
    mismatch = (got_bits != want_bits) & ~both_nan
    assert not mismatch.any(), f"{mismatch.sum()} values differ, first at {np.argwhere(mismatch)[0]}"
