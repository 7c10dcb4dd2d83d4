"""Every layer passes a float64 numerical gradient check; layer-specific behaviour."""
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
