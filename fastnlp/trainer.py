"""The book's Trainer: mini-batch loop, optional clipping, loss history, progress bar."""
from __future__ import annotations

import contextlib
import sys
import time

import numpy as np

from . import device as _device
from .amp import TrainsInPrecision
from .kernels.dispatch import array_module
from .layers.base import NonFiniteError
from .optim import TiedParams, check_positive_finite, check_positive_int


class Trainer(TrainsInPrecision, _device.FollowsItsModel):
    """Train ``model`` (``forward(x, t) -> loss``, ``backward(dout=1)``, ``params``, ``grads``).

    Tied parameters (the same array, or its transpose, listed twice) are found once, here,
    and updated once per step with their gradients summed (optim.TiedParams).

    ``precision``: "fp32" (the default: the plain loop), "bf16-mixed", "fp16-mixed", "bf16",
    "fp16" or "simulate:<format>" (see ``fastnlp.amp``); ``rounding`` ("nearest" or
    "stochastic", seeded by ``seed``) rounds the weights of the pure low-precision modes;
    ``loss_scaling`` (None: on for fp16-mixed only; True, False, or a ``fastnlp.amp.GradScaler``)
    scales the loss's gradient. ``skipped_steps``, ``loss_scale`` and ``grad_underflow`` report
    on it after ``fit``.

    ``device``: ``"cuda"`` (``"gpu"``, ``"cuda:0"``) or ``"cpu"`` moves the model (and the
    optimizer's state) there now; None uses ``fastnlp.set_device``'s choice, and without one
    leaves the model where it is. Every batch goes to the model's device before its forward
    (the data may stay on the host; on a GPU through pinned buffers, the next batch's copy
    running during the current step: ``fastnlp.device.batches_to``)."""

    def __init__(self, model, optimizer, seed: int | None = None, precision: str = "fp32", *,
                 rounding: str = "nearest", loss_scaling=None, device=None):
        self.model, self.optimizer = model, optimizer
        self._set_precision(precision, rounding, loss_scaling, 0 if seed is None else seed)
        self.device = _place_model(model, optimizer, device)
        self.ties = TiedParams(model.params)
        self._param_ids = [id(p) for p in model.params]
        self.loss_list: list[float] = []
        self.eval_interval = None
        self.rng = np.random.default_rng(seed)

    def fit(self, x, t, max_epoch: int = 10, batch_size: int = 32, max_grad: float | None = None,
            eval_interval: int | None = 20, progress=True):
        """Shuffle each epoch, step the optimizer per batch, record the mean loss every
        ``eval_interval`` iterations (None: once per epoch, as in ``RnnlmTrainer.fit``).
        Returns the loss history.

        ``progress``: True reports on stderr (a bar with iterations/s and the time left on a
        terminal, one line per epoch in a log file, and a summary line at the end), False is
        silent, a text stream reports there (see ``fastnlp.trainer.progress_bar``).

        ``max_epoch``, ``batch_size`` and ``eval_interval`` are positive integers; ``max_grad``
        (clip the global gradient norm to it) positive and finite. A ``batch_size`` above the
        data size means one batch of all the data per epoch, and an ``eval_interval`` above the
        run's iteration count records once, at the end (``self.eval_interval`` says which was
        used), so the history is never empty. Raises ``NonFiniteError`` (a ValueError) for NaN/inf
        in the data, and (a FloatingPointError) naming the epoch and iteration as soon as
        training diverges: NaN or inf in the loss, an activation or a gradient."""
        n = len(x)
        if n == 0:
            raise ValueError("no training data")
        if len(t) != n:
            raise ValueError(f"{n} inputs but {len(t)} targets")
        for name, data in (("inputs", x), ("targets", t)):
            # Checked once here, so that NaN met during training means training diverged.
            if getattr(data, "dtype", None) is not None and data.dtype.kind == "f" \
                    and not bool(array_module(data).isfinite(data).all()):
                raise NonFiniteError(f"training {name} contain NaN or inf")
        max_epoch = check_positive_int("max_epoch", max_epoch)
        batch_size = min(check_positive_int("batch_size", batch_size), n)
        if max_grad is not None:
            max_grad = check_positive_finite("max_grad", max_grad)
        xp = array_module(x)  # batches index x and t where they live (host or GPU)
        self._follow_model()
        iters_per_epoch = n // batch_size
        interval = iters_per_epoch if eval_interval is None else check_positive_int("eval_interval", eval_interval)
        interval = min(interval, max_epoch * iters_per_epoch)
        self.eval_interval = interval
        bar = progress_bar(max_epoch * iters_per_epoch, progress, unit="it", desc="Trainer",
                           epoch_size=iters_per_epoch)
        total_loss, loss_count = 0.0, 0

        def batches():  # drawn lazily: each epoch's shuffle when its first batch is asked for
            for epoch in range(max_epoch):
                order = self.rng.permutation(n)
                for it in range(iters_per_epoch):
                    batch = xp.asarray(order[it * batch_size:(it + 1) * batch_size])
                    yield x[batch], t[batch], epoch, it

        try:
            with self.amp.attached(self.model, self.ties.params), \
                    contextlib.closing(_device.batches_to(batches(), self.model)) as on_device:
                for x_batch, t_batch, epoch, it in on_device:
                    try:
                        loss = self._step(x_batch, t_batch, max_grad)
                    except NonFiniteError as exc:  # say when, not only where
                        raise type(exc)(f"NaN or inf at epoch {epoch + 1}, iteration {it + 1} "
                                             f"(training diverged?): {exc}") from exc
                    if loss is not None:  # None: a step skipped by loss scaling, its loss inf/NaN
                        total_loss += loss
                        loss_count += 1
                    if loss_count == interval:
                        self.loss_list.append(total_loss / loss_count)
                        total_loss, loss_count = 0.0, 0
                        bar.set_postfix(epoch=epoch + 1, loss=self.loss_list[-1], **self._precision_postfix())
                    bar.update(1)
        finally:
            bar.close()
        return self.loss_list

    def _step(self, x, t, max_grad):
        return self._train_step(lambda: self.model.forward(x, t), max_grad)

    def plot(self, path="loss.png", ylim=None):
        """The loss curve as a matplotlib Figure, also saved to ``path`` unless it is None
        (atomically, in the format of its suffix: ``.png``, ``.pdf``, ``.svg``, ...; a bad suffix
        is refused before anything is drawn). Needs matplotlib: pip install 'fastnlp[plot]'."""
        from .plot import check_figure_path, new_figure, save_figure

        if path is not None:
            check_figure_path(path, "the loss curve")
        fig = new_figure("Trainer.plot")
        ax = fig.subplots()
        ax.plot(np.arange(len(self.loss_list)), self.loss_list, label="train")
        ax.set_xlabel(f"iterations (x{self.eval_interval})")
        ax.set_ylabel("loss")
        ax.set_title("training loss")
        if ylim is not None:
            ax.set_ylim(*ylim)
        if path is not None:
            save_figure(fig, path, "the loss curve")
        return fig


