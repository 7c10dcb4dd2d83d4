"""A strict stand-in for CuPy, to prove without a GPU that fastnlp never mixes host and device arrays.

``StrictArray`` (exposed as ``cupy.ndarray``) wraps a NumPy array and behaves like a CuPy array in
the ways that matter here:

* NumPy ufuncs and array functions (``np.exp(x)``, ``np.concatenate([x, y])``) dispatch to it,
  as they do to CuPy through ``__array_ufunc__`` / ``__array_function__``;
* any operation that mixes it with a plain ``numpy.ndarray`` (arithmetic, comparisons, ufuncs,
  array functions, indexing with a host index array, assigning a host array into it) raises
  :class:`HostDeviceMix`, where CuPy raises TypeError (or silently copies, which costs a
  transfer per call);
* implicit conversion to NumPy (``np.asarray(x)``, ``np.array(x)``) raises, as CuPy's
  ``__array__`` does; ``x.get()`` and ``cupy.asnumpy(x)`` are the explicit ways back;
* reductions return 0-d device arrays, never host scalars; ``float(x)``, ``int(x)``,
  ``bool(x)`` and ``x.item()`` work (CuPy synchronises and copies one value).

Streams, events and pinned memory are modelled for the copies that overlap training
(``fastnlp.device.PinnedCopier``); every ordering CUDA leaves to the program is checked, and a
missing one raises :class:`StreamRace` (or NumPy's read-only error on the host buffer):

* ``x.set(host, stream=s)`` is asynchronous: it must read pinned memory
  (``cupy.cuda.alloc_pinned_memory``); until the host has waited for an event recorded on ``s``
  after it (``event.synchronize()``, ``s.synchronize()``), the pinned memory is read-only, so a
  refill before the copy is known to be done fails;
* the copy lands in ``x`` only for a stream ordered after it: reading ``x`` from the current
  stream before it waited for such an event (``stream.wait_event``) raises;
* ``s`` may write ``x`` (made by ``cupy.empty`` on another stream) only after waiting for an
  event of that stream recorded no earlier than the allocation: the memory pool may have given
  ``x`` memory that queued work there still reads.

:func:`copies` counts the asynchronous copies and those still in flight.

:func:`install` puts the module in ``sys.modules["cupy"]`` (``fastnlp.kernels.dispatch`` then
sees these arrays as device arrays: their type's module is ``cupy``) and routes every kernel op
called on device arrays to its NumPy reference on the wrapped data, converting back.
"""
from __future__ import annotations

import contextlib
import sys
import types

import numpy as np


class HostDeviceMix(TypeError):
    """A host (NumPy) array met a device array."""


class StreamRace(RuntimeError):
    """Device memory or a pinned host buffer used without the ordering CUDA needs."""


def _refuse(what):
    raise HostDeviceMix(f"host/device mix: {what}")


