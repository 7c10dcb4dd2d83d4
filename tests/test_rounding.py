"""round_to_format: bit for bit what ml_dtypes' casts give, on every host backend; stochastic
rounding unbiased and reproducible; bad formats refused. (The generated registry tests also
compare every backend with the NumPy reference on hypothesis inputs.)"""
import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import registry, round_to_format
from fastnlp.kernels.rounding import FORMATS, number_format

ml_dtypes = pytest.importorskip("ml_dtypes")

HOST_BACKENDS = [b for b, impl in registry.implementations("round_to_format").items()
                 if callable(impl) and b != "cupy"]
ML_DTYPES = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16, "e4m3": ml_dtypes.float8_e4m3fn,
             "e5m2": ml_dtypes.float8_e5m2}


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _same_bits(got, want):
    """Every bit equal, signed zeros included; any NaN meets any NaN."""
    return np.all((_bits(got) == _bits(want)) | (np.isnan(got) & np.isnan(want)))


def _hard_values(dtype, fmt_name):
    fmt = FORMATS[fmt_name]
    rng = np.random.default_rng(7)
    spread = rng.standard_normal(20000) * np.exp(rng.uniform(-50, 50, 20000))
    # Every tie of the format's grid around 1, the subnormals and the overflow edge.
    grid = 1.0 + np.arange(-64, 64) * 2.0 ** -(fmt.man_bits + 1)
    tiny = np.arange(0, 40) * fmt.smallest_subnormal / 2
    top = fmt.max_finite * (1 + np.arange(-8, 9) * 2.0 ** -(fmt.man_bits + 2))
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan]
    values = np.concatenate([spread, grid, -grid, tiny, -tiny, top, -top, special])
    with np.errstate(over="ignore"):
        return values.astype(dtype)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
@pytest.mark.parametrize("fmt_name", list(ML_DTYPES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_equals_ml_dtypes_bit_for_bit(backend, fmt_name, dtype):
    x = _hard_values(dtype, fmt_name)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(ML_DTYPES[fmt_name]).astype(dtype)
    with fastnlp.use_backend(backend):
        got = round_to_format(x, fmt_name)
    assert got.dtype == x.dtype and got.shape == x.shape
    assert _same_bits(got, want)


def _tf32_oracle(x32):
    """float32 with its low 13 fraction bits rounded away, half to even, by integer arithmetic."""
    bits = x32.view(np.uint32).astype(np.uint64)
    lsb = (bits >> np.uint64(13)) & np.uint64(1)
    rounded = ((bits + np.uint64(0xFFF) + lsb) >> np.uint64(13)) << np.uint64(13)
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x32), x32, out)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_tf32_keeps_ten_fraction_bits(backend):
    x = _hard_values(np.float32, "tf32")
    with fastnlp.use_backend(backend):
        got = round_to_format(x, "tf32")
    assert _same_bits(got, _tf32_oracle(x))


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_custom_formats_match_their_named_twins(backend):
    x = _hard_values(np.float64, "fp16")
    with fastnlp.use_backend(backend):
        assert _same_bits(round_to_format(x, (5, 10)), round_to_format(x, "fp16"))
        assert _same_bits(round_to_format(x, (8, 7)), round_to_format(x, "bf16"))
        # float64 itself: nothing changes (NaN payloads aside).
        assert _same_bits(round_to_format(x, (11, 52)), x)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_stochastic_rounding_is_unbiased_reproducible_and_exact_on_the_grid(backend):
    with fastnlp.use_backend(backend):
        x = np.full(200_000, 1.0 + 2.0 ** -9, dtype=np.float32)  # a quarter of a bf16 ulp above 1
        once = round_to_format(x, "bf16", rounding="stochastic", seed=3)
        assert set(np.unique(once).tolist()) == {1.0, 1.0 + 2.0 ** -7}
        assert abs(once.astype(np.float64).mean() - (1.0 + 2.0 ** -9)) < 4 * 2.0 ** -7 / np.sqrt(x.size)
        assert _same_bits(once, round_to_format(x, "bf16", rounding="stochastic", seed=3))
        assert not _same_bits(once, round_to_format(x, "bf16", rounding="stochastic", seed=4))
        on_grid = np.array([1.0, -2.5, 0.0, -0.0, 3.0 * 2.0 ** -20], dtype=np.float32)
        assert _same_bits(round_to_format(on_grid, "bf16", rounding="stochastic", seed=9), on_grid)
        # Small updates survive on average: the reason pure-bf16 training wants it.
        small = np.full(100_000, 2.0 ** -12, dtype=np.float64)
        updated = round_to_format(1.0 + small, "bf16", rounding="stochastic", seed=1)
        assert abs((updated - 1.0).mean() - 2.0 ** -12) < 2.0 ** -12 * 0.1
        assert np.all(round_to_format(1.0 + small, "bf16") == 1.0)


