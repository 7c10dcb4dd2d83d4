"""A stand-in ``cupy`` (and ``cupyx.scipy.sparse``) for tests: just what kernels/*/cupy_impl.py
and kernels/_cuda.py use, on NumPy, with ``RawModule`` compiling the .cu text for the CPU
emulation (build.py). Installed in ``sys.modules`` only inside a test (:func:`installed`), so the
real cupy_impl wrappers run unchanged on emulated kernels.

Faithful where a wrapper could go wrong: ``ndarray`` is a NumPy subclass whose ``type().__module__``
is ``cupy`` (so kernels.dispatch sees a device array); a kernel refuses plain NumPy arrays, as
CuPy does; ``empty`` memory is not zeros (NaN for floats, 0xA5 bytes otherwise), so a kernel that
leaves an output element unwritten is caught; ``argsort`` is stable (CuPy sorts with thrust's
stable sort).
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path

import numpy as np

from . import build

_cache_dir: Path | None = None
launches = 0  # kernel launches through this module (tests check the wrappers reached a kernel)


class ndarray(np.ndarray):
    """A "device" array: NumPy memory, with CuPy's ``get``."""

    def get(self, stream=None, order="C", out=None):
        host = np.array(self, order=order, subok=False, copy=True)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None):
        self[...] = arr

    @property
    def device(self):
        return cuda.Device()


ndarray.__module__ = "cupy"


def _wrap(x):
    if isinstance(x, np.ndarray) and not isinstance(x, ndarray):
        return x.view(ndarray)
    return x


def _unwrap(x):
    return x.view(np.ndarray) if isinstance(x, ndarray) else x


def _garbage(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fc":
        a.fill(np.nan)
    elif a.size:
        a.view(np.uint8).fill(0xA5)
    return a


for _name in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
              "float32", "float64", "complex64", "complex128", "dtype", "intp", "newaxis"):
    globals()[_name] = getattr(np, _name)


def empty(shape, dtype=float, order="C"):
    return _garbage(np.empty(shape, dtype, order)).view(ndarray)


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return _garbage(np.empty_like(_unwrap(a), dtype=dtype, order=order, shape=shape)).view(ndarray)


def zeros(shape, dtype=float, order="C"):
    return np.zeros(shape, dtype, order).view(ndarray)


def ones(shape, dtype=float, order="C"):
    return np.ones(shape, dtype, order).view(ndarray)


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return np.zeros_like(_unwrap(a), dtype=dtype, order=order, shape=shape).view(ndarray)


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return np.ones_like(_unwrap(a), dtype=dtype, order=order, shape=shape).view(ndarray)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    return np.array(_unwrap(obj), dtype=dtype, copy=True if copy else None, order=order, ndmin=ndmin).view(ndarray)


def asarray(a, dtype=None, order=None):
    return np.asarray(_unwrap(a), dtype=dtype, order=order).view(ndarray)


def ascontiguousarray(a, dtype=None):
    return np.ascontiguousarray(_unwrap(a), dtype=dtype).view(ndarray)


def asnumpy(a, stream=None, order="C", out=None):
    return a.get(order=order, out=out) if isinstance(a, ndarray) else np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__]


def argsort(a, axis=-1, kind=None):
    return _wrap(np.argsort(_unwrap(a), axis=axis, kind="stable"))


