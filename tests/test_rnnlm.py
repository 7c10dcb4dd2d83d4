"""Language models and their training: gradients, truncated BPTT batching, perplexity, lr decay,
checkpoints that resume exactly, text generation, bad input."""
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp import lm
from fastnlp.gradcheck import check_layer, numerical_gradient
from fastnlp.layers import NonFiniteError
from fastnlp.models import BetterRnnlm, Rnnlm, SimpleRnnlm
from fastnlp.optim import SGD, TiedParams

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
V = 12


def _corpus(n=400, seed=0):
    """A learnable id sequence: a repeated pattern with a little noise."""
    rng = np.random.default_rng(seed)
    ids = np.tile(np.arange(V), n // V + 1)[:n]
    noise = rng.random(n) < 0.1
    ids[noise] = rng.integers(0, V, noise.sum())
    return ids.astype(np.int32)


@pytest.mark.parametrize("cls", [SimpleRnnlm, Rnnlm])
def test_models_gradcheck(cls):
    rng = np.random.default_rng(0)
    model = cls(7, 3, 4, seed=0, dtype=np.float64)
    check_layer(model, rng.integers(0, 7, (2, 3)), rng.integers(0, 7, (2, 3)), before_forward=model.reset_state)


def test_better_rnnlm_is_tied_by_identity_and_its_merged_gradient_is_right():
    model = BetterRnnlm(7, 4, 4, dropout_ratio=0.3, seed=0, dtype=np.float64)
    embed_W, affine_W = model.layers[0].params[0], model.layers[-1].params[0]
    # the affine weight is the embedding's transpose: the same memory, read column-major
    assert affine_W.__array_interface__["data"][0] == embed_W.__array_interface__["data"][0]
    assert affine_W.shape == embed_W.T.shape and affine_W.strides == embed_W.T.strides
    ties = TiedParams(model.params)
    assert len(ties.params) == len(model.params) - 1
    rng = np.random.default_rng(1)
    xs, ts = rng.integers(0, 7, (2, 3)), rng.integers(0, 7, (2, 3))
    seeds = [layer.rng.bit_generator.state for layer in model.dropout_layers]

    def loss(_=None):
        model.reset_state()
        for layer, state in zip(model.dropout_layers, seeds):
            layer.rng.bit_generator.state = state
        return model.forward(xs, ts)

    loss()
    model.backward()
    for p, g in zip(ties.params, ties.merge(model.grads)):
        np.testing.assert_allclose(g, numerical_gradient(loss, p), rtol=1e-4, atol=1e-7)


def test_get_batch_is_the_books_loop():
    xs = np.arange(100)
    trainer = fastnlp.RnnlmTrainer(Rnnlm(100, 4, 4, seed=0), SGD(1.0))
    trainer.time_idx = 0
    for _ in range(3):  # the book's double loop, wrapping around the end
        expected = np.empty((6, 7), dtype=int)
        jump = len(xs) // 6
        for time in range(7):
            for i in range(6):
                expected[i, time] = xs[(i * jump + trainer.time_idx + time) % len(xs)]
        batch_x, _ = trainer.get_batch(xs, xs, 6, 7)
        assert batch_x.tolist() == expected.tolist()


def test_fit_learns_and_reports_perplexity():
    corpus = _corpus(1200)
    model = Rnnlm(V, 8, 16, seed=0)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=5.0))
    ppl = trainer.fit(corpus[:-1], corpus[1:], max_epoch=6, batch_size=4, time_size=10, max_grad=0.5,
                      eval_interval=5, progress=False)
    assert len(ppl) == 6 * (1199 // 40) // 5 and trainer.current_epoch == 6
    assert ppl[0] > 2 * ppl[-1] and ppl[-1] < 4
    assert fastnlp.eval_perplexity(model, corpus, batch_size=2, time_size=10) < 4


def test_eval_perplexity_is_the_books_and_leaves_the_model_as_it_was():
    corpus = _corpus(300)
    model = Rnnlm(V, 5, 6, seed=1)
    model.forward(corpus[:20].reshape(2, 10), corpus[1:21].reshape(2, 10))
    h_before = model.lstm_layer.h.copy()
    ppl = fastnlp.eval_perplexity(model, corpus, batch_size=3, time_size=7)
    np.testing.assert_array_equal(model.lstm_layer.h, h_before)
    model.reset_state()  # the book's loop, by hand
    max_iters, jump, total = (len(corpus) - 1) // 21, (len(corpus) - 1) // 3, 0.0
    for it in range(max_iters):
        x, t = np.zeros((3, 7), int), np.zeros((3, 7), int)
        for time in range(7):
            for i in range(3):
                x[i, time] = corpus[(it * 7 + i * jump + time) % len(corpus)]
                t[i, time] = corpus[(it * 7 + i * jump + time + 1) % len(corpus)]
        total += model.forward(x, t)
    assert ppl == pytest.approx(np.exp(total / max_iters), rel=1e-5)


class _Interrupt(Exception):
    pass


class _StoppingSGD(SGD):
    """SGD that stops the process (an exception) before its ``stop_at``-th update. Its _update
    takes what SGD's does (the clipping rate, tied sums left unformed), so until it stops it
    runs SGD's arithmetic bit for bit."""

    def __init__(self, lr, stop_at):
        super().__init__(lr)
        self.calls, self.stop_at = 0, stop_at

    def _update(self, params, grads, grad_scale=1.0):
        self.calls += 1
        if self.calls == self.stop_at:
            raise _Interrupt
        super()._update(params, grads, grad_scale)

    _update.folds_grad_scale = _update.takes_tied_sums = True


@pytest.mark.parametrize("cls", [Rnnlm, BetterRnnlm])
def test_resuming_from_a_checkpoint_gives_the_same_losses_as_not_stopping(cls, tmp_path):
    corpus = _corpus(600)
    xs, ts = corpus[:-1], corpus[1:]
    args = dict(max_epoch=2, batch_size=3, time_size=8, max_grad=0.5, eval_interval=1, progress=False)
    make = lambda: cls(V, 6, 6, seed=3)  # noqa: E731

    straight = fastnlp.RnnlmTrainer(make(), SGD(lr=2.0))
    straight.fit(xs, ts, **args)

    path = tmp_path / "run.npz"
    stopped = fastnlp.RnnlmTrainer(make(), _StoppingSGD(lr=2.0, stop_at=33))  # in epoch 2 (24 per epoch)
    with pytest.raises(_Interrupt):
        stopped.fit(xs, ts, checkpoint=path, checkpoint_interval=5, **args)
    resumed = fastnlp.RnnlmTrainer(make(), SGD(lr=2.0))  # a new process: fresh model and trainer
    resumed.load_checkpoint(path)
    assert resumed.pending_run["max_epoch"] == 2 and len(resumed.ppl_list) == 30
    resumed.fit(xs, ts, **args)
    np.testing.assert_allclose(resumed.ppl_list, straight.ppl_list, rtol=1e-6)
    for a, b in zip(resumed.model.params, straight.model.params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="same arguments"):
        again = fastnlp.RnnlmTrainer(make(), SGD(lr=2.0)).load_checkpoint(path)
        again.fit(xs, ts, **dict(args, time_size=9))


def test_parameters_round_trip_through_float16_files(tmp_path):
    corpus = _corpus(400)
    model = Rnnlm(V, 6, 8, seed=0)
    fastnlp.RnnlmTrainer(model, SGD(2.0)).fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=2, time_size=10,
                                              progress=False)
    fastnlp.save_params(tmp_path / "rnnlm.npz", model, dtype=np.float16)
    loaded = Rnnlm(V, 6, 8, seed=99)
    fastnlp.load_params(tmp_path / "rnnlm.npz", into=loaded)
    assert all(p.dtype == np.float32 for p in loaded.params)
    assert fastnlp.eval_perplexity(loaded, corpus, 2, 10) == pytest.approx(
        fastnlp.eval_perplexity(model, corpus, 2, 10), rel=1e-2)
    better = BetterRnnlm(V, 6, 6, seed=0)
    fastnlp.save_params(tmp_path / "better.npz", better, dtype=np.float16)
    other = BetterRnnlm(V, 6, 6, seed=1)
    fastnlp.load_params(tmp_path / "better.npz", into=other)
    assert np.shares_memory(other.layers[-1].params[0], other.layers[0].params[0])  # still tied
    np.testing.assert_allclose(other.layers[0].params[0], better.layers[0].params[0], atol=1e-3)


