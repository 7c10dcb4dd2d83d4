import numpy as np
import pytest

from fastnlp import optim

ALL = [optim.SGD, optim.Momentum, optim.Nesterov, optim.AdaGrad, optim.RMSprop, optim.Adam]


@pytest.mark.parametrize("cls", ALL)
def test_every_optimizer_minimises_a_quadratic_in_place(cls):
    target = np.array([1.0, -2.0, 3.0], np.float32)
    w = np.zeros(3, np.float32)
    ref = w
    lr = {optim.SGD: 0.1, optim.Momentum: 0.05, optim.Nesterov: 0.05, optim.AdaGrad: 0.5}.get(cls, 0.1)
    opt = cls(lr=lr)
    for _ in range(500):
        grad = 2 * (w - target)
        opt.update([w], [grad])
    assert w is ref and w.dtype == np.float32
    np.testing.assert_allclose(w, target, atol=0.05)


def test_sgd_step_is_exact():
    w = np.array([1.0, 2.0])
    optim.SGD(lr=0.5).update([w], [np.array([2.0, -2.0])])
    np.testing.assert_array_equal(w, [0.0, 3.0])


def test_adam_first_step_is_lr_times_sign():
    w = np.zeros(2)
    optim.Adam(lr=0.1).update([w], [np.array([3.0, -0.5])])
    np.testing.assert_allclose(w, [-0.1, 0.1], rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(lr=0)
    with pytest.raises(ValueError, match="shape"):
        optim.SGD().update([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match="1 params but 2 grads"):
        optim.SGD().update([np.zeros(2)], [np.zeros(2), np.zeros(2)])


def test_clip_grads_scales_to_max_norm_in_place():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    before = optim.clip_grads(grads, 1.0)
    assert before == pytest.approx(5.0)
    assert optim.global_norm(grads) == pytest.approx(1.0, rel=1e-5)
    small = [np.array([0.1])]
    optim.clip_grads(small, 1.0)
    assert small[0][0] == 0.1


def test_clip_grads_refuses_nan():
    with pytest.raises(FloatingPointError, match="not finite"):
        optim.clip_grads([np.array([np.nan])], 1.0)


def test_remove_duplicate_merges_shared_and_transposed_params():
    W = np.arange(6.0).reshape(2, 3)
    b = np.zeros(3)
    params = [W, b, W, W.T]
    grads = [np.ones((2, 3)), np.ones(3), np.full((2, 3), 2.0), np.full((3, 2), 5.0)]
    original_first_grad = grads[0]
    new_params, new_grads = optim.remove_duplicate(params, grads)
    assert len(new_params) == 2 and new_params[0] is W and new_params[1] is b
    np.testing.assert_array_equal(new_grads[0], np.full((2, 3), 8.0))
    np.testing.assert_array_equal(original_first_grad, 1.0)  # layers' own buffers untouched


def test_remove_duplicate_leaves_equal_valued_but_distinct_arrays_alone():
    a, b = np.zeros((2, 2)), np.zeros((2, 2))
    params, _ = optim.remove_duplicate([a, b], [np.ones((2, 2)), np.ones((2, 2))])
    assert len(params) == 2
