"""Optimizers that update parameter arrays in place, plus the Trainer's gradient helpers.

Bad arguments raise at once: TypeError/ValueError for a hyperparameter or array that cannot be
used, NonFiniteError (a FloatingPointError and a ValueError) for a NaN/inf gradient, which would
poison every parameter it touches.

Row-sparse gradients (``layers.RowSparseGrad``, what Embedding and EmbeddingDot write: a dense
array plus the rows a batch touched) are read as what they are, dense arrays, except where only
the touched rows matter: the finite check, ``global_norm``/``clip_grads``, ``TiedParams.merge``
of untransposed ties, and the updates of SGD and AdaGrad (exactly the dense result: the other
rows' gradient is zero) and ``Adam(lazy=True)`` (rows a batch does not touch keep their moments
and values, as TensorFlow's LazyAdam and PyTorch's SparseAdam; the default ``lazy=False`` is the
book's dense update, since lazy Adam is another algorithm, chosen explicitly). Momentum, Nesterov and RMSprop always update densely (their state
moves rows a zero gradient does not). Arithmetic stays in the parameter's dtype: scalars are
Python floats, never NumPy float64 scalars, which NumPy 2 would promote float32 arrays with.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .kernels import sgd_update
from .kernels.dispatch import array_module
from .kernels.memory import memory_signature
from .kernels.threads import parallel_rows
from .layers.base import NonFiniteError
from .layers.embedding import RowSparseGrad, plain, row_ids


def check_positive_finite(name, value):
    """``value`` as a float if it is a real number, finite and > 0 (learning rates, norms, eps)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return float(value)


def check_positive_int(name, value):
    """``value`` as an int if it is an integer >= 1 (epochs, batch sizes, intervals)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _check_fraction(name, value):
    """A decay factor in [0, 1): 1 or more would let the running averages grow without bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


