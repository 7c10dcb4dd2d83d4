"""Finding and loading the optional native matrix libraries (MKL, oneDNN) with ctypes.

Nothing here runs at import: each library is looked for and loaded once, on the first
:func:`load` (from ``mkl_impl`` / ``onednn_impl``, which the registry imports lazily), and the
outcome, the library or the reason it is missing, is kept for the life of the process.

Where the libraries are looked for, in order:

1. ``<prefix>/lib`` of the running Python (``sys.prefix``, the install scheme's data folder,
   the user base): the ``mkl`` and ``onednn-cpu-gomp`` wheels put their ``.so`` files there;
2. the files the installed distributions list in their RECORD (a wheel's data lands wherever
   its scheme put it, e.g. ``pip install --target``);
3. the system loader (``ctypes.util.find_library``, then the plain sonames).

Threads. MKL's ``mkl_rt`` picks its threading layer at its first call (``mkl_get_version``
counts): Intel OpenMP (libiomp5) unless libgomp is already in the process, then GNU. It loads
that layer RTLD_GLOBAL, so with the Intel layer libiomp5's GOMP_* entry points come first in
the global scope: a libgomp-linked library loaded *afterwards* (oneDNN's ``-gomp`` wheel,
PyTorch) binds to libiomp5 instead of its own libgomp, one loaded *before* keeps libgomp and
the process then holds two OpenMP pools whose idle workers spin on the same cores. Which
runtime oneDNN ran on depended on import order. So, before MKL's first call, we set its
layer to GNU whenever MKL's GNU layer and libgomp are present and ``MKL_THREADING_LAYER`` is
unset (a user's choice stands): one OpenMP runtime, libgomp, for MKL, oneDNN and PyTorch's
wheels, whatever the order, and threadpoolctl's ``threadpool_limits`` reaches all of them
(checked: ``threadpool_info`` lists ``libmkl_rt`` (gnu) and ``libgomp``; under
``threadpool_limits(1)`` no worker thread gets CPU time, under 2 both share the work).

Measured on the 2-core Xeon (AMX) at 1 thread: no difference between the layers (sgemm
700x650x2600: 215 GFLOP/s both). At 2 threads on that machine, shared with other busy
processes, libgomp suffered far more than libiomp5 (20x650x2600: 11-75 vs ~105 GFLOP/s, both
below their 1-thread rate): its barriers wait on a worker the scheduler has parked. Setting
``MKL_THREADING_LAYER=INTEL`` (and importing MKL's module first) puts both libraries on
libiomp5 for such machines; an idle machine was not available to measure the GNU layer's
2-thread scaling.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import site
import sys
import sysconfig
import threading

from .. import cpu

NAMES = ("mkl", "onednn")
INSTALL_HINT = 'pip install "fastnlp[accel]"'

# File names by platform; the first that exists in a folder wins (newest interface first).
_FILE_NAMES = {
    "mkl": {
        "linux": ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"),
        "darwin": ("libmkl_rt.2.dylib", "libmkl_rt.dylib"),
        "win32": ("mkl_rt.3.dll", "mkl_rt.2.dll", "mkl_rt.dll"),
    },
    "onednn": {
        "linux": ("libdnnl.so.3", "libdnnl.so"),
        "darwin": ("libdnnl.3.dylib", "libdnnl.dylib"),
        "win32": ("dnnl.dll",),
    },
}
_LOADER_STEMS = {"mkl": "mkl_rt", "onednn": "dnnl"}  # for ctypes.util.find_library
_DISTRIBUTIONS = {
    "mkl": ("mkl",),
    "onednn": ("onednn-cpu-gomp", "onednn-cpu-iomp", "onednn-cpu-tbb", "onednn-cpu-threadpool", "onednn"),
}
# What the implementations cannot work without; anything else they probe for themselves.
_REQUIRED_FUNCTIONS = {
    "mkl": ("cblas_sgemm", "cblas_dgemm", "cblas_gemm_bf16bf16f32", "mkl_get_max_threads",
            "mkl_get_version", "mkl_get_version_string", "MKL_Set_Threading_Layer",
            "MKL_Set_Interface_Layer"),
    "onednn": ("dnnl_version", "dnnl_sgemm", "dnnl_gemm_bf16bf16f32", "dnnl_get_effective_cpu_isa"),
}

# mkl_service.h
_MKL_THREADING = {0: "intel", 1: "sequential", 2: "pgi", 3: "gnu", 4: "tbb"}
_MKL_THREADING_GNU = 3
_MKL_INTERFACE_LP64 = 0  # 32-bit MKL_INT: what mkl_impl's argtypes declare
# dnnl_types.h: dnnl_cpu_isa_t is a bit set; avx512_core_bf16 = 0xe7 and every ISA above it
# (avx512_core_fp16 0x1ef, avx512_core_amx 0xfef, ...) contains its bits.
_DNNL_ISA_AVX512_CORE_BF16 = 0xE7
_DNNL_CPU_RUNTIMES = {0: "none", 1: "sequential", 2: "OpenMP", 4: "TBB", 8: "threadpool", 512: "SYCL"}


class _MKLVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("update", ctypes.c_int),
                ("product_status", ctypes.c_char_p), ("build", ctypes.c_char_p),
                ("processor", ctypes.c_char_p), ("platform", ctypes.c_char_p)]


class _DNNLVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL | str] = {}  # name -> the library, or why it cannot be had


def load(name: str) -> ctypes.CDLL:
    """The library ``name`` ("mkl" or "onednn"), loaded once; ImportError with the reason if not."""
    if name not in _FILE_NAMES:
        raise ValueError(f"unknown library {name!r}; known: {', '.join(NAMES)}")
    outcome = _loaded.get(name)
    if outcome is None:
        with _lock:
            outcome = _loaded.get(name)
            if outcome is None:
                try:
                    outcome = _find_and_load(name)
                except ImportError as missing:
                    outcome = str(missing)
                _loaded[name] = outcome
    if isinstance(outcome, str):
        raise ImportError(outcome)
    return outcome


def is_loaded(name: str) -> bool:
    """Whether ``name`` has been loaded in this process (this never loads it)."""
    return isinstance(_loaded.get(name), ctypes.CDLL)


def unavailable_reason(name: str) -> str | None:
    """None when ``name`` loads and has the functions the implementations need, else why not."""
    try:
        load(name)
    except ImportError as missing:
        return str(missing)
    return None


def version(name: str) -> str:
    """The library's own version string, e.g. ``"oneDNN 3.2.0 (40112196, OpenMP)"``."""
    lib = load(name)
    if name == "mkl":
        buffer = ctypes.create_string_buffer(512)
        lib.mkl_get_version_string(buffer, len(buffer))
        return buffer.value.decode(errors="replace").strip()
    info = _dnnl_version(lib)
    runtime = _DNNL_CPU_RUNTIMES.get(info.cpu_runtime, str(info.cpu_runtime))
    return f"oneDNN {info.major}.{info.minor}.{info.patch} ({(info.hash or b'').decode()[:8]}, {runtime})"


