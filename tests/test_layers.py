"""Every layer passes a float64 numerical gradient check; layer-specific behaviour."""
import contextlib

import numpy as np
import pytest

import fastnlp
from fastnlp import layers as L
from fastnlp.gradcheck import GradcheckError, numerical_gradient

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("make_layer, inputs", [
    (lambda: L.MatMul(randn(4, 3)), lambda: (randn(5, 4),)),
    (lambda: L.MatMul(randn(4, 3)), lambda: (randn(2, 5, 4),)),
    (lambda: L.Affine(randn(4, 3), randn(3)), lambda: (randn(5, 4),)),
    (lambda: L.Affine(randn(4, 3), randn(3)), lambda: (randn(2, 3, 4),)),
    (lambda: L.Sigmoid(), lambda: (randn(3, 4) * 3,)),
    (lambda: L.ReLU(), lambda: (randn(3, 4) + 0.05 * np.sign(randn(3, 4)),)),
    (lambda: L.Softmax(), lambda: (randn(3, 5),)),
    (lambda: L.SoftmaxWithLoss(), lambda: (randn(6, 5), rng.integers(0, 5, 6))),
    (lambda: L.SoftmaxWithLoss(), lambda: (randn(2, 3, 5), rng.integers(0, 5, (2, 3)))),
    (lambda: L.SoftmaxWithLoss(ignore_label=-1), lambda: (randn(6, 5), np.array([0, -1, 4, 2, -1, 1]))),
    (lambda: L.SoftmaxWithLoss(), lambda: (randn(4, 3), np.eye(3, dtype=np.int32)[[0, 2, 1, 1]])),
    (lambda: L.SigmoidWithLoss(), lambda: (randn(7) * 3, rng.integers(0, 2, 7).astype(np.float64))),
    (lambda: L.Embedding(randn(6, 3)), lambda: (np.array([[0, 5, 5], [2, 0, 5]]),)),
], ids=["MatMul", "MatMul-3d", "Affine", "Affine-3d", "Sigmoid", "ReLU", "Softmax", "SoftmaxWithLoss",
        "SoftmaxWithLoss-3d", "SoftmaxWithLoss-ignore", "SoftmaxWithLoss-onehot", "SigmoidWithLoss", "Embedding"])
def test_layer_gradients_match_numerical(make_layer, inputs):
    fastnlp.gradcheck(make_layer(), *inputs())


def test_embedding_gradients_under_every_backend(cpu_backend):
    fastnlp.gradcheck(L.Embedding(randn(6, 3)), np.array([[0, 5, 5], [2, 0, 5]]))


def test_dropout_gradient_with_its_mask_fixed():
    layer = L.Dropout(0.4)
    reseed = lambda: setattr(layer, "rng", np.random.default_rng(3))  # noqa: E731
    fastnlp.gradcheck(layer, randn(5, 4), before_forward=reseed)


def test_gradcheck_catches_a_wrong_backward():
    class WrongSigmoid(L.Sigmoid):
        def backward(self, dout):
            return dout * self.out

    with pytest.raises(GradcheckError, match="input 0"):
        fastnlp.gradcheck(WrongSigmoid(), randn(3, 3))


def test_gradcheck_refuses_float32_params():
    with pytest.raises(TypeError, match="float64"):
        fastnlp.gradcheck(L.MatMul(randn(2, 2).astype(np.float32)), randn(1, 2))


def test_gradcheck_promotes_float32_inputs_to_float64():
    """Central differences with eps=1e-6 are noise in float32: a correct layer used to fail."""
    x = (randn(3, 4) * 3).astype(np.float32)
    original = x.copy()
    fastnlp.gradcheck(L.Sigmoid(), x)
    fastnlp.gradcheck(L.Affine(randn(4, 2), randn(2)), x)
    np.testing.assert_array_equal(x, original)  # the check perturbs a copy, never the caller's array
    assert x.dtype == np.float32

    class WrongSigmoid(L.Sigmoid):
        def backward(self, dout):
            return dout * self.out

    with pytest.raises(GradcheckError, match="input 0"):  # promotion must not make the check lenient
        fastnlp.gradcheck(WrongSigmoid(), x)


