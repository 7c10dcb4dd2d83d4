"""One harness for every op: check an implementation against the NumPy reference, and time it.

Used by the generated tests (tests/test_kernels_registry.py), the benchmarks in bench/ and the
GPU session script alike, so there is one tolerance rule and one timer:

* :func:`validate_result` passes when ``|result - reference| <= atol + rtol * |reference|``
  everywhere, with ``(atol, rtol)`` from the op's spec for the dtype and backend (0, 0: exact);
* :func:`check_same_bits` passes when two runs gave the same bytes (the determinism that
  ``OpSpec.deterministic`` claims per backend);
* :func:`benchmark_kernel` returns the median time of one call, synchronising the device
  around each timed block when the backend has one; :func:`best_seconds` the best block's, to
  rank candidates on a shared machine;
* :func:`zipf_probabilities` is the word distribution of the ops' synthetic benchmark corpora.
"""
from __future__ import annotations

import inspect
import time

import numpy as np

from . import dispatch, registry
from .validate import BFLOAT16 as _BFLOAT16


def array_module_of(backend: str):
    """numpy, or cupy for the cupy backend (imported only then)."""
    if backend == "cupy":
        import cupy

        return cupy
    return np


def to_backend(value, backend: str):
    """A host array moved to ``backend``'s device (a copy, so in-place ops cannot touch the
    caller's array); anything else unchanged."""
    if isinstance(value, np.ndarray):
        xp = array_module_of(backend)
        return xp.array(value, copy=True, order="C")  # row-major, as the op wrappers hand arrays over
    if hasattr(value, "tocsr") and backend == "cupy":  # a scipy.sparse matrix
        from cupyx.scipy import sparse

        return sparse.csr_matrix(value)
    return value


def to_host(value):
    """Device arrays copied to the host; tuples converted element-wise; scalars unchanged."""
    if isinstance(value, tuple):
        return tuple(to_host(v) for v in value)
    if isinstance(value, np.ndarray):  # (a bfloat16 array's .data buffer cannot even be formed)
        return value
    if dispatch.is_device_array(value) or dispatch.is_device_array(getattr(value, "data", None)):
        return value.get()
    return value


def run_implementation(op: str, backend: str, args: tuple) -> tuple:
    """Call ``op``'s implementation on ``backend`` with copies of ``args`` moved to its device;
    return every output on the host: the return value(s), then the arguments written in place."""
    function = registry.implementations(op)[backend]
    if isinstance(function, str):
        raise dispatch.BackendUnavailableError(f"{op} on {backend}: {function}")
    moved = tuple(to_backend(a, backend) for a in args)
    returned = function(*moved)
    outputs = [] if returned is None else list(returned) if isinstance(returned, tuple) else [returned]
    outputs += [moved[i] for i in registry.spec(op).writes]
    return tuple(to_host(o) for o in outputs)


def validate_result(result, expected, atol: float, rtol: float, what: str = "result") -> float:
    """Raise AssertionError unless ``result`` equals ``expected`` within ``atol + rtol*|expected|``
    (exact when both are 0; NaN must meet NaN). Returns the largest absolute difference."""
    if isinstance(expected, (int, float, np.integer, np.floating)) and not isinstance(result, np.ndarray):
        result, expected = np.asarray(result), np.asarray(expected)
    result, expected = np.asarray(result), np.asarray(expected)
    if result.shape != expected.shape:
        raise AssertionError(f"{what}: shape {result.shape}, reference {expected.shape}")
    if result.dtype != expected.dtype:
        raise AssertionError(f"{what}: dtype {result.dtype}, reference {expected.dtype}")
    if result.size == 0:
        return 0.0
    if expected.dtype == _BFLOAT16:  # kind 'V' to NumPy: compared as the float32 values it holds exactly
        result, expected = result.astype(np.float32), expected.astype(np.float32)
    if expected.dtype.kind not in "fc" or (atol == 0 and rtol == 0):
        same = (result == expected) | (np.isnan(result) & np.isnan(expected) if expected.dtype.kind in "fc" else False)
        if not np.all(same):
            bad = np.argwhere(~same)[0]
            raise AssertionError(f"{what}: differs from the reference at {tuple(bad)}: "
                                 f"{result[tuple(bad)]!r} != {expected[tuple(bad)]!r} (exact match required)")
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(result.astype(np.float64) - expected.astype(np.float64))
        allowed = atol + rtol * np.abs(expected.astype(np.float64))
        same_special = (np.isnan(result) & np.isnan(expected)) | (result == expected)  # inf == inf
        ok = same_special | (error <= allowed)
    if not np.all(ok):
        bad = tuple(np.argwhere(~ok)[0])
        raise AssertionError(f"{what}: differs from the reference at {bad}: {result[bad]!r} vs {expected[bad]!r}, "
                             f"error {error[bad]:.3g} > allowed {allowed[bad]:.3g} (atol {atol}, rtol {rtol})")
    finite = np.isfinite(error)
    return float(error[finite].max()) if finite.any() else 0.0


def examples_for(op: str, dtype):
    """The hypothesis strategy of ``op``'s problems of storage dtype ``dtype``: its ``examples``
    called with ``dtype=`` when it takes that parameter, else its draws filtered by dtype."""
    import inspect

    spec = registry.spec(op)
    dtype = np.dtype(dtype)
    if "dtype" in inspect.signature(spec.examples).parameters:
        return spec.examples(dtype=dtype)
    if len(spec.dtypes) == 1:
        return spec.examples()
    return spec.examples().filter(lambda args: np.dtype(spec.dtype_of(args)) == dtype)


