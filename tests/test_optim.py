import math

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


@pytest.mark.parametrize("max_norm", [-1.0, 0.0, np.nan, np.inf])
def test_clip_grads_refuses_a_max_norm_that_is_not_positive_and_finite(max_norm):
    """-1 used to flip the gradient (training climbed); NaN turned clipping off."""
    grads = [np.array([3.0, 4.0])]
    with pytest.raises(ValueError, match="max_norm must be positive and finite"):
        optim.clip_grads(grads, max_norm)
    np.testing.assert_array_equal(grads[0], [3.0, 4.0])
    with pytest.raises(TypeError, match="max_norm must be a number"):
        optim.clip_grads(grads, "1")


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD(lr=np.inf), "learning rate must be positive and finite"),
    (lambda: optim.SGD(lr=np.nan), "learning rate must be positive and finite"),
    (lambda: optim.Momentum(momentum=1.0), r"momentum must be in \[0, 1\)"),
    (lambda: optim.Nesterov(momentum=np.nan), r"momentum must be in \[0, 1\)"),
    (lambda: optim.AdaGrad(eps=0.0), "eps must be positive"),
    (lambda: optim.RMSprop(decay_rate=-0.1), r"decay_rate must be in \[0, 1\)"),
    (lambda: optim.Adam(beta2=1.0), r"beta2 must be in \[0, 1\)"),
])
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_update_refuses_non_finite_gradients_before_touching_any_param():
    w, b = np.ones(2), np.ones(3)
    with pytest.raises(FloatingPointError, match="gradient 1 contains NaN or inf"):
        optim.SGD(lr=0.1).update([w, b], [np.ones(2), np.array([0.0, np.inf, 0.0])])
    np.testing.assert_array_equal(w, 1.0)  # the first param was not updated either


def test_update_refuses_integer_params_and_a_changed_param_list():
    with pytest.raises(TypeError, match="param 0 has dtype int64"):
        optim.SGD().update([np.zeros(2, dtype=np.int64)], [np.ones(2)])
    opt = optim.Momentum()
    opt.update([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="pass the same params every step"):
        opt.update([np.zeros(2), np.zeros(3)], [np.ones(2), np.ones(3)])  # zip would skip the new one


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


def test_remove_duplicate_keeps_params_cut_from_one_buffer_apart():
    """Two zero-initialised params in one flat buffer share a base and equal values: still two params."""
    flat = np.zeros(8)
    a, b = flat[:4].reshape(2, 2), flat[4:].reshape(2, 2)
    grad_a, grad_b = np.ones((2, 2)), np.full((2, 2), 2.0)
    params, grads = optim.remove_duplicate([a, b], [grad_a, grad_b])
    assert len(params) == 2 and params[0] is a and params[1] is b
    assert grads[0] is grad_a and grads[1] is grad_b  # not summed, not copied
    # Square halves of one buffer, b equal in value to a.T: still not a tie.
    params, _ = optim.remove_duplicate([a, b.T], [grad_a, grad_b.T])
    assert len(params) == 2


def test_remove_duplicate_ties_views_of_the_same_memory_only():
    W = np.arange(6.0).reshape(2, 3)
    view = W[...]  # another object, the same memory, shape and strides
    assert view is not W
    params, grads = optim.remove_duplicate([W, view, W.T], [np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2))])
    assert params == [W] and len(grads) == 1
    np.testing.assert_array_equal(grads[0], 3.0)
    # A transposed copy, or an overlapping view of another shape, is not the same parameter.
    for other in (np.ascontiguousarray(W.T), W[0]):
        assert len(optim.remove_duplicate([W, other], [np.ones(W.shape), np.ones(other.shape)])[0]) == 2


def test_finding_ties_never_compares_values():
    """The tied BetterRnnlm's (V, D) matrix must not be compared element by element: build ties
    on a (10**6, 10**5) zero-stride view, which no value comparison could get through."""
    huge = np.broadcast_to(np.zeros(1), (10**6, 10**5))
    ties = optim.TiedParams([huge, np.zeros(3), huge.T])
    assert len(ties.params) == 2 and ties.params[0] is huge


