"""Devices (issue 18): model.to, set_device, Trainer(device=), the batches' pinned copies, and no
host/device mix anywhere.

Without a GPU, the device is a strict stand-in for CuPy (tests/strict_device.py): its arrays
refuse to meet NumPy arrays and to be converted implicitly, so a NumPy call on a device array
anywhere in a model's forward, backward, optimizer step or a trainer's loop fails the test; and
its streams, events and pinned memory refuse every use of a batch or of its host buffer that
CUDA would leave unordered.
"""
import io
import sys

import numpy as np
import pytest

import fastnlp
from fastnlp import device as fdevice
from fastnlp import models, optim
from fastnlp.kernels import BackendUnavailableError

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import strict_device  # noqa: E402


@pytest.fixture
def cupy():
    saved = fdevice._default
    with strict_device.installed() as module:
        yield module
    fdevice._default = saved


@pytest.fixture(autouse=True)
def default_device_restored():
    saved = fdevice._default
    yield
    fdevice._default = saved


def on_device(a):
    return isinstance(a, strict_device.StrictArray)


def all_arrays(model):
    mover = fdevice._Mover("cpu")
    mover.collect(model, set())
    return list(mover.arrays.values())


# ----- the stand-in is strict ------------------------------------------------------------------

def test_the_stand_in_refuses_every_mix(cupy):
    x = cupy.asarray(np.arange(6.0).reshape(2, 3))
    host = np.ones((2, 3))
    assert fastnlp.kernels.dispatch.array_module(x) is cupy
    for mix in (lambda: x + host, lambda: host + x, lambda: np.asarray(x), lambda: np.exp(host) * x,
                lambda: np.concatenate([x, host]), lambda: x[np.array([0, 1])], lambda: host[x.astype(np.int64)],
                lambda: x.__setitem__(0, host[0]), lambda: np.array(x)):
        with pytest.raises(strict_device.HostDeviceMix):
            mix()
    assert float(x.sum()) == 15.0 and on_device(np.exp(x)) and on_device(x.max())
    np.testing.assert_array_equal(x.get(), np.arange(6.0).reshape(2, 3))


# ----- names and the unavailable device -------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda"), ("gpu", "cuda"),
                                            ("cuda:0", "cuda"), ("gpu:0", "cuda"), ("cuda:1", "cuda:1")])
def test_device_names(name, expected):
    assert fdevice.normalize(name) == expected


@pytest.mark.parametrize("name", ["tpu", "cpu:0", "cuda:x", "", 0])
def test_unknown_device_names_are_refused(name):
    with pytest.raises((ValueError, TypeError)):
        fdevice.normalize(name)


@pytest.mark.skipif(fastnlp.available_backends()["cupy"] is None, reason="a GPU is here")
def test_asking_for_a_missing_gpu_says_why():
    reason = fastnlp.kernels._cuda.unavailable_reason()
    with pytest.raises(BackendUnavailableError, match="not available") as info:
        fastnlp.set_device("cuda")
    assert reason in str(info.value)
    assert fastnlp.get_device() is None
    model = models.TwoLayerNet(4, 3, 2, seed=0)
    with pytest.raises(BackendUnavailableError):
        model.to("gpu")
    with pytest.raises(BackendUnavailableError):
        fastnlp.Trainer(model, optim.SGD(), device="cuda")
    with pytest.raises(BackendUnavailableError):
        fastnlp.RnnlmTrainer(models.Rnnlm(10, 4, 4, seed=0), optim.SGD(), device="cuda")
    assert type(model.params[0]) is np.ndarray and model.device == "cpu"
    fastnlp.set_device("cpu")
    assert fastnlp.get_device() == "cpu"
    assert fastnlp.Trainer(model, optim.SGD()).device == "cpu"


# ----- every model: to("cuda"), forward, backward, a step of every optimizer, to("cpu") -------------

V = 12


def corpus():
    return np.random.default_rng(0).integers(0, V, 200)


