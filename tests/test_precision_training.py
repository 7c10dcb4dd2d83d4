"""Training in mixed, low and simulated precision (fastnlp.amp): the settings and their errors,
fp32 untouched, bf16 products through gemm's autocast, fp16 loss scaling (growth, skips, collapse),
gradient underflow with and without it, stochastic rounding keeping small updates, hooks gone
after fit, exact resume from checkpoints, Word2Vec, and perplexity close to fp32 on PTB."""
import io
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp.amp import GradScaler, LossScaleError, Precision, boundary_layers, gathered_only
from fastnlp.kernels import round_to_format
from fastnlp.kernels.gemm import autocast_dtype
from fastnlp.layers import NonFiniteError
from fastnlp.layers.base import Layer
from fastnlp.models import BetterRnnlm, Rnnlm, TwoLayerNet
from fastnlp.models.word2vec import Word2Vec
from fastnlp.optim import SGD, TiedParams, clip_grads

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
V = 12


def _corpus(n=400, seed=0, vocab=V):
    rng = np.random.default_rng(seed)
    ids = np.tile(np.arange(vocab), n // vocab + 1)[:n]
    noise = rng.random(n) < 0.1
    ids[noise] = rng.integers(0, vocab, noise.sum())
    return ids.astype(np.int32)


def _fit(trainer, corpus, **kwargs):
    args = dict(max_epoch=1, batch_size=3, time_size=8, max_grad=0.5, eval_interval=1, progress=False)
    return trainer.fit(corpus[:-1], corpus[1:], **{**args, **kwargs})


# ----- the settings ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, name, mode", [
    ("fp32", "fp32", "fp32"), ("bf16-mixed", "bf16-mixed", "mixed"), ("fp16-mixed", "fp16-mixed", "mixed"),
    ("bf16", "bf16", "low"), ("fp16", "fp16", "low"), ("simulate:e4m3", "simulate:e4m3", "low"),
    ("simulate:e3m4", "simulate:e3m4", "low"), ("simulate:tf32", "simulate:tf32", "low")])
def test_precision_values_parse(value, name, mode):
    precision = Precision(value)
    assert (precision.name, precision.mode) == (name, mode)
    assert (precision.scaler is not None) == (value == "fp16-mixed")  # loss scaling: fp16-mixed's default


@pytest.mark.parametrize("value", ["fp8", "bf16_mixed", "simulate:e9m2", "simulate:e8m24", "simulate:", "mixed"])
def test_unknown_precisions_are_refused_naming_the_accepted_ones(value):
    with pytest.raises(ValueError, match="precision"):
        Precision(value)
    with pytest.raises(ValueError, match="fp16-mixed"):
        fastnlp.Trainer(TwoLayerNet(2, 3, 2, seed=0), SGD(), precision="fp8")
    with pytest.raises(ValueError, match="bf16-mixed"):
        fastnlp.RnnlmTrainer(Rnnlm(V, 4, 4, seed=0), SGD(), precision="half")


def test_settings_that_mean_nothing_are_refused():
    with pytest.raises(ValueError, match="stochastic"):
        Precision("fp16-mixed", rounding="stochastic")  # fp32 masters: nothing to round stochastically
    with pytest.raises(ValueError, match="rounding"):
        Precision("bf16", rounding="up")
    with pytest.raises(ValueError, match="never rounds"):
        Precision("bf16-mixed", loss_scaling=True)
    with pytest.raises(ValueError, match="never rounds"):
        Precision("fp32", loss_scaling=GradScaler())
    assert Precision("fp16-mixed", loss_scaling=False).scaler is None
    assert Precision("bf16", loss_scaling=True).scaler.scale == 2.0 ** 16
    with pytest.raises(ValueError, match="fused kernel.*'fp32', 'bf16', 'fp16' or 'simulate"):
        Word2Vec(precision="bf16-mixed")
    with pytest.raises(ValueError, match="growth_interval"):
        GradScaler(growth_interval=0)


# ----- fp32 is the plain loop --------------------------------------------------------------------