class Optimizer:
    """``update(params, grads)`` changes every ``params[i]`` in place from ``grads[i]``.

    Per-parameter state is keyed by position, so pass the lists in the same order each step.
    ``state_names`` names the per-parameter buffer lists a subclass keeps (checkpoints save them).
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float):
        self.lr = check_positive_finite("learning rate", lr)

    def update(self, params, grads, *, finite=False, grad_scale=1.0):
        """``finite=True``: the caller has just found every gradient finite (``clip_rate``
        raises otherwise), so the pass that checks it again is skipped. ``grad_scale`` (the
        clipping rate): the update of the gradients times it, with the bits of scaling them in
        place first (:func:`clip_grads`), which optimizers that can fold it (SGD) do without
        writing the gradients."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} params but {len(grads)} grads")
        for i, (p, g) in enumerate(zip(params, grads)):
            for what, a in (("param", p), ("gradient", g)):
                if not hasattr(a, "dtype") or not hasattr(a, "shape"):
                    raise TypeError(f"{what} {i} must be an array, got {type(a).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"param {i} has dtype {p.dtype}; only floating-point params can be updated")
            if g.dtype.kind not in "iuf":
                raise TypeError(f"gradient {i} has dtype {g.dtype}; gradients must be real numbers")
            if p.shape != g.shape:
                raise ValueError(f"param {i} has shape {p.shape} but its gradient {g.shape}")
            if not finite and not _all_finite(_touched(g)):
                raise NonFiniteError(f"gradient {i} contains NaN or inf")
        grad_scale = check_positive_finite("grad_scale", grad_scale)
        if grad_scale == 1.0:
            self._update(params, grads)
        elif getattr(type(self)._update, "folds_grad_scale", False):
            self._update(params, grads, grad_scale)
        else:  # an _update of (params, grads) only, a subclass's override included
            _scale_gradients(grads, grad_scale)
            self._update(params, grads)

    def _state(self, params, name):
        """A zero buffer per parameter, created on first use."""
        buffers = getattr(self, name, None)
        if buffers is None:
            buffers = [array_module(p).zeros_like(p) for p in params]
            setattr(self, name, buffers)
        elif [b.shape for b in buffers] != [p.shape for p in params]:
            # zip() would silently skip params or pair a buffer with the wrong one.
            raise ValueError(f"this optimizer's state holds {len(buffers)} params of shapes "
                             f"{[tuple(b.shape) for b in buffers]}, but update got {len(params)} of shapes "
                             f"{[tuple(p.shape) for p in params]}; pass the same params every step")
        elif any(array_module(b) is not array_module(p) for b, p in zip(buffers, params)):
            # The model moved (model.to, Trainer(device=)): the state follows its parameters.
            from .device import like

            buffers = [like(b, p) for b, p in zip(buffers, params)]
            setattr(self, name, buffers)
        return buffers


def update_after_check(optimizer, params, grads, finite: bool, grad_scale: float = 1.0) -> None:
    """``optimizer.update(params, grads)`` of gradients times ``grad_scale`` (a clipping rate),
    telling this module's optimizers when the caller has just found every gradient finite (they
    then skip their own pass over them) and the rate (SGD folds it into its pass); for any other
    update (the book's ``update(params, grads)``, an override, a wrapper set on the instance)
    the gradients are scaled in place first and it is called as it is."""
    update = optimizer.update
    if getattr(update, "__func__", None) is Optimizer.update:
        update(params, grads, finite=finite, grad_scale=grad_scale)
    else:
        if grad_scale != 1.0:
            _scale_gradients(grads, grad_scale)
        update(params, grads)


def takes_tied_sums(optimizer) -> bool:
    """Whether ``optimizer``'s update takes TiedParams.merge(lazy=True)'s unformed sums (SGD)."""
    return (getattr(optimizer.update, "__func__", None) is Optimizer.update
            and getattr(type(optimizer)._update, "takes_tied_sums", False))


def merges_lazily(optimizer, max_grad) -> bool:
    """Whether a step may hand :func:`clip_and_update` the tied gradients unformed
    (TiedParams.merge(lazy=True)): the optimizer's update takes the sums, and the clipping's norm
    pass (max_grad given) checks them for NaN and inf, which the formed arrays would need instead."""
    return max_grad is not None and takes_tied_sums(optimizer)


def clip_and_update(optimizer, params, grads, max_grad) -> None:
    """The Trainer's step after backward: the gradients clipped to the global norm ``max_grad``
    (None: not clipped) and the update, with the clipping rate folded into the update where the
    optimizer can (no pass that scales every gradient in place)."""
    if max_grad is None and any(isinstance(g, TiedSum) for g in grads):  # the finite check wants arrays
        grads = [g.form() if isinstance(g, TiedSum) else g for g in grads]
    rate = 1.0
    if max_grad is not None:
        _, rate = clip_rate(grads, max_grad)  # raises on NaN/inf, so the update need not check again
    update_after_check(optimizer, params, grads, finite=max_grad is not None, grad_scale=rate)


def _all_finite(g) -> bool:
    """No NaN or inf in ``g``: one BLAS dot of it with itself (finite exactly when every value
    is, unless the squares overflow, which is then settled element by element), half the time of
    ``isfinite(g).all()`` and no boolean temporary: 2 ms a step at BetterRnnlm's size."""
    xp = array_module(g)
    if xp is np and (g.dtype == np.float32 or g.dtype == np.float64) and g.flags.c_contiguous:
        v = g.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            if math.isfinite(float(np.dot(v, v))):
                return True
    return bool(xp.isfinite(g).all())


def _subtract_scaled(p, g, lr: float, grad_scale: float = 1.0) -> None:
    """``p -= lr * (grad_scale * g)``: the ``sgd_update`` op (one pass, no temporary of the
    parameter's size, NumPy's bits) where its contract holds, NumPy's expressions for anything
    else (other dtypes, a strided view of a parameter)."""
    if (p.dtype == g.dtype and (p.dtype == np.float32 or p.dtype == np.float64) and p.shape == g.shape
            and p.flags.c_contiguous and getattr(p.flags, "writeable", True)):
        sgd_update(p, g, lr, grad_scale)
    else:
        if grad_scale != 1.0:
            g = g * grad_scale
        p -= lr * g


def _subtract_rows(p, rows, g_rows, lr: float, grad_scale: float) -> None:
    """``p[rows] -= lr * (grad_scale * g_rows)``, with the roundings of scaling the rows first."""
    if grad_scale != 1.0:
        g_rows = g_rows * grad_scale
    p[rows] = _take(p, rows) - lr * g_rows


def _touched(g):
    """The part of ``g`` that can be non-zero: its touched rows, or all of it."""
    rows = row_ids(g)
    return g if rows is None else _take(g, rows)


def _take(a, rows):
    """Rows of a NumPy array (row-sparse gradients are NumPy only): np.take copies rows about
    twice as fast as fancy indexing."""
    return np.take(plain(a), rows, axis=0)


class SGD(Optimizer):
    """``p -= lr * g``; a row-sparse gradient updates only its rows (the same result)."""

    def __init__(self, lr: float = 0.01):
        super().__init__(lr)

    def _update(self, params, grads, grad_scale=1.0):
        for p, g in zip(params, grads):
            if isinstance(g, TiedSum):
                g.sgd_step(p, self.lr, grad_scale)
                continue
            rows = row_ids(g)
            if rows is None:
                _subtract_scaled(p, plain(g), self.lr, grad_scale)
            else:
                _subtract_rows(p, rows, _take(g, rows), self.lr, grad_scale)

    _update.folds_grad_scale = True  # Optimizer.update passes the clipping rate in (see there)
    _update.takes_tied_sums = True  # and TiedParams.merge(lazy=True)'s unformed sums


class Momentum(Optimizer):
    state_names = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum)

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self._state(params, "v")):
            v *= self.momentum
            v -= self.lr * g
            p += v


