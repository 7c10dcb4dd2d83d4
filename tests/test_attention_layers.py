"""Attention layers (book ch. 8) and the public attention ops: gradients, the book's numbers, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnlp
from fastnlp import functions as F
from fastnlp import kernels
from fastnlp.gradcheck import check_layer
from fastnlp.layers import Attention, AttentionWeight, NonFiniteError, TimeAttention, WeightSum
from conftest import CPU_AVAILABLE

rng = np.random.default_rng(0)
N, T, H, Q = 3, 5, 4, 2


def book_attention(hs, h):
    """The book's AttentionWeight + WeightSum forward (broadcast and sum), one query (N, H)."""
    a = F.softmax((hs * h.reshape(N, 1, H).repeat(T, axis=1)).sum(axis=2))
    return a, (hs * a.reshape(N, T, 1).repeat(H, axis=2)).sum(axis=1)


def book_attention_backward(hs, h, a, dc):
    """The book's backward of the same pair: (dhs, dh)."""
    dt = dc.reshape(N, 1, H).repeat(T, axis=1)
    dar = dt * hs
    dhs0 = dt * a.reshape(N, T, 1).repeat(H, axis=2)
    da = dar.sum(axis=2)
    ds = a * da - a * (a * da).sum(axis=1, keepdims=True)
    dt = ds.reshape(N, T, 1).repeat(H, axis=2)
    return dhs0 + dt * h.reshape(N, 1, H).repeat(T, axis=1), (dt * hs).sum(axis=1)


def problem(dtype=np.float64, queries=None):
    hs = rng.standard_normal((N, T, H)).astype(dtype)
    h = rng.standard_normal((N, H) if queries is None else (N, queries, H)).astype(dtype)
    return hs, h


@pytest.mark.parametrize("queries", [None, Q])
def test_every_layer_passes_a_float64_gradient_check(cpu_backend, queries):
    hs, h = problem(queries=queries)
    a = F.softmax(rng.standard_normal(h.shape[:-1] + (T,)))
    check_layer(WeightSum(), hs, a)
    check_layer(AttentionWeight(), hs, h)
    check_layer(Attention(), hs, h)
    check_layer(TimeAttention(), hs, problem(queries=3)[1])