def code_path(name: str) -> str:
    """The instruction-set code path ``name`` dispatched to on this CPU, as the library says it:
    MKL's processor string, oneDNN's effective ISA. An ISA cap (``MKL_ENABLE_INSTRUCTIONS``,
    ``ONEDNN_MAX_CPU_ISA``) or a vendor the library does not tune for changes it, and with it
    which library is fastest, so measurements cached per machine are kept per code path too."""
    lib = load(name)
    if name == "mkl":
        return _mkl_version(lib).processor.decode(errors="replace").strip()
    return f"isa {lib.dnnl_get_effective_cpu_isa():#x}"


def bf16_support(name: str) -> str | None:
    """None when ``name`` runs bfloat16 products on bf16 instructions (AMX or AVX512-BF16) on
    this CPU; else why not (then the library emulates them, or the implementation converts).

    Asks both the CPU (its feature flags) and the library (the code path it dispatched to),
    because a library may not use instructions the CPU has (an old build, an ISA cap set by
    ``MKL_ENABLE_INSTRUCTIONS`` / ``ONEDNN_MAX_CPU_ISA``, a vendor it does not tune for).
    """
    reason = unavailable_reason(name)
    if reason is not None:
        return reason
    flags = cpu.flags()
    if flags is None:
        return "cannot read this CPU's features (no /proc/cpuinfo flags, no NumPy CPU feature table)"
    if not flags & {"amx_bf16", "avx512_bf16"}:
        return "this CPU has neither AMX-BF16 nor AVX512-BF16"
    if name == "mkl":
        processor = code_path("mkl")
        if "bf16" not in processor.lower() and "bfloat16" not in processor.lower():
            return f"MKL runs its '{processor}' code path on this CPU, which has no bf16 instructions"
        return None
    isa = load(name).dnnl_get_effective_cpu_isa()
    if isa & _DNNL_ISA_AVX512_CORE_BF16 != _DNNL_ISA_AVX512_CORE_BF16:
        return f"oneDNN's effective CPU ISA here is {isa:#x}, below avx512_core_bf16 ({_DNNL_ISA_AVX512_CORE_BF16:#x})"
    return None