def test_lr_decays_when_validation_does_not_improve(tmp_path, monkeypatch):
    corpus = _corpus(300)
    scores = iter([50.0, 60.0, 40.0])
    monkeypatch.setattr(lm, "eval_perplexity", lambda *a, **k: next(scores))
    saved = []
    monkeypatch.setattr(lm, "save_params", lambda path, model: saved.append(path))
    trainer = fastnlp.RnnlmTrainer(BetterRnnlm(V, 4, 4, seed=0), SGD(lr=20.0))
    valid = trainer.fit_with_lr_decay(corpus[:-1], corpus[1:], corpus, max_epoch=3, batch_size=2, time_size=5,
                                      best_params=tmp_path / "best.npz", progress=False)
    assert valid == [50.0, 60.0, 40.0] and trainer.optimizer.lr == 5.0 and trainer.best_ppl == 40.0
    assert len(saved) == 2


def test_the_lr_decay_schedule_resumes_exactly_from_a_checkpoint(tmp_path):
    corpus, valid = _corpus(400), _corpus(200, seed=1)
    args = dict(max_epoch=3, batch_size=3, time_size=6, max_grad=0.5, lr_decay=4.0, eval_batch_size=2,
                eval_interval=1, progress=False)
    straight = fastnlp.RnnlmTrainer(BetterRnnlm(V, 6, 6, seed=4), SGD(lr=30.0))
    straight.fit_with_lr_decay(corpus[:-1], corpus[1:], valid, **args)
    path = tmp_path / "run.npz"
    stopped = fastnlp.RnnlmTrainer(BetterRnnlm(V, 6, 6, seed=4), _StoppingSGD(lr=30.0, stop_at=50))
    with pytest.raises(_Interrupt):  # 22 iterations per epoch: stops in epoch 3
        stopped.fit_with_lr_decay(corpus[:-1], corpus[1:], valid, checkpoint=path, checkpoint_interval=4, **args)
    resumed = fastnlp.RnnlmTrainer(BetterRnnlm(V, 6, 6, seed=4), SGD(lr=30.0)).load_checkpoint(path)
    assert len(resumed.valid_ppl_list) == 2 and resumed.pending_run is not None
    resumed.fit_with_lr_decay(corpus[:-1], corpus[1:], valid, checkpoint=path, checkpoint_interval=4, **args)
    np.testing.assert_allclose(resumed.valid_ppl_list, straight.valid_ppl_list, rtol=1e-6)
    np.testing.assert_allclose(resumed.ppl_list, straight.ppl_list, rtol=1e-6)
    assert resumed.optimizer.lr == straight.optimizer.lr