def test_fp32_trains_bit_for_bit_as_the_plain_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    t = rng.integers(0, 3, 64)
    trainer = fastnlp.Trainer(TwoLayerNet(4, 8, 3, seed=1), SGD(lr=0.5), seed=2, precision="fp32")
    trainer.fit(x, t, max_epoch=3, batch_size=16, max_grad=1.0, progress=False)

    model, optimizer = TwoLayerNet(4, 8, 3, seed=1), SGD(lr=0.5)  # the loop as it was, by hand
    ties, order_rng = TiedParams(model.params), np.random.default_rng(2)
    for _ in range(3):
        order = order_rng.permutation(64)
        for it in range(4):
            batch = order[it * 16:(it + 1) * 16]
            model.forward(x[batch], t[batch])
            model.backward()
            grads = ties.merge(model.grads)
            clip_grads(grads, 1.0)
            optimizer.update(ties.params, grads)
    for a, b in zip(trainer.model.params, model.params):
        assert np.array_equal(a, b)
    assert trainer.skipped_steps == [] and trainer.loss_scale is None and trainer.precision == "fp32"


# ----- bf16-mixed --------------------------------------------------------------------------------

def test_bf16_mixed_runs_the_products_under_autocast_and_learns_like_fp32():
    corpus = _corpus(600)
    seen = []
    results = {}
    for precision in ("fp32", "bf16-mixed"):
        model = Rnnlm(V, 8, 8, seed=0)
        affine = model.layers[-1]
        original = affine.forward

        def spy(xs, original=original):
            seen.append((precision, autocast_dtype()))
            return original(xs)

        affine.forward = spy
        trainer = fastnlp.RnnlmTrainer(model, SGD(lr=2.0), precision=precision)
        results[precision] = _fit(trainer, corpus, max_epoch=2, eval_interval=None)
        assert affine.__dict__["forward"] is spy  # our own patch is left as it was
    assert {str(d) for p, d in seen if p == "bf16-mixed"} == {"bfloat16"}
    assert {d for p, d in seen if p == "fp32"} == {None}
    assert autocast_dtype() is None
    np.testing.assert_allclose(results["bf16-mixed"], results["fp32"], rtol=0.02)


# ----- fp16-mixed: loss scaling --------------------------------------------------------------------

def _inject_inf(model, at):
    """The loss layer's backward puts an inf in its gradient at the given calls (from 1), or always."""
    loss_layer, original, calls = model.loss_layer, model.loss_layer.backward, [0]

    def backward(dout=1):
        calls[0] += 1
        dx = original(dout)
        if at is all or calls[0] in at:
            dx = dx.copy()
            dx.flat[0] = np.inf
        return dx

    loss_layer.backward = backward


def test_the_scale_doubles_after_growth_interval_clean_steps_and_halves_skipping_a_step_with_inf():
    corpus = _corpus(3 * 8 * 10 + 1)  # 10 iterations
    model = Rnnlm(V, 6, 6, seed=0)
    scaler = GradScaler(init_scale=2.0 ** 10, growth_interval=3)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision="fp16-mixed", loss_scaling=scaler)
    _inject_inf(model, at={5})
    before = {}
    update = trainer.optimizer.update
    trainer.optimizer.update = lambda params, grads: (before.setdefault(trainer.amp.steps, 1), update(params, grads))
    log = io.StringIO()
    _fit(trainer, corpus, eval_interval=5, progress=log)
    # steps 1-3 clean: x2; 4 clean; 5 inf: /2, skipped, no update; 6-8 clean: x2; 9-10 clean.
    assert trainer.skipped_steps == [5] and 5 not in before and len(before) == 9
    assert trainer.loss_scale == 2.0 ** 10 * 2 / 2 * 2 and scaler.growth_tracker == 2
    assert "scale 2048" in log.getvalue() and "skipped 1" in log.getvalue()


def test_a_collapsing_loss_scale_stops_the_run_naming_the_step():
    corpus = _corpus(3 * 8 * 10 + 1)
    model = Rnnlm(V, 6, 6, seed=0)
    _inject_inf(model, at=all)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision="fp16-mixed",
                                   loss_scaling=GradScaler(init_scale=1.0, min_scale=0.25))
    start = [p.copy() for p in model.params]
    with pytest.raises(LossScaleError, match=r"step 3\b.*since step 1") as caught:
        _fit(trainer, corpus)
    assert isinstance(caught.value, NonFiniteError) and "iteration 3" in str(caught.value)
    assert trainer.skipped_steps == [1, 2, 3]
    assert all(np.array_equal(a, b) for a, b in zip(start, model.params))  # no update was applied
    assert all("forward" not in layer.__dict__ for layer in boundary_layers(model))  # hooks gone on error too