def test_tied_params_merge_reuses_one_buffer_and_leaves_layer_buffers_alone():
    W = np.zeros((4, 2))
    ties = optim.TiedParams([W, W.T])
    grad_embed, grad_out = np.ones((4, 2)), np.full((2, 4), 2.0)
    first = ties.merge([grad_embed, grad_out])[0]
    np.testing.assert_array_equal(first, 3.0)
    grad_out[...] = 5.0
    second = ties.merge([grad_embed, grad_out])[0]
    assert second is first  # no new (V, D) array per step
    np.testing.assert_array_equal(second, 6.0)
    np.testing.assert_array_equal(grad_embed, 1.0)
    with pytest.raises(ValueError, match="1 grads for the 2 params"):
        ties.merge([grad_embed])


# ----- row-sparse gradients (Embedding, EmbeddingDot) -----------------------------------------

from fastnlp.layers import RowSparseGrad  # noqa: E402


def _row_sparse(dense, rows):
    """A RowSparseGrad holding ``dense`` (zero outside ``rows``) and naming ``rows``."""
    grad = np.array(dense).view(RowSparseGrad)
    grad.rows = np.asarray(rows, dtype=np.int64)
    return grad


def _sparse_problem(seed, shape=(12, 5), rows=(1, 4, 5, 11), dtype=np.float32):
    r = np.random.default_rng(seed)
    g = np.zeros(shape, dtype)
    g[list(rows)] = r.standard_normal((len(rows), shape[1]))
    return r.standard_normal(shape).astype(dtype), g, list(rows)


@pytest.mark.parametrize("cls", [optim.SGD, optim.AdaGrad])
def test_row_sparse_updates_equal_the_dense_ones(cls):
    """SGD and AdaGrad change nothing in a row with zero gradient: updating only the touched
    rows gives the dense result exactly, step after step."""
    p_dense, _, _ = _sparse_problem(0)
    p_sparse = p_dense.copy()
    dense, sparse = cls(lr=0.1), cls(lr=0.1)
    for step in range(4):
        _, g, rows = _sparse_problem(step + 1, rows=[(1, 4), (4, 5, 11), (0,), (3, 4)][step])
        dense.update([p_dense], [g.copy()])
        sparse.update([p_sparse], [_row_sparse(g, rows)])
        np.testing.assert_array_equal(p_sparse, p_dense)


def test_lazy_adam_equals_dense_adam_where_every_row_is_touched():
    p_dense, _, _ = _sparse_problem(0)
    p_lazy = p_dense.copy()
    dense, lazy = optim.Adam(lr=0.01), optim.Adam(lr=0.01, lazy=True)
    for step in range(5):
        g = np.random.default_rng(step).standard_normal(p_dense.shape).astype(np.float32)
        dense.update([p_dense], [g.copy()])
        lazy.update([p_lazy], [_row_sparse(g, np.arange(12))])
        np.testing.assert_array_equal(p_lazy, p_dense)
        np.testing.assert_array_equal(lazy.m[0], dense.m[0])
        np.testing.assert_array_equal(lazy.v[0], dense.v[0])


def test_lazy_adam_leaves_untouched_rows_and_their_moments_alone():
    p, g, rows = _sparse_problem(0)
    before = p.copy()
    adam = optim.Adam(lr=0.01, lazy=True)
    adam.update([p], [_row_sparse(g, rows)])
    _, g2, rows2 = _sparse_problem(1, rows=(2,))
    moments = adam.m[0].copy(), adam.v[0].copy()
    adam.update([p], [_row_sparse(g2, rows2)])
    untouched = [r for r in range(12) if r not in rows + rows2]
    np.testing.assert_array_equal(p[untouched], before[untouched])
    np.testing.assert_array_equal(adam.m[0][rows], moments[0][rows])  # row 1 etc. not in step 2
    np.testing.assert_array_equal(adam.v[0][rows], moments[1][rows])
    # The book's dense Adam moves the rows of step 1 again in step 2 (their momentum).
    p_dense = before.copy()
    dense = optim.Adam(lr=0.01, lazy=False)
    dense.update([p_dense], [_row_sparse(g, rows)])
    after_one = p_dense.copy()
    dense.update([p_dense], [_row_sparse(g2, rows2)])
    assert not np.array_equal(p_dense[rows], after_one[rows])
    with pytest.raises(TypeError, match="lazy"):
        optim.Adam(lazy="yes")