def test_generation_greedy_sampled_skipped_and_state_restored():
    corpus = _corpus(600)
    model = Rnnlm(V, 8, 16, seed=0)
    fastnlp.RnnlmTrainer(model, SGD(5.0)).fit(corpus[:-1], corpus[1:], max_epoch=4, batch_size=4, time_size=10,
                                              max_grad=0.5, progress=False)
    h = model.lstm_layer.h.copy()
    greedy = model.generate(3, 12, sampling="greedy")
    assert greedy[:5] == [3, 4, 5, 6, 7] and len(greedy) == 13  # it learnt the pattern
    np.testing.assert_array_equal(model.lstm_layer.h, h)
    assert model.generate([3], 12, sampling="sample", top_k=1, seed=5) == greedy
    sampled = model.generate([1, 2], 30, sampling="sample", temperature=2.0, seed=7)
    assert sampled[:2] == [1, 2] and sampled == model.generate([1, 2], 30, sampling="sample", temperature=2.0, seed=7)
    skipped = model.generate(3, 30, skip_ids=[4, 8], sampling="sample", seed=1)
    assert 4 not in skipped[1:] and 8 not in skipped[1:]
    better = BetterRnnlm(V, 4, 4, seed=0)
    assert len(better.generate([0], 5, sampling="sample", seed=0)) == 6
    assert all(layer.training for layer in better.dropout_layers)
    for bad in (dict(sampling="beam"), dict(temperature=0), dict(top_k=V + 1)):
        with pytest.raises(ValueError):
            model.generate(0, 3, **bad)
    with pytest.raises(IndexError):
        model.generate(V, 3)