def test_every_backend_draws_the_same_stochastic_bits():
    x = np.random.default_rng(0).standard_normal(5000)
    results = []
    for backend in HOST_BACKENDS:
        with fastnlp.use_backend(backend):
            results.append(round_to_format(x, "e4m3", rounding="stochastic", seed=2 ** 64 - 1))
    assert all(_same_bits(r, results[0]) for r in results)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_subnormals_off_and_saturation(backend):
    fp16 = FORMATS["fp16"]
    smallest_normal = 2.0 ** fp16.emin
    x = np.array([smallest_normal * 0.4, smallest_normal * 0.5, smallest_normal * 0.6, -smallest_normal * 0.7,
                  1e6, -np.inf, np.nan], dtype=np.float32)
    with fastnlp.use_backend(backend):
        flushed = round_to_format(x, "fp16", subnormals=False)
        assert flushed[:4].tolist() == [0.0, 0.0, smallest_normal, -smallest_normal]
        saturated = round_to_format(x, "fp16", saturate=True)
        assert saturated[4] == 65504 and saturated[5] == -65504 and np.isnan(saturated[6])
        assert np.isnan(round_to_format(np.array([500.0]), "e4m3"))[0]
        assert round_to_format(np.array([500.0]), "e4m3", saturate=True)[0] == 448


def test_formats_describe_themselves():
    assert FORMATS["fp16"].max_finite == 65504 and FORMATS["e4m3"].max_finite == 448
    assert FORMATS["e5m2"].max_finite == 57344 and FORMATS["fp16"].smallest_subnormal == 2.0 ** -24
    assert number_format((3, 2)).name == "e3m2"


def test_bad_formats_and_inputs_are_refused():
    x = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown format 'fp12'.*fp16, bf16, tf32, e4m3, e5m2"):
        round_to_format(x, "fp12")
    with pytest.raises(ValueError, match="exponent bits must be 2 to 11, got 12"):
        round_to_format(x.astype(np.float64), (12, 3))
    with pytest.raises(ValueError, match="mantissa bits must be 0 to 52, got -1"):
        round_to_format(x, (5, -1))
    with pytest.raises(ValueError, match="wider than the float32 input"):
        round_to_format(x, (11, 10))
    with pytest.raises(TypeError, match="round_to_format takes float32 or float64 arrays, got dtype float16"):
        round_to_format(x.astype(np.float16), "bf16")
    with pytest.raises(TypeError, match="got dtype int64"):
        round_to_format(np.arange(3), "bf16")
    with pytest.raises(ValueError, match="rounding must be one of"):
        round_to_format(x, "bf16", rounding="down")
    with pytest.raises(ValueError, match="seed must be an integer"):
        round_to_format(x, "bf16", rounding="stochastic", seed=-1)
    with pytest.raises(TypeError, match="fmt must be a format name"):
        round_to_format(x, 16)


def test_shapes_and_empty_arrays():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]  # not contiguous
    got = round_to_format(x, "e5m2")
    assert got.shape == (3, 2) and _same_bits(got, x.astype(ml_dtypes.float8_e5m2).astype(np.float64))
    assert round_to_format(np.zeros((0, 5), dtype=np.float32), "bf16").shape == (0, 5)