def build(name):
    """(model, batch (x, t) as host arrays) for every model of fastnlp.models (Word2Vec aside)."""
    rng = np.random.default_rng(1)
    ids = lambda *shape: rng.integers(0, V, shape)  # noqa: E731
    if name == "TwoLayerNet":
        return models.TwoLayerNet(5, 4, 3, seed=0), (rng.standard_normal((6, 5)).astype(np.float32), ids(6) % 3)
    if name in ("SimpleRnnlm", "Rnnlm"):
        return getattr(models, name)(V, 4, 5, seed=0), (ids(3, 4), ids(3, 4))
    if name == "BetterRnnlm":
        return models.BetterRnnlm(V, 6, 6, dropout_ratio=0.3, seed=0), (ids(3, 4), ids(3, 4))
    if name in ("Seq2seq", "PeekySeq2seq"):
        return getattr(models, name)(V, 4, 6, seed=0), (ids(3, 5), ids(3, 4))
    if name == "AttentionSeq2seq":
        return models.AttentionSeq2seq(V, 4, 6, seed=0), (ids(3, 5), ids(3, 4))
    if name == "BiAttentionSeq2seq":
        return models.AttentionSeq2seq(V, 4, 6, seed=0, bidirectional=True), (ids(3, 5), ids(3, 4))
    if name == "Transformer":
        return models.Transformer(V, d_model=8, n_heads=2, d_ff=12, n_layers=1, pad_id=0, seed=0), \
            (ids(3, 5), ids(3, 4))
    if name == "SimpleCBOW":
        return models.SimpleCBOW(V, 4, seed=0), (np.eye(V, dtype=np.float32)[ids(5, 2)], ids(5))
    if name == "SimpleSkipGram":
        return models.SimpleSkipGram(V, 4, seed=0), (np.eye(V, dtype=np.float32)[ids(5, 2)],
                                                     np.eye(V, dtype=np.float32)[ids(5)])
    if name == "CBOW":
        return models.CBOW(V, 4, 2, corpus(), seed=0), (ids(5, 4), ids(5))
    if name == "SkipGram":
        return models.SkipGram(V, 4, 2, corpus(), seed=0), (ids(5, 4), ids(5))
    raise KeyError(name)


MODELS = ["TwoLayerNet", "SimpleRnnlm", "Rnnlm", "BetterRnnlm", "Seq2seq", "PeekySeq2seq", "AttentionSeq2seq",
          "BiAttentionSeq2seq", "Transformer", "SimpleCBOW", "SimpleSkipGram", "CBOW", "SkipGram"]
OPTIMIZERS = [lambda: optim.SGD(0.1), lambda: optim.Momentum(0.1), lambda: optim.Nesterov(0.1),
              lambda: optim.AdaGrad(0.1), lambda: optim.RMSprop(0.01), lambda: optim.Adam(0.01),
              lambda: optim.Adam(0.01, lazy=True)]


def tie_pattern(model):
    """Which entries of params (and grads) are one array: positions grouped by identity."""
    groups = {}
    for i, p in enumerate(model.params):
        groups.setdefault(id(p), []).append(i)
    return sorted(groups.values())


def test_every_model_class_has_to():
    import inspect

    classes = [obj for name, obj in vars(models).items() if inspect.isclass(obj) and hasattr(obj, "forward")
               and hasattr(obj, "backward") and name in models.__all__ and name not in
               ("Word2Vec", "Encoder", "Decoder", "PeekyDecoder", "AttentionEncoder", "AttentionDecoder")]
    assert len(classes) >= 12
    for cls in classes:
        assert callable(getattr(cls, "to", None)), cls


