"""Which matrix library is fastest here: measured once per machine, cached on disk.

Each *variant* of the gemm op (input dtype / shape class, e.g. ``float32/step``) is timed on
every host backend that has the op and loads, at one problem of the size the models run, the
first time a product of that class is asked for. The ranking is kept in
``<user cache>/calibration/gemm-<key>.json``, where the key covers what decides the ranking:
the CPU (model name and the instruction sets that matter), the library versions, the code path
each library dispatched to (an ISA cap in its environment changes it) and their thread counts. Another machine, an upgraded library or another thread count gets a fresh file.

``FASTNLP_CALIBRATION=off`` skips measuring (NumPy everywhere, as without the accel extra);
:func:`calibrate` measures everything now (``fastnlp backends --calibrate``), ``refresh=True``
measures again. The thread counts are read once per process: after changing them (threadpoolctl)
call :func:`forget` so the next product is ranked for the new count.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time

import numpy as np

from .. import calibration as op_calibration
from .. import cpu, dispatch, registry

log = logging.getLogger("fastnlp.kernels")

ENV_VAR = "FASTNLP_CALIBRATION"
_FORMAT = 4  # 2: transposed large classes, the step class timed as repeated products; 3: large ones cold; 4: wide
# One problem per shape class, (batch, M, K, N), at the sizes the models multiply.
PROBLEMS = {
    "small": (None, 20, 100, 400),  # one Rnnlm step (H 100): 20 sequences x Wh (100 x 400)
    "step": (None, 20, 650, 2600),  # one BetterRnnlm step (H 650)
    "large": (None, 700, 650, 2600),  # a BetterRnnlm input projection (35 steps of 20 sequences)
    "large_ta": (None, 650, 700, 2600),  # its weight gradient, xs.T @ dA
    "large_tb": (None, 700, 2600, 650),  # its input gradient, dA @ Wx.T
    "wide": (None, 700, 650, 10000),  # the softmax layer's scores, x @ W.T (V 10,000)
    "batched": (128, 1, 256, 29),  # one attention step: 128 queries against 29 encoder states
}
TRANSPOSED = {"large_ta": (True, False), "large_tb": (False, True), "wide": (False, True)}  # others none
# The classes a training step makes once per layer, whose operands the other layers' work has pushed
# out of L2 by the time they run: timed one call at a time after other memory was written
# (harness.best_cold_seconds), not back to back. Back to back MKL led the AMX tiles at 700 x 650 x
# 2600 (1,201 against 1,063 GFLOP/s) and was 3% behind them in BetterRnnlm's bf16 training; cold,
# the tiles ran 700 x 650 x 10,000 at 1,042 against 857 and the weight gradient at 935 against 832.
COLD_CLASSES = ("large", "large_ta", "large_tb", "wide")
_COLD_CALLS = 7
# How often a training step of the models makes each class of product, roughly: one per time
# step for the per-step classes (35 in the book's BPTT window, 29 decoder steps of attention),
# a few batched products a layer. The one-library choice weighs each class's time by it.
CALLS_PER_STEP = {"small": 35, "step": 35, "large": 1, "large_ta": 1, "large_tb": 1, "wide": 2, "batched": 29}
# Another library must beat NumPy's by more than 3% to be preferred: closer than that is the
# timing's noise, and NumPy's call costs least.
TIE = 0.97
_MIN_SECONDS = 0.004  # per timed block; 5 blocks per backend keep a variant near 0.1 s
# A library's worker threads spin for a while after its last call and hold a core the next
# library measured needs: on the 2-core Xeon, MKL's threaded 20x650x2600 product ran at 20-80
# GFLOP/s within 30 ms of an OpenBLAS product and at 150 after 0.1 s. With more than one thread,
# each library is measured only after the previous one's threads have gone to sleep.
SETTLE_SECONDS = 0.15
# With more than one thread, the products made once per time step may run faster on the calling
# thread alone: no fork and join per product, and no barrier waiting on a worker that another
# process holds (2-core Xeon at load 3.5: MKL's 20x100x400 product under 1 GFLOP/s on 2 threads,
# 106 on one; 20x650x2600 9 against 93). Whether they do is measured too: each library that can
# switch per call (_libraries.single_threaded) is timed on one thread as the variant
# '<variant>@1thread', and runs such products there unless the threaded call is faster by more
# than TIE.
SERIAL_CLASSES = ("small", "step", "batched")
SERIAL_SUFFIX = "@1thread"
# Products this small run on one thread whatever the threaded timing says. Timed back to back,
# MKL's threaded 20 x 100 x 400 product ran 124 GFLOP/s against 70 alone; between the step
# kernels of Rnnlm's time loop the threaded products made its LSTM layer twice as slow, and a
# training iteration at 2 threads took 54 ms against 48 with them on one thread.
ALWAYS_SERIAL_CLASSES = ("small",)

_lock = threading.Lock()
_state: dict = {}  # "key", "path", "variants": {variant: [[backend, gflops], ...]}


def preference(variant: str) -> tuple:
    """Backends fastest first for products of ``variant`` ('float32/step', ...).

    With one thread each shape class gets its own fastest library. With more, one library
    serves every class of a dtype: each library keeps its own pool of spinning threads, and
    two pools alternating on two cores starve each other (BetterRnnlm at 2 threads: 1,250
    tokens/s with the step products on oneDNN and the rest on OpenBLAS and MKL, 3,100 on MKL
    alone). That library is the one that takes least time over the classes' problems together,
    each weighed by how often a training step makes it (CALLS_PER_STEP).
    """
    if not op_calibration.enabled():
        return registry.spec("gemm").preference
    if _threads() <= 1:
        seconds = {backend: 1.0 / gflops for backend, gflops in _ranking(variant)}
    else:
        from . import SHAPE_CLASSES, variant_name

        dtype_name = variant.split("/")[0]
        seconds = {}
        for shape_class in SHAPE_CLASSES:
            work = _flops(shape_class) * CALLS_PER_STEP[shape_class]
            name = variant_name(dtype_name, shape_class)
            # a library runs a per-step class on one thread where that is faster (adapted)
            alone = dict(_ranking(name + SERIAL_SUFFIX)) if shape_class in SERIAL_CLASSES else {}
            for backend, gflops in _ranking(name):
                gflops = max(gflops, alone.get(backend, 0.0))
                seconds[backend] = seconds.get(backend, 0.0) + work / (gflops * 1e9)
    order = sorted(seconds, key=seconds.get)
    # A tie goes to the reference: the lowest call overhead and one library fewer in play.
    if registry.REFERENCE in seconds and seconds[registry.REFERENCE] * TIE <= seconds[order[0]]:
        order.remove(registry.REFERENCE)
        order.insert(0, registry.REFERENCE)
    return tuple(order)


def adapted(variant: str, backend: str, function):
    """``function``, the gemm of ``backend`` for products of ``variant``, or the same product on
    the calling thread alone unless the threaded call measured clearly faster here (see
    SERIAL_CLASSES)."""
    if (not op_calibration.enabled() or "/" not in variant or variant.split("/")[1] not in SERIAL_CLASSES
            or _threads() <= 1):
        return function
    from . import _libraries

    serial = _libraries.single_threaded(backend, function)
    if serial is None:
        return function
    if variant.split("/")[1] in ALWAYS_SERIAL_CLASSES:
        return serial
    threaded = dict(_ranking(variant)).get(backend)
    alone = dict(_ranking(variant + SERIAL_SUFFIX)).get(backend)
    # A tie goes to one thread: a product this small gains little from a second one, and a
    # threaded call waits on a worker whenever another process holds its core (MKL's 1 x 100 x
    # 4000 product took 7.5 ms on 2 threads at load 5, 48 us on one).
    if threaded is None or alone is None or threaded * TIE > alone:
        return function
    log.info("fastnlp: gemm %s on %s runs on one thread (%.0f GFLOP/s there, %.0f on %d threads)",
             variant, backend, alone, threaded, _threads())
    return serial


def _flops(shape_class: str) -> float:
    batch, M, K, N = PROBLEMS[shape_class]
    return 2.0 * M * K * N * (batch or 1)


def _host_implementations() -> dict:
    """``{backend: function}`` of the gemm implementations that run on the host here."""
    return {backend: function for backend, function in registry.implementations("gemm").items()
            if backend in dispatch.HOST_BACKENDS and not isinstance(function, str)}


def _ranking(variant: str) -> list:
    ranking = measurements().get(variant)
    return ranking if ranking is not None else _measure_and_store(variant)


def _threads() -> int:
    with _lock:
        if not _state:
            _load()
        return _state["key"]["threads"]


def measurements() -> dict:
    """``{variant: [(backend, GFLOP/s), ...]}`` measured so far on this machine, fastest first."""
    with _lock:
        if not _state:
            _load()
        return {variant: [tuple(pair) for pair in ranking] for variant, ranking in _state["variants"].items()}


def calibrate(refresh: bool = False) -> dict:
    """Measure every variant now (``refresh``: again, even where measured) and return
    :func:`measurements`."""
    from . import INPUT_DTYPES, SHAPE_CLASSES, variant_name

    if refresh:
        forget()
        with _lock:
            _load()
            _state["variants"] = {}  # the file is rewritten as the variants are measured again
    known = measurements()
    for dtype in INPUT_DTYPES:
        for shape_class in SHAPE_CLASSES:
            variant = variant_name(dtype.name, shape_class)
            wanted = [variant] + ([variant + SERIAL_SUFFIX] if shape_class in SERIAL_CLASSES and _threads() > 1 else [])
            for name in wanted:
                if name not in known:
                    _measure_and_store(name)
    return measurements()


def forget() -> None:
    """Drop what this process knows (thread counts included): the next product reads the cache
    file of the machine as it is now, or measures."""
    with _lock:
        _state.clear()
    registry.forget_resolutions()


def machine_key() -> dict:
    """What the ranking depends on: CPU, library versions and code paths, thread counts."""
    key = {"format": _FORMAT, "cpu": cpu.model_name(), "flags": cpu.matrix_features(),
           "machine": platform.machine(), "numpy": np.__version__,
           "implementations": sorted(_host_implementations()), "threads": _thread_count()}
    for name in dispatch.LIBRARY_BACKENDS:
        if dispatch.backend_reason(name) is None:
            from . import _libraries

            key[name] = f"{_libraries.version(name)}; {_libraries.code_path(name)}"
    return key


def _measure_and_store(variant: str) -> list:
    ranking = _measure(variant)
    with _lock:
        if not _state:
            _load()
        _state["variants"][variant] = ranking
        _save()
    log.info("fastnlp: gemm %s calibrated: %s", variant,
             ", ".join(f"{backend} {gflops:.0f} GFLOP/s" for backend, gflops in ranking))
    return ranking


def _measure(variant: str) -> list:
    from .. import harness
    from . import gemm_problem

    serial = variant.endswith(SERIAL_SUFFIX)
    dtype_name, shape_class = variant.removesuffix(SERIAL_SUFFIX).split("/")
    batch, M, K, N = PROBLEMS[shape_class]
    trans_a, trans_b = TRANSPOSED.get(shape_class, (False, False))
    args = gemm_problem(M, K, N, np.dtype(dtype_name), trans_a, trans_b, batch=batch, seed=0)
    ranking = []
    settle = _threads() > 1
    op_spec = registry.spec("gemm")
    for backend, function in _host_implementations().items():
        if op_spec.dtype_reason(backend, dtype_name) is not None:
            continue  # the Cython gemm: bf16 only
        if settle:
            time.sleep(SETTLE_SECONDS)
        function = _as_the_models_run_it(backend, function, shape_class, args)
        if serial:
            from . import _libraries

            function = _libraries.single_threaded(backend, function)
            if function is None:
                continue
        if shape_class in COLD_CLASSES:
            seconds = harness.best_cold_seconds(function, *args, calls=_COLD_CALLS)
        else:
            seconds = harness.best_seconds(function, *args, min_seconds=_MIN_SECONDS)
        ranking.append([backend, _flops(shape_class) / seconds / 1e9])
    ranking.sort(key=lambda pair: -pair[1])
    return ranking


def _as_the_models_run_it(backend, function, shape_class, args):
    """The product to time for ``backend``: the per-step class on MKL as the recurrent loops
    run it (gemm.repeated_product: the weight packed once, each step a packed product; the
    packing, about one step's time, spread over a BPTT window's 35 steps is left out), anything
    else as it is."""
    if shape_class != "step" or backend != "mkl":
        return function
    from . import mkl_impl

    a, b, out, trans_a, trans_b, _ = args
    if trans_a or not mkl_impl.can_pack(b.dtype):
        return function
    packed, ldb = mkl_impl.pack_b(b, trans_b, a.shape[0]), b.shape[1]

    def packed_product(a, b, out, trans_a, trans_b, accumulate):
        mkl_impl.gemm_packed_b(a, packed, ldb, out, accumulate)

    return packed_product


def _load() -> None:
    key = machine_key()
    path = op_calibration.cache_path("gemm", key)
    _state.update(key=key, path=path, variants=op_calibration.read_rankings(path, key, "variants", _valid_ranking))


def _valid_ranking(ranking) -> bool:
    return isinstance(ranking, list) and all(
        isinstance(pair, list) and len(pair) == 2 and pair[0] in dispatch.HOST_BACKENDS for pair in ranking)


def _save() -> None:
    op_calibration.write_rankings(_state["path"], _state["key"], "variants", _state["variants"], "gemm")


def _thread_count() -> int:
    """The threads the matrix libraries use now (the most any of them uses): which other
    libraries happen to be loaded (torch's OpenMP, say) must not change the key."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [pool.get("num_threads") or 1 for pool in threadpool_info()
              if pool.get("user_api") == "blas" or pool.get("internal_api") in ("openmp", "mkl")]
    return max(counts, default=os.cpu_count() or 1)
