"""Training and using recurrent language models (book ch. 5-7): ``RnnlmTrainer`` (truncated
BPTT as the book batches it, clipping, perplexity, checkpoints, the validation-driven learning
rate decay of BetterRnnlm), ``eval_perplexity`` and ``generate_text``.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import time

import numpy as np

from . import device as _device
from .amp import TrainsInPrecision
from .kernels.validate import check_ids
from .layers.base import NonFiniteError
from .optim import TiedParams, check_positive_finite, check_positive_int
from .serialization import array_like, load_params, read_file, save_params, to_host, write_file
from .trainer import progress_bar

_LEGACY_STATE_KEY = "rnnlm_trainer_state"  # where checkpoints kept their state before the one format
_OPTIMIZER_BUFFERS = ("v", "h", "m")  # per-parameter state lists of fastnlp.optim optimizers


class RnnlmTrainer(TrainsInPrecision, _device.FollowsItsModel):
    """The book's RnnlmTrainer: ``fit`` trains a language model on one long id sequence.

    Batches are the book's: the corpus is cut into ``batch_size`` parallel streams starting
    ``len(xs) // batch_size`` apart; each iteration reads the next ``time_size`` ids of every
    stream (wrapping around the end), the model carries its hidden state from one iteration to
    the next, and backward stops at the batch's first step (truncated BPTT). Tied parameters
    are found once (``fastnlp.optim.TiedParams``) and updated once per step.

    After ``fit``, ``ppl_list`` holds the training perplexity of every ``eval_interval``
    iterations (``plot`` draws it). ``save_checkpoint`` / ``load_checkpoint`` store and restore everything the next
    iterations depend on (parameters, optimizer state, hidden state, position in the corpus,
    dropout generators), so a ``fit`` interrupted and resumed from a checkpoint gives the same
    losses as one that was never stopped.

    ``precision`` ("fp32", the default, "bf16-mixed", "fp16-mixed", "bf16", "fp16",
    "simulate:<format>"), ``rounding``, ``loss_scaling`` and ``seed`` (of stochastic rounding)
    are those of ``fastnlp.Trainer`` (see ``fastnlp.amp``); checkpoints keep the setting, the
    step count and the loss scaler, and refuse to resume under another setting.

    ``device`` (``"cuda"``, ``"cpu"``; None: ``fastnlp.set_device``'s choice, else where the
    model is) as ``fastnlp.Trainer``'s: the model moves there now, every batch before its
    forward (on a GPU through pinned buffers, the next batch's copy running during the current
    step); the corpus may stay on the host.
    """

    def __init__(self, model, optimizer, precision: str = "fp32", *, rounding: str = "nearest",
                 loss_scaling=None, seed: int = 0, device=None):
        from .trainer import _place_model

        self.model, self.optimizer = model, optimizer
        self._set_precision(precision, rounding, loss_scaling, seed)
        self.device = _place_model(model, optimizer, device)
        self.ties = TiedParams(model.params)
        self._param_ids = [id(p) for p in model.params]
        self.time_idx = 0
        self.ppl_list: list[float] = []
        self.eval_interval = None
        self.current_epoch = 0  # epochs completed over all fit calls
        self.valid_ppl_list: list[float] = []  # fit_with_lr_decay: validation perplexity per epoch
        self.best_ppl = None
        self.elapsed = 0.0  # seconds spent in training iterations
        self._run = None  # the fit in progress: its settings and where it stands
        self._resuming = False

    @property
    def pending_run(self):
        """The settings of a ``fit`` that a loaded checkpoint stopped in the middle of (the next
        ``fit`` with these arguments continues it), else None."""
        if not (self._resuming and self._run is not None):
            return None
        return {k: self._run[k] for k in ("max_epoch", "batch_size", "time_size", "data_size")}

    # ----- batching (the book's get_batch, vectorised) ----------------------------------------

    def get_batch(self, x, t, batch_size, time_size):
        """The book's next batch (on the model's device), advancing ``time_idx``."""
        batch = _batch_at(x, t, self.time_idx, batch_size, time_size)
        self.time_idx += time_size
        return _device.batch_to(batch, self.model)

    def _batches(self, x, t, batch_size, time_size, count):
        """The next ``count`` batches where the corpus lives, from the positions that follow
        ``time_idx`` now, so that reading one ahead (``fastnlp.device.batches_to``) leaves
        ``time_idx`` alone: it moves as each batch is trained on, and a checkpoint saves the
        position of the next one."""
        first = self.time_idx
        return (_batch_at(x, t, first + k * time_size, batch_size, time_size) for k in range(count))

    def fit(self, xs, ts, max_epoch: int = 10, batch_size: int = 20, time_size: int = 35,
            max_grad: float | None = None, eval_interval: int | None = 20, progress=True,
            checkpoint=None, checkpoint_interval: int | None = None):
        """Train for ``max_epoch`` epochs of ``len(xs) // (batch_size * time_size)`` iterations.

        ``xs`` and ``ts`` are 1-D integer id arrays of one length (ts is xs shifted by one), ids
        in the model's vocabulary. ``max_grad`` clips the global gradient norm. Every
        ``eval_interval`` iterations (None: once per epoch, as in ``Trainer.fit``) the mean
        perplexity of those iterations is appended to ``ppl_list`` and shown in the progress
        report (``progress``: True for stderr, False for silence, or a text stream; see
        ``fastnlp.trainer.progress_bar``). With ``checkpoint`` (a path) the state is
        saved there every ``checkpoint_interval`` iterations (default: once per epoch); after
        ``load_checkpoint`` the next ``fit`` with the same arguments continues where the saved
        one stopped. Returns ``ppl_list``.

        Raises ValueError/TypeError/IndexError for bad data or settings before training starts,
        and NonFiniteError (a FloatingPointError) naming the epoch and iteration when the loss
        or a gradient becomes NaN or inf; that iteration's update is not applied.
        """
        max_epoch = check_positive_int("max_epoch", max_epoch)
        batch_size = check_positive_int("batch_size", batch_size)
        time_size = check_positive_int("time_size", time_size)
        if max_grad is not None:
            max_grad = check_positive_finite("max_grad", max_grad)
        vocab_size = getattr(self.model, "vocab_size", None)
        xs = _check_corpus("xs", xs, vocab_size)
        ts = _check_corpus("ts", ts, vocab_size)
        if len(xs) != len(ts):
            raise ValueError(f"xs has {len(xs)} ids but ts has {len(ts)}")
        max_iters = len(xs) // (batch_size * time_size)
        if max_iters == 0:
            raise ValueError(f"the corpus of {len(xs)} ids is shorter than one batch of batch_size x time_size = "
                             f"{batch_size} x {time_size} = {batch_size * time_size} ids; "
                             "lower time_size or batch_size")
        # None means once per epoch, as in Trainer.fit: the same word, the same meaning.
        eval_interval = max_iters if eval_interval is None else check_positive_int("eval_interval", eval_interval)
        if checkpoint_interval is not None:
            checkpoint_interval = check_positive_int("checkpoint_interval", checkpoint_interval)
        settings = {"max_epoch": max_epoch, "batch_size": batch_size, "time_size": time_size,
                    "data_size": len(xs)}
        if self._resuming and self._run is not None:
            saved = {k: self._run[k] for k in settings}
            if saved != settings:
                raise ValueError(f"the checkpoint was made by fit with {saved}; resume with the same "
                                 f"arguments, not {settings}")
        else:  # a new run, as the book's fit: from the start of the corpus
            self.time_idx = 0
            self._run = dict(settings, epoch=0, iteration=0, loss_sum=0.0, loss_count=0)
        self._resuming = False
        self.eval_interval = eval_interval
        self._follow_model()
        run = self._run
        bar = progress_bar(max_epoch * max_iters, progress, initial=run["epoch"] * max_iters + run["iteration"],
                           unit="it", desc="RnnlmTrainer", epoch_size=max_iters)
        remaining = (max_epoch - run["epoch"]) * max_iters - run["iteration"]
        try:
            with self.amp.attached(self.model, self.ties.params), contextlib.closing(_device.batches_to(
                    self._batches(xs, ts, batch_size, time_size, remaining), self.model)) as batches:
                while run["epoch"] < max_epoch:
                    while run["iteration"] < max_iters:
                        self._step(batches, time_size, max_grad, run)
                        run["iteration"] += 1
                        if run["loss_count"] >= eval_interval:
                            ppl = math.exp(run["loss_sum"] / run["loss_count"])
                            self.ppl_list.append(ppl)
                            run["loss_sum"], run["loss_count"] = 0.0, 0
                            bar.set_postfix(epoch=self.current_epoch + 1, ppl=ppl, **self._precision_postfix())
                        bar.update(1)
                        done = run["epoch"] * max_iters + run["iteration"]
                        if checkpoint is not None and checkpoint_interval is not None \
                                and done % checkpoint_interval == 0:
                            self.save_checkpoint(checkpoint)
                    run["epoch"] += 1
                    run["iteration"] = 0
                    self.current_epoch += 1
                    if checkpoint is not None and checkpoint_interval is None:
                        self.save_checkpoint(checkpoint)
        finally:
            bar.close()
        self._run = None
        return self.ppl_list

    def _step(self, batches, time_size, max_grad, run):
        where = f"epoch {self.current_epoch + 1}, iteration {run['iteration'] + 1}"
        start = time.perf_counter()
        batch_x, batch_t = next(batches)
        self.time_idx += time_size
        try:
            loss = self._train_step(lambda: self.model.forward(batch_x, batch_t), max_grad)
        except NonFiniteError as exc:
            raise type(exc)(f"training diverged at {where}: {exc}. The parameters are those before this "
                                 "iteration; lower the learning rate or clip with max_grad") from exc
        self.elapsed += time.perf_counter() - start
        if loss is not None:  # None: a step skipped by loss scaling, its loss inf/NaN
            run["loss_sum"] += loss
            run["loss_count"] += 1

    def plot(self, path=None, ylim=None):
        """The book's figure: training perplexity against iterations, as a matplotlib Figure,
        also saved to ``path`` when given (atomically, in the format of its suffix: ``.png``,
        ``.pdf``, ``.svg``, ...; a bad suffix is refused before anything is drawn). ``ylim``:
        (bottom, top) of the perplexity axis. Needs matplotlib: pip install 'fastnlp[plot]'."""
        from .plot import check_figure_path, new_figure, save_figure

        if path is not None:
            check_figure_path(path, "the perplexity curve")
        fig = new_figure("RnnlmTrainer.plot")
        ax = fig.subplots()
        ax.plot(np.arange(len(self.ppl_list)), self.ppl_list, label="train")
        ax.set_xlabel(f"iterations (x{self.eval_interval})" if self.eval_interval else "iterations")
        ax.set_ylabel("perplexity")
        ax.set_title("training perplexity")
        if ylim is not None:
            ax.set_ylim(*ylim)
        if path is not None:
            save_figure(fig, path, "the perplexity curve")
        return fig

    # ----- validation-driven learning-rate decay (the book's train_better_rnnlm.py) -----------

    def fit_with_lr_decay(self, xs, ts, valid_corpus, max_epoch: int = 40, batch_size: int = 20,
                          time_size: int = 35, max_grad: float | None = 0.25, lr_decay: float = 4.0,
                          eval_batch_size: int = 10, best_params=None, eval_interval: int | None = 20,
                          progress=True, checkpoint=None, checkpoint_interval: int | None = None):
        """The book's BetterRnnlm schedule: each epoch, one ``fit`` epoch, then the perplexity of
        ``valid_corpus``; a new best is saved to ``best_params`` (a path, via
        ``fastnlp.save_params``), otherwise the learning rate is divided by ``lr_decay``.

        Runs until ``max_epoch`` epochs of this schedule are done in total, so after
        ``load_checkpoint`` the same call carries on (mid-epoch included). Returns
        ``valid_ppl_list``.
        """
        lr_decay = check_positive_finite("lr_decay", lr_decay)
        valid_corpus = _check_corpus("valid_corpus", valid_corpus, getattr(self.model, "vocab_size", None))
        max_epoch = check_positive_int("max_epoch", max_epoch)
        while len(self.valid_ppl_list) < max_epoch:
            self.fit(xs, ts, max_epoch=1, batch_size=batch_size, time_size=time_size, max_grad=max_grad,
                     eval_interval=eval_interval, progress=progress, checkpoint=checkpoint,
                     checkpoint_interval=checkpoint_interval or _NEVER)
            self.model.reset_state()
            ppl = eval_perplexity(self.model, valid_corpus, batch_size=eval_batch_size, time_size=time_size)
            if self.best_ppl is None or ppl < self.best_ppl:
                self.best_ppl = ppl
                if best_params is not None:
                    save_params(best_params, self.model)
            else:
                self.optimizer.lr /= lr_decay
            self.model.reset_state()
            self.valid_ppl_list.append(ppl)
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
        return self.valid_ppl_list

    # ----- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, path):
        """Write parameters (the float32 masters under mixed precision), optimizer state,
        hidden state, training position and the precision state (setting, step count, loss
        scaler) to one ``.npz``, atomically. ``fastnlp.load_params(path, into=model)`` reads its parameters."""
        arrays = {f"param_{i:04d}": to_host(p) for i, p in enumerate(self.model.params)}
        optimizer_state = {"type": _optimizer_kind(self.optimizer), "lr": self.optimizer.lr,
                           "iter": getattr(self.optimizer, "iter", None), "buffers": []}
        for name in _OPTIMIZER_BUFFERS:
            buffers = getattr(self.optimizer, name, None)
            if isinstance(buffers, list):
                optimizer_state["buffers"].append(name)
                arrays.update({f"optimizer_{name}_{i:04d}": to_host(b) for i, b in enumerate(buffers)})
        model_state = []
        for k, (h, c) in enumerate(self.model.get_state() if hasattr(self.model, "get_state") else []):
            model_state.append([h is not None, c is not None])
            if h is not None:
                arrays[f"state_h_{k:02d}"] = to_host(h)
            if c is not None:
                arrays[f"state_c_{k:02d}"] = to_host(c)
        rngs = [layer.rng.bit_generator.state for layer in getattr(self.model, "dropout_layers", [])]
        state = {"time_idx": self.time_idx, "ppl_list": self.ppl_list, "current_epoch": self.current_epoch,
                 "valid_ppl_list": self.valid_ppl_list, "best_ppl": self.best_ppl, "run": self._run,
                 "elapsed": self.elapsed, "optimizer": optimizer_state, "model_state": model_state,
                 "dropout_rngs": rngs, "precision": self.amp.state_dict()}
        # The model's class and settings come along (when it records them), so fastnlp.load
        # rebuilds the model from a checkpoint alone.
        model = self.model if "_settings" in getattr(self.model, "__dict__", {}) else None
        return write_file(path, model, arrays, kind="checkpoint", settings=model and model._settings, state=state)

    def load_checkpoint(self, path):
        """Restore what ``save_checkpoint`` wrote; the next ``fit`` / ``fit_with_lr_decay``
        with the same arguments continues the saved run."""
        header, arrays = read_file(path, "a checkpoint written by RnnlmTrainer.save_checkpoint")
        if header["version"] == 0 and _LEGACY_STATE_KEY in arrays:  # before the one format
            state = json.loads(str(arrays.pop(_LEGACY_STATE_KEY)))
        elif header.get("kind") == "checkpoint":
            state = header["state"]
        else:
            raise ValueError(f"{path} is not a checkpoint written by RnnlmTrainer.save_checkpoint "
                             f"(it holds a {header.get('kind')})")
        optimizer_state = state["optimizer"]
        buffers = {name: _numbered(arrays, f"optimizer_{name}_") for name in optimizer_state["buffers"]}
        self._check_optimizer_matches(path, optimizer_state, buffers)
        self.amp.check_state(state.get("precision"), path)  # checkpoints before precision= were fp32
        load_params(path, into=self.model, dtype=None)  # checks count and shapes before copying
        self.amp.load_state_dict(state.get("precision"))
        self.optimizer.lr = optimizer_state["lr"]
        if optimizer_state["iter"] is not None:
            self.optimizer.iter = optimizer_state["iter"]
        xp_like = self.model.params[0]
        for name, saved in buffers.items():
            setattr(self.optimizer, name, [array_like(b, xp_like) for b in saved])
        model_state = []
        for k, (has_h, has_c) in enumerate(state["model_state"]):
            model_state.append((array_like(arrays[f"state_h_{k:02d}"], xp_like) if has_h else None,
                                array_like(arrays[f"state_c_{k:02d}"], xp_like) if has_c else None))
        if model_state:
            self.model.set_state(model_state)
        for layer, rng_state in zip(getattr(self.model, "dropout_layers", []), state["dropout_rngs"]):
            layer.rng.bit_generator.state = rng_state
        self.time_idx = state["time_idx"]
        self.ppl_list = state["ppl_list"]
        self.current_epoch = state["current_epoch"]
        self.valid_ppl_list = state["valid_ppl_list"]
        self.best_ppl = state["best_ppl"]
        self.elapsed = state["elapsed"]
        self._run = state["run"]
        self._resuming = True
        return self


    def _check_optimizer_matches(self, path, optimizer_state, buffers):
        """Refuse, before anything changes, a checkpoint of another optimizer type (an Adam
        checkpoint into SGD would silently swap the learning rate and drop the moments) or
        whose optimizer state does not fit this model's parameters."""
        ours = _optimizer_kind(self.optimizer)
        saved = optimizer_state.get("type")  # checkpoints before the type was recorded lack it
        if saved is not None and saved != ours:
            raise ValueError(f"{path} was saved with optimizer {saved}, but this trainer's optimizer is {ours}; "
                             f"resume with {saved}")
        for name in buffers:
            if saved is None and name not in type(self.optimizer).state_names:
                raise ValueError(f"{path} holds optimizer state {name!r}, which {ours} does not keep: it was "
                                 "saved with another optimizer type")
        shapes = [tuple(p.shape) for p in self.model.params]
        for name, saved_buffers in buffers.items():
            saved_shapes = [tuple(b.shape) for b in saved_buffers]
            if saved_shapes != shapes:
                raise ValueError(f"{path}: the optimizer state {name!r} holds {len(saved_shapes)} arrays of shapes "
                                 f"{saved_shapes}, but the model has {len(shapes)} params of shapes {shapes}")


