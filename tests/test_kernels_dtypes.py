"""Number formats: the dtype API of the registry (OpSpec.dtypes / declines / lacks_dtype), the
float16 / bfloat16 conversions every backend uses, and the embedding ops in those formats.
(Every op on every dtype it declares, against the reference, is generated in
test_kernels_registry.py.)"""
import logging
from dataclasses import replace

import ml_dtypes
import numba
import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import embedding_gather, harness, registry, scatter_add
from fastnlp.kernels import _numba_common as nc
from fastnlp.kernels.validate import BFLOAT16, HALF_DTYPES, STORAGE_DTYPES

F16 = np.dtype(np.float16)


@numba.njit(cache=True)
def _widen_all(bits, bf16, out_bits):
    for i in range(bits.shape[0]):
        out_bits[i] = nc.bf16_to_f32_bits(bits[i]) if bf16 else nc.f16_to_f32_bits(bits[i])


@numba.njit(cache=True)
def _narrow_all(f32_bits, bf16, out):
    for i in range(f32_bits.shape[0]):
        out[i] = nc.f32_bits_to_bf16(f32_bits[i]) if bf16 else nc.f32_bits_to_f16(f32_bits[i])


def _same_values(a, b):
    """Equal as values (NaN payloads aside): float32 views compared, NaN meets NaN."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
def test_numba_conversions_match_numpy_and_ml_dtypes_bit_for_bit(dtype):
    every = np.arange(2**16, dtype=np.uint16)
    widened = np.empty(every.size, np.uint32)
    _widen_all(every, dtype == BFLOAT16, widened)
    expected = every.view(dtype).astype(np.float32)
    assert _same_values(widened.view(np.float32), expected)
    # Rounding: random float32 bit patterns (every exponent), the ties and the edges.
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    ties = (every.astype(np.uint32) << 16) | np.uint32(0x8000) if dtype == BFLOAT16 else \
        every.view(F16).astype(np.float32).view(np.uint32) + np.uint32(0x1000)
    edges = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00000001, 0x007FFFFF, 0x33000000,
                      0x33000001, 0x387FFFFF, 0x38800000, 0x477FEFFF, 0x477FF000, 0x47800000, 0x7F7FFFFF],
                     np.uint32)
    bits = np.concatenate([bits, ties, edges])
    narrowed = np.empty(bits.size, np.uint16)
    _narrow_all(bits, dtype == BFLOAT16, narrowed)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = bits.view(np.float32).astype(dtype)
    assert _same_values(narrowed.view(dtype), expected)
    nan = np.isnan(bits.view(np.float32))
    assert np.isnan(narrowed.view(dtype)[nan].astype(np.float32)).all()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
def test_every_value_round_trips_through_the_scatter_add_on_every_backend(dtype, cpu_backend):
    """dW = 0 + x: widening then rounding every 16-bit pattern gives it back (NaN stays NaN,
    -0 + 0 is +0 as in float32)."""
    values = np.arange(2**16, dtype=np.uint16).view(dtype).reshape(-1, 64)
    dW = np.zeros_like(values)
    scatter_add(dW, np.arange(values.shape[0]), values)
    with np.errstate(invalid="ignore"):
        expected = (values.astype(np.float32) + np.float32(0)).astype(dtype)
    assert _same_values(dW, expected)
    np.testing.assert_array_equal(embedding_gather(values, [3, 0]).view(np.uint16), values[[3, 0]].view(np.uint16))


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
def test_duplicates_are_summed_in_float32_and_rounded_once(dtype, cpu_backend):
    # 1 + 2^-9 four times: float32 keeps the small terms (1.0078125 rounds to the storage format
    # once); adding in the storage format each time would lose every one of them in bfloat16.
    small = np.float32(2.0 ** -9)
    dW = np.ones((2, 3), dtype)
    scatter_add(dW, [1, 1, 1, 1], np.full((4, 3), small, dtype))
    expected = np.array([np.float32(1), np.float32(1) + 4 * small]).astype(dtype)
    assert _same_values(dW[:, 0], expected)
    if dtype == BFLOAT16:
        assert dW[1, 0] != 1  # one rounding per step would have given 1.0


def test_the_reference_rounds_a_float32_sum_of_the_touched_rows_only():
    dW = np.array([[1.0], [2.0], [3.0]], BFLOAT16)
    registry.spec("scatter_add").reference(dW, np.array([2, 0, 2]), np.array([[0.5], [0.25], [0.125]], BFLOAT16))
    assert dW.astype(np.float32).ravel().tolist() == [1.25, 2.0, 3.625]


def test_dtype_api_of_the_embedding_ops():
    for op in ("scatter_add", "embedding_gather"):
        spec = registry.spec(op)
        assert set(spec.dtypes) == set(STORAGE_DTYPES) and set(spec.dtypes) <= set(spec.tolerance)
        assert spec.takes(BFLOAT16) and spec.takes(np.float16) and not spec.takes(np.int64)
        assert spec.tolerance_for(BFLOAT16, "cython") == (0.0, 0.0)  # exact on ordered backends
        assert spec.dtype_reason("cupy", BFLOAT16) and spec.dtype_reason("cython", BFLOAT16) is None
        assert isinstance(registry.implementation_for(op, "cupy", BFLOAT16), str)  # a reason, never a function


@pytest.mark.parametrize("bad", [np.int64, np.complex64, np.bool_])
def test_a_dtype_an_op_does_not_take_raises_type_error_naming_the_op_and_its_dtypes(bad):
    with pytest.raises(TypeError, match=r"scatter_add: dW has dtype \w+; scatter_add takes float32, float64, "
                                        r"float16, bfloat16"):
        scatter_add(np.zeros((3, 2), bad), [0], np.ones((1, 2)))
    with pytest.raises(TypeError, match=r"embedding_gather: W has dtype \w+; embedding_gather takes float32"):
        embedding_gather(np.zeros((3, 2), bad), [0])


def test_a_declined_dtype_names_why_and_kernel_refuses_it(monkeypatch):
    spec = registry.spec("lstm_step_forward")
    declined = replace(spec, dtypes=(np.dtype(np.float32), np.dtype(np.float64)), lacks_dtype={},
                       declines={F16: "not yet: the fused loop computes in the storage dtype"})
    monkeypatch.setitem(registry._specs, "lstm_step_forward", declined)
    registry.forget_resolutions()
    with pytest.raises(TypeError, match=r"lstm_step_forward takes float32, float64 \(float16: not yet: the fused"):
        declined.check_dtype(np.float16, "A")
    with pytest.raises(TypeError, match="lstm_step_forward takes"):
        registry.kernel("lstm_step_forward", np.zeros(3, np.float16))
    registry.kernel("lstm_step_forward", np.zeros(3, np.float32))  # the others still resolve
    monkeypatch.undo()
    registry.forget_resolutions()


def test_spec_checks_its_dtype_fields():
    common = dict(name="x", family="x", doc="x", deterministic=True, exact=True, tolerance={})
    with pytest.raises(ValueError, match="unknown backends"):
        registry.OpSpec(dtypes=(np.float32,), lacks_dtype={"fortran": {np.float32: "no"}}, **common)
    with pytest.raises(ValueError, match="reference must take"):
        registry.OpSpec(dtypes=(np.float32,), lacks_dtype={"numpy": {np.float32: "no"}}, **common)
    with pytest.raises(ValueError, match="does not take"):
        registry.OpSpec(dtypes=(np.float32,), lacks_dtype={"numba": {np.float16: "no"}}, **common)


def test_a_backend_lacking_a_dtype_falls_back_says_so_once_and_keeps_other_dtypes(monkeypatch, caplog):
    """A bf16 array on a backend without bf16: a fallback that says so, never silent garbage."""
    spec = registry.spec("scatter_add")
    lacking = replace(spec, lacks_dtype={**spec.lacks_dtype, "numba": {BFLOAT16: "test: no bfloat16 here"}})
    monkeypatch.setitem(registry._specs, "scatter_add", lacking)
    registry.forget_resolutions()
    registry._fallbacks_logged.clear()
    dW = np.zeros((3, 2), BFLOAT16)
    with caplog.at_level(logging.WARNING, logger="fastnlp.kernels"), fastnlp.use_backend("numba"):
        scatter_add(dW, [1, 1], np.ones((2, 2), BFLOAT16))
        scatter_add(dW, [2], np.ones((1, 2), BFLOAT16))
        assert registry.backend_for("scatter_add", dW) != "numba"
        assert registry.backend_for("scatter_add", np.zeros((3, 2), np.float32)) == "numba"
        assert registry.backend_for("scatter_add", np.zeros((3, 2), np.float16)) == "numba"
    assert dW.astype(np.float32).tolist() == [[0, 0], [2, 2], [1, 1]]
    warnings = [r.getMessage() for r in caplog.records if "scatter_add" in r.getMessage()]
    assert len(warnings) == 1 and "numba lacks bfloat16 (test: no bfloat16 here)" in warnings[0], warnings
    monkeypatch.undo()
    registry.forget_resolutions()


def test_matrix_shows_dtypes_and_the_backends_lacking_one(monkeypatch):
    table = registry.matrix()
    line = next(row for row in table.splitlines() if row.startswith("embedding_gather "))
    assert line.endswith("f32 f64 f16 bf16")
    spec = registry.spec("embedding_gather")
    monkeypatch.setitem(registry._specs, "embedding_gather",
                        replace(spec, lacks_dtype={"numba": {F16: "test reason"}}))
    assert "ok-f16 [" in registry.matrix() and "numba, f16: test reason" in registry.matrix()


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
def test_public_wrappers_take_half_weights_and_round_float_dout(dtype, cpu_backend):
    W = np.arange(12, dtype=np.float32).reshape(4, 3).astype(dtype)
    out = embedding_gather(W, [[3, 1]])
    assert out.dtype == dtype and out.shape == (1, 2, 3) and _same_values(out[0], W[[3, 1]])
    dW = np.zeros((4, 3), dtype)
    scatter_add(dW, np.array([0, 0]), np.full((2, 3), 1 / 3))  # float64 dout: rounded to dtype first
    third = np.float32(np.array(1 / 3).astype(dtype))
    assert _same_values(dW[0], np.full(3, third + third).astype(dtype))


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
def test_half_results_agree_across_backends_at_working_size(dtype):
    spec = registry.spec("scatter_add")
    problem = harness.as_dtype(spec.benchmark_args(), dtype)
    for backend in ("numba", "cython"):
        if not isinstance(registry.implementation_for("scatter_add", backend, dtype), str):
            harness.check_against_reference("scatter_add", backend, problem)