def _place_model(model, optimizer, device):
    """Move ``model`` and ``optimizer``'s state to ``device`` (None: ``fastnlp.set_device``'s
    choice, else nowhere); returns where the model is."""
    if device is None:
        device = _device.get_device()
    if device is not None:
        device = _device.require(device)
        if hasattr(model, "to"):
            model.to(device)
        else:  # a user's model with the book's params/grads lists and no to(): moved all the same
            _device.move(model, device)
        _device.move_optimizer_state(optimizer, list(model.params))
    return _device.model_device(model)


class _NoBar:
    """What ``progress=False`` gets: a progress report that says nothing."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def end_epoch(self, epoch, **values):
        pass

    def close(self):
        pass


class Progress:
    """How far a training run is, on ``stream`` (default: stderr).

    On a terminal (or in a notebook) a tqdm bar shows the count, the throughput (``unit``/s)
    and the time left, and vanishes when the run ends; anywhere else (a log file, a pipe) it
    writes one plain line per epoch instead of carriage-return redraws. Either way ``close``
    leaves one summary line: the count, the time, the throughput and the last values given
    to ``set_postfix`` (the loss, say).

    ``epoch_size``: units per epoch, for a line at the end of each (or call ``end_epoch``);
    ``epoch_offset`` and ``epochs`` number the epochs when the report covers part of a longer
    schedule.
    """

    def __init__(self, total, *, initial=0, unit="it", desc="training", epoch_size=None, epoch_offset=0,
                 epochs=None, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.n, self.initial = total, initial, initial
        self.unit, self.desc = unit, desc
        self.epoch_size = epoch_size or None
        self.epoch_offset = epoch_offset
        self.epochs = epochs if epochs is not None or not self.epoch_size else \
            epoch_offset + -(-total // self.epoch_size)
        self.postfix: dict = {}
        self.start = time.perf_counter()
        self._closed = False
        self._bar = None
        if _interactive(self.stream):
            from tqdm import tqdm
            from tqdm.auto import tqdm as auto_tqdm

            bar_class = tqdm if _isatty(self.stream) else auto_tqdm  # auto: a notebook widget
            self._bar = bar_class(total=total, initial=initial, unit=unit, desc=desc, leave=False, file=self.stream,
                                  unit_scale=unit != "it", smoothing=0.1, dynamic_ncols=True)

    def update(self, n=1):
        before, self.n = self.n, self.n + n
        if self._bar is not None:
            self._bar.update(n)
        elif self.epoch_size and self.n // self.epoch_size > before // self.epoch_size:
            self._epoch_line(self.n // self.epoch_size)

    def end_epoch(self, epoch, **values):
        """Record ``values`` (an epoch's loss, known only once it is over) and, off a terminal,
        write the line of ``epoch`` (counted from 1 within this report): for callers that make
        no ``epoch_size`` lines because their values come after the epoch's last ``update``."""
        self.set_postfix(**values)
        if self._bar is None:
            self._epoch_line(epoch)

    def _epoch_line(self, epoch):
        self._write(f"{self.desc} epoch {self.epoch_offset + epoch}/{self.epochs}: "
                    f"{_count(self.n)}/{_count(self.total)} {self.unit}, {self._timing(eta=True)}{self._values()}")

    def set_postfix(self, **values):
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix({k: _shown(v) for k, v in self.postfix.items()}, refresh=False)

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        done = self.n - self.initial
        stopped = "" if self.n >= self.total else f" (stopped at {_count(self.n)}/{_count(self.total)})"
        self._write(f"{self.desc}: {_count(done)} {self.unit} in {self._timing()}{stopped}{self._values()}")

    # ----- formatting -------------------------------------------------------------------------
    def _timing(self, eta=False):
        elapsed = time.perf_counter() - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else float("inf")
        text = f"{_duration(elapsed)}, {_count(rate)} {self.unit}/s"
        if eta and rate > 0 and self.n < self.total:
            text += f", ETA {_duration((self.total - self.n) / rate)}"
        return text

    def _values(self):
        return "".join(f", {k} {_shown(v)}" for k, v in self.postfix.items() if k != "epoch")

    def _write(self, line):
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the training
            pass


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _interactive(stream):
    """A terminal, or the notebook's own stderr/stdout (where tqdm.auto draws a widget)."""
    if _isatty(stream):
        return True
    return "ipykernel" in sys.modules and stream in (sys.stderr, sys.stdout)


def _shown(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _count(x):
    """1234567 -> '1.23M', 12345 -> '12.3k', 97.61 -> '97.6', 12 -> '12'."""
    if x == float("inf"):
        return "inf"
    for limit, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if x >= limit:
            return f"{x / scale:.3g}{suffix}"
    if isinstance(x, float) and x != int(x):
        return f"{x:.0f}" if x >= 100 else f"{x:.3g}"
    return str(int(x))


def _duration(seconds):
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def progress_bar(total, enabled, initial=0, **options):
    """A :class:`Progress` over ``total`` units starting at ``initial``, or a silent stand-in.

    ``enabled``: True (report on stderr), False (silent: what a CLI's ``--quiet`` passes,
    ``progress=not args.quiet``) or a text stream to report on (``sys.stdout``, a log file).
    ``options`` go to :class:`Progress` (unit, desc, epoch_size, ...)."""
    if enabled is None or enabled is False:
        return _NoBar()
    stream = None if enabled is True else enabled
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise TypeError(f"progress must be True, False or a text stream to write to, got {enabled!r}")
    return Progress(total, initial=initial, stream=stream, **options)
