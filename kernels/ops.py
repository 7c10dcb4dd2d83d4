"""The public ops: validate once, normalise layout, then call the active backend's kernel.

Each op has one contract, stated in its docstring, that every backend implements; the
backend functions receive only checked, C-contiguous arrays of the documented dtypes.
"""
from __future__ import annotations

import numpy as np

from . import dispatch
from .validate import check_float_matrix, check_ids, check_same_device


def scatter_add(dW, idx, dout):
    """``dW[idx[i]] += dout[i]`` for every position i, duplicates summed; returns ``dW``.

    ``dW`` is (V, D) float32/float64 and updated in place; ``idx`` any integer shape with
    values in ``[0, V)``; ``dout`` float with shape ``idx.shape + (D,)`` (cast to dW's dtype).
    This is the backward of an embedding lookup.
    """
    check_float_matrix(dW, "dW")
    check_same_device(dW, idx, dout)
    xp = dispatch.array_module(dW)
    dout = xp.asarray(dout)
    idx_shape = tuple(np.shape(idx))
    expected = idx_shape + (dW.shape[1],)
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout has shape {tuple(dout.shape)} but idx shape {idx_shape} and dW width "
                         f"{dW.shape[1]} need {expected}")
    if dout.dtype.kind != "f":
        raise TypeError(f"dout must be a float array, got dtype {dout.dtype}")
    if not dW.flags.writeable:
        raise ValueError("dW is read-only; scatter_add writes into it")
    backend = dispatch.backend_module(dW)
    flat_idx = check_ids(idx, dW.shape[0], backend=backend)
    if flat_idx.size == 0:
        return dW
    rows = xp.ascontiguousarray(dout.reshape(-1, dW.shape[1]), dtype=dW.dtype)
    kernel = backend.scatter_add
    if dW.flags.c_contiguous:
        kernel(dW, flat_idx, rows)
    else:  # kernels write through C-contiguous buffers only
        target = xp.ascontiguousarray(dW)
        kernel(target, flat_idx, rows)
        dW[...] = target
    return dW


def embedding_gather(W, idx):
    """``W[idx]``: rows of the (V, D) float matrix ``W`` for integer ids of any shape.

    Returns a new C-contiguous array of shape ``idx.shape + (D,)`` and W's dtype.
    """
    check_float_matrix(W, "W")
    check_same_device(W, idx)
    idx_shape = tuple(np.shape(idx))
    backend = dispatch.backend_module(W)
    flat_idx = check_ids(idx, W.shape[0], backend=backend)
    xp = dispatch.array_module(W)
    if flat_idx.size == 0:
        return xp.empty(idx_shape + (W.shape[1],), dtype=W.dtype)
    out = backend.embedding_gather(xp.ascontiguousarray(W), flat_idx)
    return out.reshape(idx_shape + (W.shape[1],))
