"""Saving and loading parameters as ``.npz`` (arrays only, never pickled code), atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .kernels.dispatch import is_device_array


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path`` then rename it over
    ``path``, so readers see the old file or the complete new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _to_host(a):
    return a.get() if is_device_array(a) else np.asarray(a)


def save_params(path, params, dtype=None) -> Path:
    """Save a list of arrays (or a model with ``.params``) to ``path`` (.npz).

    ``dtype=np.float16`` stores half-precision weights (half the file); values outside the
    float16 range raise instead of silently becoming inf.
    """
    params = getattr(params, "params", params)
    arrays = {}
    for i, p in enumerate(params):
        a = _to_host(p)
        if dtype is not None:
            target = np.dtype(dtype)
            if target == np.float16 and a.size and np.abs(a).max() > np.finfo(np.float16).max:
                raise OverflowError(f"param {i} has values beyond the float16 range; save it as float32")
            a = a.astype(target)
        arrays[f"param_{i:04d}"] = a
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_params(path, into=None, dtype=np.float32):
    """Load arrays saved by ``save_params`` as ``dtype`` (float32 by default; None keeps the
    stored dtype). With ``into`` (a list of arrays or a model), copy them into its params in
    place after checking count and shapes; returns the list of arrays."""
    with np.load(Path(path), allow_pickle=False) as data:
        keys = sorted(k for k in data.files if k.startswith("param_"))
        arrays = [data[k] if dtype is None else data[k].astype(dtype) for k in keys]
    if into is not None:
        targets = getattr(into, "params", into)
        if len(targets) != len(arrays):
            raise ValueError(f"{path} holds {len(arrays)} params but the model has {len(targets)}")
        for i, (t, a) in enumerate(zip(targets, arrays)):
            if t.shape != a.shape:
                raise ValueError(f"param {i}: saved shape {a.shape} != model shape {t.shape}")
            t[...] = a if not is_device_array(t) else _device_like(t, a)
    return arrays


def _device_like(target, host_array):
    import cupy

    return cupy.asarray(host_array, dtype=target.dtype)