def thread_counts() -> dict[str, int]:
    """name -> the thread count each loaded library will use for its next call.

    Only libraries already loaded are asked (this never loads one). oneDNN's count is its
    OpenMP runtime's ``omp_get_max_threads``, looked up through oneDNN's own handle so it is
    the runtime oneDNN is bound to; a TBB/threadpool oneDNN build has no such count and is left out.
    """
    counts = {}
    mkl = _loaded.get("mkl")
    if isinstance(mkl, ctypes.CDLL):
        counts["mkl"] = mkl.mkl_get_max_threads()
    onednn = _loaded.get("onednn")
    if isinstance(onednn, ctypes.CDLL):
        runtime = _dnnl_version(onednn).cpu_runtime
        if runtime == 1:
            counts["onednn"] = 1
        elif runtime == 2:
            counts["onednn"] = onednn.omp_get_max_threads()
    return counts


def single_threaded(name: str, function):
    """``function`` (a gemm implementation of library ``name``) run on the calling thread alone,
    the library's thread count put back after each call; None where the library has no cheap
    per-call switch (NumPy's OpenBLAS: its count is global to the process) or is not loaded.

    MKL: ``MKL_Set_Num_Threads_Local``, which holds for the calling thread only. oneDNN on
    OpenMP: ``omp_set_num_threads``, an ICV of the calling thread too; ``dnnl_sgemm`` reads
    ``omp_get_max_threads`` at each call. Either switch costs well under a microsecond.
    """
    lib = _loaded.get(name)
    if not isinstance(lib, ctypes.CDLL):
        return None
    if name == "mkl":
        # The C entry point (the lowercase symbol is the Fortran one, which takes a pointer);
        # it returns the previous local count (0: the global one).
        set_local = lib.MKL_Set_Num_Threads_Local

        def serial(*args):
            previous = set_local(1)
            try:
                return function(*args)
            finally:
                set_local(previous)
    elif name == "onednn" and _dnnl_version(lib).cpu_runtime == 2:
        get_count, set_count = lib.omp_get_max_threads, lib.omp_set_num_threads

        def serial(*args):
            previous = get_count()
            set_count(1)
            try:
                return function(*args)
            finally:
                set_count(previous)
    else:
        return None
    serial.__name__ = serial.__qualname__ = f"{getattr(function, '__name__', 'gemm')}_on_one_thread"
    serial.__doc__ = f"{name}'s product on the calling thread alone (see _libraries.single_threaded)."
    serial.single_threaded_of = function
    return serial


def data_pointer_reader():
    """A function ``array -> ctypes.c_void_p`` of the array's data pointer, for the
    implementations' ctypes calls (pass the result as a pointer argument; ``.value`` is the int).

    ``array.ctypes.data`` builds a Python object per call (0.75 us here, three per product);
    reading the pointer field of the array object with ``ctypes.c_void_p.from_address`` costs
    0.11 us. The field is NumPy's public ``PyArrayObject_fields.data``, the first member after
    ``PyObject_HEAD`` (what the C-API's ``PyArray_DATA`` reads). The offset is checked against
    ``ctypes.data`` on views with offsets first; where it does not hold (another layout, not
    CPython, whose ``id`` is no address), the reader falls back to ``ctypes.data``.
    """
    offset = _array_data_offset()
    if offset is None:
        return lambda array: ctypes.c_void_p(array.ctypes.data)
    read = ctypes.c_void_p.from_address
    # the c_void_p is a view of the array object's field: use it while the array is referenced
    return lambda array: read(id(array) + offset)


def _array_data_offset():
    if sys.implementation.name != "cpython":
        return None
    import numpy as np

    probe = np.arange(24.0).reshape(2, 3, 4)
    views = (probe, probe[1:], probe[:, 1:], probe[..., 2:].swapaxes(0, 1),
             np.broadcast_to(probe[1:], (5, 3, 4)), probe.astype(np.float32)[1, 1:])
    offset = object.__basicsize__
    read = ctypes.c_void_p.from_address
    return offset if all(read(id(view) + offset).value == view.ctypes.data for view in views) else None


def describe(name: str) -> str:
    """One line for tables and ``fastnlp backends``: version, threading, how bfloat16 runs."""
    bf16 = bf16_support(name)
    return (f"{version(name)}, {threading_layer(name)} threads; bfloat16 "
            + ("native" if bf16 is None else f"not native ({bf16})"))


def threading_layer(name: str) -> str:
    """How the library runs threads: MKL's layer ("gnu", "intel", ...), oneDNN's CPU runtime."""
    lib = load(name)
    if name == "mkl":  # -1 asks without changing; MKL says -1 until its first call decides
        return _MKL_THREADING.get(lib.MKL_Set_Threading_Layer(-1), "not chosen yet")
    return _DNNL_CPU_RUNTIMES.get(_dnnl_version(lib).cpu_runtime, "unknown")


# --- finding -------------------------------------------------------------------------------

def _platform():
    return "darwin" if sys.platform == "darwin" else "win32" if sys.platform == "win32" else "linux"