@pytest.mark.parametrize("name", MODELS)
def test_model_moves_trains_and_comes_back(cupy, name):
    model, (x, t) = build(name)
    reference, _ = build(name)
    before = [p.copy() for p in model.params]
    ties = tie_pattern(model)
    transposed = name == "BetterRnnlm"
    assert model.to("cuda") is model and model.device == "cuda"
    assert all(on_device(p) for p in model.params) and all(on_device(g) for g in model.grads)
    assert not any(isinstance(a, np.ndarray) for a in all_arrays(model)), "a host array stayed behind"
    assert tie_pattern(model) == ties
    if transposed:  # the output weight is still the embedding's transpose: one memory
        embed_W, affine_W = model.layers[0].params[0], model.layers[-1].params[0]
        assert affine_W._a.base is embed_W._a or affine_W._a.base is embed_W._a.base
    for p, b in zip(model.params, before):
        np.testing.assert_array_equal(p.get(), b)
    trainer = fastnlp.Trainer(model, optim.Adam(0.01), seed=0)  # the model is on the device: it stays
    xs, ts = cupy.asarray(x), cupy.asarray(t)
    loss = model.forward(xs, ts)
    assert on_device(loss)
    model.backward()
    grads = trainer.ties.merge(model.grads)
    optim.clip_grads(grads, 1.0)
    trainer.optimizer.update(trainer.ties.params, grads)
    assert all(on_device(p) for p in model.params)
    # The same step on the host gives the same numbers, with the host on the references too (the
    # stand-in device runs every op's reference; a compiled exp, say, differs by an ulp, which
    # Adam's g / sqrt(v) turns into a visible change where a gradient is nearly zero).
    ref_trainer = fastnlp.Trainer(reference, optim.Adam(0.01), seed=0)
    with fastnlp.use_backend("numpy"):
        reference.forward(x, t)
        reference.backward()
        ref_grads = ref_trainer.ties.merge(reference.grads)
        optim.clip_grads(ref_grads, 1.0)
        ref_trainer.optimizer.update(ref_trainer.ties.params, ref_grads)
    assert model.to("cpu") is model and model.device == "cpu"
    assert not any(on_device(a) for a in all_arrays(model))
    assert tie_pattern(model) == ties
    for p, r in zip(model.params, reference.params):
        np.testing.assert_allclose(p, r, rtol=1e-5, atol=1e-6)
    model.forward(x, t)  # and it still runs on the host
    model.backward()


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam",
                                                  "LazyAdam"])
@pytest.mark.parametrize("name", ["CBOW", "BetterRnnlm", "Transformer"])
def test_every_optimizer_steps_on_the_device_and_its_state_follows(cupy, name, make):
    model, (x, t) = build(name)
    optimizer = make()
    trainer = fastnlp.Trainer(model, optimizer, seed=0)
    trainer.fit(x, t, max_epoch=1, batch_size=len(x), progress=False)  # on the host: state on the host
    model.to("cuda")
    trainer.fit(x, t, max_epoch=2, batch_size=len(x), progress=False)  # the state follows the params
    for name_ in optimizer.state_names:
        assert all(on_device(b) for b in getattr(optimizer, name_))
    assert all(on_device(p) for p in model.params)
    model.to("cpu")
    trainer.fit(x, t, max_epoch=1, batch_size=len(x), progress=False)
    for name_ in optimizer.state_names:
        assert all(type(b) is np.ndarray for b in getattr(optimizer, name_))


# ----- the trainers and the evaluation helpers ------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_trainer_with_device_moves_the_model_and_every_batch(cupy, name):
    model, (x, t) = build(name)
    trainer = fastnlp.Trainer(model, optim.Adam(0.01), seed=0, device="cuda")
    assert trainer.device == "cuda" and model.device == "cuda"
    losses = trainer.fit(x, t, max_epoch=2, batch_size=2, eval_interval=1, progress=False, max_grad=5.0)
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses)
    assert all(on_device(p) for p in model.params)


def test_trainer_takes_device_data_too(cupy):
    model, (x, t) = build("TwoLayerNet")
    trainer = fastnlp.Trainer(model, optim.SGD(0.1), seed=0, device="gpu")
    trainer.fit(cupy.asarray(x), cupy.asarray(t), max_epoch=2, batch_size=3, progress=False)
    assert len(trainer.loss_list) > 0


