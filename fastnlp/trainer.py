"""The book's Trainer: mini-batch loop, optional clipping, loss history, progress bar."""
from __future__ import annotations

import math
import time

import numpy as np

from .kernels.dispatch import array_module
from .optim import clip_grads, remove_duplicate


class Trainer:
    """Train ``model`` (``forward(x, t) -> loss``, ``backward()``, ``params``, ``grads``)."""

    def __init__(self, model, optimizer, seed: int | None = None):
        self.model, self.optimizer = model, optimizer
        self.loss_list: list[float] = []
        self.eval_interval = None
        self.rng = np.random.default_rng(seed)

    def fit(self, x, t, max_epoch: int = 10, batch_size: int = 32, max_grad: float | None = None,
            eval_interval: int | None = 20, progress: bool = True):
        """Shuffle each epoch, step the optimizer per batch, record the mean loss every
        ``eval_interval`` iterations (None: once per epoch). Raises FloatingPointError as
        soon as the loss becomes NaN or infinite. Returns the loss history."""
        n = len(x)
        if n == 0:
            raise ValueError("no training data")
        if len(t) != n:
            raise ValueError(f"{n} inputs but {len(t)} targets")
        if batch_size < 1 or max_epoch < 0:
            raise ValueError("batch_size must be >= 1 and max_epoch >= 0")
        xp = array_module(x)  # batches index x and t where they live (host or GPU)
        iters_per_epoch = max(n // batch_size, 1)
        interval = eval_interval or iters_per_epoch
        self.eval_interval = interval
        bar = _progress_bar(max_epoch * iters_per_epoch, progress)
        total_loss, loss_count = 0.0, 0
        start = time.time()
        try:
            for epoch in range(max_epoch):
                order = self.rng.permutation(n)
                for it in range(iters_per_epoch):
                    batch = xp.asarray(order[it * batch_size:(it + 1) * batch_size])
                    loss = float(self.model.forward(x[batch], t[batch]))
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1}, iteration {it + 1}")
                    self.model.backward()
                    params, grads = remove_duplicate(self.model.params, self.model.grads)
                    if max_grad is not None:
                        clip_grads(grads, max_grad)
                    self.optimizer.update(params, grads)
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

    def plot(self, path="loss.png", ylim=None):
        """Save the loss curve as a PNG (needs matplotlib: pip install 'fastnlp[plot]')."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("Trainer.plot needs matplotlib: pip install 'fastnlp[plot]'") from exc
        fig, ax = plt.subplots()
        ax.plot(np.arange(len(self.loss_list)), self.loss_list, label="train")
        ax.set_xlabel(f"iterations (x{self.eval_interval})")
        ax.set_ylabel("loss")
        if ylim is not None:
            ax.set_ylim(*ylim)
        fig.savefig(path)
        plt.close(fig)
        return path


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total, enabled):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="it", leave=False)