def test_attention_gives_the_books_numbers(cpu_backend):
    hs, h = problem()
    a_book, c_book = book_attention(hs, h)
    layer = Attention()
    c = layer.forward(hs, h)
    np.testing.assert_allclose(c, c_book, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.attention_weight, a_book, rtol=1e-12, atol=1e-14)
    dc = rng.standard_normal((N, H))
    for got, want in zip(layer.backward(dc), book_attention_backward(hs, h, a_book, dc)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # the two separate layers compose to the fused one
    weight, weight_sum = AttentionWeight(), WeightSum()
    np.testing.assert_allclose(weight_sum.forward(hs, weight.forward(hs, h)), c, rtol=1e-12)
    dhs0, da = weight_sum.backward(dc)
    dhs1, dh = weight.backward(da)
    np.testing.assert_allclose(dhs0 + dhs1, layer.backward(dc)[0], rtol=1e-10, atol=1e-12)


def test_time_attention_equals_the_books_loop_over_steps(cpu_backend):
    hs_enc, _ = problem(np.float32)
    hs_dec = rng.standard_normal((N, 6, H)).astype(np.float32)
    layer = TimeAttention()
    out = layer.forward(hs_enc, hs_dec)
    assert out.shape == (N, 6, H) and out.dtype == np.float32
    assert layer.attention_weights.shape == (N, 6, T)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dhs_enc, dhs_dec = layer.backward(dout)
    want_enc = np.zeros((N, T, H))
    for j in range(6):
        a, c = book_attention(hs_enc.astype(np.float64), hs_dec[:, j].astype(np.float64))
        np.testing.assert_allclose(out[:, j], c, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.attention_weights[:, j], a, rtol=1e-4, atol=1e-6)
        dhs, dh = book_attention_backward(hs_enc.astype(np.float64), hs_dec[:, j].astype(np.float64), a,
                                          dout[:, j].astype(np.float64))
        want_enc += dhs
        np.testing.assert_allclose(dhs_dec[:, j], dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dhs_enc, want_enc, rtol=1e-4, atol=1e-5)


def test_public_ops_take_one_query_or_many(cpu_backend):
    hs, h = problem(np.float32, queries=Q)
    a = kernels.attention_weights(hs, h)
    assert a.shape == (N, Q, T) and np.allclose(a.sum(axis=-1), 1, atol=1e-6)
    a1 = kernels.attention_weights(hs, h[:, 1])
    np.testing.assert_allclose(a1, a[:, 1], rtol=1e-6, atol=1e-7)
    c = kernels.weighted_sum(hs, a)
    assert c.shape == (N, Q, H)
    np.testing.assert_allclose(kernels.weighted_sum(hs, a[:, 0]), c[:, 0], rtol=1e-6, atol=1e-6)
    a_fused, c_fused = kernels.attention_context(hs, h)
    np.testing.assert_allclose(a_fused, a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c_fused, c, rtol=1e-5, atol=1e-6)
    dc = rng.standard_normal((N, Q, H)).astype(np.float32)
    dhs, da = kernels.weighted_sum_backward(hs, a, dc)
    dhs2, dh = kernels.attention_weights_backward(hs, h, a, da)
    dhs_fused, dh_fused = kernels.attention_context_backward(hs, h, a, dc)
    np.testing.assert_allclose(dhs_fused, dhs + dhs2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dh_fused, dh, rtol=1e-4, atol=1e-5)
    dhs1, dh1 = kernels.attention_context_backward(hs, h[:, 0], a[:, 0], dc[:, 0])
    assert dhs1.shape == (N, T, H) and dh1.shape == (N, H)


def test_non_contiguous_inputs_give_the_same_answer(cpu_backend):
    hs, h = problem(np.float64, queries=Q)
    hs_view = np.asfortranarray(hs)
    h_view = h[:, ::-1]
    np.testing.assert_allclose(kernels.attention_weights(hs_view, h_view),
                               kernels.attention_weights(hs, np.ascontiguousarray(h_view)), rtol=1e-12)


def test_each_backend_agrees_with_numpy_on_the_public_ops():
    hs, h = problem(np.float32, queries=10)
    with fastnlp.use_backend("numpy"):
        want = kernels.attention_context(hs, h)
    for backend in ("numba", "cython"):
        if fastnlp.available_backends()[backend] is not None:
            continue
        with fastnlp.use_backend(backend):
            for got, expected in zip(kernels.attention_context(hs, h), want):
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_bad_input_is_refused_clearly():
    hs, h = problem(np.float32)
    with pytest.raises(ValueError, match=r"h of shape \(2, 4\) does not fit hs of shape \(3, 5, 4\)"):
        kernels.attention_weights(hs, h[:2])
    with pytest.raises(ValueError, match="does not fit"):
        Attention().forward(hs, rng.standard_normal((N, H + 1)))
    with pytest.raises(ValueError, match=r"a has shape \(3, 4\)"):
        kernels.weighted_sum(hs, np.ones((N, T - 1), np.float32))
    with pytest.raises(ValueError, match="T >= 1"):
        kernels.attention_weights(hs[:, :0], h)
    with pytest.raises(TypeError, match="attention_weights takes float32, float64, float16, bfloat16"):
        kernels.attention_weights(hs.astype(np.int32), h.astype(np.int32))
    with pytest.raises(TypeError, match="h has dtype float32 but hs has float16"):
        kernels.attention_weights(hs.astype(np.float16), h)
    with pytest.raises(TypeError, match="dtype float64 but hs has float32"):
        kernels.attention_weights(hs, h.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(N, T, H\)"):
        kernels.attention_weights(hs[0], h)
    with pytest.raises(TypeError, match="must be an array"):
        kernels.weighted_sum(hs, [[1.0] * T] * N)
    with pytest.raises(ValueError, match=r"dc has shape \(3, 2, 4\), the weights need \(3, 4\)"):
        kernels.weighted_sum_backward(hs, np.ones((N, T), np.float32), np.ones((N, 2, H), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        AttentionWeight().forward(hs, np.ones((N, H), dtype=np.int64))
    bad = hs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        TimeAttention().forward(bad, hs)
    with pytest.raises(RuntimeError, match="before forward"):
        TimeAttention().backward(np.ones((N, T, H)))
    layer = Attention()
    layer.forward(hs, h)
    with pytest.raises(ValueError, match="dout has shape"):
        layer.backward(np.ones((N, H + 1)))


def test_mixed_float_inputs_run_in_the_wider_type():
    hs, h = problem(np.float32)
    out = Attention().forward(hs, h.astype(np.float64))
    assert out.dtype == np.float64


def test_empty_batches_and_no_features():
    hs = np.zeros((0, T, H), np.float32)
    assert kernels.attention_weights(hs, np.zeros((0, H), np.float32)).shape == (0, T)
    hs0 = np.zeros((2, 3, 0))
    a, c = kernels.attention_context(hs0, np.zeros((2, 0)))
    np.testing.assert_allclose(a, np.full((2, 3), 1 / 3))  # all scores 0: uniform
    assert c.shape == (2, 0)
    dhs, dh = kernels.attention_context_backward(np.ones((2, 3, 4)), np.ones((2, 0, 4)), np.ones((2, 0, 3)),
                                                 np.ones((2, 0, 4)))
    assert dhs.shape == (2, 3, 4) and not dhs.any() and dh.shape == (2, 0, 4)


PUBLIC_OPS = {"attention_weights": 2, "weighted_sum": 2, "attention_context": 2, "attention_weights_backward": 4,
              "weighted_sum_backward": 3, "attention_context_backward": 4}
GARBAGE_SHAPES = [(), (0,), (3,), (2, 3), (2, 0, 3), (2, 3, 0), (2, 3, 4), (3, 3, 4), (2, 1, 4), (2, 2, 3),
                  (2, 4), (2, 1, 3), (2, 2, 4)]
GARBAGE_DTYPES = [np.float32, np.float64, np.int64, np.float16, np.bool_]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_garbage_never_crashes_and_every_backend_agrees(data):
    """Any shapes and dtypes: a TypeError/ValueError with a message, or the reference's answer."""
    op = data.draw(st.sampled_from(sorted(PUBLIC_OPS)))
    args = []
    for _ in range(PUBLIC_OPS[op]):
        shape, dtype = data.draw(st.sampled_from(GARBAGE_SHAPES)), data.draw(st.sampled_from(GARBAGE_DTYPES))
        args.append(np.random.default_rng(len(args)).standard_normal(shape).astype(dtype))
    outcomes = {}
    for backend in CPU_AVAILABLE:
        with fastnlp.use_backend(backend):
            try:
                result = getattr(kernels, op)(*args)
                outcomes[backend] = ("ok", result if isinstance(result, tuple) else (result,))
            except (TypeError, ValueError) as exc:
                assert str(exc)
                outcomes[backend] = ("error", type(exc))
    kind, reference = outcomes["numpy"]
    for backend, (other_kind, value) in outcomes.items():
        assert other_kind == kind, (backend, op, [a.shape for a in args])
        if kind == "ok":
            for got, want in zip(value, reference):
                np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
        else:
            assert value is reference


@pytest.mark.parametrize("backend", CPU_AVAILABLE)
def test_softmax_exponentials_are_within_a_few_ulp_of_float64(backend):
    """The weights are exp(s - max) / sum: with one score at the maximum and the rest far below it
    the sum rounds to exactly 1 in float32, so each weight is the backend's exp itself; two
    scores per item cover the range near the maximum through the ratio a[1] / a[0]."""
    eps = float(np.finfo(np.float32).eps)
    far = np.concatenate([[0.0], np.linspace(-87.0, -30.0, 4001)]).astype(np.float32)
    near = np.linspace(-30.0, 0.0, 3001).astype(np.float32)
    with fastnlp.use_backend(backend):
        a = kernels.attention_weights(far.reshape(1, -1, 1), np.ones((1, 1), np.float32))[0]
        pair = np.stack([np.zeros_like(near), near], axis=1).reshape(-1, 2, 1)
        b = kernels.attention_weights(pair, np.ones((len(near), 1), np.float32))
    truth = np.exp(far.astype(np.float64))
    assert a[0] == 1.0
    assert np.max(np.abs(a[1:] / truth[1:] - 1)) <= 3 * eps
    ratio = b[:, 1].astype(np.float64) / b[:, 0].astype(np.float64)
    assert np.max(np.abs(ratio / np.exp(near.astype(np.float64)) - 1)) <= 6 * eps
