"""Training precision: what ``precision=`` means for ``Trainer``, ``RnnlmTrainer`` and ``Word2Vec``.

``Precision(value, rounding=, loss_scaling=, seed=)`` parses the setting and does the work, so
the trainers only call ``attached`` (around ``fit``) and ``step`` (per iteration). Values:

``"fp32"`` (the default)
    float32 throughout: the trainers run their plain loop, no hook, no copy.
``"bf16-mixed"``
    float32 master weights; every matrix product (``fastnlp.kernels.gemm``) takes bfloat16
    inputs and accumulates in float32 (gemm's ``autocast``: AMX / AVX512-BF16 where the CPU has
    them), everything else (activations, softmax, loss, update) stays float32. The autocast
    cache of bfloat16 weights is cleared after every update.
``"fp16-mixed"``
    float32 master weights; forward and backward see fp16-rounded copies of them (written into
    the parameters for the step, the masters put back before the update), and the outputs and
    input-gradients of every layer, and every parameter gradient, are rounded to fp16 (with
    ``round_to_format``, so fp16 overflow and underflow happen as on hardware); a layer with
    weights also rounds its inputs (the cast autocast puts in front of a 16-bit product). The
    loss and its softmax stay float32, and so do the layers that gather rows instead of
    multiplying (``Embedding``, ``TimeEmbedding``, ``EmbeddingDot``, ``NegativeSamplingLoss``:
    weights, outputs and gradients), as autocast leaves ``embedding`` in float32 and as
    bf16-mixed, which rounds only the operands of products, leaves them. Dynamic loss scaling
    (``GradScaler``, PyTorch's defaults) is on: the backward starts from the scale instead of 1,
    gradients are unscaled in float32 before clipping and the update (PyTorch's order: unscale,
    clip, step), and a step whose gradients hold inf/NaN (an fp16 overflow of a scaled value
    included) is skipped and the scale halved. ``loss_scaling=False`` runs it without, to see
    what underflows.
``"bf16"``, ``"fp16"``
    pure low precision: the weights themselves live in the format (rounded when ``fit`` starts
    and after every update, ``rounding="nearest"`` or ``"stochastic"``), and activations and
    gradients are rounded at layer boundaries (always to nearest, as hardware casts do).
    Optimizer state (momenta, Adam's moments) stays float32. The same as ``"simulate:bf16"`` /
    ``"simulate:fp16"``.
``"simulate:<format>"``
    the pure scheme for any format of ``fastnlp.kernels.round_to_format``: a name (fp16, bf16,
    tf32, e4m3, e5m2) or ``"e<E>m<M>"`` (at most float32's e8m23), so any format can be studied
    on any CPU.

Layer boundaries are the ``fastnlp.layers.Layer`` objects a model holds (found by walking its
attributes: ``model.layers``, ``loss_layer``, an encoder's layers...; a layer inside a layer is
part of it). Their hooks are per-instance wrappers installed by ``attached`` for the duration of
``fit`` and removed afterwards, so the model computes in float32 outside training.

Stochastic rounding of the weights draws from round_to_format's counter-based stream, seeded
by (``seed``, step, parameter), so a run is reproducible and resumes exactly from a checkpoint
(``state_dict``: the setting, the step count, the scaler).
"""
from __future__ import annotations

import math
import numbers
import re
import types
from contextlib import contextmanager, nullcontext

import numpy as np

from .kernels import round_to_format
from .kernels._numba_common import combine_seeds
from .kernels.rounding import FORMATS, ROUNDING_MODES, number_format
from .layers.base import Layer, NonFiniteError
from .kernels.dispatch import array_module
from .layers.embedding import Embedding, plain, row_ids
from .layers.sampling import EmbeddingDot, NegativeSamplingLoss
from .optim import check_positive_finite, check_positive_int, clip_and_update, merges_lazily

try:  # gemm's autocast is new; the other precisions work without it
    from .kernels.gemm import autocast as _gemm_autocast
    from .kernels.gemm import clear_autocast_cache
except ImportError:  # pragma: no cover - an older kernels package
    _gemm_autocast = None

    def clear_autocast_cache():
        pass