def _prefix_lib_dirs():
    bases = [sys.prefix, sys.exec_prefix]
    try:
        bases.append(sysconfig.get_paths()["data"])
    except KeyError:
        pass
    try:
        bases.append(site.getuserbase())
    except AttributeError:  # site stripped down (embedded Pythons)
        pass
    dirs = []
    for base in bases:
        for sub in (("lib",), ("Library", "bin")) if _platform() == "win32" else (("lib",),):
            folder = os.path.join(base, *sub)
            if folder not in dirs:
                dirs.append(folder)
    return dirs


def _distribution_files(name, file_names):
    from importlib import metadata

    for dist_name in _DISTRIBUTIONS[name]:
        try:
            files = metadata.distribution(dist_name).files or ()
        except metadata.PackageNotFoundError:
            continue
        for record in files:
            if record.name in file_names:
                yield str(record.locate())


def _candidates(name):
    """Paths (or bare sonames for the system loader) to try, best first, without duplicates."""
    file_names = _FILE_NAMES[name][_platform()]
    seen = set()
    for folder in _prefix_lib_dirs():
        for file_name in file_names:
            path = os.path.join(folder, file_name)
            if os.path.exists(path) and os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                yield path
    for path in _distribution_files(name, file_names):
        if os.path.exists(path) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            yield path
    found = ctypes.util.find_library(_LOADER_STEMS[name])
    for soname in ((found,) if found else ()) + file_names:
        if soname not in seen:
            seen.add(soname)
            yield soname


def _find_and_load(name):
    failures = []
    for candidate in _candidates(name):
        try:
            lib = ctypes.CDLL(candidate)
        except OSError as error:
            if os.path.sep in candidate:  # a file that exists but does not load: say why
                failures.append(f"{candidate} fails to load: {error}")
            continue
        missing = [f for f in _REQUIRED_FUNCTIONS[name] if not hasattr(lib, f)]
        if missing:
            failures.append(f"{candidate} lacks {', '.join(missing)} (too old)")
            continue
        _prepare(name, lib)
        return lib
    if failures:
        raise ImportError("; ".join(failures))
    label = {"mkl": "MKL", "onednn": "oneDNN"}[name]
    raise ImportError(f"{label} is not installed ({'/'.join(_FILE_NAMES[name][_platform()])} not found "
                      f"in {sys.prefix}/lib nor by the system loader): {INSTALL_HINT}")


def _prepare(name, lib):
    """Declare the C signatures this module uses and, for MKL, fix its layers before its first call."""
    if name == "mkl":
        lib.mkl_get_max_threads.restype = ctypes.c_int
        lib.mkl_get_max_threads.argtypes = []
        lib.mkl_get_version.argtypes = [ctypes.POINTER(_MKLVersion)]
        lib.mkl_get_version.restype = None
        lib.mkl_get_version_string.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.mkl_get_version_string.restype = None
        lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        lib.MKL_Set_Threading_Layer.restype = ctypes.c_int
        lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
        lib.MKL_Set_Interface_Layer.restype = ctypes.c_int
        # 32-bit integers whatever MKL_INTERFACE_LAYER says: our argtypes are c_int. If MKL was
        # already set up by someone else in this process, the call reports its layer instead.
        if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
            raise ImportError("MKL is already set up with 64-bit integers (ILP64) in this process")
        if _gnu_threading_possible(lib):
            lib.MKL_Set_Threading_Layer(_MKL_THREADING_GNU)  # no-op once MKL has chosen
    else:
        lib.dnnl_version.restype = ctypes.POINTER(_DNNLVersion)
        lib.dnnl_version.argtypes = []
        lib.dnnl_get_effective_cpu_isa.restype = ctypes.c_int
        lib.dnnl_get_effective_cpu_isa.argtypes = []
        if _dnnl_version(lib).cpu_runtime == 2:
            lib.omp_get_max_threads.restype = ctypes.c_int
            lib.omp_get_max_threads.argtypes = []


def _gnu_threading_possible(lib):
    """Whether to put MKL on libgomp: no user choice in the environment, MKL's GNU layer beside
    mkl_rt, and a libgomp that loads (MKL aborts the process if its layer fails to load)."""
    if os.environ.get("MKL_THREADING_LAYER"):
        return False
    if _platform() != "linux":
        return False
    if os.path.sep not in lib._name:  # found by soname: its GNU layer's presence is unknown
        return False
    folder = os.path.dirname(lib._name)
    if not any(f.startswith("libmkl_gnu_thread.so") for f in os.listdir(folder)):
        return False
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        return False
    return True


def _mkl_version(lib):
    info = _MKLVersion()
    lib.mkl_get_version(ctypes.byref(info))
    return info


def _dnnl_version(lib):
    return lib.dnnl_version().contents
