"""The op registry: every hot-path op, its contract and the implementations each backend has.

An op family is one folder under ``kernels/`` (``embedding/``, ``cooccurrence/``, ...). Its
``__init__.py`` states the contract and registers an :class:`OpSpec` per backend-level op; the
implementations are found by naming convention, one module per backend in the same folder::

    numpy  -> <family>/reference.py      the truth every other backend is tested against
    numba  -> <family>/numba_impl.py
    cython -> <family>/_cython_impl.pyx  (compiled at install time)
    cupy   -> <family>/cupy_impl.py      (+ the family's .cu source)
    mkl    -> <family>/mkl_impl.py       (matrix libraries: only the ops they serve, e.g. gemm)
    onednn -> <family>/onednn_impl.py

A backend module defines a function named like the op with the reference's signature; a
backend may lack an op (the module is missing, or the function is). Calls resolve through
:func:`kernel`, which falls back per op to the next backend that has it and logs that once.
Tests (``tests/test_kernels_registry.py``) and benchmarks (``bench/test_bench_ops.py``) are
generated from this registry.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import dispatch

log = logging.getLogger("fastnlp.kernels")

_MODULE_OF_BACKEND = {
    "numpy": "reference",
    "numba": "numba_impl",
    "cython": "_cython_impl",
    "cupy": "cupy_impl",
    "mkl": "mkl_impl",
    "onednn": "onednn_impl",
}
REFERENCE = "numpy"


@dataclass(frozen=True)
class OpSpec:
    """What every implementation of one backend-level op promises.

    ``examples`` is a hypothesis strategy drawing argument tuples that satisfy the contract
    (already validated: ids in range, C-contiguous, matching dtypes); ``writes`` lists the
    positions of arguments the op updates in place, which are compared after the call together
    with the return value. ``tolerance`` maps a dtype to ``(atol, rtol)``: a result passes when
    ``|result - reference| <= atol + rtol * |reference|``. Implementations that run the
    reference's sequence of float operations on the CPU (``ordered`` backends) must match it
    bit for bit when ``exact``; unordered ones (GPU atomics, Hogwild threads) and inexact ops
    (transcendentals, another summation order) are held to the tolerance.

    ``benchmark_args`` is a zero-argument callable returning the argument tuple of one call at a
    size the library's models actually run (named in a comment beside each op's builder):
    one fixed, seeded problem (``np.random.default_rng(0)``), float32 unless the op's contract
    fixes another dtype, already in the validated form ``examples`` draws. Each call returns fresh
    arrays, so an op that writes into its arguments cannot change the next caller's problem.
    ``bench/test_bench_ops.py`` times every op on every backend with it.

    ``deterministic`` is the set of backends whose implementation gives the same bits run to
    run for the same inputs (``is_deterministic(backend)``); a backend is left out when its
    order of float operations varies between runs: GPU atomics, Hogwild threads, a library that
    splits reductions as it likes. The generated tests run each backend in it twice at working
    size and compare the bytes. (``True`` / ``False`` still mean every backend / none.)

    Which backend runs an op without a user choice is measured (kernels/calibration.py: each
    host backend timed once per machine on ``benchmark_args``, cached); ``preference`` is the
    order used when measuring is off (``FASTNLP_CALIBRATION=off``), and the order ties keep.
    ``absent`` maps a backend the family deliberately lacks to the reason (shown by
    ``fastnlp backends``; no fallback warning). ``calibration``, when set, replaces the shared
    measurement by the op's own: ``calibration(variant)`` returns the backends fastest first
    for one class of calls (the op's wrapper names the class, e.g. gemm's 'float32/step').
    """

    name: str
    family: str
    doc: str
    dtypes: tuple
    deterministic: frozenset  # backends giving the same bits run to run (see above)
    exact: bool
    tolerance: dict
    examples: object = None
    benchmark_args: Callable | None = None  # () -> the args of one call at a working size
    writes: tuple = ()
    dtype_of: Callable | None = None  # args -> the float dtype that picks the tolerance
    # Not a measurement: the order without calibration. Compiled loops first, Cython before
    # Numba as it needs no JIT or cache loading (~0.3 s a kernel per process), then the reference.
    preference: tuple = ("cython", "numba", "numpy")
    absent: dict = field(default_factory=dict)  # backend -> why this family has no implementation
    calibration: Callable | None = None  # variant -> backends fastest first, measured here
    reference: Callable = field(default=None, repr=False)

    def __post_init__(self):
        deterministic = self.deterministic
        if isinstance(deterministic, bool):
            deterministic = EVERY_BACKEND if deterministic else frozenset()
        deterministic = frozenset(deterministic)
        unknown = deterministic - EVERY_BACKEND
        if unknown:
            raise ValueError(f"op {self.name!r}: deterministic names unknown backends {sorted(unknown)}")
        object.__setattr__(self, "deterministic", deterministic)

    def is_deterministic(self, backend: str) -> bool:
        """True when ``backend``'s implementation gives the same bits every run."""
        return backend in self.deterministic

    def preference_for(self, variant: str | None) -> tuple:
        """Backends fastest first for calls of class ``variant``: the op's own calibration when
        it has one, else the shared measurement (kernels/calibration.py), which gives the
        fixed ``preference`` when measuring is off."""
        if self.calibration is not None and variant is not None:
            return tuple(self.calibration(variant))
        from . import calibration

        return calibration.preference(self.name)

    def tolerance_for(self, dtype, backend: str):
        """(atol, rtol) a result on ``backend`` must meet for ``dtype``; (0, 0) is exact."""
        if self.exact and BACKEND_IS_ORDERED[backend]:
            return 0.0, 0.0
        return self.tolerance[np.dtype(dtype)]