# Layers that gather rows instead of multiplying matrices. PyTorch's autocast runs them in the
# weights' dtype (embedding is on none of its lists), bf16-mixed never rounds them (it rounds the
# operands of products): under fp16-mixed they keep float32 too.
GATHER_LAYERS = (Embedding, EmbeddingDot, NegativeSamplingLoss)

PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16", "simulate:<format>")
_ACCEPTED = ("'fp32', 'bf16-mixed', 'fp16-mixed', 'bf16', 'fp16' or 'simulate:<format>' (a format of "
             f"round_to_format: {', '.join(FORMATS)}, or 'e<E>m<M>' such as 'e3m4')")


class LossScaleError(NonFiniteError):
    """The loss scale collapsed: the gradients held inf/NaN at every scale tried."""


class GradScaler:
    """Dynamic loss scaling, the small state machine of PyTorch's ``torch.amp.GradScaler``.

    The loss's backward starts from ``scale`` instead of 1, so small gradients stay above the
    format's underflow; before the update the gradients are divided by it again (``unscale``).
    A step whose gradients hold inf or NaN is skipped and the scale multiplied by
    ``backoff_factor``; after ``growth_interval`` clean steps in a row it is multiplied by
    ``growth_factor``. Should the scale fall below ``min_scale`` (every scale overflows: the
    training itself diverged), ``update`` raises LossScaleError naming the step.
    ``skipped_steps`` lists the (1-based) steps that were skipped.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, min_scale: float = 2.0 ** -24):
        self.scale = check_positive_finite("init_scale", init_scale)
        self.growth_factor = check_positive_finite("growth_factor", growth_factor)
        self.backoff_factor = check_positive_finite("backoff_factor", backoff_factor)
        if self.growth_factor <= 1 or self.backoff_factor >= 1:
            raise ValueError(f"growth_factor must be > 1 and backoff_factor < 1, got {growth_factor} and "
                             f"{backoff_factor}")
        self.growth_interval = check_positive_int("growth_interval", growth_interval)
        self.min_scale = check_positive_finite("min_scale", min_scale)
        self.growth_tracker = 0  # clean steps since the scale last changed
        self.skipped_steps: list[int] = []

    def unscale(self, grads) -> bool:
        """Divide ``grads`` by the scale in place (float32 arithmetic; a power of two is exact);
        returns False, changing nothing, if any of them holds inf or NaN."""
        for g in grads:
            rows = row_ids(g)
            touched = plain(g) if rows is None else plain(g)[rows]
            if not bool(np.isfinite(touched).all()):
                return False
        inverse = 1.0 / self.scale
        for g in grads:
            rows = row_ids(g)
            if rows is None:
                g *= inverse
            else:
                plain(g)[rows] *= inverse
        return True

    def update(self, found_inf: bool, step: int) -> None:
        """After step ``step``: back off (and record the skip) or count a clean step."""
        if not found_inf:
            self.growth_tracker += 1
            if self.growth_tracker >= self.growth_interval:
                self.scale *= self.growth_factor
                self.growth_tracker = 0
            return
        self.skipped_steps.append(step)
        self.scale *= self.backoff_factor
        self.growth_tracker = 0
        if self.scale < self.min_scale:
            first = step
            while first - 1 in self.skipped_steps:
                first -= 1
            raise LossScaleError(f"the loss scale fell to {self.scale:g}, below min_scale {self.min_scale:g}, at step "
                                 f"{step}: the gradients held inf or NaN at every step since step {first}, "
                                 "whatever the scale (the training diverged)")

    def state_dict(self) -> dict:
        return {"scale": self.scale, "growth_tracker": self.growth_tracker, "skipped_steps": list(self.skipped_steps),
                "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "min_scale": self.min_scale}

    def load_state_dict(self, state: dict) -> None:
        for key in ("growth_factor", "backoff_factor", "growth_interval", "min_scale"):
            setattr(self, key, state[key])
        self.scale, self.growth_tracker = float(state["scale"]), int(state["growth_tracker"])
        self.skipped_steps = [int(s) for s in state["skipped_steps"]]


def _parse(value):
    """(canonical name, mode, format) of a precision setting: mode "fp32", "mixed" or "low"."""
    if not isinstance(value, str):
        raise TypeError(f"precision must be a string: {_ACCEPTED}; got {value!r}")
    name = value.strip().lower()
    if name in ("fp32", "float32"):
        return "fp32", "fp32", None
    if name == "bf16-mixed":
        return name, "mixed", None
    if name == "fp16-mixed":
        return name, "mixed", "fp16"
    if name in ("bf16", "fp16"):
        return name, "low", name
    if name.startswith("simulate:"):
        spec = name[len("simulate:"):].strip()
        match = re.fullmatch(r"e(\d+)m(\d+)", spec)
        try:
            fmt = number_format((int(match[1]), int(match[2])) if match else spec)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"precision {value!r}: {exc}") from None
        if fmt.exp_bits > 8 or fmt.man_bits > 23:
            raise ValueError(f"precision {value!r}: e{fmt.exp_bits}m{fmt.man_bits} is wider than the float32 weights "
                             "it would be simulated in (e8m23 at most)")
        fmt_key = spec if spec in FORMATS else (fmt.exp_bits, fmt.man_bits)
        return f"simulate:{fmt.name}", "low", fmt_key
    raise ValueError(f"unknown precision {value!r}; the precisions are {_ACCEPTED}")


def stream_seed(seed: int, step: int, index: int) -> int:
    """The stochastic-rounding stream of parameter ``index`` at ``step`` (splitmix64 of the three)."""
    return combine_seeds(seed, step, index)


def _fast_dtype(fmt):
    """A NumPy dtype whose cast rounds to ``fmt`` to nearest exactly as round_to_format does
    (it is tested bit for bit against these casts), or None."""
    if fmt == "fp16":
        return np.dtype(np.float16)
    if fmt == "bf16":
        try:
            from ml_dtypes import bfloat16
        except ImportError:  # pragma: no cover
            return None
        return np.dtype(bfloat16)
    return None


class Precision:
    """A parsed ``precision=`` setting and what it does to a training step (module docstring).

    ``rounding``: how the weights of the pure low-precision modes are rounded after each update
    ("nearest" or "stochastic"; activations and gradients are rounded to nearest). ``loss_scaling``:
    None (on for fp16-mixed, off otherwise), True (a default ``GradScaler``), False, or a
    ``GradScaler`` of one's own; refused where gradients are never rounded (fp32, bf16-mixed).
    ``seed``: the stochastic-rounding streams.

    After training: ``steps`` (optimizer steps tried), ``scaler`` (None without loss scaling),
    ``skipped_steps``, ``grad_underflow`` (the fraction of gradient values, non-zero before
    rounding, that rounding made zero).
    """

    def __init__(self, precision: str = "fp32", *, rounding: str = "nearest", loss_scaling=None, seed: int = 0):
        self.name, self.mode, self.fmt = _parse(precision)
        if rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
        if rounding == "stochastic" and self.mode != "low":
            raise ValueError(f"rounding='stochastic' rounds weights stored in low precision (bf16, fp16, "
                             f"simulate:<format>); precision {self.name!r} keeps float32 weights")
        self.rounding = rounding
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if loss_scaling is None:
            loss_scaling = self.name == "fp16-mixed"
        if isinstance(loss_scaling, GradScaler):
            self.scaler = loss_scaling
        elif isinstance(loss_scaling, (bool, np.bool_)):
            self.scaler = GradScaler() if loss_scaling else None
        else:
            raise TypeError(f"loss_scaling must be None, True, False or a GradScaler, got {loss_scaling!r}")
        if self.scaler is not None and self.fmt is None:
            raise ValueError(f"loss scaling keeps small gradients from underflowing when they are rounded; "
                             f"precision {self.name!r} never rounds them (bf16 has float32's range)")
        self.autocast = "bf16" if self.name == "bf16-mixed" else None
        if self.autocast and _gemm_autocast is None:
            raise RuntimeError("precision 'bf16-mixed' needs fastnlp.kernels.gemm.autocast, which this installation "
                               "lacks")
        self._fast = _fast_dtype(self.fmt)
        self.steps = 0
        self.underflow_counts = [0, 0]  # gradient values non-zero before rounding, and of those zero after
        self._masters = None
        self._float32_params = frozenset()  # ids of the parameters fp16-mixed leaves in float32

    def __repr__(self):
        scaling = "" if self.scaler is None else f", loss scale {self.scaler.scale:g}"
        return f"Precision({self.name!r}, rounding={self.rounding!r}{scaling})"

    @property
    def skipped_steps(self) -> list:
        return [] if self.scaler is None else self.scaler.skipped_steps

    @property
    def grad_underflow(self) -> float:
        nonzero, lost = self.underflow_counts
        return lost / nonzero if nonzero else 0.0

    # ----- rounding ------------------------------------------------------------------------------

    def round(self, x, seed=None):
        """``x`` rounded to the format (to nearest; stochastically from stream ``seed`` when given)."""
        if seed is None and self._fast is not None and type(x) is np.ndarray and x.dtype == np.float32:
            with np.errstate(over="ignore"):  # beyond the format's range is inf, as on hardware
                return x.astype(self._fast).astype(np.float32)
        return round_to_format(x, self.fmt, "nearest" if seed is None else "stochastic", seed or 0)

    def _round_tree(self, value, count=False):
        """Float arrays in ``value`` (an array, or a tuple/list of them) rounded; 0-d ones (a loss)
        and anything else left as they are."""
        if isinstance(value, (tuple, list)):
            return type(value)(self._round_tree(v, count) for v in value)
        if getattr(value, "ndim", 0) and value.dtype.kind == "f":
            rounded = self.round(value)
            if count:
                self._count(value, rounded)
            return rounded
        return value

    def _count(self, before, after):
        nonzero = before != 0
        self.underflow_counts[0] += int(nonzero.sum())
        self.underflow_counts[1] += int((nonzero & (after == 0)).sum())

    def _round_grads(self, grads):
        """A layer's parameter gradients rounded in place (a row-sparse one over its rows)."""
        for g in grads:
            rows = row_ids(g)
            if rows is None:
                rounded = self.round(plain(g))
                self._count(plain(g), rounded)
                g[...] = rounded
            elif len(rows):
                before = plain(g)[rows]
                rounded = self.round(before)
                self._count(before, rounded)
                plain(g)[rows] = rounded

    # ----- a fit and its steps ---------------------------------------------------------------------

    @contextmanager
    def attached(self, model, params):
        """For the duration of a ``fit``: the weights of the pure modes put in the format, the
        layer-boundary hooks installed (removed on the way out, whatever happens)."""
        if self.mode == "fp32":
            yield
            return
        if self.mode == "low":
            for p in params:
                p[...] = self.round(p)
        elif self.fmt is not None:
            self._float32_params = frozenset(id(p) for p in gathered_only(model, params))
        hooks = boundary_hooks(model, self) if self.fmt is not None else nullcontext()
        try:
            with hooks:
                yield
        finally:
            self._masters = None
            self._float32_params = frozenset()
            if self.autocast:
                clear_autocast_cache()

    def step(self, model, ties, optimizer, forward, max_grad=None):
        """One training step: ``forward()`` (returns the loss), the model's backward, the
        gradients merged over ``ties``, unscaled and checked, clipped to ``max_grad``, the update,
        then the weights rounded (pure modes) or the autocast cache cleared. Returns the loss, or
        None for a step skipped with a non-finite loss. Without loss scaling, NaN/inf raises
        NonFiniteError as the plain loop does; with it the step is skipped (LossScaleError once
        the scale collapses)."""
        self.steps += 1
        found_inf, loss = False, math.nan
        # With a scaler an overflow is an expected event (skip, back off): no NumPy warnings for it.
        quiet = np.errstate(over="ignore", invalid="ignore") if self.scaler is not None else nullcontext()
        with self._compute_weights(ties.params), (_gemm_autocast(self.autocast) if self.autocast else nullcontext()), \
                quiet:
            try:
                loss = float(forward())
                if not math.isfinite(loss):
                    raise NonFiniteError(f"the loss is {loss}")
                if self.scaler is None:
                    model.backward()
                else:
                    model.backward(self.scaler.scale)
            except NonFiniteError:
                if self.scaler is None:
                    raise
                found_inf = True
        if not found_inf:
            # Without a scaler the tied sum may stay unformed for SGD, as in the float32 loop
            # (the scaler's unscaling needs the formed gradients).
            grads = ties.merge(model.grads, lazy=self.scaler is None and merges_lazily(optimizer, max_grad))
            found_inf = self.scaler is not None and not self.scaler.unscale(grads)
        if self.scaler is not None:
            self.scaler.update(found_inf, self.steps)
        if found_inf:
            return loss if math.isfinite(loss) else None
        clip_and_update(optimizer, ties.params, grads, max_grad)
        if self.mode == "low":
            for i, p in enumerate(ties.params):
                seed = stream_seed(self.seed, self.steps, i) if self.rounding == "stochastic" else None
                p[...] = self.round(p, seed)
        elif self.autocast:
            clear_autocast_cache()
        return loss

    @contextmanager
    def _compute_weights(self, params):
        """fp16-mixed: the parameters hold their fp16-rounded copies inside, the float32 masters
        again on the way out (all but those only gather layers use: they stay float32)."""
        if self.mode != "mixed" or self.fmt is None:
            yield
            return
        params = [p for p in params if id(p) not in self._float32_params]
        if self._masters is None or [m.shape for m in self._masters] != [p.shape for p in params]:
            self._masters = [p.copy() for p in params]
        else:
            for m, p in zip(self._masters, params):
                m[...] = p
        try:
            for p in params:
                p[...] = self.round(p)
            yield
        finally:
            for m, p in zip(self._masters, params):
                p[...] = m

    def weights_changed(self):
        """Call after the weights were replaced (a checkpoint loaded): drops cached bf16 copies."""
        if self.autocast:
            clear_autocast_cache()

    # ----- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"name": self.name, "rounding": self.rounding, "seed": self.seed, "steps": self.steps,
                "underflow_counts": list(self.underflow_counts),
                "scaler": None if self.scaler is None else self.scaler.state_dict()}

    def check_state(self, state, where) -> None:
        """Refuse (ValueError, before anything changes) a state saved with another setting."""
        saved = (state or {}).get("name", "fp32")
        saved_rounding = (state or {}).get("rounding", "nearest")
        saved_scaling = (state or {}).get("scaler") is not None
        ours = (self.name, self.rounding, self.scaler is not None)
        if (saved, saved_rounding, saved_scaling) != ours:
            raise ValueError(f"{where} was saved training with precision={saved!r}, rounding={saved_rounding!r}, "
                             f"loss scaling {'on' if saved_scaling else 'off'}; this trainer has precision="
                             f"{self.name!r}, rounding={self.rounding!r}, loss scaling "
                             f"{'on' if ours[2] else 'off'}: resume with the saved setting")

    def load_state_dict(self, state) -> None:
        if not state:
            return
        self.seed, self.steps = int(state["seed"]), int(state["steps"])
        self.underflow_counts = [int(c) for c in state["underflow_counts"]]
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.weights_changed()