def test_generate_text_speaks_words():
    words = ["you", "say", "goodbye", "and", "i", "hello", "<eos>"]
    word_to_id = {w: i for i, w in enumerate(words)}
    id_to_word = dict(enumerate(words))
    model = Rnnlm(len(words), 4, 4, seed=0)
    for seed in range(5):  # sampled: with or without an <eos> (shown as a sentence end, ".\n")
        text = fastnlp.generate_text(model, "you say", word_to_id, id_to_word, length=10, skip_words=["hello"],
                                     seed=seed)
        assert text.startswith("you say") and "hello" not in text and "<eos>" not in text
        assert len(text.replace(".\n", " <eos>").split()) == 12
    with pytest.raises(KeyError, match="'bonjour'"):
        fastnlp.generate_text(model, "bonjour", word_to_id, id_to_word)


def test_fit_refuses_bad_input_before_training():
    model = Rnnlm(V, 4, 4, seed=0)
    before = [p.copy() for p in model.params]
    trainer = fastnlp.RnnlmTrainer(model, SGD(1.0))
    corpus = _corpus(100)
    with pytest.raises(IndexError, match=f"word id {V} is out of range"):
        trainer.fit(np.append(corpus, V), np.append(corpus, 0), progress=False)
    with pytest.raises(ValueError, match="shorter than one batch"):
        trainer.fit(corpus, corpus, batch_size=2, time_size=60, progress=False)
    with pytest.raises(ValueError, match="ts has"):
        trainer.fit(corpus, corpus[:-1], progress=False)
    with pytest.raises(TypeError, match="integer"):
        trainer.fit(corpus.astype(float), corpus, progress=False)
    with pytest.raises(ValueError, match="shorter"):
        fastnlp.eval_perplexity(model, corpus[:30], batch_size=10, time_size=35)
    assert all((p == q).all() for p, q in zip(model.params, before))


def test_a_nan_loss_stops_training_naming_the_iteration():
    corpus = _corpus(200)
    model = Rnnlm(V, 4, 4, seed=0)
    forward, calls = model.forward, []

    def poisoned(xs, ts, train_flg=None):
        calls.append(1)
        return float("nan") if len(calls) == 3 else forward(xs, ts)

    model.forward = poisoned
    trainer = fastnlp.RnnlmTrainer(model, SGD(1.0))
    with pytest.raises(NonFiniteError, match="epoch 1, iteration 3"):
        trainer.fit(corpus[:-1], corpus[1:], batch_size=2, time_size=5, progress=False)
    model.forward = forward
    model.params[0][0, 0] = np.inf  # diverged weights: the layers' own check, located by the trainer
    with pytest.raises(NonFiniteError, match="iteration 1"):
        trainer.fit(corpus[:-1], corpus[1:], batch_size=2, time_size=5, progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(), reason="PTB is not in ../shared/data")