class Nesterov(Optimizer):
    """Nesterov accelerated gradient in the book's reformulation (Sutskever et al. 2013)."""

    state_names = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum)

    def _update(self, params, grads):
        for p, g, v in zip(params, grads, self._state(params, "v")):
            v *= self.momentum
            v -= self.lr * g
            p += self.momentum * self.momentum * v
            p -= (1 + self.momentum) * self.lr * g


class AdaGrad(Optimizer):
    state_names = ("h",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-7):
        super().__init__(lr)
        self.eps = check_positive_finite("eps", eps)

    def _update(self, params, grads):
        for p, g, h in zip(params, grads, self._state(params, "h")):
            rows = row_ids(g)
            if rows is None:
                self._step(p, plain(g), h)
            else:  # untouched rows: h += 0 and p -= 0, so skipping them is exact
                p_rows, h_rows = _take(p, rows), _take(h, rows)
                self._step(p_rows, _take(g, rows), h_rows)
                p[rows], h[rows] = p_rows, h_rows

    def _step(self, p, g, h):
        h += g * g
        p -= self.lr * g / (np.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    state_names = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99, eps: float = 1e-7):
        super().__init__(lr)
        self.decay_rate = _check_fraction("decay_rate", decay_rate)
        self.eps = check_positive_finite("eps", eps)

    def _update(self, params, grads):
        for p, g, h in zip(params, grads, self._state(params, "h")):
            h *= self.decay_rate
            h += (1 - self.decay_rate) * g * g
            p -= self.lr * g / (np.sqrt(h) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction folded into the step size.

    ``lazy=False`` (the default): every row, every step, as the book (rows without gradient still
    move by their decaying momentum). ``lazy=True``: a row-sparse gradient (Embedding,
    EmbeddingDot) updates only the rows it touched, moments included; bias correction uses the
    global step count. Where a batch touches every row this is exactly the dense update. On the
    book's CBOW (PTB, batch 100) the lazy update costs about a tenth of the dense one per step;
    its loss trails early (3.03 against 2.73 after 600 steps) and meets it by 3000 (2.47 both).
    """

    state_names = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7,
                 lazy: bool = False):
        super().__init__(lr)
        self.beta1, self.beta2 = _check_fraction("beta1", beta1), _check_fraction("beta2", beta2)
        self.eps = check_positive_finite("eps", eps)
        if not isinstance(lazy, (bool, np.bool_)):
            raise TypeError(f"lazy must be True or False, got {lazy!r}")
        self.lazy = bool(lazy)
        self.iter = 0

    def _update(self, params, grads):
        m_state, v_state = self._state(params, "m"), self._state(params, "v")
        self.iter += 1
        # A Python float (math.sqrt, not np.sqrt): NumPy 2 would compute float32 params in
        # float64 with a NumPy float64 scalar.
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for p, g, m, v in zip(params, grads, m_state, v_state):
            rows = row_ids(g) if self.lazy else None
            g = plain(g).astype(p.dtype, copy=False)
            if rows is None:
                self._step(p, g, m, v, lr_t)
            else:
                p_rows, m_rows, v_rows = _take(p, rows), _take(m, rows), _take(v, rows)
                self._step(p_rows, _take(g, rows), m_rows, v_rows, lr_t)
                p[rows], m[rows], v[rows] = p_rows, m_rows, v_rows

    def _step(self, p, g, m, v, lr_t):
        m += (1 - self.beta1) * (g - m)
        v += (1 - self.beta2) * (g * g - v)
        p -= lr_t * m / (np.sqrt(v) + self.eps)


def global_norm(grads) -> float:
    """The L2 norm of all gradients together (of a row-sparse one, its touched rows)."""
    return math.sqrt(sum(g.sum_of_squares() if isinstance(g, TiedSum) else _sum_of_squares(g) for g in grads))


def _sum_of_squares(g) -> float:
    # A BLAS dot in the gradient's dtype: no float64 copy of every gradient each step (29 ms a
    # step at BetterRnnlm's size against 2.6 ms). Only if float32 squares overflow, redo it in float64.
    v = _touched(g).ravel()
    xp = array_module(v)
    with np.errstate(over="ignore"):
        total = float(xp.dot(v, v))
    if not math.isfinite(total) and bool(xp.isfinite(v).all()):
        v = v.astype(np.float64)
        total = float(xp.dot(v, v))
    return total


def clip_grads(grads, max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    ``max_norm`` must be positive and finite (a negative one would flip the gradients, NaN
    would turn clipping off). Returns the norm before clipping. Raises FloatingPointError on a
    NaN/inf gradient, which would otherwise poison every parameter at the next update.
    """
    total, rate = clip_rate(grads, max_norm)
    if rate != 1.0:
        _scale_gradients(grads, rate)
    return total


def clip_rate(grads, max_norm: float) -> tuple:
    """``(norm, rate)``: the global L2 norm of ``grads`` and the factor ``clip_grads`` would
    scale them by (1.0 when the norm is within ``max_norm``), the gradients left as they are.
    Raises FloatingPointError on a NaN/inf gradient, as clip_grads."""
    max_norm = check_positive_finite("max_norm", max_norm)
    total = global_norm(grads)
    if not np.isfinite(total):
        raise NonFiniteError("gradient norm is not finite (NaN or inf in the gradients)")
    rate = max_norm / (total + 1e-6)
    return total, (rate if rate < 1 else 1.0)


def _scale_gradients(grads, rate: float) -> None:
    """Every gradient times ``rate`` in place (a row-sparse one over its rows: the others are zero)."""
    for g in grads:
        rows = row_ids(g)
        if rows is None:
            _scale_in_place(g, rate)
        else:
            plain(g)[rows] *= rate


def _scale_in_place(g, rate: float) -> None:
    """``g *= rate``; a large contiguous host array in blocks on the BLAS threads (elementwise:
    the same bits on any thread count)."""
    if type(g) is np.ndarray and (g.flags.c_contiguous or g.flags.f_contiguous):
        flat = g.ravel(order="K")  # a view of either layout
        parallel_rows(lambda begin, end: np.multiply(flat[begin:end], rate, out=flat[begin:end]), flat.size,
                      flat.size)
    else:
        g *= rate


def _copy_in_place(out, source) -> None:
    """``out[...] = source`` for a host ``out``, its row blocks on the BLAS threads."""
    if type(out) is np.ndarray and out.ndim:
        parallel_rows(lambda begin, end: np.copyto(out[begin:end], source[begin:end]), out.shape[0], out.size)
    else:
        out[...] = source


class TiedParams:
    """Which parameters are one array, found once by identity and reused every step.

    Two entries are tied when they are the same array object, the same memory seen with the
    same shape, strides and dtype, or its transpose (the book's tied input/output embeddings).
    Values are never compared: two zero-initialised parameters are still two parameters.
    ``params`` lists each array once; ``merge(grads)`` sums each tied group's gradients into a
    buffer allocated on first use, so no step allocates a new (V, D) array and no layer's own
    gradient buffer is written by someone else (see Embedding's invariant). A group of
    row-sparse gradients tied without transposes (the book's CBOW with one Embedding per context
    position) is merged over the union of their rows and stays row-sparse.
    """

    def __init__(self, params):
        params = list(params)
        owner = {}  # memory signature -> (index of the first param with it, seen transposed?)
        self._groups = []  # (kept index, [(tied index, transposed), ...]) in order of params
        group_of = {}
        for j, p in enumerate(params):
            if not hasattr(p, "dtype") or not hasattr(p, "shape"):
                raise TypeError(f"param {j} must be an array, got {type(p).__name__}")
            signature = memory_signature(p)
            if signature in owner:
                i, transposed = owner[signature]
                self._groups[group_of[i]][1].append((j, transposed))
                continue
            group_of[j] = len(self._groups)
            self._groups.append((j, []))
            if p.size:  # empty arrays hold no memory to share
                owner[signature] = (j, False)
                owner.setdefault(memory_signature(p.T), (j, True))
        self.params = [params[i] for i, _ in self._groups]
        self._count = len(params)
        self._buffers = {}
        self._written = {}  # group -> rows of its buffer that may be non-zero (None: any)

    def merge(self, grads, *, lazy=False):
        """One gradient per entry of ``params``: a tied group's gradients summed (transposed
        back where the tie is a transpose).

        ``lazy=True`` (for an optimizer whose update takes them, see :class:`TiedSum`): a group
        of one dense gradient and row-sparse ones is returned as a TiedSum, the sum left
        unformed, instead of copied into the group's buffer."""
        if len(grads) != self._count:
            raise ValueError(f"{len(grads)} grads for the {self._count} params the ties were found in")
        merged = []
        for i, tied in self._groups:
            g = grads[i]
            if tied and lazy:
                unformed = TiedSum.of([(g, False)] + [(grads[j], t) for j, t in tied])
                if unformed is not None:
                    merged.append(unformed)
                    continue
            if tied:
                buffer = self._buffers.get(i)
                if buffer is None:
                    buffer = self._buffers[i] = RowSparseGrad.zeros_like(plain(g))
                    self._written[i] = np.empty(0, dtype=np.int64)
                members = [g] + [grads[j] for j, _ in tied]
                if isinstance(buffer, RowSparseGrad) and not any(t for _, t in tied) \
                        and all(row_ids(m) is not None for m in members):
                    self._merge_rows(i, buffer, members)
                else:
                    self._merge_dense(plain(buffer), [(g, False)] + [(grads[j], t) for j, t in tied])
                    if isinstance(buffer, RowSparseGrad):
                        buffer.rows = None
                    self._written[i] = None
                g = buffer
            merged.append(g)
        return merged

    @staticmethod
    def _merge_dense(out, members):
        """``out`` = the sum of ``members`` ((gradient, transposed) pairs), at least one dense:
        the first dense one (else the first) copied, the others added, row-sparse ones over their
        rows only. The book's tied embedding adds a 700-row gradient to the softmax's dense
        (V, D) one: a pass over the touched rows, not over V x D zeros."""
        base = next((k for k, (m, _) in enumerate(members) if row_ids(m) is None), 0)
        first, transposed = members[base]
        _copy_in_place(out, plain(first).T if transposed else plain(first))
        for k, (m, transposed) in enumerate(members):
            if k == base:
                continue
            rows = None if transposed else row_ids(m)
            if rows is None:
                out += plain(m).T if transposed else plain(m)
            else:
                out[rows] += _take(m, rows)

    def _merge_rows(self, i, buffer, members):
        """Sum row-sparse gradients over the union of their rows (the same sums as dense)."""
        out = plain(buffer)
        written = self._written[i]
        if written is None:
            out[...] = 0
        else:
            out[written] = 0
        rows = np.unique(np.concatenate([row_ids(m) for m in members]))
        out[rows] = plain(members[0])[rows]
        for m in members[1:]:
            out[m.rows] += plain(m)[m.rows]
        buffer.rows = self._written[i] = rows


class TiedSum:
    """A tied parameter's gradient left as the sum it is: one dense (V, D) gradient (the book's
    tied softmax weight, written by its product) plus row-sparse ones (the embedding's touched
    rows, summed over their union). Forming it takes a copy of the dense gradient, 26 MB at
    BetterRnnlm's size and 3-4 ms a step on the Xeon; the Trainer's SGD step and the clipping
    norm need only the parts: the norm is the dense part's plus a correction on the touched
    rows, and the update subtracts the dense part, then the rows (equal to the formed sum's
    update up to rounding). ``form()`` gives the plain sum for anything else.
    """

    def __init__(self, dense, rows, values):
        self.dense, self.rows, self.values = dense, rows, values
        self.shape, self.dtype = dense.shape, dense.dtype

    @classmethod
    def of(cls, members):
        """A TiedSum of ``members`` ((gradient, transposed) pairs), or None unless exactly one is
        a dense NumPy array (C-contiguous once transposed back) and the others are row-sparse
        and untransposed."""
        dense = [(m, t) for m, t in members if row_ids(m) is None]
        if len(dense) != 1 or type(dense[0][0]) is not np.ndarray:
            return None
        base = dense[0][0].T if dense[0][1] else dense[0][0]
        if not base.flags.c_contiguous or base.ndim != 2:
            return None
        sparse = [m for m, t in members if row_ids(m) is not None]
        if any(t for m, t in members if row_ids(m) is not None):
            return None
        rows = np.unique(np.concatenate([row_ids(m) for m in sparse])) if sparse else np.empty(0, np.int64)
        values = np.zeros((rows.size, base.shape[1]), base.dtype)
        for m in sparse:
            values[np.searchsorted(rows, m.rows)] += _take(m, m.rows)
        return cls(base, rows, values)

    def sum_of_squares(self) -> float:
        """The squared norm of the sum: the dense part's, corrected on the touched rows."""
        total = _sum_of_squares(self.dense)
        if self.rows.size:
            before = self.dense[self.rows].astype(np.float64)
            after = before + self.values
            total += float(np.einsum("ij,ij->", after, after) - np.einsum("ij,ij->", before, before))
        return total

    def form(self):
        """The sum as one new array."""
        out = self.dense.copy()
        out[self.rows] += self.values
        return out

    def sgd_step(self, p, lr: float, grad_scale: float) -> None:
        """``p -= lr * grad_scale * (dense + rows)``: the dense part in sgd_update's one pass,
        then the touched rows."""
        _subtract_scaled(p, self.dense, lr, grad_scale)
        if self.rows.size:
            _subtract_rows(p, self.rows, self.values, lr, grad_scale)


def remove_duplicate(params, grads):
    """The book's helper: ``(params, grads)`` with each tied parameter once and its gradients summed.

    Ties are found by identity (see TiedParams). Returns new lists; summed gradients are new
    arrays. A training loop should build one ``TiedParams`` and call ``merge`` each step instead,
    as the Trainer does, to find the ties once and reuse the buffers.
    """
    ties = TiedParams(params)
    return ties.params, ties.merge(grads)