def test_loss_scaling_keeps_small_gradients_from_underflowing_in_fp16():
    vocab = 400
    corpus = _corpus(20 * 10 * 4 + 1, vocab=vocab)
    underflow = {}
    for scaling in (False, True):
        trainer = fastnlp.RnnlmTrainer(Rnnlm(vocab, 16, 16, seed=0), SGD(lr=1.0), precision="fp16-mixed",
                                       loss_scaling=scaling)
        _fit(trainer, corpus, batch_size=20, time_size=10)
        underflow[scaling] = trainer.grad_underflow
    assert underflow[False] > 1e-4  # small gradients (1/(N*T*V)) vanish in fp16 without scaling
    assert underflow[True] < underflow[False] / 100


def _one_step_update(precision, max_grad, vocab=400, **kwargs):
    """The change one RnnlmTrainer step makes to every parameter, from the same weights and batch."""
    corpus = _corpus(20 * 10 + 1, vocab=vocab)
    model = Rnnlm(vocab, 16, 16, seed=0)
    before = [p.copy() for p in model.params]
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision=precision, **kwargs)
    _fit(trainer, corpus, batch_size=20, time_size=10, max_grad=max_grad)
    assert len(trainer.ppl_list) == 1 and trainer.skipped_steps == []  # one step, not skipped
    return np.concatenate([(p - b).ravel() for p, b in zip(model.params, before)])


@pytest.mark.parametrize("max_grad", [None, 0.01])
def test_fp16_mixed_unscales_once_before_clipping_so_its_step_is_fp32s(max_grad):
    # Unscaled once, in float32, before the clip (PyTorch's order: unscale, clip, step): the
    # update is fp32's to fp16's rounding. A scale left in or applied twice shows without
    # clipping; clipping the scaled gradients (to the clip's norm, then divided by 2**16) with it.
    fp32 = _one_step_update("fp32", max_grad)
    for scaling in (True, False):
        mixed = _one_step_update("fp16-mixed", max_grad, loss_scaling=scaling)
        error = np.linalg.norm(mixed - fp32) / np.linalg.norm(fp32)
        assert error < 2e-3, (scaling, error)  # measured: 4e-4 to 6e-4
    if max_grad is not None:
        assert abs(np.linalg.norm(fp32) - max_grad) < 1e-4 * max_grad  # the clip was at work


def test_a_scaled_gradient_beyond_fp16s_range_overflows_and_the_step_is_skipped():
    # At 2**40 the scaled gradients pass fp16's 65504: rounding makes them inf (fp16 has no
    # saturation), the step is skipped and the scale halved, until it fits.
    corpus = _corpus(3 * 8 * 30 + 1)  # 30 iterations
    model = Rnnlm(V, 6, 6, seed=0)
    scaler = GradScaler(init_scale=2.0 ** 40)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision="fp16-mixed", loss_scaling=scaler)
    updates = []
    update = trainer.optimizer.update
    trainer.optimizer.update = lambda params, grads: (updates.append(trainer.amp.steps), update(params, grads))
    _fit(trainer, corpus)
    skipped = len(trainer.skipped_steps)
    assert 10 <= skipped < 30 and trainer.skipped_steps == list(range(1, skipped + 1))
    assert updates == list(range(skipped + 1, 31)) and trainer.loss_scale == 2.0 ** (40 - skipped)
    assert all(np.isfinite(p).all() for p in model.params)


def test_fp16_mixed_leaves_gather_layers_in_float32_as_autocast_does():
    # CBOW only gathers rows (Embedding, NegativeSamplingLoss): autocast and bf16-mixed leave it
    # in float32, and so does fp16-mixed: its training is fp32's, bit for bit (the loss scale is
    # a power of two, undone exactly).
    from fastnlp.models import CBOW

    corpus = _corpus(600, vocab=40)
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    trained = {}
    for precision in ("fp32", "fp16-mixed"):
        model = CBOW(40, 8, 2, corpus, seed=0)
        trainer = fastnlp.Trainer(model, fastnlp.optim.Adam(lazy=True), seed=0, precision=precision)
        trainer.fit(contexts, target, max_epoch=2, batch_size=32, progress=False)
        trained[precision] = model.params
    for a, b in zip(trained["fp32"], trained["fp16-mixed"]):
        assert np.array_equal(a, b)