def test_rnnlm_learns_on_a_slice_of_ptb():
    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=DATA)
    corpus = corpus[:28001]
    model = Rnnlm(len(word_to_id), 32, 32, seed=0)
    trainer = fastnlp.RnnlmTrainer(model, SGD(lr=20.0))
    ppl = trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=20, time_size=35, max_grad=0.25,
                      eval_interval=10, progress=False)
    assert ppl[-1] < 0.5 * ppl[0] and ppl[-1] < 1500
    text = fastnlp.generate_text(model, "the", word_to_id, id_to_word, length=10, skip_words=["<unk>"], seed=0)
    assert text.split()[0] == "the" and "<unk>" not in text


def _checkpoint_after_training(path, optimizer, model=None):
    corpus = _corpus(200)
    trainer = fastnlp.RnnlmTrainer(model or Rnnlm(V, 4, 4, seed=0), optimizer)
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=2, time_size=5, progress=False, checkpoint=path)
    return trainer


def _params_and_lr(trainer):
    return [p.copy() for p in trainer.model.params], trainer.optimizer.lr


@pytest.mark.parametrize("saved, resumed", [
    (fastnlp.optim.Adam(lr=0.01), SGD(lr=5.0)),
    (SGD(lr=5.0), fastnlp.optim.Adam(lr=0.01)),
    (fastnlp.optim.Momentum(lr=1.0), fastnlp.optim.AdaGrad(lr=1.0)),
])
def test_checkpoint_of_another_optimizer_type_is_refused_naming_both(tmp_path, saved, resumed):
    path = tmp_path / "run.npz"
    _checkpoint_after_training(path, saved)
    trainer = fastnlp.RnnlmTrainer(Rnnlm(V, 4, 4, seed=1), resumed)
    before = _params_and_lr(trainer)
    with pytest.raises(ValueError, match=f"saved with optimizer {type(saved).__name__}, but this trainer's "
                                         f"optimizer is {type(resumed).__name__}"):
        trainer.load_checkpoint(path)
    after = _params_and_lr(trainer)
    assert after[1] == before[1] and all(np.array_equal(a, b) for a, b in zip(after[0], before[0]))


def test_checkpoint_without_a_recorded_type_is_still_checked_by_its_state(tmp_path):
    import json
    path = tmp_path / "run.npz"
    _checkpoint_after_training(path, fastnlp.optim.Adam(lr=0.01))
    with np.load(path) as data:  # as written before the one file format and the optimizer type
        arrays = dict(data)
    state = json.loads(arrays.pop("__fastnlp__").tobytes().decode("utf-8"))["state"]
    del state["optimizer"]["type"]
    arrays["rnnlm_trainer_state"] = np.array(json.dumps(state))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="optimizer state '[mv]', which SGD does not keep"):
        fastnlp.RnnlmTrainer(Rnnlm(V, 4, 4, seed=1), SGD(lr=1.0)).load_checkpoint(path)
    fastnlp.RnnlmTrainer(Rnnlm(V, 4, 4, seed=1), fastnlp.optim.Adam(lr=0.01)).load_checkpoint(path)


def test_checkpoint_of_another_model_shape_is_refused_before_any_change(tmp_path):
    path = tmp_path / "run.npz"
    _checkpoint_after_training(path, fastnlp.optim.Adam(lr=0.01))
    trainer = fastnlp.RnnlmTrainer(Rnnlm(V, 4, 6, seed=1), fastnlp.optim.Adam(lr=0.5))
    before = _params_and_lr(trainer)
    with pytest.raises(ValueError, match="model has .* params of shapes"):
        trainer.load_checkpoint(path)
    after = _params_and_lr(trainer)
    assert after[1] == before[1] and all(np.array_equal(a, b) for a, b in zip(after[0], before[0]))
    assert getattr(trainer.optimizer, "m", None) is None


def test_optimizer_state_loads_in_numeric_order():
    arrays = {f"optimizer_v_{i:04d}": np.full(1, i) for i in (9999, 10000, 2)}
    assert [int(a[0]) for a in lm._numbered(arrays, "optimizer_v_")] == [2, 9999, 10000]