EVERY_BACKEND = frozenset(dispatch.BACKENDS)

# Backends whose loops run one thread in the reference's order (exact results possible).
BACKEND_IS_ORDERED = {"numpy": True, "numba": True, "cython": True, "cupy": False, "mkl": False, "onednn": False}

_specs: dict[str, OpSpec] = {}
_implementations: dict[tuple[str, str], object] = {}  # (op, backend) -> function or reason string
_resolved: dict[tuple[str, str | None, str | None], tuple[str, Callable]] = {}
_fallbacks_logged: set = set()


def register(spec: OpSpec) -> OpSpec:
    """Add an op; its reference implementation is ``<family>/reference.py``'s function."""
    if spec.name in _specs:
        raise ValueError(f"op {spec.name!r} is registered twice")
    reference = getattr(_family_module(spec.family, REFERENCE), spec.name)
    spec = _replace(spec, reference=reference)
    _specs[spec.name] = spec
    return spec


def _replace(spec, **changes):
    from dataclasses import replace

    return replace(spec, **changes)


def ops() -> list[str]:
    """Names of every registered backend-level op."""
    return sorted(_specs)


def spec(op: str) -> OpSpec:
    try:
        return _specs[op]
    except KeyError:
        raise KeyError(f"no op named {op!r}; registered: {', '.join(ops())}") from None


def implementations(op: str) -> dict:
    """``{backend: function}`` for every backend, or ``{backend: "why it is missing"}``."""
    spec(op)
    return {backend: _implementation(op, backend) for backend in dispatch.BACKENDS}


def _implementation(op: str, backend: str):
    key = (op, backend)
    if key not in _implementations:
        _implementations[key] = _find_implementation(op, backend)
    return _implementations[key]


def _find_implementation(op: str, backend: str):
    if lacks_on_purpose(op, backend):
        return _specs[op].absent.get(backend) or f"{backend} is a matrix library; it serves only the ops of kernels/gemm"
    family = _specs[op].family
    reason = dispatch.backend_reason(backend)
    if reason is not None:
        return reason
    try:
        module = _family_module(family, backend)
    except ImportError as exc:
        if backend == "cython":
            return cython_missing_reason(f"fastnlp.kernels.{family}._cython_impl", exc)
        return f"{family}/{_MODULE_OF_BACKEND[backend]} does not import: {exc}"
    function = getattr(module, op, None)
    if function is None:
        return f"not implemented in {family}/{_MODULE_OF_BACKEND[backend]}"
    return function


def cython_missing_reason(module: str, exc: Exception) -> str:
    """Why a Cython extension does not import: setup.py skips the ones it cannot compile."""
    return (f"the Cython extension {module} was not built (no C compiler at install time?); "
            f"reinstall with a C compiler ({type(exc).__name__}: {exc})")


def lacks_on_purpose(op: str, backend: str) -> bool:
    """True when ``op``'s family does without ``backend`` by design (a matrix library for a
    non-matrix op, a loop backend for gemm): nothing to test or time there, not a failure."""
    op_spec = spec(op)
    return backend in op_spec.absent or (backend in dispatch.LIBRARY_BACKENDS
                                         and not _has_module(op_spec.family, backend))