def test_fp16_mixed_rnnlm_gathers_float32_rows_and_rounds_what_the_lstm_reads():
    model = Rnnlm(V, 6, 6, seed=0)
    embedding, lstm = model.layers[0], model.layers[1]
    assert gathered_only(model, model.params) == [embedding.params[0]]
    tied = BetterRnnlm(V, 6, 6, seed=0)  # the embedding is the softmax's weight: a product's
    assert gathered_only(tied, tied.params) == []
    seen = {"weights": [], "inputs": []}
    lstm_forward, embedding_backward = lstm.forward, embedding.backward

    def spy_lstm(xs):
        seen["inputs"].append(np.array_equal(round_to_format(xs, "fp16"), xs))
        seen["weights"].append(np.array_equal(round_to_format(embedding.params[0], "fp16"), embedding.params[0]))
        return lstm_forward(xs)

    def spy_embedding(dout):
        embedding_backward(dout)
        seen.setdefault("grads", []).append(embedding.grads[0].copy())

    lstm.forward, embedding.backward = spy_lstm, spy_embedding
    _fit(fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision="fp16-mixed"), _corpus(200))
    assert all(seen["inputs"])  # the cast in front of the LSTM's products
    assert not any(seen["weights"])  # the embedding's weights stay float32 (not fp16 copies)
    grads = np.concatenate([g[g != 0] for g in seen["grads"]])
    assert not np.array_equal(round_to_format(grads, "fp16"), grads)  # and so do its gradients


# ----- pure low precision ----------------------------------------------------------------------------

class _Drift(Layer):
    """A parameter whose gradient is always 1: SGD moves it by -lr per step."""

    def __init__(self, n):
        super().__init__()
        self.params, self.grads = [np.ones(n, dtype=np.float32)], [np.zeros(n, dtype=np.float32)]

    def forward(self, x):
        return self.params[0].sum(keepdims=True)

    def backward(self, dout):
        self.grads[0][...] = 1.0
        return None


class _DriftModel:
    def __init__(self, n=4096):
        self.layer = _Drift(n)
        self.params, self.grads = self.layer.params, self.layer.grads

    def forward(self, x, t):
        return float(self.layer.forward(x)[0])

    def backward(self, dout=1):
        return self.layer.backward(dout)


def test_bf16_nearest_loses_small_updates_and_stochastic_rounding_keeps_them_on_average():
    x, t = np.zeros((100, 1), np.float32), np.zeros(100, np.int64)
    final = {}
    for precision, rounding in (("fp32", "nearest"), ("bf16", "nearest"), ("bf16", "stochastic")):
        model = _DriftModel()
        # 1e-3 per step, an eighth of bf16's spacing below 1 (2**-8): nearest rounds it away
        fastnlp.Trainer(model, SGD(lr=1e-3), seed=5, precision=precision, rounding=rounding).fit(
            x, t, max_epoch=1, batch_size=1, progress=False)
        final[precision, rounding] = model.params[0]
    assert np.allclose(final["fp32", "nearest"], 0.9, atol=1e-4)
    assert (final["bf16", "nearest"] == 1.0).all()
    stochastic = final["bf16", "stochastic"]
    assert np.array_equal(round_to_format(stochastic, "bf16"), stochastic)  # stored in bf16
    assert abs(stochastic.mean() - 0.9) < 2e-3 and stochastic.std() > 0


def test_simulate_e4m3_trains_with_every_weight_in_the_format():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    t = (x[:, 0] > 0).astype(np.int64)
    model = TwoLayerNet(4, 8, 2, seed=0, init="scaled")
    trainer = fastnlp.Trainer(model, SGD(lr=0.5), seed=0, precision="simulate:e4m3", rounding="stochastic")
    losses = trainer.fit(x, t, max_epoch=5, batch_size=16, eval_interval=4, progress=False)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    for p in model.params:
        assert np.array_equal(round_to_format(p, "e4m3"), p)


# ----- hooks only during fit ------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp16-mixed", "bf16", "simulate:e5m2"])
def test_outside_fit_the_model_computes_in_float32(precision):
    corpus = _corpus(200)
    model = BetterRnnlm(V, 6, 6, seed=0)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=1.0), precision=precision)
    _fit(trainer, corpus)
    assert len(boundary_layers(model)) == len(model.layers) + 1  # the layers and the loss layer
    for layer in boundary_layers(model):
        assert "forward" not in layer.__dict__ and "backward" not in layer.__dict__
    twin = BetterRnnlm(V, 6, 6, seed=1)
    for a, b in zip(twin.params, model.params):
        a[...] = b
    model.reset_state()
    xs = corpus[:16].reshape(2, 8)
    assert np.array_equal(model.predict(xs, train_flg=False), twin.predict(xs, train_flg=False))


# ----- checkpoints ------------------------------------------------------------------------------------

class _Interrupt(Exception):
    pass


