"""The layer contract shared by every layer, and the input checks they share.

Bad input raises instead of flowing on as NaN or a wrong-shaped result: ``TypeError`` for a dtype
a layer cannot use, ``ValueError`` for a wrong shape, ``NonFiniteError`` for NaN/inf, ``RuntimeError``
for ``backward`` before ``forward``.
"""
from __future__ import annotations

import numpy as np

from ..kernels.validate import is_float_dtype

# dtype kinds a layer may take: real numbers, i.e. integers (one-hot rows, as in the book's
# chapter 3) and floats; never bool, complex, object or strings.
REAL = "iuf"
FLOAT = "f"
_KIND_NAMES = {REAL: "a real (integer or floating-point)", FLOAT: "a floating-point",
               "b" + REAL: "a boolean, integer or floating-point"}


class NonFiniteError(ValueError, FloatingPointError):
    """NaN or inf where a finite number is needed. Both a ValueError (bad input data) and a
    FloatingPointError (diverged training, what the Trainer and clip_grads have always raised)."""


class Layer:
    """Base: no parameters, training mode on."""

    params: list
    grads: list
    training = True

    def __init__(self):
        self.params, self.grads = [], []

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def saved(self, *names):
        """What ``forward`` stored for ``backward`` (one value, or a tuple for several names).

        None means forward has not run yet; without this check backward would fail deep
        inside NumPy with ``'NoneType' object has no attribute ...``."""
        values = tuple(getattr(self, name, None) for name in names)
        if any(v is None for v in values):
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return values[0] if len(names) == 1 else values


def list_as_array(x, what: str):
    """A list (or other array-like) as a NumPy array; a ragged or mixed list raises TypeError
    naming ``what`` instead of NumPy's 'inhomogeneous shape' ValueError or an object array."""
    try:
        array = np.asarray(x)
    except ValueError:
        array = None
    if array is None or (array.dtype == object and isinstance(x, (list, tuple))):
        raise TypeError(f"{what} must be a rectangular list of numbers or an array; got a ragged or mixed list")
    return array


def check_input(x, who: str, kinds: str = REAL, what: str = "input"):
    """``x`` as an array (lists are converted) of a dtype in ``kinds`` with no NaN or inf.

    Raises TypeError naming the dtype, or NonFiniteError; ``who`` ("Sigmoid.forward") starts the message.
    """
    if not (hasattr(x, "dtype") and hasattr(x, "shape")):  # NumPy and CuPy arrays pass as they are
        x = list_as_array(x, f"{who}: {what}")
    floating = is_float_dtype(x.dtype)  # bfloat16 (ml_dtypes) has kind 'V', not 'f'
    if x.dtype.kind not in kinds and not (floating and "f" in kinds):
        raise TypeError(f"{who}: {what} must be {_KIND_NAMES[kinds]} array, got dtype {x.dtype}")
    # One pass over the data; NaN in, NaN out would otherwise surface only as a NaN loss, far
    # from its cause. (np.isfinite hands a CuPy array to CuPy.)
    if floating and not bool(np.isfinite(x).all()):
        raise NonFiniteError(f"{who}: {what} contains NaN or inf")
    return x


def check_dout(dout, shape, who: str):
    """The upstream gradient: a finite real array of exactly ``shape`` (a scalar for ``()``).

    The shape must match exactly: NumPy would broadcast a wrong one into a wrong gradient."""
    dout = check_input(dout, who, what="dout")
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"{who}: dout has shape {tuple(dout.shape)} but forward's output had {tuple(shape)}")
    return dout


def check_param(array, who: str, name: str, ndim: int):
    """A floating-point parameter of ``ndim`` dimensions (gradients are written into a buffer of
    its dtype, so an integer parameter would silently truncate them)."""
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        raise TypeError(f"{who}: {name} must be an array, got {type(array).__name__}")
    if array.dtype.kind != "f":
        raise TypeError(f"{who}: {name} must be a floating-point array, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{who}: {name} must be {ndim}-D, got shape {tuple(array.shape)}")
    return array