def test_gradcheck_with_nothing_to_differentiate_raises():
    """Integer inputs are ids; a parameter-free layer then has nothing to compare, which must not pass."""
    with pytest.raises(ValueError, match="nothing to check"):
        fastnlp.gradcheck(L.Sigmoid(), np.array([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="nothing to check"):
        fastnlp.gradcheck(L.ReLU(), [[1, -2]])
    with pytest.raises(TypeError, match="complex"):
        fastnlp.gradcheck(L.Sigmoid(), np.ones(3, dtype=complex))
    # Integer ids next to float parameters are fine: the parameters are checked.
    assert fastnlp.gradcheck(L.Embedding(randn(5, 2)), np.array([0, 4, 4])) >= 0.0


@pytest.mark.parametrize("make_layer", [
    lambda: L.MatMul(randn(4, 3)), lambda: L.Affine(randn(4, 3), randn(3)), L.Sigmoid, L.ReLU, L.Softmax,
    L.Dropout, L.SoftmaxWithLoss, L.SigmoidWithLoss, lambda: L.Embedding(randn(6, 3)),
], ids=["MatMul", "Affine", "Sigmoid", "ReLU", "Softmax", "Dropout", "SoftmaxWithLoss", "SigmoidWithLoss",
        "Embedding"])
def test_backward_before_forward_names_the_mistake(make_layer):
    layer = make_layer()
    with pytest.raises(RuntimeError, match=f"{type(layer).__name__}.backward called before forward"):
        layer.backward(np.ones((2, 3)))


def test_embedding_accepts_a_list_of_ids():
    W = randn(6, 3)
    layer = L.Embedding(W)
    out = layer.forward([[0, 5], [5, 2]])
    np.testing.assert_array_equal(out, W[[[0, 5], [5, 2]]])
    dout = randn(2, 2, 3)
    layer.backward(dout)
    expected = np.zeros_like(W)
    np.add.at(expected, [0, 5, 5, 2], dout.reshape(-1, 3))
    np.testing.assert_allclose(layer.grads[0], expected, rtol=1e-12)
    layer.forward([1])  # the next backward zeroes the rows the list touched
    layer.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(layer.grads[0], np.eye(6)[[1]].T @ np.ones((1, 3)))


@pytest.mark.parametrize("train", [True, False])
def test_dropout_refuses_integer_input_in_both_modes(train):
    """The scaled mask used to be cast to the input's integer dtype: 1 / 0.5 -> inf, 0 / 0 -> nan."""
    with pytest.raises(TypeError, match="floating-point.*int64"):
        L.Dropout(0.5, seed=0).forward(np.array([1, 2, 3, 4], dtype=np.int64), train_flg=train)
    y = L.Dropout(0.5, seed=0).forward(np.array([1.0, 2.0, 3.0, 4.0]), train_flg=train)
    assert np.isfinite(y).all() and set(np.round(y / [1, 2, 3, 4], 6)) <= ({0.0, 2.0} if train else {1.0})


def test_layers_name_bad_shapes_and_non_finite_input():
    layer = L.Affine(randn(4, 3), randn(3))
    with pytest.raises(ValueError, match=r"shape \(5, 3\) needs a last axis of 4"):
        layer.forward(randn(5, 3))
    layer.forward(randn(5, 4))
    with pytest.raises(ValueError, match=r"dout has shape \(3,\) but forward's output had \(5, 3\)"):
        layer.backward(np.ones(3))  # NumPy would broadcast it into a wrong gradient
    with pytest.raises(L.NonFiniteError, match="Sigmoid.forward: input contains NaN or inf"):
        L.Sigmoid().forward(np.array([0.0, np.nan]))
    assert issubclass(L.NonFiniteError, ValueError) and issubclass(L.NonFiniteError, FloatingPointError)
    with pytest.raises(TypeError, match="W must be a floating-point array, got dtype int64"):
        L.MatMul(np.ones((2, 2), dtype=np.int64))


def test_numerical_gradient_of_a_quadratic():
    x = randn(3)
    np.testing.assert_allclose(numerical_gradient(lambda v: (v ** 2).sum(), x), 2 * x, rtol=1e-6)


def test_dropout_train_and_eval():
    x = np.ones((1000, 100), np.float32)
    layer = L.Dropout(0.3, seed=0)
    y = layer.forward(x)
    assert y.dtype == np.float32
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)  # inverted dropout keeps the mean
    np.testing.assert_array_equal(layer.backward(x), y)
    assert layer.forward(x, train_flg=False) is x
    layer.eval()
    assert layer.forward(x) is x
    with pytest.raises(ValueError, match="ratio"):
        L.Dropout(1.0)


def test_losses_are_stable_for_extreme_scores():
    big = np.array([[1000.0, -1000.0, 0.0]])
    loss = L.SoftmaxWithLoss()
    assert np.isfinite(loss.forward(big, np.array([1])))
    assert np.isfinite(loss.backward()).all()
    sig = L.SigmoidWithLoss()
    assert np.isfinite(sig.forward(np.array([800.0, -800.0]), np.array([0.0, 1.0])))
    assert np.isclose(sig.forward(np.array([800.0, -800.0]), np.array([0.0, 1.0])), 800.0)


def test_softmax_with_loss_rejects_bad_targets():
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        L.SoftmaxWithLoss().forward(randn(2, 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="fit neither ids"):
        L.SoftmaxWithLoss().forward(randn(2, 3), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="class ids must be integers"):
        L.SoftmaxWithLoss().forward(randn(2, 3), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="one-hot"):  # argmax of soft targets would be a silent guess
        L.SoftmaxWithLoss().forward(randn(2, 3), np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="empty batch"):  # a mean over nothing is NaN
        L.SoftmaxWithLoss().forward(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.SigmoidWithLoss().forward(randn(2), np.array([0.0, 2.0]))


def test_embedding_gradient_is_exact_after_many_steps(cpu_backend):
    """Backward zeroes only the rows it touched before; the dense gradient must still be exact."""
    W = randn(50, 4).astype(np.float32)
    layer = L.Embedding(W)
    for step in range(5):
        idx = rng.integers(0, 50, (3, 7))
        dout = randn(3, 7, 4).astype(np.float32)
        layer.forward(idx)
        layer.backward(dout)
        expected = np.zeros_like(W)
        np.add.at(expected, idx.reshape(-1), dout.reshape(-1, 4))
        np.testing.assert_array_equal(layer.grads[0], expected)


def test_layers_keep_float32():
    x = randn(4, 3).astype(np.float32)
    layer = L.Affine(randn(3, 2).astype(np.float32), np.zeros(2, np.float32))
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(np.ones((4, 2), np.float32)).dtype == np.float32
    assert layer.grads[0].dtype == np.float32


# ----- every matrix product of the layers runs on fastnlp.kernels.gemm -------------------------------

@pytest.fixture
def gemm_calls(monkeypatch):
    """The shapes (a, b, out) of every product the gemm op runs, by wrapping the registry's
    lookup: gemm resolves its kernel per call, so no product escapes the count. (The recurrent
    loops' products on a packed weight, MKL's, call no looked-up kernel: they are turned off
    here, so those steps go through the lookup too.)"""
    import sys

    from fastnlp.kernels import registry

    monkeypatch.setattr(sys.modules["fastnlp.kernels.gemm"], "_packed_step", lambda *args: None)
    calls, lookup = [], registry.kernel

    def counting_kernel(op, like=None, variant=None, dtype=None):
        function = lookup(op, like, variant, dtype)
        if op != "gemm":
            return function

        def counted(a, b, out, *flags):
            calls.append((a.shape, b.shape, out.shape))
            return function(a, b, out, *flags)

        return counted

    monkeypatch.setattr(registry, "kernel", counting_kernel)
    return calls


def _recurrent(cls, gates, N=2, T=4, D=3, H=5, cell=False, stateful=False):
    def make(r):
        W = (r.standard_normal((D, gates * H)), r.standard_normal((H, gates * H)) * 0.5, r.standard_normal(gates * H))
        if cell:
            states = (r.standard_normal((N, H)),) * (2 if gates == 4 else 1)
            return cls(*W), (r.standard_normal((N, D)),) + states
        return cls(*W, stateful=stateful), (r.standard_normal((N, T, D)),)
    return make


def _bilstm(r, N=2, T=4, D=3, H=5):
    W = [r.standard_normal(s) for s in ((D, 4 * H), (H, 4 * H), (4 * H,))] * 2
    return L.TimeBiLSTM(*W), (r.standard_normal((N, T, D)),)


# (name, layer + inputs from a Generator, gemm calls in forward, in backward). The counts are the
# layers' matrix products: a product computed any other way (``@``, np.dot) lowers them.
# T = 4 steps for the Time layers.
GEMM_LAYERS = [
    ("MatMul", lambda r: (L.MatMul(r.standard_normal((4, 3))), (r.standard_normal((5, 4)),)), 1, 2),
    ("MatMul", lambda r: (L.MatMul(r.standard_normal((4, 3))), (r.standard_normal((2, 5, 4)),)), 1, 2),
    ("Affine", lambda r: (L.Affine(r.standard_normal((4, 3)), r.standard_normal(3)), (r.standard_normal((2, 5, 4)),)),
     1, 2),
    ("RNN", _recurrent(L.RNN, 1, cell=True), 2, 4),  # h Wh, x Wx; dWx, dWh, dx, dh
    ("LSTM", _recurrent(L.LSTM, 4, cell=True), 2, 4),
    ("GRU", _recurrent(L.GRU, 3, cell=True), 3, 6),  # x Wx, h Wh_zr, rh Wh_h; 2 per step, 3 grads, dx
    ("TimeRNN", _recurrent(L.TimeRNN, 1), 5, 7),  # xs Wx once, h Wh per step; dh per step, dWx, dWh, dxs
    ("TimeRNN", _recurrent(L.TimeRNN, 1, stateful=True), 5, 7),
    ("TimeLSTM", _recurrent(L.TimeLSTM, 4), 5, 7),
    ("TimeGRU", _recurrent(L.TimeGRU, 3), 9, 12),
    ("TimeBiLSTM", _bilstm, 10, 14),
    ("TimeAffine", lambda r: (L.TimeAffine(r.standard_normal((3, 7)), r.standard_normal(7)),
                              (r.standard_normal((2, 4, 3)),)), 1, 2),
    ("TimeAffine", lambda r: (L.TimeAffine(r.standard_normal((7, 3)).T, r.standard_normal(7)),  # tied: embed_W.T
                              (r.standard_normal((2, 4, 3)),)), 1, 2),
    ("ScaledDotProductAttention",
     lambda r: (L.ScaledDotProductAttention(), (r.standard_normal((2, 2, 3, 4)), r.standard_normal((2, 2, 5, 4)),
                                                r.standard_normal((2, 2, 5, 6)))), 2, 4),
    ("MultiHeadAttention", lambda r: (L.MultiHeadAttention.random(8, 2, r, np.float64),
                                      (r.standard_normal((2, 3, 8)), r.standard_normal((2, 5, 8)))), 6, 12),
    ("PositionwiseFeedForward", lambda r: (L.PositionwiseFeedForward.random(8, 16, r, np.float64),
                                           (r.standard_normal((2, 3, 8)),)), 2, 4),
    ("TransformerEncoderBlock", lambda r: (L.TransformerEncoderBlock.random(8, 2, 16, r, np.float64),
                                           (r.standard_normal((2, 3, 8)), L.causal_mask(3))), 8, 16),
    ("TransformerDecoderBlock", lambda r: (L.TransformerDecoderBlock.random(8, 2, 16, r, np.float64),
                                           (r.standard_normal((2, 3, 8)), r.standard_normal((2, 4, 8)),
                                            L.causal_mask(3))), 14, 28),
]
# Layers that multiply no matrices: elementwise, gathers, or the fused attention / sampling kernels.
NO_MATRIX_PRODUCT = {"Dropout", "Embedding", "ReLU", "Sigmoid", "SigmoidWithLoss", "Softmax", "SoftmaxWithLoss",
                     "TimeDropout", "TimeEmbedding", "TimeSoftmaxWithLoss", "EmbeddingDot", "NegativeSamplingLoss",
                     "Attention", "AttentionWeight", "TimeAttention", "WeightSum", "LayerNorm", "PositionalEncoding"}


def test_every_public_layer_is_in_the_gemm_table_or_multiplies_no_matrices():
    """A new layer must be classified: one that multiplies matrices joins GEMM_LAYERS."""
    public = {name for name in L.__all__
              if isinstance(getattr(L, name), type) and issubclass(getattr(L, name), L.Layer)
              and getattr(L, name) is not L.Layer}
    in_table = {name for name, *_ in GEMM_LAYERS}
    assert not in_table & NO_MATRIX_PRODUCT
    assert public == in_table | NO_MATRIX_PRODUCT, (
        f"unclassified: {sorted(public - in_table - NO_MATRIX_PRODUCT)}; "
        f"not layers: {sorted((in_table | NO_MATRIX_PRODUCT) - public)}")


@pytest.mark.parametrize("name, make, n_forward, n_backward", GEMM_LAYERS,
                         ids=[f"{entry[0]}-{k}" for k, entry in enumerate(GEMM_LAYERS)])
def test_forward_and_backward_multiply_through_gemm(gemm_calls, name, make, n_forward, n_backward):
    layer, inputs = make(np.random.default_rng(7))
    assert type(layer).__name__ == name
    y = layer.forward(*inputs)
    assert len(gemm_calls) == n_forward, gemm_calls
    outputs = y if isinstance(y, tuple) else (y,)
    del gemm_calls[:]
    dx = layer.backward(*(np.ones_like(v) for v in outputs))
    assert len(gemm_calls) == n_backward, gemm_calls
    for d in dx if isinstance(dx, tuple) else (dx,):
        assert np.isfinite(d).all()


@pytest.mark.parametrize("name, make, n_forward, n_backward", GEMM_LAYERS,
                         ids=[f"{entry[0]}-{k}" for k, entry in enumerate(GEMM_LAYERS)])
def test_gemm_layers_give_the_numpy_reference_answer(name, make, n_forward, n_backward):
    """Whatever library gemm picks here (calibrated), forward, backward and gradients equal the
    reference backend's (NumPy's matmul, what the layers computed with ``@``) to float64 rounding."""
    results = []
    for backend in (None, "numpy"):
        layer, inputs = make(np.random.default_rng(7))
        with fastnlp.use_backend(backend) if backend else contextlib.nullcontext():
            y = layer.forward(*inputs)
            outputs = y if isinstance(y, tuple) else (y,)
            dx = layer.backward(*(np.ones_like(v) for v in outputs))
        dx = dx if isinstance(dx, tuple) else (dx,)
        results.append([np.array(v) for v in outputs + dx] + [g.copy() for g in layer.grads])
    for fast, reference in zip(*results):
        np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=1e-12)