@pytest.mark.parametrize("name", ["SimpleRnnlm", "Rnnlm", "BetterRnnlm"])
def test_rnnlm_trainer_eval_perplexity_and_generate_text_on_the_device(cupy, name, tmp_path):
    model, _ = build(name)
    data = corpus()
    trainer = fastnlp.RnnlmTrainer(model, optim.SGD(0.5), device="cuda")
    assert model.device == "cuda"
    ppl = trainer.fit(data[:-1], data[1:], max_epoch=2, batch_size=3, time_size=5, max_grad=0.25,
                      eval_interval=2, progress=False)
    assert all(isinstance(p, float) for p in ppl)
    trainer.fit(cupy.asarray(data[:-1]), cupy.asarray(data[1:]), max_epoch=1, batch_size=3, time_size=5,
                progress=False)
    for corpus_ in (data, cupy.asarray(data)):
        value = fastnlp.eval_perplexity(model, corpus_, batch_size=2, time_size=5)
        assert isinstance(value, float) and np.isfinite(value)
    words = [f"w{i}" for i in range(V)]
    text = fastnlp.generate_text(model, "w1 w2", {w: i for i, w in enumerate(words)}, words, length=6,
                                 skip_words=["w0"], seed=0, top_k=5)
    assert len(text.split()) == 8
    ids = model.generate([1, 2], length=4, sampling="greedy")
    assert all(type(i) is int for i in ids)
    # checkpoints from the device load into a device trainer
    trainer.save_checkpoint(tmp_path / "c.npz")
    other, _ = build(name)
    resumed = fastnlp.RnnlmTrainer(other, optim.SGD(0.5), device="cuda").load_checkpoint(tmp_path / "c.npz")
    assert all(on_device(p) for p in resumed.model.params)
    for p, q in zip(model.params, other.params):
        np.testing.assert_array_equal(p.get(), q.get())


@pytest.mark.parametrize("name", ["Seq2seq", "PeekySeq2seq", "AttentionSeq2seq", "BiAttentionSeq2seq",
                                  "Transformer"])
def test_seq2seq_decoding_runs_where_the_model_is(cupy, name):
    model, (x, t) = build(name)
    host_guess = model.generate(x, 1, 3, end_id=2)
    model.to("cuda")
    guess = model.generate(cupy.asarray(x), 1, 3, end_id=2)
    assert on_device(guess)
    np.testing.assert_array_equal(guess.get(), host_guess)
    np.testing.assert_array_equal(model.generate(x, 1, 3, end_id=2).get(), host_guess)  # host questions too
    accuracy = fastnlp.seq2seq_accuracy(model, x, t, id_to_char=[str(i) for i in range(V)], batch_size=2,
                                        show_wrong=2, file=io.StringIO())
    assert isinstance(accuracy, float)
    assert fastnlp.eval_seq2seq(model, x[0], t[0], [str(i) for i in range(V)]) in (0, 1)
    if hasattr(model, "attention_weights") and model.attention_weights is not None:
        assert on_device(model.attention_weights)


# ----- set_device: the book's GPU = True -------------------------------------------------------------

def test_set_device_puts_later_models_and_trainers_on_the_gpu(cupy):
    fastnlp.set_device("cuda")
    assert fastnlp.get_device() == "cuda"
    for name in MODELS:
        model, _ = build(name)
        assert model.device == "cuda", name
        assert all(on_device(p) for p in model.params)
    fastnlp.set_device(None)
    model, (x, t) = build("Rnnlm")
    assert model.device == "cpu"
    fastnlp.set_device("gpu")
    trainer = fastnlp.Trainer(model, optim.SGD(), seed=0)  # device=None: set_device's choice
    assert model.device == "cuda" and trainer.device == "cuda"
    trainer.fit(x, t, max_epoch=1, batch_size=3, progress=False)
    fastnlp.set_device("cpu")
    fastnlp.RnnlmTrainer(model, optim.SGD())
    assert model.device == "cpu"


