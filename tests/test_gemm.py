"""The public matrix product: its contract on every matrix library, bfloat16 against a float64
product, bad input, and the calibration that picks the library (the generated registry tests
compare every implementation with the reference on hypothesis inputs)."""
import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnlp
from fastnlp.kernels import dispatch, gemm, registry

from fastnlp.kernels.gemm import calibration

gemm_family = sys.modules["fastnlp.kernels.gemm"]  # the attribute fastnlp.kernels.gemm is the function
BF16 = gemm_family.BFLOAT16
HOST = [b for b in dispatch.HOST_BACKENDS if not isinstance(registry.implementations("gemm")[b], str)]
# the host implementations that multiply float32 (the Cython one, AMX tiles, is bf16 only)
HOST_F32 = [b for b in HOST if registry.spec("gemm").dtype_reason(b, np.float32) is None]


@pytest.fixture(params=HOST)
def host_backend(request):
    with fastnlp.use_backend(request.param):
        yield request.param


def _random(shape, dtype=np.float32, seed=0):
    return (np.random.default_rng(seed).random(shape) * 2 - 1).astype(dtype)


def _product64(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 30), K=st.integers(1, 30), N=st.integers(1, 30), lead_a=st.sampled_from([(), (3,), (2, 3)]),
       lead_b=st.sampled_from([(), (3,), (1, 3)]), view_a=st.booleans(), view_b=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_any_layout_and_batch_equals_matmul(M, K, N, lead_a, lead_b, view_a, view_b, dtype):
    """Transposed views and broadcast batches give np.matmul's answer on every library."""
    a = _random(lead_a + (K, M), dtype, 1).swapaxes(-1, -2) if view_a else _random(lead_a + (M, K), dtype, 1)
    b = _random(lead_b + (N, K), dtype, 2).swapaxes(-1, -2) if view_b else _random(lead_b + (K, N), dtype, 2)
    expected = np.matmul(a, b)
    for backend in HOST:
        with fastnlp.use_backend(backend):
            result = gemm(a, b)
        assert result.shape == expected.shape and result.dtype == np.dtype(dtype)
        np.testing.assert_allclose(result, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5,
                                   err_msg=backend)


def test_flags_accumulate_and_out(host_backend):
    x, dout = _random((7, 5)), _random((7, 3), seed=1)
    dW = _random((5, 3), seed=2)
    before = dW.copy()
    assert gemm(x, dout, dW, trans_a=True, accumulate=True) is dW
    np.testing.assert_allclose(dW, before + x.T @ dout, rtol=1e-5, atol=1e-6)
    W = _random((4, 3), seed=3)
    np.testing.assert_allclose(gemm(dout, W, trans_b=True), dout @ W.T, rtol=1e-5, atol=1e-6)
    x_view = x.T.copy().T  # x's values in a transposed layout: the view becomes a flag, no copy
    np.testing.assert_allclose(gemm(x_view, dout, trans_a=True), x.T @ dout, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (20, 650, 260), (33, 17, 5)])
def test_bfloat16_products_equal_a_float64_product_of_the_same_values(host_backend, M, K, N):
    a, b = _random((M, K)).astype(BF16), _random((K, N), seed=1).astype(BF16)
    result = gemm(a, b)
    assert result.dtype == np.float32
    expected = _product64(a, b)
    # Each bf16 product is exact in float32; what differs is float32 summation of K terms.
    np.testing.assert_allclose(result, expected, rtol=0, atol=2e-6 * K * max(1.0, np.abs(expected).max()))
    rounded = gemm(a, b, out_dtype=BF16)
    assert rounded.dtype == BF16
    np.testing.assert_array_equal(rounded, result.astype(BF16))  # rounded once, at the end


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_bfloat16_output_accumulates_in_float32_then_rounds(host_backend):
    a, b = _random((4, 6)).astype(BF16), _random((6, 5), seed=1).astype(BF16)
    out = _random((4, 5), seed=2).astype(BF16)
    expected = (out.astype(np.float64) + _product64(a, b)).astype(np.float32).astype(BF16)
    gemm(a, b, out, accumulate=True)
    np.testing.assert_allclose(out.astype(np.float32), expected.astype(np.float32), rtol=1e-2)