def _forward(name):
    function = getattr(np, name)

    def forwarded(*args, **kwargs):
        args = tuple([_unwrap(x) for x in a] if isinstance(a, (list, tuple)) else _unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(function(*args, **kwargs))

    forwarded.__name__ = name
    return forwarded


for _name in ("concatenate", "stack", "cumsum", "flatnonzero", "nonzero", "where", "arange", "sum", "matmul",
              "dot", "exp", "log", "sqrt", "abs", "maximum", "minimum", "unique", "searchsorted", "diff",
              "full", "full_like", "isnan", "isfinite", "all", "any", "count_nonzero", "sort"):
    globals()[_name] = _forward(_name)


def matmul(a, b, out=None, **kwargs):  # noqa: F811 (writes into a device array)
    result = np.matmul(_unwrap(a), _unwrap(b), **kwargs)
    if out is None:
        return _wrap(result)
    out[...] = result
    return out


# ----- kernels ---------------------------------------------------------------------------------

def _is_device_array(a) -> bool:
    return isinstance(a, ndarray)


class _Function:
    def __init__(self, kernel):
        self.kernel = kernel

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        for a in args:
            if isinstance(a, np.ndarray) and not isinstance(a, ndarray):
                raise TypeError(f"{self.kernel.name}: a NumPy array passed to a kernel (CuPy refuses host arrays)")
        global launches
        self.kernel(grid, block, args, shared_mem, accept_array=_is_device_array)
        launches += 1


class RawModule:
    """Compiles ``code`` for the CPU emulation; ``options`` and ``name_expressions`` are accepted
    and ignored (the emulation compiles with -std=c++17)."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            code = Path(path).read_text()
        if _cache_dir is None:
            raise RuntimeError("fake_cupy: no build folder (use fake_cupy.installed(folder))")
        self.options = tuple(options)
        self.module = build.build_code(code, "rawmodule.cu", _cache_dir)

    def get_function(self, name):
        return _Function(self.module.get_function(name))


class RawKernel:
    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        self._function = RawModule(code=code, options=options).get_function(name)

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        self._function(grid, block, args, shared_mem)


class _Device:
    def __init__(self, device=None):
        self.id = 0

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
)


# ----- cupyx.scipy.sparse: the COO -> CSR path of cooccurrence ----------------------------------

def _sparse_module():
    import scipy.sparse

    sparse = types.ModuleType("cupyx.scipy.sparse")

    class _Matrix:
        def __init__(self, matrix):
            self._m = matrix

        def __getattr__(self, name):
            value = getattr(self._m, name)
            return _wrap(value) if isinstance(value, np.ndarray) else value

        @property
        def shape(self):
            return self._m.shape

        def sum_duplicates(self):
            self._m.sum_duplicates()

        def eliminate_zeros(self):
            self._m.eliminate_zeros()

        def sort_indices(self):
            self._m.sort_indices()

        def tocsr(self):
            return csr_matrix(self._m.tocsr())

        def tocoo(self):
            return coo_matrix(self._m.tocoo())

        def get(self):
            return self._m.copy()

    def _host(arg):
        if isinstance(arg, tuple):
            return tuple(_host(a) for a in arg)
        return _unwrap(arg)

    class coo_matrix(_Matrix):
        def __init__(self, arg, shape=None, dtype=None):
            super().__init__(arg if scipy.sparse.issparse(arg) else scipy.sparse.coo_matrix(_host(arg), shape=shape,
                                                                                            dtype=dtype))

    class csr_matrix(_Matrix):
        def __init__(self, arg, shape=None, dtype=None):
            super().__init__(scipy.sparse.csr_matrix(arg if scipy.sparse.issparse(arg) else _host(arg), shape=shape,
                                                     dtype=dtype))

    sparse.coo_matrix, sparse.csr_matrix = coo_matrix, csr_matrix
    return sparse


@contextlib.contextmanager
def installed(cache_dir: Path, monkeypatch, packages=("fastnlp.kernels",)):
    """This module as ``cupy`` (and ``cupyx.scipy.sparse``) while the block runs; every
    cupy_impl module imported inside it is a fresh import bound to the fake, and the previous
    modules (and kernels._cuda's RawModule cache) come back afterwards."""
    global _cache_dir
    from fastnlp.kernels import _cuda

    _cache_dir = Path(cache_dir)
    me = sys.modules[__name__]
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.sparse = _sparse_module()
    saved = {name: module for name, module in sys.modules.items()
             if name.endswith(".cupy_impl") and name.startswith(packages)}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
        parent = sys.modules.get(name.rsplit(".", 1)[0])
        if parent is not None and hasattr(parent, "cupy_impl"):
            monkeypatch.delattr(parent, "cupy_impl")
    monkeypatch.setitem(sys.modules, "cupy", me)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.sparse", cupyx.scipy.sparse)
    _cuda.module.cache_clear()
    try:
        yield me
    finally:
        _cuda.module.cache_clear()
        for name in [n for n in sys.modules if n.endswith(".cupy_impl") and n.startswith(packages)]:
            if name not in saved:
                del sys.modules[name]
                parent = sys.modules.get(name.rsplit(".", 1)[0])
                if parent is not None and getattr(parent, "cupy_impl", None) is not None:
                    with contextlib.suppress(AttributeError):
                        delattr(parent, "cupy_impl")


def cupy_impl(family: str):
    """``fastnlp.kernels.<family>.cupy_impl`` imported against the fake (inside :func:`installed`)."""
    return importlib.import_module(f"fastnlp.kernels.{family}.cupy_impl")
