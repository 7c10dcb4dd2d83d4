"""gemm's autocast: float32 products on bf16 (or fp16) operands with float32 sums, as PyTorch's
CPU autocast runs them; the cache of converted weights and when it is (not) used."""
import contextvars
import importlib
import sys
import threading

import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import dispatch, registry
from fastnlp.kernels.gemm import autocast, autocast_dtype, clear_autocast_cache

gemm_family = sys.modules["fastnlp.kernels.gemm"]  # the attribute fastnlp.kernels.gemm is the function
gemm = gemm_family.gemm
_autocast = sys.modules["fastnlp.kernels.gemm._autocast"]
BF16 = gemm_family.BFLOAT16
pytestmark = pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed")
HOST = [b for b in dispatch.HOST_BACKENDS if not isinstance(registry.implementations("gemm")[b], str)]
LOW = {"bf16": BF16, "fp16": np.dtype(np.float16)}


@pytest.fixture(params=HOST)
def host_backend(request):
    with fastnlp.use_backend(request.param):
        yield request.param


def _random(shape, seed=0, dtype=np.float32):
    return (np.random.default_rng(seed).random(shape) * 2 - 1).astype(dtype)


def _reference(a, b, low, trans_a=False, trans_b=False):
    """float64 product of the operands rounded to ``low``: the contract."""
    a = a.astype(low).astype(np.float64)
    b = b.astype(low).astype(np.float64)
    return (a.T if trans_a else a) @ (b.T if trans_b else b)