class _StoppingSGD(SGD):
    def __init__(self, lr, stop_at):
        super().__init__(lr)
        self.calls, self.stop_at = 0, stop_at

    def _update(self, params, grads):
        self.calls += 1
        if self.calls == self.stop_at:
            raise _Interrupt
        super()._update(params, grads)


@pytest.mark.parametrize("precision, rounding, scaler", [
    ("fp16-mixed", "nearest", lambda: GradScaler(init_scale=2.0 ** 24, growth_interval=4)),
    ("bf16", "stochastic", lambda: None),
])
def test_resuming_from_a_checkpoint_is_exact(tmp_path, precision, rounding, scaler):
    corpus = _corpus(3 * 8 * 8 + 1)  # 8 iterations an epoch
    xs, ts = corpus[:-1], corpus[1:]
    args = dict(max_epoch=2, batch_size=3, time_size=8, max_grad=0.5, eval_interval=1, progress=False)

    def trainer(optimizer):
        return fastnlp.RnnlmTrainer(Rnnlm(V, 6, 6, seed=3), optimizer, precision=precision, rounding=rounding,
                                    loss_scaling=scaler(), seed=7)

    straight = trainer(SGD(lr=2.0))
    straight.fit(xs, ts, **args)
    path = tmp_path / "run.npz"
    stopped = trainer(_StoppingSGD(lr=2.0, stop_at=10))
    with pytest.raises(_Interrupt):
        stopped.fit(xs, ts, checkpoint=path, checkpoint_interval=4, **args)
    resumed = trainer(SGD(lr=2.0)).load_checkpoint(path)
    resumed.fit(xs, ts, **args)
    assert resumed.ppl_list == straight.ppl_list
    assert resumed.skipped_steps == straight.skipped_steps and resumed.loss_scale == straight.loss_scale
    for a, b in zip(resumed.model.params, straight.model.params):
        assert np.array_equal(a, b)
    if precision == "fp16-mixed":
        assert straight.skipped_steps and straight.loss_scale < 2.0 ** 24  # the scaler really worked
    with pytest.raises(ValueError, match="precision='fp32'"):  # another setting is refused
        fastnlp.RnnlmTrainer(Rnnlm(V, 6, 6, seed=3), SGD(lr=2.0)).load_checkpoint(path)


# ----- Word2Vec -----------------------------------------------------------------------------------------

def test_word2vec_trains_in_bf16_and_keeps_the_setting(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    sentences = [list(rng.choice(words, 12)) for _ in range(200)]
    for rounding in ("nearest", "stochastic"):
        model = Word2Vec(sentences, vector_size=16, min_count=1, epochs=2, progress=False, precision="bf16",
                         rounding=rounding)
        assert np.isfinite(model.loss_history).all()
        for weights in (model.syn0, model.syn1neg):
            assert np.array_equal(round_to_format(weights, "bf16"), weights)
    again = Word2Vec(sentences, vector_size=16, min_count=1, epochs=2, progress=False, precision="bf16",
                     rounding="stochastic")
    assert np.array_equal(again.syn0, model.syn0)  # workers=1: reproducible
    model.save(tmp_path / "w2v.npz")
    loaded = Word2Vec.load(tmp_path / "w2v.npz")
    assert (loaded.precision, loaded.rounding) == ("bf16", "stochastic")
    e5m2 = Word2Vec(sentences, vector_size=16, min_count=1, epochs=1, progress=False, precision="simulate:e5m2")
    assert np.array_equal(round_to_format(e5m2.syn0, "e5m2"), e5m2.syn0)


# ----- quality on PTB -----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(), reason="PTB is not in ../shared/data")
def test_mixed_precision_perplexity_is_within_one_percent_of_fp32_on_ptb():
    corpus, _, _ = fastnlp.datasets.load_ptb("train", data_dir=DATA)
    _, corpus = np.unique(corpus[:20001], return_inverse=True)  # the slice's own vocabulary (3318 words)
    vocab = int(corpus.max()) + 1
    ppl = {}
    for precision in ("fp32", "bf16-mixed", "fp16-mixed"):
        trainer = fastnlp.RnnlmTrainer(Rnnlm(vocab, 32, 32, seed=0), SGD(lr=20.0), precision=precision)
        ppl[precision] = _fit(trainer, corpus, batch_size=20, time_size=35, max_grad=0.25, eval_interval=None)[-1]
        assert trainer.skipped_steps == []
    for precision in ("bf16-mixed", "fp16-mixed"):
        assert abs(ppl[precision] / ppl["fp32"] - 1) < 0.01, ppl
