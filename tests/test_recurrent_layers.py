"""Recurrent layers: float64 gradient checks over several time steps, the Time layers against
their cells stepped by hand, stateful carrying, and the LSTM step op on every backend."""
import contextlib

import numpy as np
import pytest

import fastnlp
from fastnlp import layers
from fastnlp.gradcheck import check_layer
from fastnlp.kernels import dispatch, lstm_step_backward, lstm_step_forward, registry

N, T, D, H = 2, 4, 3, 5


def _weights(rng, gates, D=D, H=H, dtype=np.float64):
    return (rng.standard_normal((D, gates * H)).astype(dtype) * 0.7,
            rng.standard_normal((H, gates * H)).astype(dtype) * 0.7,
            rng.standard_normal(gates * H).astype(dtype) * 0.3)


class _TwoOutputs:
    """A cell returning (h, c) seen as one output, so gradcheck can reduce it to a scalar."""

    def __init__(self, cell):
        self.cell, self.params, self.grads = cell, cell.params, cell.grads

    def forward(self, *inputs):
        return np.concatenate(self.cell.forward(*inputs), axis=-1)

    def backward(self, dout):
        return self.cell.backward(dout[:, :H], dout[:, H:])


@pytest.mark.parametrize("cell, gates", [(layers.RNN, 1), (layers.GRU, 3)])
def test_rnn_and_gru_cells_gradcheck(cell, gates):
    rng = np.random.default_rng(0)
    layer = cell(*_weights(rng, gates))
    check_layer(layer, rng.standard_normal((N, D)), rng.standard_normal((N, H)))


def test_lstm_cell_gradcheck_through_the_fused_kernels():
    rng = np.random.default_rng(1)
    cell = _TwoOutputs(layers.LSTM(*_weights(rng, 4)))
    check_layer(cell, rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)))


@pytest.mark.parametrize("cls, gates", [(layers.TimeRNN, 1), (layers.TimeLSTM, 4), (layers.TimeGRU, 3)])
@pytest.mark.parametrize("stateful", [False, True])
def test_time_layers_gradcheck_over_several_steps(cls, gates, stateful):
    rng = np.random.default_rng(2)
    layer = cls(*_weights(rng, gates), stateful=stateful)
    xs = rng.standard_normal((N, T, D))
    if stateful:  # a carried state is an input like any other: start every evaluation from it
        layer.forward(rng.standard_normal((N, 2, D)))
        state = (layer.h.copy(), None if layer.c is None else layer.c.copy())
        check_layer(layer, xs, before_forward=lambda: layer.set_state(*state))
    else:
        check_layer(layer, xs)


def test_time_bilstm_gradcheck():
    rng = np.random.default_rng(3)
    layer = layers.TimeBiLSTM(*_weights(rng, 4), *_weights(rng, 4))
    check_layer(layer, rng.standard_normal((N, T, D)))


def test_time_embedding_affine_and_loss_gradcheck():
    rng = np.random.default_rng(4)
    check_layer(layers.TimeEmbedding(rng.standard_normal((7, D))), rng.integers(0, 7, (N, T)))
    check_layer(layers.TimeAffine(rng.standard_normal((D, 6)), rng.standard_normal(6)), rng.standard_normal((N, T, D)))
    ts = rng.integers(0, 6, (N, T))
    ts[0, 1] = ts[1, 3] = -1  # padding
    check_layer(layers.TimeSoftmaxWithLoss(), rng.standard_normal((N, T, 6)) * 3, ts)


def test_time_affine_with_a_transposed_weight_writes_its_gradient_through_the_view():
    rng = np.random.default_rng(5)
    embed_W = rng.standard_normal((6, D))
    layer = layers.TimeAffine(embed_W.T, rng.standard_normal(6))
    check_layer(layer, rng.standard_normal((N, T, D)))
    assert layer.params[0].base is embed_W and layer.grads[0].T.flags.c_contiguous


@pytest.mark.parametrize("variational", [False, True])
def test_time_dropout_gradcheck_and_masks(variational):
    rng = np.random.default_rng(6)
    layer = layers.TimeDropout(0.4, variational=variational, seed=0)
    check_layer(layer, rng.standard_normal((N, T, D)),
                before_forward=lambda: setattr(layer, "rng", np.random.default_rng(0)))
    out = layer.forward(np.ones((3, 6, 50)))
    kept = out != 0
    if variational:  # one mask per sequence and feature, the same at every step
        assert (kept == kept[:, :1]).all()
    else:
        assert not (kept == kept[:, :1]).all()
    assert set(np.unique(out)) <= {0.0, 1 / 0.6}
    layer.train_flg = False
    assert layer.forward(np.ones((1, 2, 3))).tolist() == np.ones((1, 2, 3)).tolist()