def _close(result, expected, K):
    # products of 16-bit values are exact in float32; only the float32 summation differs
    np.testing.assert_allclose(result, expected, rtol=0, atol=2e-6 * K * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("M, K, N", [(1, 1, 1), (3, 5, 7), (20, 650, 260), (70, 300, 90), (20, 256, 1024)])
def test_products_equal_the_rounded_reference(host_backend, mode, M, K, N):
    a, b = _random((M, K), 1), _random((K, N), 2)
    with autocast(mode):
        assert autocast_dtype() == LOW[mode]
        result = gemm(a, b)
        again = gemm(a, b)  # b now from the cache (when large enough), packed on MKL for few rows
    assert result.dtype == np.float32 and autocast_dtype() is None
    expected = _reference(a, b, LOW[mode])
    _close(result, expected, K)
    _close(again, expected, K)
    # and it is not the float32 product: the operands were rounded
    assert M * K == 1 or not np.allclose(result, a.astype(np.float64) @ b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("views", [False, True])
def test_out_accumulate_flags_and_views(host_backend, trans_a, trans_b, views):
    M, K, N = 24, 130, 300
    a = _random((K, M) if trans_a else (M, K), 3)
    b = _random((N, K) if trans_b else (K, N), 4)
    if views:  # transposed views instead of flags: the same product
        a, trans_a = (a.T.copy().T, trans_a)
        b, trans_b = (b.T.copy().T, trans_b)
    start = _random((M, N), 5)
    expected = _reference(a, b, BF16, trans_a, trans_b)
    with autocast("bf16"):
        out = np.empty((M, N), np.float32)
        assert gemm(a, b, out, trans_a=trans_a, trans_b=trans_b) is out
        dW = start.copy()
        for _ in range(2):  # the second time with cached operands
            assert gemm(a, b, dW, trans_a=trans_a, trans_b=trans_b, accumulate=True) is dW
    _close(out, expected, K)
    _close(dW, start + 2 * expected, K)


def test_tall_weight_gradient_and_batches():
    # dW.T = dout.T @ x of a tied softmax weight (its own route) and a batched product
    x, dout = _random((60, 40), 1), _random((60, 5000), 2)
    dW = _random((5000, 40), 3)
    start = dW.copy()
    a3, b2 = _random((3, 4, 50), 4), _random((50, 6), 5)
    with autocast("bf16"):
        gemm(dout, x, dW, trans_a=True, accumulate=True)
        stacked = gemm(a3, b2)
        shared = gemm(b2.T, np.broadcast_to(a3.swapaxes(1, 2), (3, 50, 4)))
    _close(dW, start + _reference(dout, x, BF16, trans_a=True), 60)
    _close(stacked, np.stack([_reference(a, b2, BF16) for a in a3]), 50)
    _close(shared, np.stack([_reference(b2.T, a.T, BF16) for a in a3]), 50)


def test_nesting_disabling_and_dtypes():
    a, b = _random((8, 300), 1), _random((300, 9), 2)
    exact = a.astype(np.float64) @ b
    assert autocast_dtype() is None
    with autocast("bf16"):
        with autocast(None):
            assert autocast_dtype() is None
            np.testing.assert_allclose(gemm(a, b), exact, rtol=1e-5, atol=1e-5)
            with autocast("fp16"):
                assert autocast_dtype() == np.float16
            assert autocast_dtype() is None
        assert autocast_dtype() == BF16
        # float64 stays float64, untouched; bf16 operands stay as they are
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        result64 = gemm(a64, b64)
        assert result64.dtype == np.float64
        np.testing.assert_allclose(result64, exact, rtol=1e-12)
        mixed = gemm(a, b.astype(BF16))  # one float32 operand: rounded, the bf16 one kept
        _close(mixed, _reference(a, b, BF16), 300)
        with pytest.raises(TypeError):
            gemm(a, b64)  # float32 with float64: refused as without autocast
        rounded = gemm(a, b, out_dtype=BF16)
        assert rounded.dtype == BF16
    assert autocast_dtype() is None
    np.testing.assert_allclose(gemm(a, b), exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", ["fp8", "int8", np.float32, "float64"])
def test_unsupported_dtypes_are_named(bad):
    with pytest.raises(ValueError, match="bf16.*fp16"):
        with autocast(bad):
            pass


def test_float16_operands_sum_in_float32_outside_autocast_too():
    # float16 is one of gemm's input dtypes (issue 16): sums in float32, float32 out by default,
    # float16 out rounded once when asked; a float16 operand beside a float32 one is refused.
    a, b = _random((3, 700), 1).astype(np.float16), _random((700, 5), 2).astype(np.float16)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    result = gemm(a, b)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, exact, rtol=1e-5, atol=1e-5)
    rounded = gemm(a, b, out_dtype=np.float16)
    assert rounded.dtype == np.float16
    np.testing.assert_array_equal(rounded, result.astype(np.float16))
    with pytest.raises(TypeError, match="one dtype"):
        gemm(a, b.astype(np.float32))


def test_threads_and_contexts_are_isolated():
    a, b = _random((4, 300), 1), _random((300, 5), 2)
    seen = {}

    def worker():
        seen["thread"] = autocast_dtype()
        seen["product"] = gemm(a, b)

    with autocast("bf16"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        copied = contextvars.copy_context()
    assert seen["thread"] is None  # a new thread starts without autocast
    np.testing.assert_allclose(seen["product"], a.astype(np.float64) @ b, rtol=1e-5, atol=1e-6)
    assert copied.run(autocast_dtype) == BF16  # a copied context carries the block along
    assert autocast_dtype() is None


# ---- the cache -----------------------------------------------------------------------------

def _weight(seed=7):
    return _random((256, 512), seed)  # large enough to be cached


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("K, N", [(160, 130), (7, 9)])  # cached and packed (bf16 on MKL); too small to cache
def test_the_recurrent_step_equals_gemm_inside_autocast(host_backend, mode, trans_b, K, N):
    """repeated_product inside a block (bf16 on MKL: the weight's cached copy packed once, each
    step's rows rounded into one buffer) gives gemm's bits in the same block, with and without
    accumulate, for every step; rows it was not made for, or strided ones, go through gemm."""
    rows = 5
    Wh = _random((N, K) if trans_b else (K, N), 1)
    with autocast(mode):
        packed = _autocast.packs_cached_weights(_autocast.active()) and K * N >= _autocast.CACHE_MIN_SIZE
        # The packed step runs gemm's own bf16 product: the same bits. Elsewhere a transposed
        # weight is copied to row-major once, so the float32 sums may round differently.
        same = np.testing.assert_array_equal if packed else \
            (lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * K))
        step = gemm_family.repeated_product(Wh, rows, trans_b=trans_b)
        for t in range(3):
            h, acc = _random((rows, K), 10 + t), _random((rows, N), 20 + t)
            want = gemm(h, Wh, acc.copy(), trans_b=trans_b, accumulate=True)
            assert step(h, acc, accumulate=True) is acc
            same(acc, want)
            fresh = np.full((rows, N), np.nan, np.float32)
            same(step(h, fresh), gemm(h, Wh, trans_b=trans_b))
        other, strided = _random((3, K), 5), _random((rows, 2 * K), 6)[:, ::2]
        same(step(other, np.zeros((3, N), np.float32)), gemm(other, Wh, trans_b=trans_b))
        same(step(strided, np.zeros((rows, N), np.float32)), gemm(strided, Wh, trans_b=trans_b))
        with pytest.raises(ValueError, match="inner sizes"):
            step(_random((rows, K + 1)), np.zeros((rows, N), np.float32))
    _close(fresh, _reference(h, Wh, LOW[mode], trans_b=trans_b), K)


@pytest.mark.parametrize("ranked_first", ["mkl", "onednn", "numpy"])
def test_steps_run_on_mkls_packed_weight_only_where_mkl_runs_the_step_products(monkeypatch, ranked_first):
    """Where MKL has no bf16 instructions to use (an AMD CPU, an ISA cap) its packed bf16 product
    is emulated and slow: the steps follow the library ranked first for 'bfloat16/step'."""
    from fastnlp.kernels.gemm import _libraries

    reason = _libraries.unavailable_reason("mkl")
    if reason is not None:
        pytest.skip(reason)
    if not importlib.import_module("fastnlp.kernels.gemm.mkl_impl").HAS_BF16_PACK:
        pytest.skip("this MKL has no bf16 packing")
    picked = registry.backend_for

    def ranked(op, like=None, variant=None, dtype=None):
        return ranked_first if op == "gemm" and variant == "bfloat16/step" else picked(op, like, variant, dtype)

    monkeypatch.setattr(registry, "backend_for", ranked)
    Wh, h = _weight(), _random((5, 256), 3)
    with autocast("bf16"):
        assert _autocast.packs_cached_weights(_autocast.active()) == (ranked_first == "mkl")
        step = gemm_family.repeated_product(Wh, 5)
        got = step(h, np.empty((5, 512), np.float32))
        want = gemm(h, Wh, np.empty((5, 512), np.float32))  # a step's product on the same library
    if ranked_first == "mkl":
        np.testing.assert_array_equal(got, want)
    _close(got, _reference(h, Wh, BF16), 256)


@pytest.mark.parametrize("ranking", [("mkl", "onednn", "numpy"), ("mkl", "numpy", "onednn")])
def test_tall_weight_gradients_go_to_onednns_primitive_only_where_its_bf16_beats_numpy(monkeypatch, ranking):
    """dW.T = dout.T @ x of a tied (V, D) weight: oneDNN's matmul primitive where oneDNN's bf16
    products are ranked ahead of NumPy's widened ones; where they are not (bf16 without AMX),
    the calibrated library."""
    from fastnlp.kernels.gemm import _libraries

    reason = _libraries.unavailable_reason("onednn")
    if reason is not None:
        pytest.skip(reason)
    onednn = importlib.import_module("fastnlp.kernels.gemm.onednn_impl")
    if not onednn.HAS_PRIMITIVE or onednn.BF16_NATIVE_REASON is not None:
        pytest.skip("oneDNN has no native bf16 matmul primitive here")
    calls = []
    primitive = onednn.gemm_primitive
    monkeypatch.setattr(onednn, "gemm_primitive", lambda *args: calls.append(args[0].shape) or primitive(*args))
    ranked = type(registry.spec("gemm")).preference_for  # a frozen dataclass: patched on its class
    monkeypatch.setattr(type(registry.spec("gemm")), "preference_for", lambda spec, variant: ranking if (
        spec.name == "gemm" and variant == "bfloat16/large_ta") else ranked(spec, variant))
    dout, x = _random((70, 4100), 1), _random((70, 65), 2)
    registry.forget_resolutions()  # resolved under the patched ranking, then forgotten
    try:
        with autocast("bf16"):
            got = gemm(dout, x, np.empty((4100, 65), np.float32), trans_a=True)
    finally:
        registry.forget_resolutions()
    assert calls == ([(70, 4100)] if ranking.index("onednn") < ranking.index("numpy") else [])
    _close(got, _reference(dout, x, BF16, trans_a=True), 70)


def test_a_weight_changed_in_place_then_cleared_is_used_anew(host_backend):
    x, W = _random((20, 256), 1), _weight()
    with autocast("bf16"):
        first = gemm(x, W)
        gemm(x, W)
        assert _autocast.cache_info()["bfloat16"] >= 1
        W[:] = _weight(8)  # the optimizer's update, in place
        clear_autocast_cache()
        assert _autocast.cache_info()["bfloat16"] == 0
        second = gemm(x, W)
    _close(first, _reference(x, _weight(), BF16), 256)
    _close(second, _reference(x, W, BF16), 256)


def test_without_clear_a_new_block_and_a_dense_update_are_seen():
    """No clear_autocast_cache(): each block starts empty, and inside one block an in-place
    update that changes the weight throughout (any optimizer's) trips the sampled guard."""
    x, W = _random((20, 256), 1), _weight()
    with autocast("bf16"):
        gemm(x, W)
    W -= 0.01 * _random(W.shape, 9)
    with autocast("bf16"):
        _close(gemm(x, W), _reference(x, W, BF16), 256)  # a new block: nothing of the last one
        gemm(x, W)
        W -= 0.01 * _random(W.shape, 10)  # dense in-place update inside the block, no clear
        _close(gemm(x, W), _reference(x, W, BF16), 256)


def test_without_clear_a_change_the_guard_does_not_sample_is_missed_until_clear():
    """The documented limit: an in-place edit of unsampled elements inside a block is not seen
    before clear_autocast_cache() (or the next block)."""
    x, W = _random((20, 256), 1), _weight()
    old = W.copy()
    positions = set(_autocast._positions(W.size).tolist())
    unsampled = next(i for i in range(W.size) if i not in positions)
    with autocast("bf16"):
        gemm(x, W)
        W.flat[unsampled] += 100.0
        _close(gemm(x, W), _reference(x, old, BF16), 256)  # stale, as documented
        clear_autocast_cache()
        _close(gemm(x, W), _reference(x, W, BF16), 256)


def test_no_cache_option_and_dead_arrays_leave_the_cache():
    x = _random((20, 256), 1)
    with autocast("bf16", cache=False):
        W = _weight()
        gemm(x, W)
        assert _autocast.cache_info() == {"bfloat16": 0} or "bfloat16" not in _autocast.cache_info()
    with autocast("bf16"):
        W = _weight()
        gemm(x, W)
        assert _autocast.cache_info()["bfloat16"] == 1
        del W  # the copy goes with its array; a recycled id cannot match
        assert _autocast.cache_info()["bfloat16"] == 0
        W2 = _weight(11)
        _close(gemm(x, W2), _reference(x, W2, BF16), 256)


def test_clear_reaches_other_threads_caches():
    x, W = _random((20, 256), 1), _weight()
    ready, updated, done = threading.Event(), threading.Event(), threading.Event()
    result = {}

    def worker():
        with autocast("bf16"):
            gemm(x, W)
            ready.set()
            updated.wait(10)
            result["after"] = gemm(x, W)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(10)
    W.flat[int(max(set(range(W.size)) - set(_autocast._positions(W.size).tolist())))] = 50.0
    clear_autocast_cache()  # from this thread, outside any block
    updated.set()
    thread.join()
    _close(result["after"], _reference(x, W, BF16), 256)


# ---- layers: forward and backward under autocast -------------------------------------------

def _rounded(x):
    return x.astype(BF16).astype(np.float32)


def test_time_affine_forward_backward_match_bf16_rounded_inputs():
    from fastnlp.layers import TimeAffine

    W, b = _random((64, 300), 1), _random((300,), 2)
    xs, dout = _random((4, 5, 64), 3), _random((4, 5, 300), 4)
    layer = TimeAffine(W, b)
    with autocast("bf16"):
        out = layer.forward(xs)
        dx = layer.backward(dout)
    dW, db = layer.grads
    x2, d2 = _rounded(xs).reshape(-1, 64).astype(np.float64), _rounded(dout).reshape(-1, 300).astype(np.float64)
    _close(out, (x2 @ _rounded(W) + b).reshape(4, 5, 300), 64)
    _close(dx, (d2 @ _rounded(W).T).reshape(4, 5, 64), 300)
    _close(dW, x2.T @ d2, 20)
    np.testing.assert_allclose(db, dout.reshape(-1, 300).sum(axis=0), rtol=1e-5, atol=1e-5)


def test_tied_affine_and_lstm_match_the_rounded_computation():
    """A TimeLSTM and a tied TimeAffine (W a transposed view) trained one step under autocast
    equal the same layers run in float32 on operands rounded at every product; checked through
    autocast's own products against a float32 run with rounding patched into gemm."""
    from fastnlp.layers import TimeAffine, TimeLSTM

    D, H, V, N, T = 32, 48, 200, 3, 6
    Wx, Wh, b = _random((D, 4 * H), 1) * 0.3, _random((H, 4 * H), 2) * 0.3, _random((4 * H,), 3)
    embed = _random((V, H), 4)
    xs, dout = _random((N, T, D), 5), _random((N, T, V), 6)

    def run(mode):
        lstm, affine = TimeLSTM(Wx.copy(), Wh.copy(), b.copy()), TimeAffine(embed.copy().T, np.zeros(V, np.float32))
        with mode():
            hs = lstm.forward(xs)
            scores = affine.forward(hs)
            dxs = lstm.backward(affine.backward(dout))
        return [scores, dxs] + lstm.grads + affine.grads

    import contextlib

    import fastnlp.layers.core as core
    import fastnlp.layers.recurrent as recurrent

    calls = []

    def rounding_gemm(a, b, *args, **kwargs):  # float32 operands rounded to bf16, then plain gemm
        calls.append(1)
        return gemm(_rounded(a) if a.dtype == np.float32 else a, _rounded(b) if b.dtype == np.float32 else b,
                    *args, **kwargs)

    def rounding_steps(b, rows, *, trans_b=False):  # the recurrent loops' per-step products
        return lambda a, out, accumulate=False: rounding_gemm(a, b, out, trans_b=trans_b, accumulate=accumulate)

    mixed = run(lambda: autocast("bf16"))
    saved = core.gemm, recurrent.repeated_product
    core.gemm, recurrent.repeated_product = rounding_gemm, rounding_steps
    try:
        reference = run(contextlib.nullcontext)
    finally:
        core.gemm, recurrent.repeated_product = saved
    assert calls
    for got, want in zip(mixed, reference):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * max(1.0, float(np.abs(want).max())))


def test_a_finished_autocast_block_frees_its_weight_copies_without_the_garbage_collector():
    """Cached 16-bit copies of the weights must go when the block that made them ends (a
    training loop opens one per step): a reference cycle through the weakref kept each step's
    copies alive until a full collection, ~50 MB a step for BetterRnnlm."""
    import gc
    import weakref

    from fastnlp.kernels.gemm import _autocast

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((256, _autocast.CACHE_MIN_SIZE // 256 + 1)).astype(np.float32)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    gc.disable()
    try:
        for _ in range(3):
            with autocast("bf16"):
                fastnlp.kernels.gemm(x, weight)
                entries = _autocast._current.get().caches[_autocast.BFLOAT16].entries
                copies = [weakref.ref(entry.low) for entry in entries.values()]
                assert copies, "the weight should have been cached"
                del entries
            assert all(copy() is None for copy in copies)
        with autocast("bf16"):
            fastnlp.kernels.gemm(x, weight)
            clear_autocast_cache()  # after an update inside a block: the stale copy goes at once
            assert _autocast.cache_info() == {"bfloat16": 0}
    finally:
        gc.enable()


@pytest.mark.parametrize("low", ["bf16", "fp16"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (20, 650), (2, 33)])
def test_compiled_narrowing_gives_numpys_and_ml_dtypes_bits(low, shape):
    """kernels._half_convert (autocast's small operands): round to nearest even, ties, NaN,
    infinities, overflow, subnormals and signed zeros as NumPy (float16) and ml_dtypes
    (bfloat16) round them; rows with a stride between them; a wrong destination is refused."""
    half_convert = pytest.importorskip("fastnlp.kernels._half_convert", reason="the C extensions are not built")
    rng = np.random.default_rng(0)
    wide = np.empty((shape[0], shape[1] + 5), np.float32)  # the rows of src are a strided view
    with np.errstate(over="ignore"):  # some products pass float32's range: inf, a case of its own
        wide[...] = rng.standard_normal(wide.shape) * rng.choice([1e-42, 1e-6, 1.0, 7e4, 3e38], wide.shape)
    src = wide[:, :shape[1]]
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-40, 65520.0, 3.4e38, 1.00390625,
                        1.01171875, -2.0 ** -130], np.float32)
    src.flat[:min(src.size, special.size)] = special[:src.size]
    out = np.empty(shape, LOW[low])
    half_convert.narrow_rows(src, out.view(np.uint16), low == "bf16")
    with np.errstate(over="ignore"):  # overflow to inf is one of the cases
        want = src.astype(LOW[low])
    both_nan = np.isnan(out.astype(np.float32)) & np.isnan(want.astype(np.float32))
    assert np.array_equal(out.view(np.uint16)[~both_nan], want.view(np.uint16)[~both_nan])
    with pytest.raises(ValueError, match="shape"):
        half_convert.narrow_rows(src, np.empty((shape[0] + 1, shape[1]), np.uint16), True)


@pytest.mark.parametrize("low", ["bf16", "fp16"])
def test_column_sums_and_cast_sums_like_column_sums_and_caches_the_rounded_copy(low):
    """One pass for TimeAffine's dout: the column sums (float32, rows in order in fixed blocks),
    and the 16-bit copy the next products read from the block's cache, rounded as ml_dtypes /
    NumPy round; None wherever it does not apply."""
    pytest.importorskip("fastnlp.kernels._half_convert", reason="the C extensions are not built")
    x = _random((300, 257), 3) * 100
    x2 = _random((300, 40), 4)
    assert gemm_family.column_sums_and_cast(x) is None  # autocast off
    with autocast(low):
        assert gemm_family.column_sums_and_cast(x.astype(np.float64)) is None
        assert gemm_family.column_sums_and_cast(x[:, :200]) is None  # rows not one block
        assert gemm_family.column_sums_and_cast(x[:8, :8]) is None  # too small to cache
        before = _autocast.cache_info()[LOW[low].name]
        sums = gemm_family.column_sums_and_cast(x)
        # float32 sums of the rows in order, in fixed row blocks (NumPy's own order may differ)
        np.testing.assert_allclose(sums, x.sum(axis=0, dtype=np.float64), rtol=0,
                                   atol=1e-6 * float(np.abs(x).sum(axis=0).max()))
        assert sums.dtype == np.float32 and sums.shape == (257,)
        assert _autocast.cache_info()[LOW[low].name] == before + 1
        entry = _autocast.active().caches[LOW[low]].entries[id(x)]
        np.testing.assert_array_equal(entry.low.view(np.uint16), x.astype(LOW[low]).view(np.uint16))
        np.testing.assert_array_equal(gemm(x, x2, trans_a=True), gemm(entry.low, x2, trans_a=True))
    with autocast(low, cache=False):
        assert gemm_family.column_sums_and_cast(x) is None