def test_empty_products_and_empty_inner_size(host_backend):
    assert gemm(np.ones((0, 3), np.float32), np.ones((3, 4), np.float32)).shape == (0, 4)
    out = np.full((2, 4), 7.0, np.float32)
    gemm(np.ones((2, 0), np.float32), np.ones((0, 4), np.float32), out)
    np.testing.assert_array_equal(out, 0)  # the empty sum
    out[...] = 7
    gemm(np.ones((2, 0), np.float32), np.ones((0, 4), np.float32), out, accumulate=True)
    np.testing.assert_array_equal(out, 7)
    assert gemm(np.ones((0, 2, 3)), np.ones((3, 4))).shape == (0, 2, 4)


def test_out_overlapping_an_input_is_read_before_it_is_written(host_backend):
    a = _random((4, 4))
    expected = a @ a
    assert gemm(a, a, a) is a
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, error, match", [
    (lambda: gemm([[1.0]], np.ones((1, 1))), TypeError, "a must be an array"),
    (lambda: gemm(np.ones((2, 2), np.float32), np.ones((2, 2))), TypeError, "both must have one dtype"),
    (lambda: gemm(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64)), TypeError, "gemm takes"),
    (lambda: gemm(np.ones(3), np.ones((3, 2))), ValueError, "matrices or stacks"),
    (lambda: gemm(np.ones((2, 3)), np.ones((2, 3))), ValueError, "inner sizes must match"),
    (lambda: gemm(np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError, "do not broadcast"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), np.ones((3, 3))), ValueError, "out has shape"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2), np.float32)), TypeError, "out must be float64"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 4))[:, ::2]), ValueError, "C-contiguous"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), accumulate=True), ValueError, "out must be given"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), trans_a=1), TypeError, "trans_a must be True or False"),
    (lambda: gemm(np.ones((2, 3)), np.ones((3, 2)), out_dtype=np.float16), TypeError, "out_dtype float16"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_read_only_out_is_refused():
    out = np.zeros((2, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gemm(np.ones((2, 3)), np.ones((3, 2)), out)


def test_shape_classes():
    assert gemm_family.variant_of(np.dtype(np.float32), None, 20, 400, 100) == "float32/small"
    assert gemm_family.variant_of(np.dtype(np.float32), None, 20, 2600, 650) == "float32/step"
    assert gemm_family.variant_of(np.dtype(np.float64), None, 700, 2600, 650) == "float64/large"
    assert gemm_family.variant_of(np.dtype(np.float32), None, 650, 2600, 700, trans_a=True) == "float32/large_ta"
    assert gemm_family.variant_of(np.dtype(np.float32), None, 700, 650, 2600, trans_b=True) == "float32/large_tb"
    assert gemm_family.variant_of(np.dtype(np.float32), None, 20, 2600, 650, trans_b=True) == "float32/step"
    assert gemm_family.variant_of(np.dtype(np.float32), 128, 1, 29, 256) == "float32/batched"


# ---- calibration ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(calibration.ENV_VAR, raising=False)
    calibration.forget()
    yield tmp_path / "fastnlp" / "calibration"
    calibration.forget()


def test_calibration_measures_once_caches_on_disk_and_is_read_back(fresh_calibration, monkeypatch):
    order = calibration.preference("float32/small")
    assert set(order) == set(HOST_F32) and order[-1] != order[0] or len(HOST_F32) == 1
    (saved,) = fresh_calibration.glob("gemm-*.json")
    content = json.loads(saved.read_text())
    assert content["key"] == calibration.machine_key() and "float32/small" in content["variants"]
    calibration.forget()  # a new process: the file answers, nothing is timed again
    monkeypatch.setattr(calibration, "_measure", lambda variant: pytest.fail(f"{variant} was measured again"))
    assert calibration.preference("float32/small") == order


def test_calibration_of_another_machine_is_not_used(fresh_calibration, monkeypatch):
    calibration.preference("float32/small")
    calibration.forget()
    monkeypatch.setattr(calibration.cpu, "model_name", lambda: "another CPU")
    measured = []
    real = calibration._measure
    monkeypatch.setattr(calibration, "_measure", lambda variant: measured.append(variant) or real(variant))
    calibration.preference("float32/small")
    assert "float32/small" in measured and all(v.startswith("float32/") for v in measured)
    assert len(list(fresh_calibration.glob("gemm-*.json"))) == 2


def test_damaged_calibration_file_is_measured_again(fresh_calibration):
    calibration.preference("float32/small")
    (saved,) = fresh_calibration.glob("gemm-*.json")
    saved.write_text("{not json")
    calibration.forget()
    assert calibration.preference("float32/small")
    assert json.loads(saved.read_text())["variants"]["float32/small"]


def test_calibration_picks_the_fastest_and_forcing_a_backend_wins(fresh_calibration, monkeypatch):
    fake = [[b, float(i + 1)] for i, b in enumerate(HOST)]  # the last listed "fastest"
    monkeypatch.setattr(calibration, "_measure", lambda variant: sorted(fake, key=lambda p: -p[1]))
    registry.forget_resolutions()
    assert registry.backend_for("gemm", variant="float32/step") == HOST[-1]
    with fastnlp.use_backend("numpy"):
        assert registry.backend_for("gemm", variant="float32/step") == "numpy"
    monkeypatch.setenv(calibration.ENV_VAR, "off")
    assert calibration.preference("float32/step") == ("numpy",)


def test_calibrate_covers_every_variant_and_refresh_measures_again(fresh_calibration, monkeypatch):
    monkeypatch.setattr(calibration, "PROBLEMS", {k: (b and 2, 3, 4, 5) for k, (b, *_) in calibration.PROBLEMS.items()})
    result = calibration.calibrate()
    expected = {f"{d.name}/{c}" for d in gemm_family.INPUT_DTYPES for c in gemm_family.SHAPE_CLASSES}
    if calibration._threads() > 1:  # the per-step classes are also timed on one thread
        expected |= {f"{d.name}/{c}{calibration.SERIAL_SUFFIX}" for d in gemm_family.INPUT_DTYPES
                     for c in calibration.SERIAL_CLASSES}
    assert set(result) == expected
    for variant, ranking in result.items():
        # a one-thread variant is empty where no library here switches per call (NumPy alone)
        assert [b for b, _ in ranking] or variant.endswith(calibration.SERIAL_SUFFIX)
        assert all(g > 0 for _, g in ranking)
    measured = []
    real = calibration._measure
    monkeypatch.setattr(calibration, "_measure", lambda variant: measured.append(variant) or real(variant))
    calibration.calibrate()
    assert measured == []
    calibration.calibrate(refresh=True)
    assert set(measured) == expected


def test_one_thread_picks_per_class_more_threads_one_library_per_dtype(fresh_calibration, monkeypatch):
    """Two libraries' thread pools alternating on two cores starve each other: with more than one
    thread every class of a dtype runs on the library that is fastest over all of them."""
    speeds = {"small": {"numpy": 300.0, "lib": 100.0}, "step": {"numpy": 100.0, "lib": 120.0},
              "large": {"numpy": 100.0, "lib": 200.0}, "large_ta": {"numpy": 100.0, "lib": 150.0},
              "large_tb": {"numpy": 100.0, "lib": 150.0}, "wide": {"numpy": 100.0, "lib": 150.0},
              "batched": {"numpy": 10.0, "lib": 9.0}}
    monkeypatch.setattr(calibration, "_measure", lambda variant: [] if variant.endswith(calibration.SERIAL_SUFFIX)
                        else sorted(([b, g] for b, g in speeds[variant.split("/")[1]].items()), key=lambda p: -p[1]))
    monkeypatch.setattr(calibration, "_threads", lambda: 1)
    assert [calibration.preference(f"float32/{c}")[0] for c in speeds] == ["numpy", "lib", "lib", "lib", "lib", "lib",
                                                                              "numpy"]
    monkeypatch.setattr(calibration, "_threads", lambda: 2)
    # Weighed by calls per training step, the step and large classes decide: "lib" for every class.
    assert {calibration.preference(f"float32/{c}")[0] for c in speeds} == {"lib"}


def test_per_step_products_run_on_one_thread_where_that_measured_faster(fresh_calibration, monkeypatch):
    """More than one thread: a per-step class runs its library's product on the calling thread
    unless the threaded timing beats the one-thread one by more than the tie margin; the small
    class always does (threaded, its products slowed the time loops that timing did not show)."""
    from fastnlp.kernels.gemm import _libraries

    speeds = {"float32/small": [["lib", 200.0]], "float32/small@1thread": [["lib", 100.0]],
              "float32/step": [["lib", 100.0]], "float32/step@1thread": [["lib", 90.0]],
              "float32/batched": [["lib", 100.0]], "float32/batched@1thread": [["lib", 99.0]],
              "float32/large": [["lib", 100.0]]}
    monkeypatch.setattr(calibration, "_measure", lambda variant: speeds[variant])
    monkeypatch.setattr(_libraries, "single_threaded", lambda backend, function: ("alone", function))
    product = object()
    monkeypatch.setattr(calibration, "_threads", lambda: 2)
    assert calibration.adapted("float32/small", "lib", product) == ("alone", product)
    assert calibration.adapted("float32/step", "lib", product) is product  # clearly slower alone
    assert calibration.adapted("float32/batched", "lib", product) == ("alone", product)  # a tie: alone
    assert calibration.adapted("float32/large", "lib", product) is product  # never a per-step class
    monkeypatch.setattr(calibration, "_threads", lambda: 1)
    assert calibration.adapted("float32/small", "lib", product) is product
    monkeypatch.setattr(calibration, "_threads", lambda: 2)
    monkeypatch.setenv(calibration.ENV_VAR, "off")
    assert calibration.adapted("float32/small", "lib", product) is product


@pytest.mark.parametrize("library", ["mkl", "onednn"])
def test_single_threaded_product_equals_the_threaded_one_and_restores_the_count(library):
    from fastnlp.kernels.gemm import _libraries

    function = registry.implementations("gemm").get(library)
    if isinstance(function, str) or function is None:
        pytest.skip(f"{library} does not load here: {function}")
    serial = _libraries.single_threaded(library, function)
    if serial is None:
        pytest.skip(f"{library} has no per-call thread switch in this build")
    before = _libraries.thread_counts().get(library)
    a, b, out, *flags = gemm_family.gemm_problem(20, 100, 400, np.dtype(np.float32), False, False, False)
    expected = out.copy()
    function(a, b, expected, *flags)
    serial(a, b, out, *flags)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert _libraries.thread_counts().get(library) == before


def test_a_tie_within_three_percent_goes_to_the_reference(fresh_calibration, monkeypatch):
    speeds = {"small": {"numpy": 98.0, "lib": 100.0}, "step": {"numpy": 70.0, "lib": 100.0},
              "large": {"numpy": 99.0, "lib": 100.0}, "large_ta": {"numpy": 99.0, "lib": 100.0},
              "large_tb": {"numpy": 99.0, "lib": 100.0}, "wide": {"numpy": 99.0, "lib": 100.0},
              "batched": {"numpy": 10.0, "lib": 10.0}}
    tie = {**speeds, "step": {"numpy": 99.0, "lib": 100.0}}
    monkeypatch.setattr(calibration, "_measure", lambda variant: [] if variant.endswith(calibration.SERIAL_SUFFIX)
                        else sorted(([b, g] for b, g in speeds[variant.split("/")[1]].items()), key=lambda p: -p[1]))
    monkeypatch.setattr(calibration, "_threads", lambda: 1)
    assert [calibration.preference(f"float32/{c}")[0] for c in speeds] == ["numpy", "lib", "numpy", "numpy",
                                                                              "numpy", "numpy", "numpy"]
    monkeypatch.setattr(calibration, "_threads", lambda: 2)
    # Weighed by calls per step, the step class's 30% decides for the library...
    assert calibration.preference("float32/step")[0] == "lib"
    calibration.forget()
    for saved in fresh_calibration.glob("gemm-*.json"):
        saved.unlink()
    speeds.update(tie)  # ...and at 1% over every class together, the reference keeps it
    assert calibration.preference("float32/step")[0] == "numpy"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b", [False, True])
def test_repeated_product_equals_gemm_at_every_step(host_backend, dtype, trans_b):
    """The per-step product of a recurrent loop (b prepared once: packed on MKL, a transposed b
    copied once elsewhere) gives gemm's answer, with and without accumulate, and b's later
    changes do not leak into a step made before them."""
    rows, K, N = 5, 70, 90
    Wh = _random((N, K) if trans_b else (K, N), dtype, 1)
    step = gemm_family.repeated_product(Wh, rows, trans_b=trans_b)
    expected_b = Wh.T if trans_b else Wh
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for t in range(3):
        h, acc = _random((rows, K), dtype, 10 + t), _random((rows, N), dtype, 20 + t)
        before = acc.copy()
        assert step(h, acc, accumulate=True) is acc
        np.testing.assert_allclose(acc, before + h @ expected_b, **tolerance)
        fresh = np.full((rows, N), np.nan, dtype)
        step(h, fresh)
        np.testing.assert_allclose(fresh, h @ expected_b, **tolerance)


def test_repeated_product_takes_other_shapes_through_gemm_and_refuses_bad_input(host_backend):
    Wh = _random((6, 8))
    step = gemm_family.repeated_product(Wh, 4)
    other = _random((3, 6), seed=1)  # not the rows it was prepared for: gemm runs it, and checks
    np.testing.assert_allclose(step(other, np.zeros((3, 8), np.float32)), other @ Wh, rtol=1e-5, atol=1e-6)
    strided = _random((4, 12), seed=2)[:, ::2]
    np.testing.assert_allclose(step(strided, np.zeros((4, 8), np.float32)), strided @ Wh, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="inner sizes"):
        step(_random((4, 5)), np.zeros((4, 8), np.float32))
    with pytest.raises(TypeError, match="one dtype"):
        step(_random((4, 6), np.float64), np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        gemm_family.repeated_product(Wh, 0)
    with pytest.raises(ValueError, match="must be a matrix"):
        gemm_family.repeated_product(_random((2, 3, 4)), 2)


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
@pytest.mark.parametrize("trans_b", [False, True])
def test_repeated_product_of_bfloat16_operands_sums_in_float32(host_backend, trans_b):
    Wh = _random((90, 70) if trans_b else (70, 90), BF16, 1)
    step = gemm_family.repeated_product(Wh, 5, trans_b=trans_b)
    h, acc = _random((5, 70), BF16, 2), _random((5, 90), seed=3)
    expected = acc + _product64(h, Wh.T if trans_b else Wh)
    np.testing.assert_allclose(step(h, acc, accumulate=True), expected, rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
def test_repeated_product_inside_autocast_multiplies_bfloat16_operands():
    Wh = _random((64, 48))
    h = _random((20, 48), seed=1)
    with gemm_family.autocast("bf16"):
        step = gemm_family.repeated_product(Wh, 20, trans_b=True)
        out = step(h, np.zeros((20, 64), np.float32))
    expected = _product64(h.astype(BF16), Wh.astype(BF16).T)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.skipif(isinstance(registry.implementations("gemm").get("mkl"), str), reason="MKL is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_time_loops_on_mkl_packed_weights_equal_numpys(monkeypatch, dtype):
    """TimeLSTM's per-step products on MKL run on the weight packed once per loop (every step
    forward and back) and give NumPy's answer."""
    from fastnlp.kernels.gemm import mkl_impl
    from fastnlp.layers import TimeLSTM

    packed_steps = []
    compute = mkl_impl.gemm_packed_b
    monkeypatch.setattr(mkl_impl, "gemm_packed_b", lambda *args: packed_steps.append(1) or compute(*args))
    rng = np.random.default_rng(0)
    D, H, N, T = 6, 8, 3, 5
    weights = [rng.standard_normal(s).astype(dtype) * 0.5 for s in ((D, 4 * H), (H, 4 * H), (4 * H,))]
    xs, dhs = rng.standard_normal((N, T, D)).astype(dtype), rng.standard_normal((N, T, H)).astype(dtype)
    results = {}
    for backend in ("numpy", "mkl"):
        with fastnlp.use_backend(backend):
            lstm = TimeLSTM(*(w.copy() for w in weights))
            results[backend] = [lstm.forward(xs), lstm.backward(dhs)] + lstm.grads
    assert len(packed_steps) == 2 * T  # T steps forward, T back
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip(results["mkl"], results["numpy"]):
        np.testing.assert_allclose(got, want, **tolerance)


def test_the_large_classes_are_timed_cold_and_the_per_step_ones_back_to_back(fresh_calibration, monkeypatch):
    """A training step makes each large product once per layer, after other layers' work pushed
    its operands out of L2: those classes are timed one call at a time after other memory was
    written; the per-step classes, which reuse one weight 35 times, back to back."""
    from fastnlp.kernels import harness

    timed = []
    monkeypatch.setattr(harness, "best_cold_seconds", lambda fn, *args, calls: timed.append("cold") or 1e-3)
    monkeypatch.setattr(harness, "best_seconds", lambda fn, *args, **kw: timed.append("warm") or 1e-3)
    calibration._measure("float32/large_tb")
    assert timed and set(timed) == {"cold"}
    timed.clear()
    calibration._measure("float32/step")
    assert timed and set(timed) == {"warm"}


def test_best_cold_seconds_times_each_call_after_a_warm_up():
    from fastnlp.kernels import harness

    calls = []
    assert 0 <= harness.best_cold_seconds(lambda: calls.append(1), calls=3) < 1 and len(calls) == 4