def test_save_from_the_device_load_on_the_host_then_move(cupy, tmp_path):
    model, (x, t) = build("BetterRnnlm")
    model.to("cuda")
    expected = model.predict(cupy.asarray(x), train_flg=False).get()
    fastnlp.save(tmp_path / "m.npz", model)
    loaded = fastnlp.load(tmp_path / "m.npz")
    assert loaded.device == "cpu" and all(type(p) is np.ndarray for p in loaded.params)
    np.testing.assert_allclose(loaded.predict(x, train_flg=False), expected, rtol=1e-5, atol=1e-6)
    loaded.reset_state()
    loaded.to("cuda")
    assert tie_pattern(loaded) == tie_pattern(model)
    np.testing.assert_allclose(loaded.predict(cupy.asarray(x), train_flg=False).get(), expected,
                               rtol=1e-5, atol=1e-6)


def test_row_sparse_gradients_come_back_on_the_host(cupy):
    from fastnlp.layers import RowSparseGrad

    model, (x, t) = build("CBOW")
    model.to("cuda").to("cpu")
    assert isinstance(model.in_layer.grads[0], RowSparseGrad)
    assert model.grads[0] is model.in_layer.grads[0]
    model.forward(x, t)
    model.backward()
    assert model.in_layer.grads[0].rows is not None


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed", "fp16", "simulate:e4m3"])
@pytest.mark.parametrize("name", ["TwoLayerNet", "BetterRnnlm", "Transformer", "CBOW"])
def test_precision_modes_train_on_the_device(cupy, name, precision):
    model, (x, t) = build(name)
    trainer = fastnlp.Trainer(model, optim.Adam(0.01), seed=0, precision=precision, device="cuda",
                              rounding="stochastic" if "mixed" not in precision else "nearest")
    trainer.fit(x, t, max_epoch=2, batch_size=len(x), progress=False)
    assert all(on_device(p) for p in model.params)


def test_rnnlm_trainer_in_mixed_precision_on_the_device(cupy):
    model, _ = build("Rnnlm")
    data = corpus()
    trainer = fastnlp.RnnlmTrainer(model, optim.SGD(0.1), precision="bf16-mixed", device="cuda")
    ppl = trainer.fit(data[:-1], data[1:], max_epoch=1, batch_size=3, time_size=5, progress=False)
    assert all(np.isfinite(ppl))


def test_load_gives_a_host_model_without_set_device(cupy, tmp_path):
    model, (x, t) = build("Transformer")
    model.to("cuda")
    fastnlp.save(tmp_path / "t.npz", model)
    loaded = fastnlp.load(tmp_path / "t.npz")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.to("cuda").generate(x, 1, 3).get(), model.generate(x, 1, 3).get())


def test_load_follows_set_device(cupy, tmp_path):
    model, (x, t) = build("Transformer")
    fastnlp.save(tmp_path / "t.npz", model)
    fastnlp.set_device("cuda")
    loaded = fastnlp.load(tmp_path / "t.npz")
    assert loaded.device == "cuda"
    np.testing.assert_array_equal(loaded.generate(x, 1, 3).get(), model.generate(x, 1, 3))


# ----- batches on the device: pinned host buffers, a copy stream, double buffering ---------------------

def host_batches(n, pulled=None):
    """n batches (x, t, number), noting in ``pulled`` how many were asked for."""
    rng = np.random.default_rng(5)
    for i in range(n):
        if pulled is not None:
            pulled.append(i)
        yield rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 3, 4), i