class TrainsInPrecision:
    """What the trainers share: ``self.amp`` (a Precision) and its results as attributes."""

    amp: Precision

    def _set_precision(self, precision, rounding, loss_scaling, seed):
        self.amp = precision if isinstance(precision, Precision) else Precision(
            precision, rounding=rounding, loss_scaling=loss_scaling, seed=seed)

    def _train_step(self, forward, max_grad):
        """One step of ``self.model`` on the loss ``forward()`` returns: the precision's step, or
        in float32 the plain loop (no precision machinery on the default path). Returns the loss
        (None for a step the loss scaler skipped)."""
        if self.amp.mode != "fp32":
            return self.amp.step(self.model, self.ties, self.optimizer, forward, max_grad)
        loss = float(forward())
        if not math.isfinite(loss):
            raise NonFiniteError(f"the loss is {loss}")
        self.model.backward()
        grads = self.ties.merge(self.model.grads, lazy=merges_lazily(self.optimizer, max_grad))
        clip_and_update(self.optimizer, self.ties.params, grads, max_grad)
        return loss

    @property
    def precision(self) -> str:
        """The precision setting's name ("fp32", "fp16-mixed", "simulate:e4m3", ...)."""
        return self.amp.name

    @property
    def skipped_steps(self) -> list:
        """Steps (counted from 1 over the trainer's life) skipped for inf/NaN gradients."""
        return self.amp.skipped_steps

    @property
    def loss_scale(self):
        """The current loss scale, or None without loss scaling."""
        return None if self.amp.scaler is None else self.amp.scaler.scale

    @property
    def grad_underflow(self) -> float:
        """Fraction of gradient values that rounding to the format turned from non-zero to zero."""
        return self.amp.grad_underflow

    def _precision_postfix(self) -> dict:
        if self.amp.scaler is None:
            return {}
        return {"scale": self.amp.scaler.scale, "skipped": len(self.amp.skipped_steps)}