def _optimizer_kind(optimizer) -> str:
    """The library optimizer ``optimizer`` is (a user's subclass of SGD is an SGD): the name
    of the nearest class of ``fastnlp.optim`` it derives from, else its own class name."""
    from . import optim

    for cls in type(optimizer).__mro__:
        if cls.__module__ == optim.__name__ and cls is not optim.Optimizer:
            return cls.__name__
    return type(optimizer).__name__


def _numbered(arrays, prefix):
    """The arrays named ``prefix + number``, in numeric order ('_10000' sorts before '_9999' as text)."""
    keys = [k for k in arrays if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return [arrays[k] for k in sorted(keys, key=lambda k: int(k[len(prefix):]))]


_NEVER = 2**62  # a checkpoint interval no run reaches: fit_with_lr_decay saves after validation


def eval_perplexity(model, corpus, batch_size: int = 10, time_size: int = 35) -> float:
    """Perplexity of ``model`` on ``corpus`` (1-D ids), batched as the book's eval_perplexity:
    ``batch_size`` streams, ``(len - 1) // (batch_size * time_size)`` iterations, state carried.

    The model is evaluated from a reset state with dropout off; its hidden state and mode are
    restored afterwards.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    time_size = check_positive_int("time_size", time_size)
    corpus = _check_corpus("corpus", corpus, getattr(model, "vocab_size", None))
    corpus_size = len(corpus)
    max_iters = (corpus_size - 1) // (batch_size * time_size)
    if max_iters == 0:
        raise ValueError(f"the corpus of {corpus_size} ids is shorter than one batch of batch_size x time_size + 1 "
                         f"= {batch_size * time_size + 1} ids")
    jump = (corpus_size - 1) // batch_size
    saved_state = model.get_state() if hasattr(model, "get_state") else None
    dropout_layers = getattr(model, "dropout_layers", [])
    saved_modes = [layer.training for layer in dropout_layers]
    # Asked once, not found out by calling forward and catching TypeError: that swallowed real
    # errors raised inside forward and ran it twice, advancing the hidden state twice.
    evaluation_flag = _forward_takes_train_flg(model)
    model.reset_state()
    total = 0.0

    def batches():
        for iters in range(max_iters):
            offsets = iters * time_size + np.arange(batch_size) * jump
            idx = _device.like((offsets[:, None] + np.arange(time_size)) % corpus_size, corpus)
            yield corpus[idx], corpus[(idx + 1) % corpus_size]

    try:
        with contextlib.closing(_device.batches_to(batches(), model)) as on_device:  # where the model is
            for xs, ts in on_device:
                loss = model.forward(xs, ts, train_flg=False) if evaluation_flag else model.forward(xs, ts)
                total += float(loss)
    finally:
        if saved_state is not None:
            model.set_state(saved_state)
        for layer, mode in zip(dropout_layers, saved_modes):
            layer.train(mode)
    return math.exp(total / max_iters)


_TAKES_TRAIN_FLG: dict = {}  # model class -> whether its forward accepts train_flg=


def _forward_takes_train_flg(model) -> bool:
    """Whether ``model.forward`` accepts ``train_flg=`` (BetterRnnlm's switch for dropout), from
    its signature, cached per model class (unless the instance carries its own forward)."""
    own = "forward" in getattr(model, "__dict__", {})
    if not own and type(model) in _TAKES_TRAIN_FLG:
        return _TAKES_TRAIN_FLG[type(model)]
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a compiled forward): call it plainly
        takes = False
    else:
        takes = any(p.name == "train_flg" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    or p.kind == p.VAR_KEYWORD for p in parameters)
    if not own:
        _TAKES_TRAIN_FLG[type(model)] = takes
    return takes


def generate_text(model, start, word_to_id, id_to_word, length: int = 100, skip_words=None,
                  sampling: str = "sample", temperature: float = 1.0, top_k: int | None = None,
                  seed: int | None = None) -> str:
    """Words generated by ``model.generate`` after ``start`` (a word, or words separated by
    spaces, or a list of words), joined by spaces with each ``<eos>`` shown as a sentence end,
    as the book prints them. ``skip_words`` (e.g. ``["<unk>", "N"]``) are never produced.

    As in the book, each next word is drawn from the model's distribution
    (``sampling="sample"``, softened or sharpened by ``temperature``, restricted to the
    ``top_k`` most probable words when given, repeatable with ``seed``); ``sampling="greedy"``
    takes the most probable word every time, which tends to repeat itself ("the the the")."""
    words = start.split() if isinstance(start, str) else list(start)
    unknown = [w for w in list(words) + list(skip_words or []) if w not in word_to_id]
    if unknown:
        raise KeyError(f"word {unknown[0]!r} is not in the vocabulary")
    skip_ids = [word_to_id[w] for w in skip_words] if skip_words else None
    ids = model.generate([word_to_id[w] for w in words], length, skip_ids=skip_ids, sampling=sampling,
                         temperature=temperature, top_k=top_k, seed=seed)
    return " ".join(id_to_word[int(i)] for i in ids).replace(" <eos>", ".\n")


def _batch_at(x, t, time_idx, batch_size, time_size):
    """The book's batch at ``time_idx``: ``batch_size`` streams ``len(x) // batch_size`` apart,
    ``time_size`` ids of each (wrapping around the end), indexed where the corpus lives."""
    data_size = len(x)
    jump = data_size // batch_size
    offsets = np.arange(batch_size) * jump
    idx = (offsets[:, None] + time_idx + np.arange(time_size)) % data_size
    idx = _device.like(idx, x)  # index the corpus where it lives
    return x[idx], t[idx]


def _check_corpus(name, ids, vocab_size):
    ids = np.asarray(ids) if not hasattr(ids, "dtype") else ids
    if ids.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of word ids, got shape {tuple(ids.shape)}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer word ids, got dtype {ids.dtype}")
    if len(ids) == 0:
        raise ValueError(f"{name} is empty")
    if vocab_size is not None:
        try:
            check_ids(ids, vocab_size, what="word id")
        except IndexError as exc:
            raise IndexError(f"{name}: {exc} (the model's vocabulary size)") from None
    return ids