def test_time_lstm_equals_its_cell_stepped_by_hand():
    rng = np.random.default_rng(7)
    Wx, Wh, b = _weights(rng, 4)
    xs = rng.standard_normal((N, T, D))
    time_layer = layers.TimeLSTM(Wx, Wh, b)
    hs = time_layer.forward(xs)
    dhs = rng.standard_normal(hs.shape)
    dxs = time_layer.backward(dhs)

    cells, h, c = [], np.zeros((N, H)), np.zeros((N, H))
    for t in range(T):
        cells.append(layers.LSTM(Wx, Wh, b))
        h, c = cells[-1].forward(xs[:, t], h, c)
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-12, atol=1e-14)
    dh, dc, grads = np.zeros((N, H)), np.zeros((N, H)), [0, 0, 0]
    for t in reversed(range(T)):
        dx, dh, dc = cells[t].backward(dhs[:, t] + dh, dc)
        np.testing.assert_allclose(dxs[:, t], dx, rtol=1e-10, atol=1e-12)
        grads = [g + cg for g, cg in zip(grads, cells[t].grads)]
    for got, want in zip(time_layer.grads, grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(time_layer.dh, dh, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls, gates", [(layers.TimeRNN, 1), (layers.TimeLSTM, 4), (layers.TimeGRU, 3)])
def test_stateful_layers_carry_the_state_between_calls(cls, gates):
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((N, 6, D))
    whole = cls(*_weights(rng, gates), stateful=True)
    pieces = cls(*whole.params, stateful=True)
    out = whole.forward(xs)
    np.testing.assert_allclose(np.concatenate([pieces.forward(xs[:, :2]), pieces.forward(xs[:, 2:])], axis=1),
                               out, rtol=1e-12)
    pieces.reset_state()
    np.testing.assert_allclose(pieces.forward(xs[:, :3]), out[:, :3], rtol=1e-12)
    not_stateful = cls(*whole.params)
    not_stateful.forward(xs[:, :3])
    np.testing.assert_allclose(not_stateful.forward(xs[:, 3:]), not_stateful.forward(xs[:, 3:]))
    with pytest.raises(ValueError, match="reset_state"):
        whole.forward(rng.standard_normal((N + 1, 2, D)))  # a new batch size needs a reset


def test_time_softmax_with_loss_matches_the_plain_loss_and_ignores_padding():
    rng = np.random.default_rng(9)
    xs = rng.standard_normal((3, 5, 11)).astype(np.float32) * 4
    ts = rng.integers(0, 11, (3, 5))
    loss_layer = layers.TimeSoftmaxWithLoss()
    plain = layers.SoftmaxWithLoss()
    np.testing.assert_allclose(loss_layer.forward(xs, ts), plain.forward(xs, ts), rtol=1e-5)
    np.testing.assert_allclose(loss_layer.backward(), plain.backward(), rtol=1e-4, atol=1e-7)
    with pytest.raises(RuntimeError, match="twice"):
        loss_layer.backward()
    padded = ts.copy()
    padded[:, 3:] = -1
    np.testing.assert_allclose(loss_layer.forward(xs, padded), plain.forward(xs[:, :3], ts[:, :3]), rtol=1e-5)
    dx = loss_layer.backward()
    assert (dx[:, 3:] == 0).all()
    one_hot = np.eye(11, dtype=np.int32)[ts]
    np.testing.assert_allclose(loss_layer.forward(xs, one_hot), plain.forward(xs, ts), rtol=1e-5)
    extreme = xs.copy()
    extreme[0, 0, 3] = 500.0  # exp overflows float32: that row is shifted by its maximum
    extreme[1] -= 200.0  # every exp underflows: shifted too
    extreme[2, :, 0] = -np.inf  # a masked class
    x64 = extreme.astype(np.float64).reshape(-1, 11)
    log_p = x64 - x64.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    rows, labels = np.arange(15), ts.reshape(-1)
    np.testing.assert_allclose(loss_layer.forward(extreme, ts), -log_p[rows, labels].mean(), rtol=1e-5)
    expected = np.exp(log_p)
    expected[rows, labels] -= 1
    np.testing.assert_allclose(loss_layer.backward().reshape(-1, 11), expected / 15, rtol=1e-4, atol=1e-7)
    extreme[1, 2, 5] = np.nan
    with pytest.raises(fastnlp.layers.NonFiniteError):
        loss_layer.forward(extreme, ts)


def test_bad_input_raises_clearly():
    rng = np.random.default_rng(10)
    lstm = layers.TimeLSTM(*_weights(rng, 4))
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        lstm.forward(rng.standard_normal((N, T, D + 1)))
    with pytest.raises(RuntimeError, match="before forward"):
        layers.TimeLSTM(*_weights(rng, 4)).backward(np.zeros((N, T, H)))
    lstm.forward(rng.standard_normal((N, T, D)))
    with pytest.raises(ValueError, match="dout has shape"):
        lstm.backward(np.zeros((N, T + 1, H)))
    with pytest.raises(ValueError, match=r"4H"):
        layers.TimeLSTM(*_weights(rng, 3))
    with pytest.raises(IndexError, match="label 9"):
        layers.TimeSoftmaxWithLoss().forward(np.zeros((1, 2, 9)), np.array([[0, 9]]))
    with pytest.raises(fastnlp.layers.NonFiniteError):
        lstm.forward(np.full((N, T, D), np.nan))


# ----- the LSTM step op: public wrappers and every backend --------------------------------------

def _step_problem(rng, dtype, N=20, H=33):
    A = (rng.standard_normal((N, 4 * H)) * 3).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    return A, c_prev


def test_step_ops_match_the_book_formulas():
    rng = np.random.default_rng(11)
    A, c_prev = _step_problem(rng, np.float64, H=4)
    gates, h, c, tanh_c = lstm_step_forward(A, c_prev)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    f, g, i, o = sig(A[:, :4]), np.tanh(A[:, 4:8]), sig(A[:, 8:12]), sig(A[:, 12:])
    np.testing.assert_allclose(gates, np.hstack([f, g, i, o]), rtol=1e-12)
    np.testing.assert_allclose(c, f * c_prev + g * i, rtol=1e-12)
    np.testing.assert_allclose(h, o * np.tanh(c), rtol=1e-12)
    assert (A != gates).any()  # A untouched without overwrite_A
    dh, dc = rng.standard_normal((2,) + c.shape)
    dA, dc_prev = lstm_step_backward(dh, dc, gates, c_prev, tanh_c)
    ds = dc + dh * o * (1 - np.tanh(c) ** 2)
    np.testing.assert_allclose(dc_prev, ds * f, rtol=1e-12)
    np.testing.assert_allclose(dA, np.hstack([ds * c_prev * f * (1 - f), ds * i * (1 - g ** 2),
                                              ds * g * i * (1 - i), dh * np.tanh(c) * o * (1 - o)]), rtol=1e-10)


def test_step_ops_refuse_what_the_kernels_cannot_take():
    rng = np.random.default_rng(12)
    A, c_prev = _step_problem(rng, np.float32)
    with pytest.raises(ValueError, match=r"\(N, 4H\)"):
        lstm_step_forward(A[:, :-1], c_prev)
    with pytest.raises(TypeError, match="dtype"):
        lstm_step_forward(A, c_prev.astype(np.float64))
    with pytest.raises(ValueError, match="shape"):
        lstm_step_forward(A, c_prev[:, :-1])
    with pytest.raises(ValueError, match="overlaps"):
        lstm_step_forward(A, c_prev, h_next=c_prev)
    with pytest.raises(ValueError, match="C-contiguous"):
        lstm_step_forward(np.asfortranarray(A), c_prev, overwrite_A=True)
    gates, _, _, tanh_c = lstm_step_forward(A, c_prev)
    with pytest.raises(ValueError, match="overlaps"):
        lstm_step_backward(tanh_c, tanh_c, gates, c_prev, tanh_c, dc_prev=tanh_c)


def _host_backends():
    status = fastnlp.available_backends()
    return [pytest.param(b, marks=pytest.mark.skipif(status[b] is not None, reason=f"{b}: {status[b]}"))
            for b in dispatch.CPU_BACKENDS if b != registry.REFERENCE]


@pytest.mark.parametrize("backend", _host_backends())
def test_time_lstm_gives_the_same_loss_and_gradients_on_every_backend(backend):
    rng = np.random.default_rng(13)
    V = 30
    xs, ts = rng.integers(0, V, (4, 7)), rng.integers(0, V, (4, 7))
    results = []
    for name in (registry.REFERENCE, backend):
        model = fastnlp.models.Rnnlm(V, 8, 16, seed=0)
        with fastnlp.use_backend(name):
            assert registry.backend_for("lstm_step_forward") == name
            loss = model.forward(xs, ts)
            model.backward()
        results.append((loss, [g.copy() for g in model.grads]))
    (loss0, grads0), (loss1, grads1) = results
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    for g1, g0 in zip(grads1, grads0):
        np.testing.assert_allclose(g1, g0, rtol=1e-3, atol=1e-6)


# ----- training through gemm gives what the layers gave with ``@`` -----------------------------------

# Losses of 10 iterations of the run below, recorded from the layers as they were before their
# products moved to fastnlp.kernels.gemm (``@`` / np.matmul, NumPy's OpenBLAS), on the numpy
# backend. float32 allows for another BLAS build's summation order.
AT_BASED_LOSSES = {
    ("Rnnlm", "float64"): [2.995152492515201, 3.2246031163706896, 2.9924701450771276, 3.1524330706635686,
                           3.054921385013979, 3.148089361475645, 2.998091946250905, 3.0468485184301075,
                           2.9791566556191107, 3.024645102593134],
    ("Rnnlm", "float32"): [2.995152473449707, 3.2246031761169434, 2.9924702644348145, 3.152432918548584,
                           3.0549209117889404, 3.148089647293091, 2.99809193611145, 3.0468482971191406,
                           2.979156494140625, 3.0246450901031494],
    # BetterRnnlm re-recorded when its dropout moved to counter-based draws (kernels/dropout: other
    # masks for the same seed), on the numpy backend, whose gemm is np.matmul, what ``@`` ran
    ("BetterRnnlm", "float64"): [2.995732591774762, 3.2080164660313697, 3.0206854806430434, 3.127462952677755,
                                 3.1342098852038114, 3.160863809241793, 3.097191199732438, 3.1099043431437314,
                                 3.079146421423297, 3.1188528680314684],
    ("BetterRnnlm", "float32"): [2.995732545852661, 3.2080166339874268, 3.0206856727600098, 3.127462863922119,
                                 3.1342101097106934, 3.1608638763427734, 3.097191572189331, 3.1099045276641846,
                                 3.079146385192871, 3.1188530921936035],
}


def _training_losses(model_name, dtype, backend=None):
    """log perplexity of each of 10 iterations: batch 4, time 5, SGD lr 5, clipped to 0.25."""
    V = 20
    rng = np.random.default_rng(0)
    ids = np.tile(np.arange(V), 11)[:201]
    noise = rng.random(201) < 0.2
    ids[noise] = rng.integers(0, V, noise.sum())
    if model_name == "BetterRnnlm":  # tied weights: TimeAffine's transposed path; seeded dropout
        model = fastnlp.models.BetterRnnlm(V, 8, 8, seed=0, dtype=dtype)
    else:
        model = fastnlp.models.Rnnlm(V, 8, 10, seed=0, dtype=dtype)
    trainer = fastnlp.RnnlmTrainer(model, fastnlp.optim.SGD(lr=5.0))
    with fastnlp.use_backend(backend) if backend else contextlib.nullcontext():
        ppl = trainer.fit(ids[:-1], ids[1:], max_epoch=1, batch_size=4, time_size=5, max_grad=0.25,
                          eval_interval=1, progress=False)
    return np.log(ppl)


@pytest.mark.parametrize("model_name", ["Rnnlm", "BetterRnnlm"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_through_gemm_equals_the_at_based_layers(model_name, dtype):
    rtol = 1e-10 if dtype == "float64" else 2e-5
    expected = AT_BASED_LOSSES[(model_name, dtype)]
    reference = _training_losses(model_name, np.dtype(dtype), "numpy")  # gemm on NumPy's matmul
    np.testing.assert_allclose(reference, expected, rtol=rtol)
    fastest = _training_losses(model_name, np.dtype(dtype))  # gemm on the library calibrated fastest here
    np.testing.assert_allclose(fastest, expected, rtol=rtol)


def test_time_affine_one_product_gradients_equal_the_two_step_ones():
    """An untied TimeAffine writes dW and db with one product ([x, 1].T @ dout) into one block;
    with its gradient arrays replaced from outside it takes the product-and-column-sums path.
    Both give the same gradients, and NaN in dout raises on either."""
    rng = np.random.default_rng(21)
    W, b = rng.standard_normal((7, 30)).astype(np.float32), rng.standard_normal(30).astype(np.float32)
    xs, dout = rng.standard_normal((3, 5, 7)).astype(np.float32), rng.standard_normal((3, 5, 30)).astype(np.float32)
    joint, split = layers.TimeAffine(W, b), layers.TimeAffine(W, b)
    split.grads = [np.zeros_like(W), np.zeros_like(b)]  # no longer the joint block: the two-step path
    results = []
    for layer in (joint, split):
        layer.forward(xs)
        results.append((layer.backward(dout), layer.grads[0].copy(), layer.grads[1].copy()))
    assert joint.grads[0].base is joint.grads[1].base  # the one-product path ran on the joint block
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results[0][2], dout.reshape(-1, 30).sum(axis=0), rtol=1e-5, atol=1e-5)
    bad = dout.copy()
    bad[1, 2, 3] = np.nan
    for layer in (joint, split):
        layer.forward(xs)
        with pytest.raises(fastnlp.layers.NonFiniteError, match="NaN or inf"):
            layer.backward(bad)