# ----- layer boundaries ----------------------------------------------------------------------------

_NOT_CONTAINERS = (types.FunctionType, types.MethodType, types.ModuleType, types.BuiltinFunctionType)


def boundary_layers(model) -> list:
    """The outermost ``Layer`` objects reachable from ``model``'s attributes (lists, tuples,
    dicts and plain objects such as a seq2seq encoder are looked into; a layer is not), once each."""
    found, seen = [], set()

    def visit(obj, depth):
        if id(obj) in seen or depth > 8 or isinstance(obj, (str, bytes, numbers.Number, np.ndarray, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, Layer):
            found.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, _NOT_CONTAINERS):
            for item in vars(obj).values():
                visit(item, depth + 1)

    if isinstance(model, Layer):
        return [model]
    for value in vars(model).values():
        visit(value, 0)
    return found


def gathered_only(model, params) -> list:
    """The ``params`` that only gather layers (``GATHER_LAYERS``) among ``model``'s boundary
    layers use: a weight tied to a product's (BetterRnnlm's embedding and softmax) is not one."""
    layers = boundary_layers(model)
    gathered = [q for layer in layers if isinstance(layer, GATHER_LAYERS) for q in layer.params]
    multiplied = [q for layer in layers if not isinstance(layer, GATHER_LAYERS) for q in layer.params]

    def same_memory(a, b):
        return a is b or (type(a) is type(b) and bool(array_module(a).may_share_memory(a, b)))

    return [p for p in params if any(same_memory(p, q) for q in gathered)
            and not any(same_memory(p, q) for q in multiplied)]