def test_adam_computes_float32_params_in_float32():
    """NumPy 2 computes a float32 array with a NumPy float64 scalar in float64 (the book's
    ``lr_t = lr * np.sqrt(...)``); the step stays in float32."""
    r = np.random.default_rng(0)
    p, g = r.standard_normal(1000).astype(np.float32), r.standard_normal(1000).astype(np.float32)
    stepped = p.copy()
    adam = optim.Adam(lr=0.1)
    adam.update([stepped], [g])
    m, v = np.float32(1 - 0.9) * g, np.float32(1 - 0.999) * (g * g)
    lr_t = np.float32(0.1 * math.sqrt(1 - 0.999) / (1 - 0.9))
    want = p - lr_t * m / (np.sqrt(v) + np.float32(1e-7))
    assert want.dtype == np.float32 and adam.m[0].dtype == adam.v[0].dtype == np.float32
    np.testing.assert_array_equal(stepped, want)
    in_float64 = (p - np.float64(lr_t) * m / (np.sqrt(v) + 1e-7)).astype(np.float32)
    assert not np.array_equal(stepped, in_float64)  # the test can tell the two apart


def test_clip_grads_and_global_norm_read_only_the_touched_rows():
    _, g, rows = _sparse_problem(3)
    sparse, dense = [_row_sparse(g, rows), np.array([3.0])], [g.copy(), np.array([3.0])]
    assert optim.global_norm(sparse) == pytest.approx(optim.global_norm(dense), rel=1e-12)
    optim.clip_grads(sparse, 0.5)
    optim.clip_grads(dense, 0.5)
    np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-6)
    assert sparse[0].rows.tolist() == rows
    bad = _row_sparse(g, rows)
    bad[rows[0], 0] = np.nan
    with pytest.raises(FloatingPointError, match="gradient 0 contains NaN"):
        optim.SGD().update([np.zeros_like(g)], [bad])


def test_tied_row_sparse_gradients_merge_over_the_union_of_their_rows():
    """The book's CBOW lists W_in once per context position; merged, the sum stays row-sparse
    and equals the dense sum; the next merge clears the rows of the last one."""
    W = np.zeros((12, 5), np.float32)
    ties = optim.TiedParams([W, W, W])
    for step, row_sets in enumerate([((1, 4), (4, 5), (11,)), ((0,), (2,), (2, 3))]):
        grads = [_sparse_problem(10 * step + k, rows=r)[1] for k, r in enumerate(row_sets)]
        merged = ties.merge([_row_sparse(g, r) for g, r in zip(grads, row_sets)])[0]
        assert isinstance(merged, RowSparseGrad)
        np.testing.assert_array_equal(merged, grads[0] + grads[1] + grads[2])
        assert merged.rows.tolist() == sorted(set(sum(row_sets, ())))
    # A dense member (or a transposed tie) makes the merge dense, and still right.
    dense = np.ones((12, 5), np.float32)
    merged = ties.merge([_row_sparse(grads[0], (0,)), dense, _row_sparse(grads[2], (2, 3))])[0]
    assert merged.rows is None
    np.testing.assert_array_equal(merged, grads[0] + dense + grads[2])
    merged = ties.merge([_row_sparse(grads[0], (0,)), _row_sparse(grads[1], (2,)), _row_sparse(grads[2], (2, 3))])[0]
    np.testing.assert_array_equal(merged, grads[0] + grads[1] + grads[2])


def test_global_norm_of_float32_gradients_survives_squares_beyond_float32_range():
    huge = [np.full((3, 3), 1e20, np.float32), np.ones(4, np.float32)]
    expected = np.sqrt(9 * 1e40 + 4)
    assert optim.global_norm(huge) == pytest.approx(expected, rel=1e-6)
    assert optim.global_norm([np.full((100, 100), 0.5, np.float32)]) == pytest.approx(50.0, rel=1e-6)


def test_sgd_runs_the_one_pass_op_with_numpys_bits_and_falls_back_where_it_cannot():
    from fastnlp.kernels import sgd_update

    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        p, g = rng.standard_normal((40, 33)).astype(dtype), rng.standard_normal((40, 33)).astype(dtype)
        expected = p - 20.0 * g
        optim.SGD(lr=20.0).update([p], [g])
        np.testing.assert_array_equal(p, expected)  # NumPy's two roundings, not a fused one
    # float16 parameters and strided views take NumPy's expression (the op declines them)
    half = np.ones(4, np.float16)
    optim.SGD(lr=0.5).update([half], [np.ones(4, np.float16)])
    np.testing.assert_array_equal(half, np.full(4, 0.5, np.float16))
    base = np.ones((4, 6), np.float32)
    optim.SGD(lr=0.25).update([base[:, ::2]], [np.ones((4, 3), np.float32)])
    np.testing.assert_array_equal(base[:, ::2], 0.75)
    np.testing.assert_array_equal(base[:, 1::2], 1.0)
    with pytest.raises(TypeError, match="sgd_update.*float16"):
        sgd_update(np.zeros(3, np.float16), np.zeros(3, np.float16), 0.1)
    with pytest.raises(ValueError, match="p's dtype and shape"):
        sgd_update(np.zeros(3, np.float32), np.zeros(3, np.float64), 0.1)
    with pytest.raises(ValueError, match="lr must be finite"):
        sgd_update(np.zeros(3, np.float32), np.zeros(3, np.float32), float("nan"))