def benchmark_problem(op: str, dtype=None) -> tuple:
    """The arguments of one call of ``op`` at working size (``OpSpec.benchmark_args``), in
    storage dtype ``dtype`` when given: from the builder itself where it takes ``dtype`` (an op
    whose contract mixes dtypes, like gemm's float32 ``out`` for 16-bit inputs), else with every
    float32 array rounded to ``dtype`` (:func:`as_dtype`)."""
    build = registry.spec(op).benchmark_args
    if dtype is None:
        return build()
    if "dtype" in inspect.signature(build).parameters:
        return build(dtype=np.dtype(dtype))
    return as_dtype(build(), dtype)


def as_dtype(args: tuple, dtype) -> tuple:
    """``args`` with every float32 array converted to storage dtype ``dtype`` (round to nearest
    even): a float32 ``benchmark_args`` problem in float16 or bfloat16 for the timings per dtype."""
    dtype = np.dtype(dtype)
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a for a in args)


def check_against_reference(op: str, backend: str, args: tuple) -> float:
    """Run ``op`` on ``backend`` and on the reference with the same inputs; validate every output
    with the spec's tolerance. Returns the largest absolute error seen."""
    spec = registry.spec(op)
    expected = run_implementation(op, registry.REFERENCE, args)
    result = run_implementation(op, backend, args)
    if len(result) != len(expected):
        raise AssertionError(f"{op} on {backend} gave {len(result)} outputs, the reference {len(expected)}")
    atol, rtol = spec.tolerance_for(spec.dtype_of(args), backend)
    worst = 0.0
    for k, (got, want) in enumerate(zip(result, expected)):
        worst = max(worst, validate_result(got, want, atol, rtol, what=f"{op} on {backend}, output {k}"))
    return worst


def check_same_bits(first: tuple, second: tuple, what: str = "result") -> None:
    """Raise AssertionError unless two runs' outputs (as :func:`run_implementation` returns
    them) are the same bytes: dtype, shape and every bit, NaN payloads and signed zeros too."""
    if len(first) != len(second):
        raise AssertionError(f"{what}: {len(first)} outputs, then {len(second)} run to run")
    for k, (a, b) in enumerate(zip(first, second)):
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        if a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes():
            continue
        where = ""
        if a.dtype == b.dtype and a.shape == b.shape and a.size:
            bytes_a = a.reshape(-1).view(np.uint8).reshape(a.size, -1)
            bytes_b = b.reshape(-1).view(np.uint8).reshape(b.size, -1)
            i = int(np.flatnonzero((bytes_a != bytes_b).any(axis=1))[0])
            where = f", first at flat index {i}: {a.reshape(-1)[i]!r} then {b.reshape(-1)[i]!r}"
        raise AssertionError(f"{what}, output {k}: differs run to run ({a.dtype}{a.shape} then "
                             f"{b.dtype}{b.shape}{where})")


def benchmark_kernel(fn, *args, repeat: int = 7, min_seconds: float = 0.05, backend: str | None = None) -> float:
    """Median seconds per call of ``fn(*args)``: one warm-up call (JIT compilation, caches), then
    ``repeat`` timed blocks of as many calls as fill ``min_seconds``. With ``backend="cupy"`` the
    device is synchronised before and after each block so the time includes the kernels."""
    synchronize = _synchronizer(backend)
    fn(*args)
    synchronize()
    start = time.perf_counter()
    fn(*args)
    synchronize()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(min_seconds / once))
    times = []
    for _ in range(repeat):
        synchronize()
        start = time.perf_counter()
        for _ in range(number):
            fn(*args)
        synchronize()
        times.append((time.perf_counter() - start) / number)
    return sorted(times)[len(times) // 2]


def best_seconds(fn, *args, blocks: int = 5, min_seconds: float = 0.05) -> float:
    """Seconds per call of ``fn(*args)``, the best of ``blocks`` timed blocks after a warm-up
    call: the minimum, not the median, where another process on a small machine only ever
    slows a block down and the question is which of several candidates is fastest."""
    fn(*args)  # warm-up: first-touch of buffers, library initialisation
    start = time.perf_counter()
    fn(*args)
    calls = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-7)))
    best = float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


# Bytes written between the calls of best_cold_seconds: 8x a core's L2 on the Xeon (2 MB), so a
# call finds its operands in L3 or memory at most, as a layer's product does between the others.
EVICT_BYTES = 16 << 20
_evict_buffer = []


def best_cold_seconds(fn, *args, calls: int = 5) -> float:
    """Seconds of one call of ``fn(*args)`` made after EVICT_BYTES of other memory were written,
    the best of ``calls`` (after a warm-up call): for products made once a training step, whose
    operands the layers in between have pushed out of L2. Back to back, a library's blocking
    keeps its packed operands hot and ranks libraries as training does not (bench/README.md,
    the AMX product's section)."""
    if not _evict_buffer:
        _evict_buffer.append(np.zeros(EVICT_BYTES // 4, np.float32))
    evict = _evict_buffer[0]
    fn(*args)
    best = float("inf")
    for _ in range(calls):
        evict += 1.0
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def _synchronizer(backend):
    if backend == "cupy":
        from . import _cuda

        return _cuda.synchronize
    return lambda: None


def zipf_probabilities(vocab_size: int) -> np.ndarray:
    """p(word of rank r) proportional to 1 / r over ``vocab_size`` words (Zipf's law, roughly
    PTB's shape): the synthetic corpora of the ops' ``benchmark_args``."""
    p = 1.0 / np.arange(1, vocab_size + 1)
    return p / p.sum()