@contextmanager
def boundary_hooks(model, precision: Precision):
    """Every boundary layer's outputs, input-gradients and parameter gradients rounded by
    ``precision`` while inside; the layers are as they were afterwards. Under a mixed precision
    the gather layers are left alone (they compute in float32) and a layer with weights also
    rounds its float inputs, where a 16-bit product would cast them."""
    installed = []
    mixed = precision.mode == "mixed"

    def hooked_forward(original, casts_inputs):
        def forward(*args, **kwargs):
            if casts_inputs:  # ids and other non-float arguments pass as they are
                args = precision._round_tree(args)
            return precision._round_tree(original(*args, **kwargs))
        return forward

    def hooked_backward(original, layer):
        def backward(*args, **kwargs):
            dx = original(*args, **kwargs)
            precision._round_grads(layer.grads)
            return precision._round_tree(dx, count=True)
        return backward

    try:
        for layer in boundary_layers(model):
            if mixed and isinstance(layer, GATHER_LAYERS):
                continue
            casts_inputs = mixed and bool(getattr(layer, "params", None))
            for name, hooked in (("forward", hooked_forward(layer.forward, casts_inputs)),
                                 ("backward", hooked_backward(layer.backward, layer))):
                own = layer.__dict__.get(name)  # an instance's own method, put back afterwards
                setattr(layer, name, hooked)
                installed.append((layer, name, own))
        yield
    finally:
        for layer, name, own in reversed(installed):
            if own is None:
                del layer.__dict__[name]
            else:
                setattr(layer, name, own)
