"""Elementwise functions and losses shared by layers; numerically stable, NumPy/CuPy agnostic."""
import numpy as np

from .kernels.dispatch import array_module


def as_float(x):
    """``x`` as a float array; integers in a float that holds them (NumPy alone would pick
    float16 for int8, losing three decimal digits)."""
    x = array_module(x).asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.result_type(x.dtype, np.float32))


def sigmoid(x):
    x = as_float(x)
    # Split by sign so exp never overflows: exp(-|x|) <= 1.
    positive = x >= 0
    z = np.exp(-np.abs(x))
    return np.where(positive, 1 / (1 + z), z / (1 + z))


def relu(x):
    return np.maximum(x, 0)


def softmax(x):
    """Softmax over the last axis, shifted by the row maximum so exp never overflows."""
    x = as_float(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    x = as_float(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def as_labels(t, scores_shape):
    """Class ids from either ids (shape ``scores_shape[:-1]``) or one-hot rows (shape
    ``scores_shape``); the book's losses accept both. One-hot rows must hold a single 1 and
    zeros otherwise: argmax of anything else (soft or NaN targets) would be a silent guess."""
    if not (hasattr(t, "dtype") and hasattr(t, "shape")):
        from .layers.base import list_as_array

        t = list_as_array(t, "targets")
    if tuple(t.shape) == tuple(scores_shape):
        if t.dtype.kind not in "biuf":
            raise TypeError(f"one-hot targets must be numbers, got dtype {t.dtype}")
        if t.size and not (bool(((t == 0) | (t == 1)).all()) and bool((t.sum(axis=-1) == 1).all())):
            raise ValueError("one-hot targets must have exactly one 1 per row and zeros elsewhere")
        return t.argmax(axis=-1)
    if tuple(t.shape) != tuple(scores_shape[:-1]):
        raise ValueError(f"targets of shape {tuple(t.shape)} fit neither ids {tuple(scores_shape[:-1])} "
                         f"nor one-hot {tuple(scores_shape)} for scores {tuple(scores_shape)}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"class ids must be integers, got dtype {t.dtype}")
    return t


def cross_entropy_error(y, t, eps=1e-7):
    """Mean cross-entropy of probabilities ``y`` (..., C) against ids or one-hot ``t``.

    The book's definition (log of y + eps); the losses themselves use log-softmax instead.
    """
    y2 = y.reshape(-1, y.shape[-1])
    labels = as_labels(t, y.shape).reshape(-1)
    rows = array_module(y2).arange(y2.shape[0])
    return -np.log(y2[rows, labels] + eps).mean()