def _unwrap(value, what="argument"):
    """The NumPy data inside ``value`` (recursively in lists, tuples and dicts); plain NumPy arrays refused."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse(f"a host numpy.ndarray {value.shape} {value.dtype} given as {what} of a device operation")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, what) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, what) for k, v in value.items()}
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return StrictArray(np.asarray(value))
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        return StrictArray(np.asarray(value))  # CuPy: reductions and element reads are 0-d arrays
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]


def _binary(ufunc, reflected=False):
    def method(self, other):
        return ufunc(other, self) if reflected else ufunc(self, other)
    return method


def _inplace(ufunc):
    def method(self, other):
        ufunc(self, other, out=self)
        return self
    return method


class StrictArray:
    """A device array stand-in: NumPy data that refuses to meet host arrays."""

    __module__ = "cupy"  # what fastnlp.kernels.dispatch.is_device_array looks at
    __array_priority__ = 1000

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError("StrictArray wraps a NumPy array")
        self._a = a.view(np.ndarray) if type(a) is not np.ndarray else a

    # ---- what CuPy forbids -------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        _refuse("implicit conversion of a device array to NumPy (np.asarray / np.array); use .get()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = _unwrap(inputs, f"an input of np.{ufunc.__name__}")
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out, f"the out= of np.{ufunc.__name__}")
        if "where" in kwargs:
            kwargs["where"] = _unwrap(kwargs["where"], f"the where= of np.{ufunc.__name__}")
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if isinstance(out, tuple) and len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        name = getattr(func, "__name__", str(func))
        return _wrap(func(*_unwrap(args, f"an argument of np.{name}"),
                          **_unwrap(kwargs, f"an argument of np.{name}")))

    # ---- the explicit ways back ----------------------------------------------------------------
    def get(self, stream=None, out=None):
        return self._a.copy()

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        if self._a.ndim:
            raise TypeError("only 0-d integer arrays can be used as an index")
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(_layout(self))

    # ---- asynchronous copies (see the module's docstring) -----------------------------------------
    def set(self, arr, stream=None):
        """Copy the host array ``arr`` in: at once without ``stream``, else queued on it."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"set takes a numpy.ndarray, got {type(arr).__name__}")
        layout = _layout(self)
        if arr.shape != layout.shape or arr.dtype != layout.dtype:
            raise ValueError(f"set: shape/dtype {arr.shape} {arr.dtype} do not match {layout.shape} {layout.dtype}")
        if stream is None:
            self._a[...] = arr
            return
        _queue_copy(self, arr, stream)

    def __getattr__(self, name):
        # Reached only for attributes not set: ``_a`` of an array whose copy is queued.
        if name == "_a" and "_pending" in self.__dict__:
            return _land(self)
        raise AttributeError(name)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return f"strict-device-array({self._a!r})"

    def __reduce__(self):
        _refuse("pickling a device array")

    # ---- attributes -----------------------------------------------------------------------------
    # Shape and type are the host's to read at any time (no data moves), pending copy or not.
    shape = property(lambda self: _layout(self).shape)
    dtype = property(lambda self: _layout(self).dtype)
    ndim = property(lambda self: _layout(self).ndim)
    size = property(lambda self: _layout(self).size)
    itemsize = property(lambda self: _layout(self).itemsize)
    nbytes = property(lambda self: _layout(self).nbytes)
    strides = property(lambda self: _layout(self).strides)
    flags = property(lambda self: _Flags(_layout(self)))
    T = property(lambda self: StrictArray(self._a.T))
    device = property(lambda self: _Device(0))
    base = property(lambda self: None if self._a.base is None else _BaseProxy(self._a.base))

    @property
    def __cuda_array_interface__(self):
        interface = self._a.__array_interface__
        return {"shape": self._a.shape, "typestr": self._a.dtype.str, "data": interface["data"],
                "strides": None if self._a.flags.c_contiguous else self._a.strides, "version": 3}

    # ---- methods (each a NumPy method on the data, results on the device) ------------------------
    def _method(name):
        def method(self, *args, **kwargs):
            return _wrap(getattr(self._a, name)(*_unwrap(args, f"an argument of .{name}"),
                                               **_unwrap(kwargs, f"an argument of .{name}")))
        method.__name__ = name
        return method

    for _name in ("reshape", "astype", "copy", "sum", "mean", "max", "min", "argmax", "argmin", "all", "any",
                  "transpose", "ravel", "flatten", "cumsum", "prod", "std", "var", "squeeze", "swapaxes",
                  "take", "repeat", "clip", "dot", "nonzero", "argsort", "round", "conj"):
        locals()[_name] = _method(_name)
    del _name, _method

    def fill(self, value):
        self._a.fill(_unwrap(value, "the value of .fill"))

    def view(self, dtype=None):
        if isinstance(dtype, type) and issubclass(dtype, np.ndarray):
            _refuse(f"viewing a device array as the host type {dtype.__name__}")
        return StrictArray(self._a.view(dtype) if dtype is not None else self._a.view())

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "an index")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "an index")] = _unwrap(value, "the value assigned into a device array")

    __add__, __radd__ = _binary(np.add), _binary(np.add, True)
    __sub__, __rsub__ = _binary(np.subtract), _binary(np.subtract, True)
    __mul__, __rmul__ = _binary(np.multiply), _binary(np.multiply, True)
    __truediv__, __rtruediv__ = _binary(np.true_divide), _binary(np.true_divide, True)
    __floordiv__, __rfloordiv__ = _binary(np.floor_divide), _binary(np.floor_divide, True)
    __mod__, __rmod__ = _binary(np.remainder), _binary(np.remainder, True)
    __pow__, __rpow__ = _binary(np.power), _binary(np.power, True)
    __matmul__, __rmatmul__ = _binary(np.matmul), _binary(np.matmul, True)
    __and__, __rand__ = _binary(np.bitwise_and), _binary(np.bitwise_and, True)
    __or__, __ror__ = _binary(np.bitwise_or), _binary(np.bitwise_or, True)
    __xor__, __rxor__ = _binary(np.bitwise_xor), _binary(np.bitwise_xor, True)
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)
    __iadd__, __isub__, __imul__ = _inplace(np.add), _inplace(np.subtract), _inplace(np.multiply)
    __itruediv__, __ipow__ = _inplace(np.true_divide), _inplace(np.power)
    __iand__, __ior__ = _inplace(np.bitwise_and), _inplace(np.bitwise_or)
    __hash__ = None

    def __neg__(self):
        return np.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return np.abs(self)

    def __invert__(self):
        return np.invert(self)