def test_tied_merge_of_a_dense_transposed_and_a_row_sparse_gradient_equals_the_dense_sum():
    """The book's tied embedding: a row-sparse (V, D) gradient and the softmax's dense (D, V)
    one merge to the plain sum, whichever comes first, step after step (touched rows change)."""
    from fastnlp.layers.embedding import RowSparseGrad
    from fastnlp.optim import TiedParams

    rng = np.random.default_rng(0)
    W = rng.standard_normal((12, 4)).astype(np.float32)
    for order in ([W, W.T], [W.T, W]):
        ties = TiedParams(order)
        for step in range(3):
            sparse = RowSparseGrad.zeros_like(W)
            rows = np.unique(rng.integers(0, 12, size=3 + step))
            sparse[rows] = rng.standard_normal((rows.size, 4))
            sparse.rows = rows
            dense = rng.standard_normal((4, 12)).astype(np.float32)
            grads = [sparse, dense] if order[0] is W else [dense, sparse]
            merged = np.asarray(ties.merge(grads)[0])
            np.testing.assert_array_equal(merged if order[0] is W else merged.T, np.asarray(sparse) + dense.T)


def test_update_skips_its_finite_check_only_when_told_the_caller_made_it():
    from fastnlp.optim import update_after_check

    p, g = np.zeros(3, np.float32), np.array([1.0, np.nan, 0.0], np.float32)
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        optim.SGD(0.1).update([p], [g])
    update_after_check(optim.SGD(0.1), [p], [np.ones(3, np.float32)], finite=True)
    np.testing.assert_allclose(p, -0.1)

    class BookSGD:  # the book's optimizer: update(params, grads), nothing else
        def update(self, params, grads):
            for q, d in zip(params, grads):
                q -= 0.5 * d

    update_after_check(BookSGD(), [p], [np.ones(3, np.float32)], finite=True)
    np.testing.assert_allclose(p, -0.6)


def test_large_updates_and_clipping_give_the_same_bits_on_one_thread_and_two():
    """SGD's step, the clipping scale and the tied merge run large arrays in blocks on the BLAS
    threads; elementwise, so the thread count changes no bit."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastnlp.optim import TiedParams, clip_grads

    rng = np.random.default_rng(1)
    W, G = (rng.standard_normal((700, 650)).astype(np.float32) for _ in range(2))  # above the parallel threshold
    G_tied = rng.standard_normal((650, 700)).astype(np.float32)  # the gradient of W.T
    results = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads):
            p = W.copy()
            merged = TiedParams([p, p.T]).merge([G.copy(), G_tied.copy()])
            clip_grads(merged, 1.0)
            optim.SGD(0.5).update([p], merged)
            results.append((p, merged[0]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def _clip_problem(seed):
    """A dense, a row-sparse and a float64 gradient whose global norm is far above 1."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((40, 33)).astype(np.float32), rng.standard_normal((12, 5)).astype(np.float32),
              rng.standard_normal(7)]
    g_sparse = np.zeros((12, 5), np.float32)
    g_sparse[[2, 7, 9]] = rng.standard_normal((3, 5)) * 50
    grads = [(rng.standard_normal((40, 33)) * 30).astype(np.float32), _row_sparse(g_sparse, (2, 7, 9)),
             rng.standard_normal(7) * 40]
    return params, grads


