"""The book's Trainer: mini-batch loop, optional clipping, loss history, progress bar."""
from __future__ import annotations

import math
import time

import numpy as np

from .kernels.dispatch import array_module
from .layers.base import NonFiniteError
from .optim import TiedParams, check_positive_finite, check_positive_int, clip_grads


class Trainer:
    """Train ``model`` (``forward(x, t) -> loss``, ``backward()``, ``params``, ``grads``).

    Tied parameters (the same array, or its transpose, listed twice) are found once, here,
    and updated once per step with their gradients summed (optim.TiedParams)."""

    def __init__(self, model, optimizer, seed: int | None = None):
        self.model, self.optimizer = model, optimizer
        self.ties = TiedParams(model.params)
        self.loss_list: list[float] = []
        self.eval_interval = None
        self.rng = np.random.default_rng(seed)

    def fit(self, x, t, max_epoch: int = 10, batch_size: int = 32, max_grad: float | None = None,
            eval_interval: int | None = 20, progress: bool = True):
        """Shuffle each epoch, step the optimizer per batch, record the mean loss every
        ``eval_interval`` iterations (None: once per epoch). Returns the loss history.

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
        iters_per_epoch = n // batch_size
        interval = iters_per_epoch if eval_interval is None else check_positive_int("eval_interval", eval_interval)
        interval = min(interval, max_epoch * iters_per_epoch)
        self.eval_interval = interval
        bar = progress_bar(max_epoch * iters_per_epoch, progress)
        total_loss, loss_count = 0.0, 0
        start = time.time()
        try:
            for epoch in range(max_epoch):
                order = self.rng.permutation(n)
                for it in range(iters_per_epoch):
                    batch = xp.asarray(order[it * batch_size:(it + 1) * batch_size])
                    try:
                        loss = self._step(x[batch], t[batch], max_grad)
                    except NonFiniteError as exc:  # say when, not only where
                        raise NonFiniteError(f"NaN or inf at epoch {epoch + 1}, iteration {it + 1} "
                                             f"(training diverged?): {exc}") from exc
                    total_loss += loss
                    loss_count += 1
                    if loss_count == interval:
                        self.loss_list.append(total_loss / loss_count)
                        total_loss, loss_count = 0.0, 0
                        bar.set_postfix(epoch=epoch + 1, loss=f"{self.loss_list[-1]:.4f}",
                                        time=f"{time.time() - start:.0f}s")
                    bar.update(1)
        finally:
            bar.close()
        return self.loss_list

    def _step(self, x, t, max_grad):
        loss = float(self.model.forward(x, t))
        if not math.isfinite(loss):
            raise NonFiniteError(f"loss became {loss}")
        self.model.backward()
        grads = self.ties.merge(self.model.grads)
        if max_grad is not None:
            clip_grads(grads, max_grad)
        self.optimizer.update(self.ties.params, grads)
        return loss

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
        if ylim is not None:
            ax.set_ylim(*ylim)
        if path is not None:
            save_figure(fig, path, "the loss curve")
        return fig


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def progress_bar(total, enabled, initial=0):
    """A tqdm bar over ``total`` iterations starting at ``initial``, or a silent stand-in."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="it", leave=False)