class _BaseProxy:
    """``.base`` of a device array: only its identity and memory matter to fastnlp."""

    def __init__(self, base):
        self._base = base

    def __eq__(self, other):
        return isinstance(other, _BaseProxy) and other._base is self._base

    def __hash__(self):
        return id(self._base)


def _layout(array):
    """The NumPy array giving ``array``'s shape and type: its data, or the memory its queued
    copy will fill."""
    data = array.__dict__
    return data["_a"] if "_a" in data else data["_pending"].target_memory


# ---- streams, events, pinned memory ------------------------------------------------------------------

class _Queues:
    """What the device has been asked to do: a clock of stream operations, the current stream,
    the copies not yet known to the host to be done."""

    def __init__(self):
        self.tick = 0
        self.null = _Stream(null=True)
        self.current = [self.null]
        self.in_flight: list[_Copy] = []
        self.copies = 0

    def next_tick(self, stream):
        """The tick of an operation queued on ``stream`` now."""
        self.tick += 1
        stream.last = self.tick
        return self.tick


_queues: _Queues | None = None  # made by make_module, a fresh one per stand-in module


class _PinnedMemory(bytearray):
    """Page-locked host memory (here: ordinary bytes, marked as pinned)."""


def _alloc_pinned_memory(nbytes):
    return _PinnedMemory(int(nbytes))


def _pinned_root(arr):
    """The array made by np.frombuffer over pinned memory that ``arr`` views, or None."""
    while isinstance(arr, np.ndarray):
        base = arr.base
        if isinstance(base, memoryview) and isinstance(base.obj, _PinnedMemory):
            return arr
        arr = base
    return None


class _Stream:
    """A CUDA stream: ``waited`` maps each stream to the tick up to which this one is ordered
    after it; ``host_done`` is the tick up to which the host saw its work end; ``last`` is the
    tick of the last operation queued on it."""

    null = None  # the legacy default stream of the current stand-in (set by make_module)

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.is_null, self.non_blocking = null, non_blocking
        self.waited: dict = {}
        self.host_done = self.last = 0

    def __enter__(self):
        _queues.current.append(self)
        return self

    def __exit__(self, *exc):
        _queues.current.pop()
        return False

    def use(self):
        _queues.current[-1] = self
        return self

    def record(self, event=None):
        event = event if event is not None else _Event()
        event.record(self)
        return event

    def wait_event(self, event):
        if event.stream is None:
            raise RuntimeError("waiting for an event that was never recorded")
        for stream, tick in event.covers.items():
            self.waited[stream] = max(self.waited.get(stream, 0), tick)

    def ordered_after(self, stream, tick):
        """Whether work queued here now runs after ``stream``'s work up to ``tick``."""
        return stream is self or self.waited.get(stream, 0) >= tick or stream.host_done >= tick

    def synchronize(self):
        _host_waits(self, self.last)


