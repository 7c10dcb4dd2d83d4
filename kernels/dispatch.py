"""Chooses which implementation of each op runs.

Every backend is one module exporting the same op functions over already-validated inputs:

    numpy  -> fastnlp.kernels.reference    (the truth every other backend is tested against)
    numba  -> fastnlp.kernels.numba_ops
    cython -> fastnlp.kernels._cython_ops  (compiled at install time)
    cupy   -> fastnlp.kernels.cupy_ops     (CUDA RawKernels; optional)

The active backend comes from, in order: a ``use_backend`` block, ``set_backend``, the
``FASTNLP_BACKEND`` environment variable (read once, at the first op call), and otherwise the fastest CPU backend that loads.
Arrays that live on the GPU always go to the CuPy implementation, whatever is selected, and
host arrays never do: with ``cupy`` selected they run on the default CPU backend.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import os

BACKENDS = ("numpy", "numba", "cython", "cupy")
CPU_BACKENDS = ("numpy", "numba", "cython")
# Fastest first (bench/README.md): Cython and Numba run the same loops at the same speed
# within noise, but Cython needs no JIT warm-up (Numba spends ~0.3 s per kernel per process
# loading its cache), which matters for one-shot jobs.
_DEFAULT_PREFERENCE = ("cython", "numba", "numpy")

_MODULES = {
    "numpy": "fastnlp.kernels.reference",
    "numba": "fastnlp.kernels.numba_ops",
    "cython": "fastnlp.kernels._cython_ops",
    "cupy": "fastnlp.kernels.cupy_ops",
}


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot load on this machine."""


_loaded: dict[str, object] = {}
_reasons: dict[str, str] = {}
_selected: str | None = None
_scoped: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastnlp_backend", default=None)


def _load(name: str):
    """Import a backend module once; remember why it failed so we never retry a broken import."""
    if name in _loaded:
        return _loaded[name]
    if name in _reasons:
        return None
    try:
        module = importlib.import_module(_MODULES[name])
        problem = getattr(module, "unavailable_reason", lambda: None)()
    except ImportError as exc:
        module, problem = None, _import_failure_reason(name, exc)
    if problem is not None:
        _reasons[name] = problem
        return None
    _loaded[name] = module
    return module


def _import_failure_reason(name: str, exc: ImportError) -> str:
    if name == "cython":
        return f"the compiled extension fastnlp.kernels._cython_ops is not built ({exc}); reinstall with pip"
    if name == "cupy":
        return f"CuPy is not installed ({exc}); pip install 'fastnlp[gpu]'"
    return f"{exc}"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name.lower()


def available_backends() -> dict[str, str | None]:
    """Map every backend name to ``None`` if it is usable here, else a one-line reason why not."""
    return {name: (None if _load(name) is not None else _reasons[name]) for name in BACKENDS}


def _require(name: str):
    module = _load(name)
    if module is None:
        raise BackendUnavailableError(f"backend {name!r} is not available: {_reasons[name]}")
    return module


def default_backend() -> str:
    """The fastest CPU backend that loads (numpy always does)."""
    for name in _DEFAULT_PREFERENCE:
        if _load(name) is not None:
            return name
    return "numpy"


def set_backend(name: str) -> None:
    """Select the backend for all later op calls (raises if it cannot load here)."""
    global _selected
    name = _check_name(name)
    _require(name)
    _selected = name


def get_backend() -> str:
    """Name of the backend op calls use now."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    if _selected is not None:
        return _selected
    return _unselected_backend()


_env_choice: str | None = None


def _unselected_backend() -> str:
    """FASTNLP_BACKEND if it was set when first asked, else the default. Resolved once:
    every op call asks, and reading os.environ costs more than a small kernel."""
    global _env_choice
    if _env_choice is None:
        from_env = os.environ.get("FASTNLP_BACKEND", "").strip()
        if from_env:
            name = _check_name(from_env)
            _require(name)
        else:
            name = default_backend()
        _env_choice = name
    return _env_choice


@contextlib.contextmanager
def use_backend(name: str):
    """Run a block with another backend, restoring the previous choice afterwards."""
    name = _check_name(name)
    _require(name)
    token = _scoped.set(name)
    try:
        yield name
    finally:
        _scoped.reset(token)


def is_device_array(array) -> bool:
    """True for CuPy arrays, without importing CuPy when it was never imported."""
    return type(array).__module__.startswith("cupy")


def backend_module(like):
    """The backend module whose kernels run for arrays like ``like`` right now."""
    if is_device_array(like):
        return _require("cupy")
    name = get_backend()
    if name not in CPU_BACKENDS:
        name = default_backend()
    module = _loaded.get(name)
    return module if module is not None else _require(name)


def implementation(op_name: str, like):
    """The function implementing ``op_name`` for arrays like ``like`` under the active backend."""
    return getattr(backend_module(like), op_name)


def array_module(array):
    """numpy or cupy, whichever owns ``array`` (layers use it to allocate alongside inputs)."""
    if is_device_array(array):
        import cupy

        return cupy
    import numpy

    return numpy
