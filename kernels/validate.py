"""Checks every public op runs before handing arrays to a kernel.

Compiled kernels skip bounds checks, so they are reached only through these checks: ids are
integers inside ``[0, upper)``, float arrays have a supported dtype and the expected shape, and
what a kernel writes through is C-contiguous.
"""
from __future__ import annotations

import numpy as np

from . import dispatch

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_ids(ids, upper: int, what: str = "id", backend=None):
    """Return ``ids`` as a flat C-contiguous int64 array after checking dtype and range
    (the range with ``backend``'s id_range kernel when given, else the active backend's)."""
    xp = _xp(ids)
    ids = xp.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{what}s must be an integer array, got dtype {ids.dtype}")
    flat = xp.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
    if flat.size:
        backend = backend if backend is not None else dispatch.backend_module(flat)
        low, high = backend.id_range(flat)
        if low < 0:
            raise IndexError(f"{what} {low} is negative; {what}s must lie in [0, {upper})")
        if high >= upper:
            raise IndexError(f"{what} {high} is out of range for {upper} rows; {what}s must lie in [0, {upper})")
    return flat


def check_float_matrix(array, name: str):
    """A 2-D float32/float64 array (raises TypeError / ValueError otherwise)."""
    if not hasattr(array, "dtype") or not hasattr(array, "ndim"):
        raise TypeError(f"{name} must be an array, got {type(array).__name__}")
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, width), got shape {tuple(array.shape)}")
    return array


def check_same_device(*arrays) -> None:
    if all(type(a) is np.ndarray for a in arrays):
        return
    kinds = {type(a).__module__.split(".")[0] for a in arrays}
    if len(kinds) > 1:
        raise TypeError(f"arrays live on different devices ({', '.join(sorted(kinds))}); move them to one first")


def _xp(array):
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np
