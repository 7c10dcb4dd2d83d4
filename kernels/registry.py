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

Number formats: ``OpSpec.dtypes`` lists the storage dtypes an op takes (float64, float32, and for
some ops float16 and ml_dtypes' bfloat16, which compute with float32 accumulation everywhere);
``OpSpec.declines`` says why it does not take others (the TypeError of :meth:`OpSpec.check_dtype`
quotes it); ``OpSpec.lacks_dtype`` names, per backend, a dtype that backend's implementation
does not handle and why: arrays of that dtype run on the next backend that has it, logged once,
never handed to a loop that would read their bits as another format.
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

    ``dtypes`` are the storage dtypes the op takes (``dtype_of(args)`` tells which one a call
    has); each has its ``tolerance``. ``declines`` maps a dtype the op does not take to why (for
    float16 / bfloat16: "not yet: ..."), quoted by :meth:`check_dtype`'s TypeError, which the
    public wrappers raise before any kernel runs. ``lacks_dtype`` maps a backend to
    ``{dtype: why}`` for dtypes in ``dtypes`` that this backend's implementation does not handle
    (the registry falls back for them, logging once, like a missing op; the reference takes
    every dtype in ``dtypes``). For float16 and bfloat16 the reference converts up to float32,
    computes, and rounds the result once to the storage dtype (round to nearest even).

    ``examples`` is a hypothesis strategy drawing argument tuples that satisfy the contract
    (already validated: ids in range, C-contiguous, matching dtypes); called as
    ``examples(dtype=d)`` when it takes a ``dtype`` parameter, it draws only problems of storage
    dtype ``d`` (values representable in it); ``writes`` lists the
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
    A builder may take a ``dtype`` keyword and give the problem in that storage dtype (needed
    where the contract mixes dtypes: gemm's out stays float32 for 16-bit inputs); otherwise
    ``harness.benchmark_problem`` rounds every float32 array of it to the dtype.
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
    # (variant, backend, function) -> the function that runs that class of calls there (gemm:
    # the library's product kept on the calling thread where that measured faster)
    adapt: Callable | None = None
    lacks_dtype: dict = field(default_factory=dict)  # backend -> {dtype: why it lacks it}
    declines: dict = field(default_factory=dict)  # dtype -> why the op does not take it (yet)
    reference: Callable = field(default=None, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "dtypes", tuple(np.dtype(d) for d in self.dtypes))
        object.__setattr__(self, "declines", {np.dtype(d): why for d, why in self.declines.items()})
        lacks = {b: {np.dtype(d): why for d, why in per.items()} for b, per in self.lacks_dtype.items()}
        unknown = set(lacks) - EVERY_BACKEND
        if unknown:
            raise ValueError(f"op {self.name!r}: lacks_dtype names unknown backends {sorted(unknown)}")
        if REFERENCE in lacks:
            raise ValueError(f"op {self.name!r}: the reference must take every dtype in dtypes")
        for backend, per in lacks.items():
            if set(per) - set(self.dtypes):
                raise ValueError(f"op {self.name!r}: {backend} lacks dtypes the op does not take")
        object.__setattr__(self, "lacks_dtype", lacks)
        deterministic = self.deterministic
        if isinstance(deterministic, bool):
            deterministic = EVERY_BACKEND if deterministic else frozenset()
        deterministic = frozenset(deterministic)
        unknown = deterministic - EVERY_BACKEND
        if unknown:
            raise ValueError(f"op {self.name!r}: deterministic names unknown backends {sorted(unknown)}")
        object.__setattr__(self, "deterministic", deterministic)

    def takes(self, dtype) -> bool:
        """True when ``dtype`` is one of the storage dtypes the op takes."""
        return np.dtype(dtype) in self.dtypes

    def check_dtype(self, dtype, what: str = "array") -> None:
        """TypeError naming the op, the dtypes it takes and, for a declined one, why; nothing
        when the op takes ``dtype``."""
        dtype = np.dtype(dtype)
        if dtype in self.dtypes:
            return
        why = self.declines.get(dtype)
        names = ", ".join(d.name for d in self.dtypes)
        raise TypeError(f"{self.name}: {what} has dtype {dtype.name}; {self.name} takes {names}"
                        + (f" ({dtype.name}: {why})" if why else ""))

    def dtype_reason(self, backend: str, dtype) -> str | None:
        """Why ``backend``'s implementation does not handle ``dtype`` (None when it does)."""
        try:
            return self.lacks_dtype.get(backend, {}).get(np.dtype(dtype))
        except TypeError:  # not a dtype at all
            return None

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
_resolved: dict[tuple, tuple[str, Callable]] = {}  # (op, choice, variant, dtype) -> (backend, function)
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
    if backend == "cython":
        from . import cpu

        cpu.isa_cap()  # a FASTNLP_MAX_ISA the C side would not understand: refused before its kernels run
    try:
        module = _family_module(family, backend)
    except ImportError as exc:
        if backend == "cython":
            return cython_missing_reason(f"fastnlp.kernels.{family}._cython_impl", exc)
        return f"{family}/{_MODULE_OF_BACKEND[backend]} does not import: {exc}"
    function = getattr(module, op, None)
    if function is None:
        return f"not implemented in {family}/{_MODULE_OF_BACKEND[backend]}"
    unavailable = getattr(module, "UNAVAILABLE", None)  # built, but this CPU lacks the instructions
    return unavailable if unavailable else function


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


def _dtype_that_matters(op_spec: OpSpec, like, dtype):
    """The dtype of the call when it changes the resolution (a declined dtype, or one some
    backend lacks), else None: most calls share one cached resolution per op."""
    if dtype is None:
        dtype = getattr(like, "dtype", None)
    if dtype is None or not (op_spec.declines or op_spec.lacks_dtype):
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return None
    if dtype in op_spec.declines or any(dtype in per for per in op_spec.lacks_dtype.values()):
        return dtype
    return None


def kernel(op: str, like=None, variant: str | None = None, dtype=None) -> Callable:
    """The function that runs ``op`` now for arrays like ``like`` (of storage dtype ``dtype``,
    by default ``like.dtype``).

    Device (CuPy) arrays always run on the cupy implementation. Host arrays run on the active
    backend (``use_backend`` / ``set_backend`` / ``FASTNLP_BACKEND``); without a choice, on the
    op's fastest backend here (for ops with a calibration, the fastest measured for calls of
    class ``variant``). A backend lacking the op, or lacking the dtype for it
    (``OpSpec.lacks_dtype``), falls back to the next in that order, logged once per (op,
    backend[, dtype]) unless the op's family lacks the backend on purpose (``OpSpec.absent``).
    A dtype the op declines (``OpSpec.declines``) raises its TypeError.
    """
    op_spec = spec(op)
    dtype = _dtype_that_matters(op_spec, like, dtype)
    if dtype is not None and dtype in op_spec.declines:
        op_spec.check_dtype(dtype)
    if like is not None and type(like) is not np.ndarray and dispatch.is_device_array(like):
        function = _implementation(op, "cupy")
        if isinstance(function, str):
            raise dispatch.BackendUnavailableError(f"op {op!r} cannot run on CuPy arrays: {function}")
        reason = op_spec.dtype_reason("cupy", dtype) if dtype is not None else None
        if reason is not None:
            raise dispatch.BackendUnavailableError(f"op {op!r} cannot run on CuPy {dtype.name} arrays: {reason}")
        return function
    chosen = dispatch.chosen_backend()
    key = (op, chosen, variant, dtype)
    resolved = _resolved.get(key)
    if resolved is None:
        resolved = _resolved[key] = _resolve_host(op, chosen, variant, dtype)
    return resolved[1]


def backend_for(op: str, like=None, variant: str | None = None, dtype=None) -> str:
    """Name of the backend :func:`kernel` picks for ``op`` now."""
    if like is not None and dispatch.is_device_array(like):
        return "cupy"
    kernel(op, like, variant, dtype)
    dtype = _dtype_that_matters(spec(op), like, dtype)
    return _resolved[(op, dispatch.chosen_backend(), variant, dtype)][0]


def implementation_for(op: str, backend: str, dtype):
    """``backend``'s function for ``op`` on arrays of ``dtype``, or why there is none (the op
    missing there, or that backend lacking the dtype for it, or the op not taking it)."""
    op_spec = spec(op)
    if not op_spec.takes(dtype):
        return f"{op} does not take {np.dtype(dtype).name}"
    function = _implementation(op, backend)
    if isinstance(function, str):
        return function
    reason = op_spec.dtype_reason(backend, dtype)
    return function if reason is None else f"{backend} lacks {np.dtype(dtype).name} for {op}: {reason}"


def _resolve_host(op: str, chosen: str | None, variant: str | None = None, dtype=None):
    op_spec = spec(op)
    order = op_spec.preference_for(variant)
    if chosen in dispatch.CPU_BACKENDS and chosen != REFERENCE and op_spec.calibration is not None:
        # A loop backend chosen for the whole library (FASTNLP_BACKEND=cython) leaves an op whose
        # implementations are ranked by measurement (gemm: the Cython one is its AMX product, one
        # candidate among the matrix libraries) to that ranking; a matrix library is forced as asked.
        chosen = None
    if chosen is not None and chosen in dispatch.HOST_BACKENDS:
        order = (chosen,) + tuple(b for b in order if b != chosen)
    wanted = chosen if chosen in dispatch.HOST_BACKENDS else order[0]
    for backend in order + (REFERENCE,):
        function = _implementation(op, backend)
        if isinstance(function, str) or (dtype is not None and op_spec.dtype_reason(backend, dtype) is not None):
            continue
        if backend != wanted and not lacks_on_purpose(op, wanted):
            missing = _implementation(op, wanted)
            if isinstance(missing, str):
                if (op, wanted) not in _fallbacks_logged:
                    _fallbacks_logged.add((op, wanted))
                    log.warning("fastnlp: op %s runs on %s: %s lacks it (%s)", op, backend, wanted, missing)
            elif (op, wanted, dtype) not in _fallbacks_logged:
                _fallbacks_logged.add((op, wanted, dtype))
                log.warning("fastnlp: op %s on %s arrays runs on %s: %s lacks %s (%s)", op, dtype.name, backend,
                            wanted, dtype.name, op_spec.dtype_reason(wanted, dtype))
        if op_spec.adapt is not None and variant is not None:
            function = op_spec.adapt(variant, backend, function)
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


_SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def _short(dtype) -> str:
    return _SHORT.get(np.dtype(dtype).name, np.dtype(dtype).name)


def matrix() -> str:
    """The op x backend table that ``fastnlp backends`` prints: ``ok`` or why the op is missing,
    ``ok-bf16 [n]`` where a backend runs the op but not one of its dtypes (note n says why),
    and the dtypes each op takes in the last column."""
    rows = [("op", *dispatch.BACKENDS, "dtypes")]
    notes: dict[str, int] = {}  # reason -> footnote number (one note for a whole missing backend)
    for op in ops():
        cells = []
        op_spec = spec(op)
        for backend, impl in implementations(op).items():
            if isinstance(impl, str):
                number = notes.setdefault(f"{backend}: {impl}", len(notes) + 1)
                cells.append(f"- [{number}]")
            elif op_spec.lacks_dtype.get(backend):
                lacking = op_spec.lacks_dtype[backend]
                numbers = [notes.setdefault(f"{backend}, {_short(d)}: {why}", len(notes) + 1) for d, why in lacking.items()]
                cells.append("ok" + "".join(f"-{_short(d)}" for d in lacking) + " [" + ",".join(map(str, numbers)) + "]")
            else:
                cells.append("ok")
        rows.append((op, *cells, " ".join(_short(d) for d in op_spec.dtypes)))
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