class _Event:
    """A CUDA event: the point of a stream's queue where it was recorded (and what that stream
    was ordered after then)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.stream, self.tick, self.covers = None, 0, {}

    def record(self, stream=None):
        stream = stream if stream is not None else _queues.current[-1]
        self.stream, self.tick = stream, _queues.next_tick(stream)
        self.covers = dict(stream.waited)
        self.covers[stream] = self.tick

    def synchronize(self):
        if self.stream is not None:
            _host_waits(self.stream, self.tick)

    @property
    def done(self):
        self.synchronize()  # the stand-in's device is always finished when asked
        return True


class _Copy:
    def __init__(self, target, source, stream):
        self.target, self.source, self.stream = target, source, stream
        self.snapshot = source.copy()  # what the host had put there when the copy was queued
        self.root = _pinned_root(source)
        self.target_memory = target.__dict__.pop("_a")
        self.tick = _queues.next_tick(stream)
        self.landed = False


def _queue_copy(target, source, stream):
    if "_pending" in target.__dict__:
        raise StreamRace("a second copy queued into a device array before the first one landed")
    if _pinned_root(source) is None:
        raise StreamRace("an asynchronous copy from pageable host memory: CUDA copies it synchronously; "
                         "copy from pinned memory (cupy.cuda.alloc_pinned_memory)")
    born = target.__dict__.get("_born")
    if born is not None and not stream.ordered_after(*born):
        raise StreamRace("a copy stream wrote device memory allocated on another stream before waiting for "
                         "that stream's queued work: the memory pool may have given it memory still being read")
    copy = _Copy(target, source, stream)
    target._pending = copy
    copy.root.flags.writeable = False  # the device reads it until the host knows the copy is done
    _queues.in_flight.append(copy)
    _queues.copies += 1


def _land(target):
    """The data of ``target`` once its queued copy may be read from the current stream."""
    copy = target.__dict__["_pending"]
    if not _queues.current[-1].ordered_after(copy.stream, copy.tick):
        raise StreamRace("a device array read before the stream reading it waited for its copy "
                         "(stream.wait_event of an event recorded after the copy)")
    _finish_copy(copy)
    return target.__dict__["_a"]


def _finish_copy(copy):
    if copy.landed:
        return
    if not np.array_equal(copy.source, copy.snapshot):
        raise StreamRace("a pinned host buffer was refilled while its copy to the device was still running")
    copy.target_memory[...] = copy.source
    copy.target.__dict__["_a"] = copy.target_memory
    del copy.target.__dict__["_pending"]
    copy.landed = True


def _host_waits(stream, tick):
    """The host waited for ``stream``'s work up to ``tick``: those copies are done."""
    stream.host_done = max(stream.host_done, tick)
    done = [c for c in _queues.in_flight if c.stream is stream and c.tick <= tick]
    for copy in done:
        _finish_copy(copy)
        _queues.in_flight.remove(copy)
    busy = {id(c.root) for c in _queues.in_flight}
    for copy in done:
        if id(copy.root) not in busy:
            copy.root.flags.writeable = True


def _device_synchronize():
    for stream in {id(c.stream): c.stream for c in _queues.in_flight}.values():
        _host_waits(stream, _queues.tick)


def copies():
    """(asynchronous copies queued so far, copies not yet known to the host to be done)."""
    return _queues.copies, len(_queues.in_flight)


def _empty(shape, dtype=float, order="C"):
    array = StrictArray(np.empty(shape, dtype, order))
    stream = _queues.current[-1]
    array._born = (stream, stream.last)  # memory a pool may have taken from work queued there so far
    return array


# ---- the module ----------------------------------------------------------------------------------

_CONVERTING = {"asarray", "array", "ascontiguousarray", "asfortranarray"}  # host data may come in


def _function(name):
    numpy_function = getattr(np, name)

    def function(*args, **kwargs):
        if name in _CONVERTING and args:
            first = args[0]
            data = first._a if isinstance(first, StrictArray) else np.asarray(first)
            if name in ("asarray", "ascontiguousarray") and isinstance(first, StrictArray):
                result = numpy_function(data, *_unwrap(args[1:]), **_unwrap(kwargs))
                return first if result is data else StrictArray(result)
            result = numpy_function(data, *_unwrap(args[1:]), **_unwrap(kwargs))
            if not isinstance(first, StrictArray) and np.shares_memory(result, data) \
                    if isinstance(data, np.ndarray) and data.size else False:
                result = result.copy()  # device memory is never the host's
            return StrictArray(np.asarray(result))
        return _wrap(numpy_function(*_unwrap(args, f"an argument of cupy.{name}"),
                                    **_unwrap(kwargs, f"an argument of cupy.{name}")))

    function.__name__ = name
    return function