def test_batches_reach_the_device_intact_and_in_order_one_ahead(cupy):
    model, _ = build("TwoLayerNet")
    model.to("cuda")
    expected = list(host_batches(7))
    pulled = []
    queued_before, _ = strict_device.copies()
    for k, (x, t, number) in enumerate(fdevice.batches_to(host_batches(7, pulled), model)):
        assert number == k and len(pulled) == min(k + 2, 7)  # read one ahead, never past the end
        assert on_device(x) and on_device(t)
        # Reading them here is legal only because the compute stream waited for their copies.
        np.testing.assert_array_equal(x.get(), expected[k][0])
        np.testing.assert_array_equal(t.get(), expected[k][1])
        model.forward(x, t)
        model.backward()
    queued, in_flight = strict_device.copies()
    assert queued - queued_before == 14  # every host array, through pinned memory (pageable is refused)
    assert in_flight == 0  # the host saw every copy end: no buffer is freed under a running copy
    assert fdevice.PinnedCopier("cuda").stream.non_blocking


def test_a_shorter_batch_reuses_the_pinned_buffer_and_device_arrays_pass(cupy):
    model, _ = build("TwoLayerNet")
    model.to("cuda")
    on_gpu = cupy.asarray(np.arange(3))
    batches = [(np.arange(12.0).reshape(4, 3), on_gpu), (np.arange(6.0).reshape(2, 3), on_gpu),
               (np.arange(3.0).reshape(1, 3), "text")]
    out = list(fdevice.batches_to(batches, model))
    for (x, other), (x_dev, other_dev) in zip(batches, out):
        np.testing.assert_array_equal(x_dev.get(), x)
        assert other_dev is other  # already where the model is; a string is not an array
    assert [b for b in fdevice.batches_to(iter([]), model)] == []
    assert list(fdevice.batches_to([np.arange(3)], model))[0].get().tolist() == [0, 1, 2]  # a bare array


@pytest.mark.parametrize("missing", ["the compute stream waits for the copy", "the copy waits for the compute stream",
                                     "the host waits before refilling a buffer"])
def test_the_stand_in_refuses_a_pipeline_missing_any_wait(cupy, monkeypatch, missing):
    """Each ordering the pipeline relies on, removed in turn from the stand-in, is caught: the
    checks above cannot pass by accident."""
    model, _ = build("TwoLayerNet")
    model.to("cuda")
    wait_event = strict_device._Stream.wait_event
    if missing == "the compute stream waits for the copy":
        monkeypatch.setattr(strict_device._Stream, "wait_event",
                            lambda self, event: None if self is cupy.cuda.Stream.null else wait_event(self, event))
        error, message = strict_device.StreamRace, "read before the stream reading it waited for its copy"
    elif missing == "the copy waits for the compute stream":
        monkeypatch.setattr(strict_device._Stream, "wait_event",
                            lambda self, event: wait_event(self, event) if self is cupy.cuda.Stream.null else None)
        error, message = strict_device.StreamRace, "before waiting for that stream's queued work"
    else:
        monkeypatch.setattr(strict_device._Event, "synchronize", lambda self: None)
        error, message = ValueError, "read-only"  # NumPy's: the pinned buffer, while its copy may run
    with pytest.raises(error, match=message):
        for x, t, _ in fdevice.batches_to(host_batches(4), model):
            model.forward(x, t)


def plain_batches_to(batches, model):
    """The loop before pinned copies: each batch moved by itself, synchronously."""
    return (fdevice.batch_to(batch, model) for batch in batches)


@pytest.mark.parametrize("name", ["TwoLayerNet", "AttentionSeq2seq", "CBOW", "Rnnlm"])
def test_pipelined_copies_train_exactly_as_the_plain_loop(cupy, monkeypatch, name):
    def run():
        model, (x, t) = build(name)
        if name == "Rnnlm":
            data = corpus()
            trainer = fastnlp.RnnlmTrainer(model, optim.SGD(0.5), device="cuda")
            history = trainer.fit(data[:-1], data[1:], max_epoch=2, batch_size=3, time_size=5, eval_interval=1,
                                  progress=False)
            where = trainer.time_idx
        else:
            trainer = fastnlp.Trainer(model, optim.Adam(0.01), seed=0, device="cuda")
            history = trainer.fit(x, t, max_epoch=3, batch_size=2, eval_interval=1, progress=False)
            where = trainer.rng.integers(1 << 30)  # the shuffles drew what the plain loop draws
        return list(history), [p.get() for p in model.params], where

    before = strict_device.copies()[0]
    pipelined = run()
    assert strict_device.copies()[0] > before and strict_device.copies()[1] == 0
    monkeypatch.setattr(fdevice, "batches_to", plain_batches_to)
    before = strict_device.copies()[0]
    plain = run()
    assert strict_device.copies()[0] == before
    assert pipelined[0] == plain[0] and pipelined[2] == plain[2]
    for a, b in zip(pipelined[1], plain[1]):
        np.testing.assert_array_equal(a, b)


