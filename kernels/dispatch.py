"""Chooses which backend runs the ops: the user's choice, and which backends load here.

The active backend comes from, in order: a ``use_backend`` block, ``set_backend``, the
``FASTNLP_BACKEND`` environment variable (read once, at the first op call). Without a choice each
op runs on the backend measured fastest for it on this machine (kernels/calibration.py; with
``FASTNLP_CALIBRATION=off``, its ``OpSpec.preference``); ``registry.resolved_backends()`` tells
where every op runs now.
Arrays that live on the GPU always go to the CuPy implementation, whatever is selected, and
host arrays never do: with ``cupy`` selected they run on each op's fastest CPU backend.
Which function implements an op on a backend is the registry's business (registry.py).
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import os

import numpy

BACKENDS = ("numpy", "numba", "cython", "mkl", "onednn", "cupy")
CPU_BACKENDS = ("numpy", "numba", "cython")  # compute backends: every op family has them
# Optional matrix libraries (pip install "fastnlp[accel]"): host backends that implement only
# the matrix-product ops; choosing one runs those there and every other op as without a choice.
LIBRARY_BACKENDS = ("mkl", "onednn")
HOST_BACKENDS = CPU_BACKENDS + LIBRARY_BACKENDS
# When one name is asked for (get_backend without a choice): Cython needs no JIT warm-up (Numba
# spends ~0.3 s per kernel per process loading its cache), which matters for one-shot jobs.
_DEFAULT_PREFERENCE = ("cython", "numba", "numpy")
# Not a backend: the choice of none, each op on its own measured fastest backend (the default).
AUTO = "auto"


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot load on this machine."""


_reasons: dict[str, str | None] = {}
_selected: str | None = None
_scoped: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastnlp_backend", default=None)


def backend_reason(name: str) -> str | None:
    """None when backend ``name`` loads here, else a one-line reason (probed once)."""
    if name not in _reasons:
        _reasons[name] = _probe(name)
    return _reasons[name]


def _probe(name: str) -> str | None:
    if name == "numpy":
        return None
    if name == "numba":
        try:
            importlib.import_module("numba")
        except ImportError as exc:
            return f"Numba is not installed ({exc}); pip install numba"
        return None
    if name == "cython":
        from . import registry

        families = sorted({registry.spec(op).family for op in registry.ops()})
        failures = []
        for family in families:
            try:
                importlib.import_module(f"fastnlp.kernels.{family}._cython_impl")
                return None
            except ImportError as exc:
                failures.append((f"fastnlp.kernels.{family}._cython_impl", exc))
        return registry.cython_missing_reason(*failures[0])
    if name == "cupy":
        from . import _cuda

        return _cuda.unavailable_reason()
    if name in LIBRARY_BACKENDS:
        from .gemm import _libraries

        return _libraries.unavailable_reason(name)
    raise ValueError(f"unknown backend {name!r}")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in BACKENDS + (AUTO,):
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS + (AUTO,))}")
    return name.lower()


def available_backends() -> dict[str, str | None]:
    """Map every backend name to ``None`` if it is usable here, else a one-line reason why not."""
    return {name: backend_reason(name) for name in BACKENDS}


def _require(name: str) -> None:
    if name == AUTO:
        return
    reason = backend_reason(name)
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} is not available: {reason}")


def default_backend() -> str:
    """The CPU backend named when nothing was chosen: the first of cython, numba, numpy that loads."""
    for name in _DEFAULT_PREFERENCE:
        if backend_reason(name) is None:
            return name
    return "numpy"


def set_backend(name: str) -> None:
    """Select the backend for all later op calls (raises if it cannot load here); ``"auto"``
    gives every op its own measured fastest backend again, whatever ``FASTNLP_BACKEND`` says."""
    global _selected
    name = _check_name(name)
    _require(name)
    _selected = name


def chosen_backend() -> str | None:
    """The backend the user chose (block, setter or environment), or None for per-op defaults."""
    choice = _scoped.get()
    if choice is None:
        choice = _selected if _selected is not None else _environment_choice()
    return None if choice == AUTO else choice


def get_backend() -> str:
    """The backend chosen (block, setter, environment), else ``"auto"``: without a choice each
    op runs on its own measured fastest backend, so no single name would be true;
    ``registry.resolved_backends()`` says where every op runs. Either value can be handed back
    to ``set_backend`` / ``use_backend``."""
    return chosen_backend() or AUTO


_UNSET = object()
_env_choice = _UNSET


def _environment_choice() -> str | None:
    """FASTNLP_BACKEND as it was at the first call. Resolved once: every op call asks, and
    reading os.environ costs more than a small kernel."""
    global _env_choice
    if _env_choice is _UNSET:
        from_env = os.environ.get("FASTNLP_BACKEND", "").strip()
        name = None
        if from_env:
            name = _check_name(from_env)
            _require(name)
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


def array_module(array):
    """numpy or cupy, whichever owns ``array`` (layers use it to allocate alongside inputs)."""
    if type(array) is not numpy.ndarray and is_device_array(array):
        import cupy

        return cupy
    return numpy
