"""The attention ops on float16 / bfloat16 storage beyond the generated tests
(tests/test_kernels_registry.py runs every op on every backend and dtype against the reference):
the one rounding to nearest even on every backend, the Numba conversions bit for bit, the
bfloat16 CUDA kernels (which no CuPy array can reach) on the CPU emulation, and the errors."""
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import fastnlp
from fastnlp import kernels
from fastnlp.kernels import harness, registry
from fastnlp.kernels.validate import BFLOAT16, HALF_DTYPES

from conftest import CPU_AVAILABLE

OPS = ("attention_weights", "attention_weights_backward", "weighted_sum", "weighted_sum_backward",
       "attention_context", "attention_context_backward")
F16 = np.dtype(np.float16)


def _exact_sum_problem(dtype):
    """hs whose two rows, weighed by 1, give float32 sums that need no rounding (exponents a few
    binades apart) but whose rounding to ``dtype`` hits ties, subnormals and carries into the
    next binade: c[n] = hs[n, 0] + hs[n, 1] exactly in float32, then rounded once. Rounding
    anything on the way (a product, a partial sum) or truncating would miss these."""
    rng = np.random.default_rng(7)
    mantissa = 11 if dtype == F16 else 8
    tiny = 2.0 ** (-24 if dtype == F16 else -133)  # the smallest subnormal
    N, H = 64, 40
    first = rng.integers(1, 2**mantissa, (N, H)) * 2.0 ** rng.integers(-4, 3, (N, H))
    # the second row one ulp-ish below the first's last bit: ties and round-ups in the sum
    second = rng.choice([-1.0, 1.0], (N, H)) * first * 2.0 ** (-mantissa - rng.integers(0, 3, (N, H)))
    first[:4], second[:4] = tiny * rng.integers(1, 50, (4, H)), tiny * rng.integers(1, 50, (4, H))
    hs = np.stack([first, second], axis=1).astype(dtype)
    assert np.array_equal(hs.astype(np.float64), np.stack([first, second], axis=1))  # held exactly
    a = np.ones((N, 1, 2), dtype)
    return hs, a


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("backend", CPU_AVAILABLE)
def test_each_output_is_rounded_once_to_nearest_even(backend, dtype):
    hs, a = _exact_sum_problem(dtype)
    expected = (hs[:, 0].astype(np.float32) + hs[:, 1].astype(np.float32)).astype(dtype)[:, None]
    with fastnlp.use_backend(backend):
        c = kernels.weighted_sum(hs, a)
    assert c.dtype == dtype
    np.testing.assert_array_equal(c.astype(np.float32), expected.astype(np.float32))


def test_numba_half_conversions_are_numpys_bits():
    """The float16 rows the Numba kernels widen and round (F16C through LLVM where the CPU has it)
    equal NumPy's conversions bit for bit, NaN aside (a NaN stays a NaN)."""
    numba = pytest.importorskip("numba", reason="the Numba backend needs numba")
    from fastnlp.kernels.attention import numba_impl

    @numba.njit
    def widen(bits, out):
        numba_impl._widen(bits, out, False)

    @numba.njit
    def narrow(values, bits):
        numba_impl._narrow(values, bits, False)

    every = np.arange(2**16, dtype=np.uint16)
    widened = np.empty(every.size, np.float32)
    widen(every, widened)
    expected = every.view(np.float16).astype(np.float32)
    nan = np.isnan(expected)
    assert np.array_equal(widened.view(np.uint32)[~nan], expected.view(np.uint32)[~nan]) and np.isnan(widened[nan]).all()
    rng = np.random.default_rng(0)
    ties = expected[~nan].view(np.uint32) + np.uint32(0x1000)  # halfway between float16 neighbours
    near_subnormal = np.arange(0x33000000 - 4096, 0x38800000 + 4096, 61, dtype=np.uint32)
    bits = np.concatenate([rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32), ties, near_subnormal,
                           near_subnormal | np.uint32(0x80000000),
                           np.array([0x477FEFFF, 0x477FF000, 0x47800000, 0x7F800000, 0xFF800000], np.uint32)])
    values = bits.view(np.float32)
    rounded = np.empty(values.size, np.uint16)
    narrow(values, rounded)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    nan = np.isnan(expected)
    assert np.array_equal(rounded[~nan], expected.view(np.uint16)[~nan]) and np.isnan(rounded.view(np.float16)[nan]).all()


@pytest.mark.parametrize("op", OPS)
def test_a_dtype_an_op_does_not_take_is_refused_naming_the_op_and_its_dtypes(op):
    hs = np.ones((2, 3, 4), np.int32)
    arity = len(inspect.signature(registry.spec(op).reference).parameters)
    args = [hs] + [np.ones((2, 1, 4), np.int32)] * (arity - 1)
    with pytest.raises(TypeError, match=rf"{op}: hs has dtype int32; {op} takes float32, float64, float16, bfloat16"):
        getattr(kernels, op)(*args)
    with pytest.raises(TypeError, match="h has dtype float32 but hs has float16|a has dtype float32 but hs has float16"):
        getattr(kernels, op)(hs.astype(np.float16), *[x.astype(np.float32) for x in args[1:]])


def test_cupy_says_why_it_lacks_bfloat16():
    for op in OPS:
        why = registry.spec(op).dtype_reason("cupy", BFLOAT16)  # what the fallback's warning quotes
        assert "cannot hold ml_dtypes.bfloat16" in why and "run_bits" in why
        assert registry.spec(op).dtype_reason("cupy", np.float16) is None


# ----- the bfloat16 CUDA kernels, on the CPU emulation (tests/cuda_emulation) ------------------

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_emulation import build, fake_cupy  # noqa: E402


@pytest.fixture(scope="module")
def emulated_attention(tmp_path_factory):
    if build.compiler() is None:
        pytest.skip("g++ is not on PATH: the CUDA emulation needs it")
    source = Path(registry.__file__).resolve().parent / "attention" / "attention_half.cu"
    folder = tmp_path_factory.mktemp("cuda_emulation_attention")
    build.build(source, folder)  # compiled once for the module
    return folder


@pytest.mark.parametrize("op", OPS)
def test_bfloat16_cuda_kernels_match_the_reference_on_the_emulation(emulated_attention, monkeypatch, op):
    spec = registry.spec(op)
    with fake_cupy.installed(emulated_attention, monkeypatch) as cupy:
        impl = fake_cupy.cupy_impl("attention")

        def run(args):
            returned = impl.run_bits(op, "bf16", *(cupy.array(a.view(np.uint16), copy=True) for a in args))
            returned = returned if isinstance(returned, tuple) else (returned,)
            return tuple(r.get().view(BFLOAT16) for r in returned)

        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(args=harness.examples_for(op, BFLOAT16))
        def check(args):
            expected = harness.run_implementation(op, registry.REFERENCE, args)
            got = run(args)
            atol, rtol = spec.tolerance_for(BFLOAT16, "cupy")
            assert len(got) == len(expected)
            for k, (g, e) in enumerate(zip(got, expected)):
                harness.validate_result(g, e, atol, rtol, what=f"{op} bf16 on emulated cupy, output {k}")
            harness.check_same_bits(got, run(args), what=f"{op} bf16 on emulated cupy")

        check()
