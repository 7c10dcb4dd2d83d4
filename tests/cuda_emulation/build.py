"""Compile a .cu file of kernels/ with g++ against cuda_emulation.h and launch its kernels on CPU threads.

The text compiled is the one NVRTC gets (``kernels/_cuda.py`` ``source_text``: the shared
headers of kernels/include/fastnlp/ pasted in), after ``cuda_emulation.h`` (the CUDA built-ins
on std::threads) and with ``include/`` (stand-ins for <cuda_fp16.h> and <cuda_bf16.h>) on the
include path. The kernels are listed from the preprocessed text (``__global__`` expands to a
marker there), and each gets a generated trampoline taking CUDA's kernelParams (one pointer per
argument, to its value) plus a function giving its arguments' sizes and kinds, which
:class:`EmulatedKernel` checks every call against, as a device would not: a 32-bit value handed
to a 64-bit parameter is an error here, not garbage.

Builds are cached per text and flags in a folder (a pytest tmp folder per session), and
:func:`build_many` compiles several files in parallel.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emulation.h"
INCLUDE = HERE / "include"
FLAGS = ("-std=c++17", "-O1", "-ffp-contract=off", "-pthread", "-shared", "-fPIC")
_KERNEL = re.compile(r"__fastnlp_kernel__\s+void\s+(\w+)\s*\(")
_TEMPLATE_KERNEL = re.compile(r"template\s*<[^{;]*>\s*__fastnlp_kernel__")


def compiler() -> str | None:
    """g++ on PATH, or None."""
    return shutil.which("g++")


def source_text(source: Path) -> str:
    """The text NVRTC compiles for ``source`` (kernels/_cuda.py pastes the shared headers in)."""
    from fastnlp.kernels import _cuda

    return _cuda.source_text(Path(source))


def _prelude(name: str) -> str:
    return f'#include "{HEADER}"\n#line 1 "{name}"\n'


def _key(code: str) -> str:
    digest = hashlib.sha256()
    for part in (code, HEADER.read_text(), *(p.read_text() for p in sorted(INCLUDE.glob("*.h"))), " ".join(FLAGS)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def kernel_names(code: str, name: str = "kernel.cu") -> list[str]:
    """The ``__global__`` functions of ``code``, read from g++'s preprocessed text (macros that
    stamp out kernels, like FASTNLP_ATTENTION_KERNELS, expanded)."""
    result = subprocess.run([compiler(), "-E", "-P", "-x", "c++", "-std=c++17", "-DFASTNLP_EMULATION_SCAN",
                             f"-I{INCLUDE}", "-"], input=_prelude(name) + code, capture_output=True, text=True)
    if result.returncode != 0:
        raise CompileError(f"{name}: g++ -E failed:\n{result.stderr}")
    text = result.stdout
    if _TEMPLATE_KERNEL.search(text):
        raise CompileError(f"{name}: a template __global__ kernel has no fixed name to launch (NVRTC needs "
                           f"name_expressions for it); the emulation launches extern \"C\" kernels only")
    names = list(dict.fromkeys(_KERNEL.findall(text)))
    return names


class CompileError(RuntimeError):
    pass


class _Job:
    """One compile: the driver written, g++ started (or the cached library found)."""

    def __init__(self, code: str, name: str, cache: Path):
        self.name = name
        key = _key(code)
        self.library = cache / f"{Path(name).stem}-{key}.so"
        self.names_file = cache / f"{Path(name).stem}-{key}.kernels"
        self.process = None
        self.failure = cache / f"{Path(name).stem}-{key}.error"
        if (self.library.exists() and self.names_file.exists()) or self.failure.exists():
            return
        names = kernel_names(code, name)
        driver = cache / f"{Path(name).stem}-{key}.cpp"
        trampolines = "".join(f"FASTNLP_EMULATED_KERNEL({n})\n" for n in names)
        driver.write_text(_prelude(name) + code + "\n#line 1 \"<trampolines>\"\n" + trampolines)
        self.names = names
        self.partial = self.library.with_suffix(f".{os.getpid()}.tmp")
        self.process = subprocess.Popen([compiler(), *FLAGS, f"-I{INCLUDE}", str(driver), "-o", str(self.partial)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> "EmulatedModule":
        if self.failure.exists():  # a text that failed once fails again: not recompiled per example
            raise CompileError(self.failure.read_text())
        if self.process is not None:
            _, err = self.process.communicate()
            if self.process.returncode != 0:
                message = f"{self.name}: g++ failed with the CUDA emulation header:\n{err}"
                self.failure.write_text(message)
                raise CompileError(message)
            os.replace(self.partial, self.library)
            self.names_file.write_text("\n".join(self.names))
            self.process = None
        names = [n for n in self.names_file.read_text().split("\n") if n]
        return EmulatedModule(self.library, names, self.name)


def build_code(code: str, name: str, cache: Path) -> "EmulatedModule":
    """``code`` (a .cu text as NVRTC gets it) compiled for the emulation, cached in ``cache``."""
    return _Job(code, name, Path(cache)).result()


def build(source: Path, cache: Path) -> "EmulatedModule":
    """The .cu file ``source`` (with its shared headers pasted in) compiled for the emulation."""
    return build_code(source_text(source), Path(source).name, cache)


def build_many(sources, cache: Path) -> dict:
    """{source: EmulatedModule or CompileError} for several .cu files, compiled in parallel."""
    jobs, out = {}, {}
    for source in sources:
        try:
            jobs[source] = _Job(source_text(source), Path(source).name, Path(cache))
        except CompileError as exc:
            out[source] = exc
    for source, job in jobs.items():
        try:
            out[source] = job.result()
        except CompileError as exc:
            out[source] = exc
    return out


class EmulatedModule:
    """The kernels of one compiled .cu file."""

    def __init__(self, library: Path, names: list, name: str):
        self.path = library
        self.name = name
        self.kernel_names = tuple(names)
        self._lib = ctypes.CDLL(str(library))
        self._kernels = {}

    def get_function(self, name: str) -> "EmulatedKernel":
        if name not in self.kernel_names:
            raise AttributeError(f"{self.name} has no __global__ kernel {name!r}; it has {', '.join(self.kernel_names)}")
        if name not in self._kernels:
            self._kernels[name] = EmulatedKernel(self._lib, name, self.name)
        return self._kernels[name]


_INT_TYPES = {1: ctypes.c_int8, 2: ctypes.c_int16, 4: ctypes.c_int32, 8: ctypes.c_int64}


class EmulatedKernel:
    """One kernel, launched as ``kernel(grid, block, args)``; arrays are anything with a
    ``__array_interface__`` (NumPy arrays and the fake cupy's), passed as their data pointers."""

    def __init__(self, lib, name: str, source: str):
        self.name = name
        self.source = source
        arity = getattr(lib, f"fastnlp_arity_{name}")
        arity.restype = ctypes.c_int
        arity.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        n = arity(None, None)
        sizes = (ctypes.c_longlong * max(n, 1))()
        kinds = ctypes.create_string_buffer(max(n, 1))
        arity(sizes, kinds)
        self.sizes = tuple(sizes[:n])
        self.kinds = kinds.raw[:n].decode()
        self._launch = getattr(lib, f"fastnlp_launch_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 6
        self.launches = 0

    def _value(self, i: int, arg, accept_array):
        kind, size = self.kinds[i], self.sizes[i]
        where = f"{self.source}:{self.name} argument {i}"
        if kind == "p":
            if arg is None:
                return ctypes.c_void_p(0)
            if not accept_array(arg):
                raise TypeError(f"{where} is a pointer; got {type(arg).__name__}")
            return ctypes.c_void_p(arg.__array_interface__["data"][0])
        if accept_array(arg) or isinstance(arg, np.ndarray):
            raise TypeError(f"{where} is a {size}-byte value; got an array")
        if isinstance(arg, bool):
            arg = np.bool_(arg)
        elif isinstance(arg, int):
            arg = np.int64(arg)  # as CuPy passes a Python int
        elif isinstance(arg, float):
            arg = np.float64(arg)
        if not isinstance(arg, np.generic):
            raise TypeError(f"{where}: cannot pass {type(arg).__name__} to a kernel")
        value = np.asarray(arg)
        if value.dtype.itemsize != size or (value.dtype.kind == "f") != (kind == "f"):
            raise TypeError(f"{where} takes a {size}-byte {'float' if kind == 'f' else 'integer'}; got "
                            f"{value.dtype} ({value.dtype.itemsize} bytes): a device would read other bits")
        return ctypes.create_string_buffer(value.tobytes(), size)

    def __call__(self, grid, block, args, shared_mem=0, accept_array=None):
        accept_array = accept_array or (lambda a: isinstance(a, np.ndarray))
        args = tuple(args)
        if len(args) != len(self.kinds):
            raise TypeError(f"{self.source}:{self.name} takes {len(self.kinds)} arguments; got {len(args)}")
        if shared_mem:
            raise NotImplementedError("dynamic shared memory is not emulated")
        grid = tuple(int(g) for g in (grid if isinstance(grid, tuple) else (grid,))) + (1, 1)
        block = tuple(int(b) for b in (block if isinstance(block, tuple) else (block,))) + (1, 1)
        grid, block = grid[:3], block[:3]
        if min(grid) < 1 or min(block) < 1:
            raise ValueError(f"{self.name}: empty launch grid={grid} block={block} (CUDA refuses it)")
        if block[0] * block[1] * block[2] > 1024 or block[2] > 64:
            raise ValueError(f"{self.name}: block {block} exceeds CUDA's limits")
        if grid[0] > 2**31 - 1 or grid[1] > 65535 or grid[2] > 65535:
            raise ValueError(f"{self.name}: grid {grid} exceeds CUDA's limits")
        values = [self._value(i, a, accept_array) for i, a in enumerate(args)]
        pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.addressof(v) for v in values])
        status = self._launch(pointers, *grid, *block)
        self.launches += 1
        if status != 0:
            raise RuntimeError(f"{self.name}: could not start the threads of a block")