def asnumpy(a, stream=None, out=None):
    return a.get() if isinstance(a, StrictArray) else np.asarray(a)


def get_array_module(*arrays):
    return sys.modules["cupy"] if any(isinstance(a, StrictArray) for a in arrays) else np


class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        pass

    def synchronize(self):
        _device_synchronize()


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1


class _RandomState:
    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return StrictArray(np.asarray(self._rng.random(size, dtype=dtype)))

    def rand(self, *size):
        return self.random(size)

    def standard_normal(self, size=None, dtype=np.float64):
        return StrictArray(np.asarray(self._rng.standard_normal(size, dtype=dtype)))

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return StrictArray(np.asarray(self._rng.integers(low, high, size, dtype=dtype)))

    randint = integers


def make_module():
    """A fresh stand-in ``cupy`` module."""
    module = types.ModuleType("cupy")
    module.__file__ = __file__
    module.ndarray = StrictArray
    module.asnumpy = asnumpy
    module.get_array_module = get_array_module
    for name in dir(np):
        value = getattr(np, name)
        if name.startswith("_") or hasattr(module, name):
            continue
        if isinstance(value, type) and issubclass(value, np.generic):
            setattr(module, name, value)  # cupy.float32 is numpy.float32
        elif callable(value) and not isinstance(value, type) and not isinstance(value, types.ModuleType):
            setattr(module, name, _function(name))
    module.dtype, module.finfo, module.iinfo = np.dtype, np.finfo, np.iinfo
    module.newaxis, module.inf, module.nan, module.pi = None, np.inf, np.nan, np.pi
    rng = _RandomState(0)
    module.random = types.SimpleNamespace(
        random=rng.random, rand=rng.rand, standard_normal=rng.standard_normal, randint=rng.randint,
        default_rng=_RandomState, RandomState=_RandomState, seed=lambda seed=None: None)
    global _queues
    _queues = _Queues()
    _Stream.null = _queues.null
    module.empty = _empty
    module.cuda = types.SimpleNamespace(Device=_Device, runtime=_Runtime(), Stream=_Stream, Event=_Event,
                                        get_current_stream=lambda: _queues.current[-1],
                                        alloc_pinned_memory=_alloc_pinned_memory)
    module.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))
    module.fuse = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
    return module


def _as_strided(x, shape=None, strides=None):
    if not isinstance(x, StrictArray):
        _refuse("as_strided of a host array")
    return StrictArray(np.lib.stride_tricks.as_strided(x._a, shape, strides))


# ---- kernels: every op on device arrays runs its NumPy reference on the wrapped data ------------

def _reference_on_device(reference):
    def run(*args, **kwargs):
        return _wrap(reference(*_unwrap(args, "a kernel argument"), **_unwrap(kwargs, "a kernel argument")))
    run.__name__ = getattr(reference, "__name__", "reference")
    return run


@contextlib.contextmanager
def installed():
    """``sys.modules['cupy']`` is the stand-in and device ops run the references, for the block."""
    from fastnlp.kernels import dispatch, registry

    saved_module = sys.modules.get("cupy", None)
    had_module = "cupy" in sys.modules
    saved_reason = dispatch._reasons.pop("cupy", None)
    had_reason = saved_reason is not None or "cupy" in dispatch._reasons
    module = make_module()
    sys.modules["cupy"] = module
    saved = {}
    try:
        for op in registry.ops():
            key = (op, "cupy")
            saved[key] = registry._implementations.get(key)
            registry._implementations[key] = _reference_on_device(registry.spec(op).reference)
        yield module
    finally:
        for key, value in saved.items():
            if value is None:
                registry._implementations.pop(key, None)
            else:
                registry._implementations[key] = value
        if had_module:
            sys.modules["cupy"] = saved_module
        else:
            sys.modules.pop("cupy", None)
        dispatch._reasons.pop("cupy", None)
        if had_reason:
            dispatch._reasons["cupy"] = saved_reason
