"""Embedding lookup; its backward is the scatter-add kernel. Its gradient is row-sparse."""
from __future__ import annotations

import numpy as np

from ..kernels import embedding_gather, scatter_add
from ..kernels.dispatch import array_module
from ..kernels.memory import aligned_zeros_like
from ..kernels.validate import as_id_array
from .base import Layer, check_dout, check_param


class RowSparseGrad(np.ndarray):
    """A dense gradient array that also knows which of its rows can be non-zero.

    It is the (V, D) array the book's contract promises (read it, copy it, compare it: every
    row is right) plus ``rows``: the sorted, unique ids of the rows the last backward wrote,
    or None when unknown. Every other row is zero, so optimizers that understand ``rows``
    (optim.SGD, AdaGrad, Adam) update only those rows, and the norm of the gradient is the
    norm of those rows. Views and arithmetic results are plain dense arrays again (``rows`` is
    None on them): only the layer's own buffer carries the promise.

    Invariant (the layer that owns the buffer keeps it): nothing but that layer writes
    non-zeros into the buffer outside ``rows``; scaling it in place (gradient clipping) is
    fine. Whoever breaks that must set ``rows = None`` (then everything treats it as dense).
    NumPy only: on CuPy, layers keep plain dense gradients.
    """

    rows = None

    def __array_finalize__(self, obj):
        self.rows = None

    @classmethod
    def zeros_like(cls, W):
        """A zero gradient for parameter ``W``: a RowSparseGrad for NumPy arrays, a plain
        zero array on other devices."""
        if not isinstance(W, np.ndarray):
            return array_module(W).zeros_like(W)
        return aligned_zeros_like(np.asarray(W)).view(cls)  # aligned: products write into it (TiedParams)

    def dense(self) -> np.ndarray:
        """The same memory as a plain ndarray (what kernels are handed)."""
        return self.view(np.ndarray)


def row_ids(grad):
    """The rows of ``grad`` that can be non-zero (sorted unique int64 ids), or None when every
    row may be: dense arrays, CuPy arrays and RowSparseGrads without ``rows``."""
    return grad.rows if isinstance(grad, RowSparseGrad) else None


def plain(grad):
    """``grad`` as a plain array (a RowSparseGrad's memory seen as an ndarray)."""
    return grad.view(np.ndarray) if isinstance(grad, RowSparseGrad) else grad


class SparseRows:
    """What a layer with a row-sparse gradient shares: zero the rows the previous backward
    wrote, then record the rows this one writes (``grads[0].rows``). Costs O(touched rows),
    not O(V x D): zeroing a 10000 x 650 gradient costs more than the scatter itself."""

    def __init__(self):
        self._touched = None
        self._mark = None  # (V,) bool scratch, all False between calls

    def clear(self, dW):
        """Zero the rows written last time; returns the buffer to write into (plain array)."""
        if self._touched is not None:
            plain(dW)[self._touched] = 0
        return plain(dW)

    def record(self, dW, ids):
        self._touched = self._unique(ids.reshape(-1), dW.shape[0])
        if isinstance(dW, RowSparseGrad):
            dW.rows = self._touched

    def _unique(self, ids, vocab):
        """Sorted unique ids. Marking rows in a (V,) scratch and reading them back costs a
        pass over V bytes (about 0.3 ns a word), several times cheaper than np.unique's sort
        (about 10 us + 40 ns an id) for a batch against a vocabulary of ten thousand; for far
        larger vocabularies than ids the sort wins."""
        xp = array_module(ids)
        if xp is not np or vocab > 32768 + 128 * ids.size:
            return xp.unique(ids)
        if self._mark is None or self._mark.shape[0] != vocab:
            self._mark = np.zeros(vocab, dtype=bool)
        self._mark[ids] = True
        rows = np.flatnonzero(self._mark)
        self._mark[rows] = False
        return rows


class Embedding(Layer):
    """Row lookup ``W[idx]`` for integer ids of any shape (an array or a list of ints); backward
    scatter-adds into the (V, D) gradient.

    ``grads[0]`` is a :class:`RowSparseGrad`: a dense array whose ``rows`` names the rows the
    last backward touched, so optimizers update only those. Backward zeroes only the rows its
    previous call touched instead of all V rows. Invariant: nothing but this layer writes
    non-zeros into ``grads[0]`` (scaling it in place, as gradient clipping does, is fine).
    """

    def __init__(self, W):
        self.params = [check_param(W, "Embedding", "W", 2)]
        self.grads = [RowSparseGrad.zeros_like(W)]
        self.idx = None
        self._rows = SparseRows()

    def forward(self, idx):
        out = embedding_gather(self.params[0], idx)  # validates the ids
        self.idx = as_id_array(idx, like=self.params[0])  # an array, whatever was passed
        return out

    def backward(self, dout):
        (dW,) = self.grads
        idx = self.saved("idx")
        dout = check_dout(dout, tuple(idx.shape) + dW.shape[1:], "Embedding.backward")
        scatter_add(self._rows.clear(dW), idx, dout)
        self._rows.record(dW, idx)
        return None
