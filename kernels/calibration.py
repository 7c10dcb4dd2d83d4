"""Which backend runs each op here: measured once per machine, cached on disk.

The first call of an op without a user choice times each host backend of the op's
``OpSpec.preference`` that loads here on the op's ``benchmark_args`` (one problem at the size
the models run) with the shared timer (``harness.best_seconds``, a few blocks of ~10 ms), and
ranks them. The ranking is kept in ``<user cache>/calibration/ops-<key>.json``, beside gemm's
(kernels/gemm/calibration.py, which ranks matrix libraries per shape class the same way); the
key covers what decides it: the CPU (model name, instruction sets), the NumPy and Numba
versions, which backends load and the thread count. Another machine or an upgrade gets a fresh
file; nothing is measured at import.

``FASTNLP_CALIBRATION=off`` skips measuring: each op runs on the first backend of its static
``preference`` that loads. A user's choice (``FASTNLP_BACKEND``, ``set_backend``,
``use_backend``) always wins over either. :func:`calibrate` measures every op now
(``refresh=True``: again); :func:`forget` drops what this process knows.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import threading
import time

import numpy as np

from . import cpu, dispatch, registry

log = logging.getLogger("fastnlp.kernels")

ENV_VAR = "FASTNLP_CALIBRATION"
_FORMAT = 1
# A backend must beat the one the static preference puts before it by more than 10% to move
# ahead: closer than that is the timing's noise on a shared machine, and the static order
# breaks the tie (it puts first what needs no JIT warm-up).
TIE = 0.9
_MIN_SECONDS = 0.01  # per timed block; 3 blocks a backend
_BLOCKS = 3

_lock = threading.RLock()
_state: dict = {}  # "key", "path", "ops": {op: [[backend, seconds], ...]}


def enabled() -> bool:
    """False when FASTNLP_CALIBRATION says off (also 0 or no)."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("off", "0", "no")


def preference(op: str) -> tuple:
    """Host backends for ``op``, fastest first: measured (once per machine) when calibration is
    on, else the op's static ``preference``."""
    spec = registry.spec(op)
    if not enabled():
        return spec.preference
    with _lock:
        ranking = measurements().get(op)
        # A backend that loads now but was not measured (added since, or built since) re-measures.
        if ranking is None or set(candidates(op)) - {backend for backend, _ in ranking}:
            ranking = _measure_and_store(op)
    return _order(spec.preference, dict(ranking))


def _order(static: tuple, seconds: dict) -> tuple:
    """``static`` reordered by measured seconds: taken in static order, each backend moves ahead
    of those it beats clearly (TIE). Backends without a measurement keep their place at the end."""
    order = []
    for backend in (b for b in static if b in seconds):
        at = len(order)
        while at > 0 and seconds[backend] < seconds[order[at - 1]] * TIE:
            at -= 1
        order.insert(at, backend)
    return tuple(order) + tuple(b for b in static if b not in seconds)


def measurements() -> dict:
    """``{op: [(backend, seconds per call), ...]}`` measured so far on this machine, fastest first."""
    with _lock:
        if not _state:
            _load()
        return {op: [tuple(pair) for pair in ranking] for op, ranking in _state["ops"].items()}


def calibrate(ops=None, refresh: bool = False) -> dict:
    """Measure ``ops`` (default: every op without its own calibration) now, ``refresh``: even
    where measured already; returns :func:`measurements`."""
    names = [op for op in (ops or registry.ops()) if registry.spec(op).calibration is None]
    known = {} if refresh else measurements()
    for op in names:
        if op not in known:
            _measure_and_store(op)
    registry.forget_resolutions()  # the next call of each op resolves with the new rankings
    return measurements()


def forget() -> None:
    """Drop what this process knows: the next op call reads the machine's cache file or measures."""
    with _lock:
        _state.clear()
    registry.forget_resolutions()


def machine_key() -> dict:
    """What the rankings depend on: CPU (and any cap on the kernels' instruction sets), versions,
    which backends load, threads."""
    numba_version = None
    if dispatch.backend_reason("numba") is None:
        import numba

        numba_version = numba.__version__
    return {"format": _FORMAT, "cpu": cpu.model_name(), "flags": cpu.matrix_features(), "isa_cap": cpu.isa_cap(),
            "machine": platform.machine(), "numpy": np.__version__, "numba": numba_version,
            "backends": [b for b in dispatch.CPU_BACKENDS if dispatch.backend_reason(b) is None],
            "threads": os.cpu_count() or 1}


def candidates(op: str) -> dict:
    """``{backend: function}``: the backends of ``op``'s preference that load here."""
    found = {}
    for backend in registry.spec(op).preference:
        function = registry.implementations(op)[backend]
        if not isinstance(function, str):
            found[backend] = function
    return found


def _measure_and_store(op: str) -> list:
    # One measurement at a time (training threads may reach an op's first call together):
    # timings taken side by side would slow each other down.
    with _lock:
        if not _state:
            _load()
        ranking = _measure(op)
        _state["ops"][op] = ranking
        _save()
    log.info("fastnlp: %s calibrated: %s", op, ", ".join(f"{b} {s * 1e6:.1f} us" for b, s in ranking))
    return ranking


def _measure(op: str) -> list:
    """[[backend, seconds per call], ...] fastest first, each backend on its own copy of the
    op's benchmark problem (ops write into their arguments)."""
    from . import harness

    spec = registry.spec(op)
    found = candidates(op)
    if len(found) < 2:  # nothing to choose between
        return [[backend, 0.0] for backend in found]
    problem = spec.benchmark_args()
    ranking = []
    for backend, function in found.items():
        args = copy.deepcopy(problem)
        ranking.append([backend, harness.best_seconds(function, *args, blocks=_BLOCKS, min_seconds=_MIN_SECONDS)])
    ranking.sort(key=lambda pair: pair[1])
    return ranking


def _load() -> None:
    key = machine_key()
    path = cache_path("ops", key)
    _state.update(key=key, path=path, ops=read_rankings(path, key, "ops", _valid_ranking))


def cache_path(prefix: str, key: dict):
    """The cache file of one kind of measurement (``ops``, ``gemm``) on the machine ``key`` names."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return _cache_folder() / f"{prefix}-{digest}.json"


def read_rankings(path, key: dict, field: str, valid) -> dict:
    """The saved rankings under ``field`` that ``valid`` accepts, when the file is of this
    machine; {} when it is missing, damaged or of another machine (measure again)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return {name: ranking for name, ranking in saved[field].items() if valid(ranking)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return {}


def write_rankings(path, key: dict, field: str, rankings: dict, what: str) -> None:
    """Save the rankings atomically; a cache, so failing to write costs a re-measure, nothing more."""
    from fastnlp.serialization import atomic_write

    text = json.dumps({"key": key, field: rankings, "saved": time.time()}, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as err:
        log.warning("fastnlp: could not save the %s calibration to %s (%s)", what, path, err)


def _valid_ranking(ranking) -> bool:
    return isinstance(ranking, list) and all(
        isinstance(pair, list) and len(pair) == 2 and pair[0] in dispatch.HOST_BACKENDS
        and isinstance(pair[1], (int, float)) for pair in ranking)


def _save() -> None:
    write_rankings(_state["path"], _state["key"], "ops", _state["ops"], "op")


def _cache_folder():
    from fastnlp.datasets._files import cache_home

    return cache_home() / "calibration"
