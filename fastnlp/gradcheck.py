"""Float64 numerical gradient checks for layers (central differences).

``fastnlp.gradcheck(layer, *inputs)`` checks a layer; the module also exposes
``numerical_gradient`` for any scalar function of an array.
"""
from __future__ import annotations

import numpy as np


def numerical_gradient(f, x, eps=1e-6):
    """d f(x) / d x by central differences, perturbing ``x`` in place and restoring it.

    As in the book, ``f`` is called with ``x`` itself (``f(x)``); it may ignore the argument
    and read ``x`` through a closure, as the layer check does."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        original = x[i].copy()
        x[i] = original + eps
        plus = float(f(x))
        x[i] = original - eps
        minus = float(f(x))
        x[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def check_layer(layer, *inputs, dout=None, before_forward=None, eps=1e-6, rtol=1e-4, atol=1e-6,
                seed=0):
    """Compare a layer's backward with numerical gradients of its params and float inputs.

    The layer must hold float64 parameters. Float inputs of any precision are checked as
    float64 copies (central differences with ``eps=1e-6`` mean nothing in float32); integer
    inputs are ids or labels and are passed through, not differentiated. The output is reduced
    to the scalar ``sum(forward(*inputs) * dout)`` with a random ``dout`` (scalar losses use
    dout=1). ``before_forward`` runs before every forward (reseed a stochastic layer there).
    Returns the largest relative error seen; raises ``GradcheckError`` on a mismatch and
    ValueError when there is nothing to check (no parameters and no float input with a gradient).
    """
    rng = np.random.default_rng(seed)
    for p in layer.params:
        if p.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 parameters, got {p.dtype}")
    inputs = tuple(_as_checked_input(k, x) for k, x in enumerate(inputs))

    def forward():
        if before_forward is not None:
            before_forward()
        return layer.forward(*inputs)

    out = np.asarray(forward())
    if dout is None:
        dout = np.float64(1.0) if out.ndim == 0 else rng.standard_normal(out.shape)

    def scalar(_perturbed):
        return np.sum(np.asarray(forward()) * dout)

    forward()
    analytic_inputs = layer.backward(dout)
    if not isinstance(analytic_inputs, tuple):
        analytic_inputs = (analytic_inputs,)
    analytic_params = [g.copy() for g in layer.grads]

    worst, checked = 0.0, 0
    for k, (p, g) in enumerate(zip(layer.params, analytic_params)):
        worst = max(worst, _compare(f"params[{k}]", g, numerical_gradient(scalar, p, eps), rtol, atol))
        checked += 1
    for k, x in enumerate(inputs):
        if x.dtype.kind == "f" and k < len(analytic_inputs) and analytic_inputs[k] is not None:
            worst = max(worst, _compare(f"input {k}", analytic_inputs[k], numerical_gradient(scalar, x, eps),
                                        rtol, atol))
            checked += 1
    if not checked:
        # Passing here would certify a backward that was never compared with anything.
        raise ValueError(f"nothing to check: {type(layer).__name__} has no parameters and backward returned "
                         "no gradient for a floating-point input (integer inputs are ids, not differentiated)")
    return worst


def _as_checked_input(k, x):
    """Input ``k`` as the array the check runs on: floats as a float64 copy, ids unchanged."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x.astype(np.float64)  # a copy: the perturbation never touches the caller's array
    if x.dtype.kind not in "biu":
        raise TypeError(f"gradcheck: input {k} has dtype {x.dtype}; inputs must be real floats or integer ids")
    return x


def _compare(what, analytic, numeric, rtol, atol):
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{what}: gradient shape {analytic.shape} != {numeric.shape}")
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if np.any(err > bound):
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise GradcheckError(f"{what}: analytic {analytic[i]:.8g} vs numerical {numeric[i]:.8g} at {i}")
    return float((err / (np.abs(numeric) + atol)).max(initial=0.0))