@pytest.mark.parametrize("cls", ALL)
def test_clipping_rate_folded_into_the_update_gives_the_bits_of_clipping_in_place(cls):
    """clip_and_update (the Trainer's step) hands the clipping rate to the update; SGD folds it
    into its one pass, the others scale in place first: either way the parameters get exactly
    the bits of clip_grads followed by update."""
    from fastnlp.optim import clip_and_update, clip_grads, clip_rate

    folded_params, _ = _clip_problem(3)
    plain_params, _ = _clip_problem(3)
    folded, plain_ = cls(lr=0.1), cls(lr=0.1)
    for step in range(3):
        _, folded_grads = _clip_problem(10 + step)
        _, plain_grads = _clip_problem(10 + step)
        norm, rate = clip_rate(folded_grads, 1.0)
        assert 0 < rate < 1 and norm == pytest.approx(clip_grads([g.copy() for g in plain_grads], 1.0))
        clip_and_update(folded, folded_params, folded_grads, 1.0)
        clip_grads(plain_grads, 1.0)
        plain_.update(plain_params, plain_grads)
        for a, b in zip(folded_params, plain_params):
            np.testing.assert_array_equal(a, b)
    if cls is optim.SGD:  # folded: the gradients themselves were never scaled
        assert np.abs(folded_grads[0]).max() > 10


def test_an_sgd_subclass_overriding_update_steps_gets_the_clipping_rate_applied_first():
    """A subclass whose _update takes (params, grads) only is handed gradients already scaled."""
    from fastnlp.optim import clip_and_update, clip_grads

    seen = []

    class LoggingSGD(optim.SGD):
        def _update(self, params, grads):
            seen.append(optim.global_norm(grads))
            super()._update(params, grads)

    params, grads = _clip_problem(4)
    reference_params, reference_grads = _clip_problem(4)
    clip_and_update(LoggingSGD(0.1), params, grads, 1.0)
    clip_grads(reference_grads, 1.0)
    optim.SGD(0.1).update(reference_params, reference_grads)
    assert seen == [pytest.approx(1.0, rel=1e-5)]
    for a, b in zip(params, reference_params):
        np.testing.assert_array_equal(a, b)


def test_update_refuses_a_grad_scale_that_is_not_positive_and_finite():
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="grad_scale"):
            optim.SGD(0.1).update([p], [g], grad_scale=bad)
    np.testing.assert_array_equal(p, 0)


def test_a_lazy_tied_sum_clips_and_steps_sgd_as_the_formed_sum_does():
    """merge(lazy=True) leaves the book's tied gradient (dense softmax part + row-sparse embedding
    rows) unformed; its norm, its formed value and SGD's clipped step on it equal those of the
    formed sum (to rounding), and groups it cannot leave unformed are formed as before."""
    from fastnlp.layers.embedding import RowSparseGrad
    from fastnlp.optim import TiedParams, TiedSum, clip_and_update, global_norm

    rng = np.random.default_rng(5)
    W = rng.standard_normal((30, 6)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    lazy_p, formed_p = [W.copy(), bias.copy()], [W.copy(), bias.copy()]
    for step in range(3):
        sparse = RowSparseGrad.zeros_like(W)
        rows = np.unique(rng.integers(0, 30, size=5 + step))
        sparse[rows] = rng.standard_normal((rows.size, 6)) * 20
        sparse.rows = rows
        dense = (rng.standard_normal((30, 6)) * 20).astype(np.float32).T  # laid out as TimeAffine's tied dW
        g_bias = rng.standard_normal(6).astype(np.float32)
        results = []
        for params, lazy in ((lazy_p, True), (formed_p, False)):
            ties = TiedParams([params[0], params[0].T, params[1]])
            grads = ties.merge([sparse, np.copy(dense), g_bias.copy()], lazy=lazy)
            assert isinstance(grads[0], TiedSum) is lazy
            results.append((global_norm(grads), grads[0].form() if lazy else np.asarray(grads[0])))
            clip_and_update(optim.SGD(0.1), ties.params, grads, 1.0)
        (lazy_norm, lazy_sum), (formed_norm, formed_sum) = results
        assert lazy_norm == pytest.approx(formed_norm, rel=1e-6)
        np.testing.assert_allclose(lazy_sum, formed_sum, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(lazy_p[0], formed_p[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(lazy_p[1], formed_p[1])
    both_sparse = TiedParams([W, W]).merge([sparse, sparse], lazy=True)  # no dense member: formed
    assert not isinstance(both_sparse[0], TiedSum)
    nan_dense = np.copy(dense)
    nan_dense[2, 3] = np.nan
    grads = TiedParams([W, W.T]).merge([sparse, nan_dense], lazy=True)
    with pytest.raises(FloatingPointError, match="not finite"):
        clip_and_update(optim.SGD(0.1), [W], grads, 1.0)