def _has_module(family: str, backend: str) -> bool:
    return importlib.util.find_spec(f"fastnlp.kernels.{family}.{_MODULE_OF_BACKEND[backend]}") is not None


def _family_module(family: str, backend: str):
    return importlib.import_module(f"fastnlp.kernels.{family}.{_MODULE_OF_BACKEND[backend]}")


def kernel(op: str, like=None, variant: str | None = None) -> Callable:
    """The function that runs ``op`` now for arrays like ``like``.

    Device (CuPy) arrays always run on the cupy implementation. Host arrays run on the active
    backend (``use_backend`` / ``set_backend`` / ``FASTNLP_BACKEND``); without a choice, on the
    op's fastest backend here (for ops with a calibration, the fastest measured for calls of
    class ``variant``). A backend lacking the op falls back to the next in that order, logged
    once per (op, backend) unless the op's family lacks it on purpose (``OpSpec.absent``).
    """
    if like is not None and type(like) is not np.ndarray and dispatch.is_device_array(like):
        function = _implementation(op, "cupy")
        if isinstance(function, str):
            raise dispatch.BackendUnavailableError(f"op {op!r} cannot run on CuPy arrays: {function}")
        return function
    chosen = dispatch.chosen_backend()
    key = (op, chosen, variant)
    resolved = _resolved.get(key)
    if resolved is None:
        resolved = _resolved[key] = _resolve_host(op, chosen, variant)
    return resolved[1]


def backend_for(op: str, like=None, variant: str | None = None) -> str:
    """Name of the backend :func:`kernel` picks for ``op`` now."""
    if like is not None and dispatch.is_device_array(like):
        return "cupy"
    kernel(op, like, variant)
    return _resolved[(op, dispatch.chosen_backend(), variant)][0]


def _resolve_host(op: str, chosen: str | None, variant: str | None = None):
    op_spec = spec(op)
    order = op_spec.preference_for(variant)
    if chosen is not None and chosen in dispatch.HOST_BACKENDS:
        order = (chosen,) + tuple(b for b in order if b != chosen)
    for backend in order + (REFERENCE,):
        function = _implementation(op, backend)
        if not isinstance(function, str):
            wanted = chosen if chosen in dispatch.HOST_BACKENDS else order[0]
            if backend != wanted and not lacks_on_purpose(op, wanted) and (op, wanted) not in _fallbacks_logged:
                _fallbacks_logged.add((op, wanted))
                log.warning("fastnlp: op %s runs on %s: %s lacks it (%s)", op, backend, wanted,
                            _implementation(op, wanted))
            return backend, function
    raise RuntimeError(f"op {op!r} has no implementation that loads, not even the reference")


def forget_resolutions() -> None:
    """Drop cached choices (after a test swaps an implementation)."""
    _resolved.clear()
    _implementations.clear()


def resolved_backends(like=None) -> dict:
    """``{op: backend}``: where each op runs now for arrays like ``like`` (host arrays when
    None), with the user's choice, the measured defaults and the fallbacks applied. What
    ``fastnlp backends`` can print to say what actually runs (``dispatch.get_backend()`` names
    one backend, the user's choice or the default)."""
    return {op: backend_for(op, like) for op in ops()}


def matrix() -> str:
    """The op x backend table that ``fastnlp backends`` prints: ``ok`` or why the op is missing."""
    rows = [("op", *dispatch.BACKENDS)]
    notes: dict[str, int] = {}  # reason -> footnote number (one note for a whole missing backend)
    for op in ops():
        cells = []
        for backend, impl in implementations(op).items():
            if isinstance(impl, str):
                number = notes.setdefault(f"{backend}: {impl}", len(notes) + 1)
                cells.append(f"- [{number}]")
            else:
                cells.append("ok")
        rows.append((op, *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if notes:
        lines += [""] + [f"[{number}] {reason}" for reason, number in notes.items()]
    return "\n".join(lines)


def check_signature(op: str, function) -> str | None:
    """None when ``function`` takes the reference's parameters, else what differs."""
    expected = list(inspect.signature(spec(op).reference).parameters)
    try:
        actual = list(inspect.signature(function).parameters)
    except (TypeError, ValueError) as exc:
        return f"signature cannot be read: {exc}"
    return None if actual == expected else f"parameters {actual}, reference has {expected}"