class _Stop(Exception):
    pass


def test_a_checkpoint_mid_fit_on_the_device_resumes_exactly(cupy, tmp_path):
    """Reading one batch ahead leaves the saved position alone, and a step that raises leaves no
    copy running."""
    data = corpus()
    args = dict(max_epoch=2, batch_size=3, time_size=5, eval_interval=1, progress=False)
    straight = fastnlp.RnnlmTrainer(build("Rnnlm")[0], optim.SGD(0.5), device="cuda")
    straight.fit(data[:-1], data[1:], **args)

    class StoppingSGD(optim.SGD):
        calls = 0

        def update(self, params, grads):
            StoppingSGD.calls += 1
            if StoppingSGD.calls == 17:
                raise _Stop
            return super().update(params, grads)

    stopped = fastnlp.RnnlmTrainer(build("Rnnlm")[0], StoppingSGD(0.5), device="cuda")
    with pytest.raises(_Stop):
        stopped.fit(data[:-1], data[1:], checkpoint=tmp_path / "c.npz", checkpoint_interval=5, **args)
    assert strict_device.copies()[1] == 0
    resumed = fastnlp.RnnlmTrainer(build("Rnnlm")[0], optim.SGD(0.5), device="cuda")
    resumed.load_checkpoint(tmp_path / "c.npz")
    assert resumed.time_idx == 15 * 5
    resumed.fit(data[:-1], data[1:], **args)
    np.testing.assert_allclose(resumed.ppl_list, straight.ppl_list, rtol=1e-6)


def test_fit_with_lr_decay_validates_where_the_model_is(cupy, tmp_path):
    model, _ = build("BetterRnnlm")
    data = corpus()
    trainer = fastnlp.RnnlmTrainer(model, optim.SGD(1.0), device="cuda")
    valid = trainer.fit_with_lr_decay(data[:-1], data[1:], data[:80], max_epoch=2, batch_size=3, time_size=5,
                                      eval_batch_size=2, best_params=tmp_path / "best.npz", progress=False)
    assert len(valid) == 2 and all(isinstance(v, float) and np.isfinite(v) for v in valid)
    assert model.device == "cuda" and (tmp_path / "best.npz").exists()


GPU_REASON = fastnlp.available_backends()["cupy"]


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backend: {GPU_REASON}")
def test_pinned_copies_on_a_real_gpu(monkeypatch):
    model, (x, t) = build("TwoLayerNet")
    model.to("cuda")
    expected = list(host_batches(9))
    for (x_dev, t_dev, number), (x_host, t_host, k) in zip(fdevice.batches_to(host_batches(9), model), expected):
        assert number == k
        np.testing.assert_array_equal(x_dev.get(), x_host)
        np.testing.assert_array_equal(t_dev.get(), t_host)

    def train():
        model, (x, t) = build("AttentionSeq2seq")
        trainer = fastnlp.Trainer(model, optim.Adam(0.01), seed=0, device="cuda")
        return trainer.fit(x, t, max_epoch=3, batch_size=2, eval_interval=1, progress=False)

    pipelined = train()
    monkeypatch.setattr(fdevice, "batches_to", plain_batches_to)
    np.testing.assert_allclose(pipelined, train(), rtol=1e-5)
