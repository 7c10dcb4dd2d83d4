"""The matrix product on oneDNN (Intel's deep learning primitives), through its C API with ctypes
(arguments validated, see __init__.py).

Two ways into oneDNN, both here:

* :func:`gemm_call`, the BLAS-like functions ``dnnl_sgemm`` / ``dnnl_gemm_bf16bf16f32``
  (row-major, 'N'/'T'): nothing to set up, so the cheapest per call; batches loop in Python.
* :func:`gemm_primitive`, the matmul primitive (what PyTorch's CPU matmul runs): built once
  per problem (shapes, strides, dtype, accumulate, thread count) and kept in a small LRU
  cache, then executed with the operands' pointers swapped in. Its brgemm kernels use AMX
  where the CPU has it and take a whole batch, broadcast operands included, in one call.

:func:`gemm`, the op, picks per call between them by rules measured per shape (above it).

oneDNN has no float64 matmul on CPU, so float64 products are NumPy's ``matmul`` here (the
contract needs every dtype). Where oneDNN has no bf16 instructions to use (see
``_libraries.bf16_support``), bf16 operands are widened to float32 first: with
ONEDNN_MAX_CPU_ISA=AVX512_CORE its emulated bf16 ran 31-40 GFLOP/s against 136-191 widened at
the working shapes (only tiny-item batches, 128 x 1x256x29, did better emulated: 13.6 vs 3.7),
and without AVX-512 it has no bf16 gemm or matmul at all.

ImportError at import when oneDNN cannot be loaded: the registry reports its message.
"""
import collections
import ctypes
import threading

import numpy as np

from . import _libraries, reference

_dnnl = _libraries.load("onednn")

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_F16 = np.dtype(np.float16)  # widened to float32: this module binds oneDNN's bf16 products only
_P, _I64, _CHAR = ctypes.c_void_p, ctypes.c_int64, ctypes.c_char
_N, _T = b"N", b"T"

# dnnl_types.h (oneDNN 3.x), checked against the library: a 2x2 desc of each type has the
# byte size the type says (dnnl_memory_desc_get_size), DNNL_ARG_* reach the right operands.
_DNNL_SUCCESS = 0
_DNNL_UNIMPLEMENTED = 3
_DNNL_BF16, _DNNL_F32 = 2, 3
_DNNL_DATA_TYPE_UNDEF = 0
_DNNL_CPU_ENGINE = 1
_DNNL_STREAM_IN_ORDER = 1
_DNNL_ARG_SRC, _DNNL_ARG_WEIGHTS, _DNNL_ARG_DST = 1, 33, 17
_DNNL_QUERY_IMPL_INFO_STR = 8
_DNNL_FPMATH_MODE_STRICT = 0


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _P)]


def _bind(name, argtypes, restype=ctypes.c_int):
    f = getattr(_dnnl, name)
    f.argtypes = argtypes
    f.restype = restype
    return f


_gemm_args = [_CHAR, _CHAR, _I64, _I64, _I64, ctypes.c_float, _P, _I64, _P, _I64, ctypes.c_float, _P, _I64]
_sgemm = _bind("dnnl_sgemm", _gemm_args)
_gemm_bf16 = _bind("dnnl_gemm_bf16bf16f32", _gemm_args)
_pointer = _libraries.data_pointer_reader()

# bf16 on bf16 instructions, or widened to float32 first (measured faster than emulation).
BF16_NATIVE_REASON = _libraries.bf16_support("onednn")
_BF16_WIDEN = BF16_NATIVE_REASON is not None

# The matmul primitive needs the oneDNN 3 memory-descriptor API; 2.x lacks these names.
_PRIMITIVE_FUNCTIONS = (
    "dnnl_engine_create", "dnnl_stream_create", "dnnl_stream_wait", "dnnl_memory_desc_create_with_strides",
    "dnnl_memory_desc_destroy", "dnnl_primitive_attr_create", "dnnl_primitive_attr_destroy",
    "dnnl_primitive_attr_set_post_ops", "dnnl_primitive_attr_set_fpmath_mode", "dnnl_post_ops_create",
    "dnnl_post_ops_destroy", "dnnl_post_ops_append_sum", "dnnl_matmul_primitive_desc_create",
    "dnnl_primitive_desc_query", "dnnl_primitive_desc_destroy", "dnnl_primitive_create", "dnnl_primitive_destroy",
    "dnnl_memory_create", "dnnl_memory_destroy", "dnnl_memory_set_data_handle", "dnnl_primitive_execute",
)
HAS_PRIMITIVE = all(hasattr(_dnnl, f) for f in _PRIMITIVE_FUNCTIONS)
if HAS_PRIMITIVE:
    _engine_create = _bind("dnnl_engine_create", [ctypes.POINTER(_P), ctypes.c_int, ctypes.c_size_t])
    _stream_create = _bind("dnnl_stream_create", [ctypes.POINTER(_P), _P, ctypes.c_uint])
    _stream_wait = _bind("dnnl_stream_wait", [_P])
    _md_create = _bind("dnnl_memory_desc_create_with_strides",
                       [ctypes.POINTER(_P), ctypes.c_int, ctypes.POINTER(_I64), ctypes.c_int, ctypes.POINTER(_I64)])
    _md_destroy = _bind("dnnl_memory_desc_destroy", [_P])
    _attr_create = _bind("dnnl_primitive_attr_create", [ctypes.POINTER(_P)])
    _attr_destroy = _bind("dnnl_primitive_attr_destroy", [_P])
    _attr_set_post_ops = _bind("dnnl_primitive_attr_set_post_ops", [_P, _P])
    _attr_set_fpmath_mode = _bind("dnnl_primitive_attr_set_fpmath_mode", [_P, ctypes.c_int])
    _post_ops_create = _bind("dnnl_post_ops_create", [ctypes.POINTER(_P)])
    _post_ops_destroy = _bind("dnnl_post_ops_destroy", [_P])
    _post_ops_append_sum = _bind("dnnl_post_ops_append_sum", [_P, ctypes.c_float, ctypes.c_int32, ctypes.c_int])
    _matmul_pd_create = _bind("dnnl_matmul_primitive_desc_create", [ctypes.POINTER(_P), _P, _P, _P, _P, _P, _P])
    _pd_query = _bind("dnnl_primitive_desc_query", [_P, ctypes.c_int, ctypes.c_int, _P])
    _pd_destroy = _bind("dnnl_primitive_desc_destroy", [_P])
    _primitive_create = _bind("dnnl_primitive_create", [ctypes.POINTER(_P), _P])
    _primitive_destroy = _bind("dnnl_primitive_destroy", [_P])
    _memory_create = _bind("dnnl_memory_create", [ctypes.POINTER(_P), _P, _P, _P])
    _memory_destroy = _bind("dnnl_memory_destroy", [_P])
    _memory_set_handle = _bind("dnnl_memory_set_data_handle", [_P, _P])
    _execute = _bind("dnnl_primitive_execute", [_P, _P, ctypes.c_int, ctypes.POINTER(_ExecArg)])

# Primitives are built for the thread count of the moment (oneDNN splits the work for it and
# runs exactly that many threads), so the count is part of the cache key.
_thread_count = getattr(_dnnl, "omp_get_max_threads", None) if _libraries.threading_layer("onednn") == "OpenMP" else None


def _check(status, call):
    if status != _DNNL_SUCCESS:
        raise RuntimeError(f"oneDNN {call} failed with dnnl_status_t {status}")


# --- the gemm functions ----------------------------------------------------------------------

def gemm_call(a, b, out, trans_a, trans_b, accumulate):
    """The product through ``dnnl_sgemm`` / ``dnnl_gemm_bf16bf16f32``; batches loop."""
    dtype = a.dtype
    if dtype == _F64:
        return reference.gemm(a, b, out, trans_a, trans_b, accumulate)  # oneDNN has no CPU float64 matmul
    if dtype == _F16 or (dtype != _F32 and _BF16_WIDEN):
        a, b = _widen(a), _widen(b)
        dtype = _F32
    call = _sgemm if dtype == _F32 else _gemm_bf16
    m, n = out.shape[-2], out.shape[-1]
    k = a.shape[-2] if trans_a else a.shape[-1]
    lda, ldb = a.shape[-1], b.shape[-1]
    ta = _T if trans_a else _N
    tb = _T if trans_b else _N
    beta = 1.0 if accumulate else 0.0
    if a.ndim == 2:
        status = call(ta, tb, m, n, k, 1.0, _pointer(a), lda, _pointer(b), ldb, beta, _pointer(out), n)
        if status:
            _check(status, "dnnl_sgemm" if call is _sgemm else "dnnl_gemm_bf16bf16f32")
        return
    batch = out.shape[0]
    stride_a, stride_b = a.strides[0], b.strides[0]
    if stride_b == 0 and not trans_a and stride_a == m * lda * a.itemsize:
        # out[i] = a[i] @ B for every i: one product of the stacked (batch*m, k) rows
        status = call(ta, tb, batch * m, n, k, 1.0, _pointer(a), lda, _pointer(b), ldb, beta, _pointer(out), n)
        if status:
            _check(status, "dnnl_sgemm" if call is _sgemm else "dnnl_gemm_bf16bf16f32")
        return
    a_address, b_address, out_address = _pointer(a).value, _pointer(b).value, _pointer(out).value
    out_stride = out.strides[0]
    for i in range(batch):
        status = call(ta, tb, m, n, k, 1.0, a_address + i * stride_a, lda, b_address + i * stride_b, ldb,
                      beta, out_address + i * out_stride, n)
        if status:
            _check(status, "dnnl_sgemm" if call is _sgemm else "dnnl_gemm_bf16bf16f32")


def gemm_primitive(a, b, out, trans_a, trans_b, accumulate):
    """The product through a cached oneDNN matmul primitive (whole batches in one call)."""
    dtype = a.dtype
    if dtype == _F64 or not HAS_PRIMITIVE:
        return gemm_call(a, b, out, trans_a, trans_b, accumulate)
    if dtype == _F16 or (dtype != _F32 and _BF16_WIDEN):
        a, b = _widen(a), _widen(b)
    if a.ndim == 3:
        itemsize = a.itemsize
        stride_a, stride_b = a.strides[0], b.strides[0]
        if stride_a < 0 or stride_b < 0 or stride_a % itemsize or stride_b % itemsize:
            return gemm_call(a, b, out, trans_a, trans_b, accumulate)  # a layout oneDNN cannot describe
        if stride_a == 0 and stride_b == 0:  # both broadcast: the batch dims would not match
            return gemm_call(a, b, out, trans_a, trans_b, accumulate)
    threads = _thread_count() if _thread_count is not None else 0
    key = (a.dtype.char, a.shape, b.shape, a.strides[0] if a.ndim == 3 else 0, b.strides[0] if a.ndim == 3 else 0,
           trans_a, trans_b, accumulate, threads)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans.build(key, a, b, out, trans_a, trans_b, accumulate)
    if plan.unimplemented:
        return gemm_call(a, b, out, trans_a, trans_b, accumulate)
    plan.execute(_pointer(a), _pointer(b), _pointer(out))


# Which way in, measured at 1 thread on a Xeon with AMX (GFLOP/s, gemm_call vs gemm_primitive):
# * float32 2-D: the gemm call, always (e.g. 700x650x2600 216 vs 161, dW with trans_a 215 vs 131);
# * bf16 2-D: the primitive when K is short and M is not (700x100x10000 252 vs 365,
#   700x64x10000 280 vs 613, 700x100x2600 154 vs 419); the call for long K (700x650x2600 859 vs
#   752), transposed weight gradients (2600x700x650 894 vs 766) and one-step shapes (20x100x2600
#   273 vs 99);
# * batches that do not fold into one 2-D product: the primitive, one call for the whole batch
#   instead of a loop (128 x 1x256x29: 11-19 vs 5-6).
_PRIMITIVE_BF16_MAX_K = 256
_PRIMITIVE_BF16_MIN_M = 64


def gemm(a, b, out, trans_a, trans_b, accumulate):
    if a.ndim == 3 and b.strides[0] == 0 and not trans_a and a.strides[0] == a.shape[1] * a.shape[2] * a.itemsize:
        # out[i] = a[i] @ B for every i: one 2-D product of the stacked rows (views, no copies)
        a, b, out = a.reshape(-1, a.shape[2]), b[0], out.reshape(-1, out.shape[2])
    if HAS_PRIMITIVE and a.dtype != _F64:
        if a.ndim == 3:
            return gemm_primitive(a, b, out, trans_a, trans_b, accumulate)
        if a.dtype != _F32 and a.dtype != _F16 and not _BF16_WIDEN:  # bfloat16 on bf16 instructions
            k = a.shape[0] if trans_a else a.shape[1]
            if k <= _PRIMITIVE_BF16_MAX_K and out.shape[0] >= _PRIMITIVE_BF16_MIN_M:
                return gemm_primitive(a, b, out, trans_a, trans_b, accumulate)
    gemm_call(a, b, out, trans_a, trans_b, accumulate)


def _widen(x):
    """bf16 / float16 -> float32, C-contiguous in the last two axes; a broadcast (batch stride 0) operand
    is widened once and broadcast again. (astype's default order 'K' would copy the batch
    stride order into the result, and a broadcast batch axis would come out innermost.)"""
    if x.ndim == 3 and x.strides[0] == 0:
        return np.broadcast_to(x[0].astype(_F32, order="C"), x.shape)
    return x.astype(_F32, order="C")


# --- matmul primitives -----------------------------------------------------------------------

class _Runtime:
    """The CPU engine and stream, made on first use and kept for the process."""

    engine = None
    stream = None
    _lock = threading.Lock()

    @classmethod
    def get(cls):
        if cls.stream is None:
            with cls._lock:
                if cls.stream is None:
                    engine, stream = _P(), _P()
                    _check(_engine_create(ctypes.byref(engine), _DNNL_CPU_ENGINE, 0), "dnnl_engine_create")
                    _check(_stream_create(ctypes.byref(stream), engine, _DNNL_STREAM_IN_ORDER), "dnnl_stream_create")
                    cls.engine, cls.stream = engine, stream
        return cls.engine, cls.stream


def _memory_desc(dims, strides, data_type):
    md = _P()
    n = len(dims)
    _check(_md_create(ctypes.byref(md), n, (_I64 * n)(*dims), data_type, (_I64 * n)(*strides)),
           "dnnl_memory_desc_create_with_strides")
    return md


class _Primitive:
    """A built oneDNN primitive with its memories (one per argument, in ``args`` order), run on
    the arrays at the given data pointers; subclasses build ``primitive``, ``memories``,
    ``args``, ``stream`` and ``lock``."""

    primitive = None
    memories = ()

    def execute(self, *pointers):
        with self.lock:
            for memory, pointer in zip(self.memories, pointers):
                if _memory_set_handle(memory, pointer):
                    raise RuntimeError("oneDNN dnnl_memory_set_data_handle failed")
            _check(_execute(self.primitive, self.stream, len(self.memories), self.args), "dnnl_primitive_execute")
            _check(_stream_wait(self.stream), "dnnl_stream_wait")

    def __del__(self):
        try:
            for memory in self.memories:
                _memory_destroy(memory)
            if self.primitive:
                _primitive_destroy(self.primitive)
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


class _MatmulPlan(_Primitive):
    """One matmul primitive with its three memory objects, ready to run on new pointers."""

    def __init__(self, a, b, out, trans_a, trans_b, accumulate):
        self.primitive = None
        self.memories = []
        self.unimplemented = False
        self.implementation = None
        self.lock = threading.Lock()  # a primitive's memories and scratchpad serve one call at a time
        engine, self.stream = _Runtime.get()
        data_type = _DNNL_F32 if a.dtype == _F32 else _DNNL_BF16
        m, n = out.shape[-2], out.shape[-1]
        k = a.shape[-2] if trans_a else a.shape[-1]
        lda, ldb = a.shape[-1], b.shape[-1]
        a_dims, a_strides = [m, k], [1, lda] if trans_a else [lda, 1]
        b_dims, b_strides = [k, n], [1, ldb] if trans_b else [ldb, 1]
        out_dims, out_strides = [m, n], [n, 1]
        if a.ndim == 3:
            batch, itemsize = out.shape[0], a.itemsize
            # a batch stride of 0 is a batch dim of 1, which oneDNN broadcasts
            a_dims.insert(0, batch if a.strides[0] else 1)
            a_strides.insert(0, a.strides[0] // itemsize or m * k)
            b_dims.insert(0, batch if b.strides[0] else 1)
            b_strides.insert(0, b.strides[0] // itemsize or k * n)
            out_dims.insert(0, batch)
            out_strides.insert(0, m * n)
        descs = [_memory_desc(a_dims, a_strides, data_type), _memory_desc(b_dims, b_strides, data_type),
                 _memory_desc(out_dims, out_strides, _DNNL_F32)]
        attr, post_ops, pd = _P(), _P(), _P()
        try:
            _check(_attr_create(ctypes.byref(attr)), "dnnl_primitive_attr_create")
            # strict: never let ONEDNN_DEFAULT_FPMATH_MODE round float32 operands down to bf16
            _check(_attr_set_fpmath_mode(attr, _DNNL_FPMATH_MODE_STRICT), "dnnl_primitive_attr_set_fpmath_mode")
            if accumulate:  # out += product: the sum post-op adds the destination's old values
                _check(_post_ops_create(ctypes.byref(post_ops)), "dnnl_post_ops_create")
                _check(_post_ops_append_sum(post_ops, 1.0, 0, _DNNL_DATA_TYPE_UNDEF), "dnnl_post_ops_append_sum")
                _check(_attr_set_post_ops(attr, post_ops), "dnnl_primitive_attr_set_post_ops")
            status = _matmul_pd_create(ctypes.byref(pd), engine, descs[0], descs[1], None, descs[2], attr)
            if status == _DNNL_UNIMPLEMENTED:  # e.g. bf16 on a CPU without AVX-512
                self.unimplemented = True
                return
            _check(status, "dnnl_matmul_primitive_desc_create")
            info = ctypes.c_char_p()
            if _pd_query(pd, _DNNL_QUERY_IMPL_INFO_STR, 0, ctypes.byref(info)) == _DNNL_SUCCESS:
                self.implementation = (info.value or b"").decode()
            primitive = _P()
            _check(_primitive_create(ctypes.byref(primitive), pd), "dnnl_primitive_create")
            self.primitive = primitive
            for desc in descs:
                memory = _P()
                _check(_memory_create(ctypes.byref(memory), desc, engine, None), "dnnl_memory_create")
                self.memories.append(memory)
            self.args = (_ExecArg * 3)(_ExecArg(_DNNL_ARG_SRC, self.memories[0]),
                                       _ExecArg(_DNNL_ARG_WEIGHTS, self.memories[1]),
                                       _ExecArg(_DNNL_ARG_DST, self.memories[2]))
        finally:
            for desc in descs:
                _md_destroy(desc)
            if pd:
                _pd_destroy(pd)
            if post_ops:
                _post_ops_destroy(post_ops)
            if attr:
                _attr_destroy(attr)



class _PlanCache:
    """The last ``capacity`` plans used, by problem; a plan evicted while it runs lives on until done."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._plans = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        plan = self._plans.get(key)
        if plan is not None:
            try:
                self._plans.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return plan

    def build(self, key, a, b, out, trans_a, trans_b, accumulate):
        plan = _MatmulPlan(a, b, out, trans_a, trans_b, accumulate)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self.capacity:
                self._plans.popitem(last=False)
        return plan

    def clear(self):
        with self._lock:
            self._plans.clear()

    def __len__(self):
        return len(self._plans)


_plans = _PlanCache(capacity=256)


# --- conversion to bf16 / f16 (autocast) -------------------------------------------------------
#
# Autocast (see autocast.py) rounds float32 operands to a 16-bit format before the product.
# ml_dtypes' cast runs ~1 ns an element here (1.6 ms for one 650 x 2600 weight); oneDNN's
# reorder primitive converts with the CPU's own instructions (AVX512-BF16 vcvtneps2bf16,
# round to nearest even; AVX512-FP16 / F16C for f16) at memory speed. Like the hardware
# instruction it flushes float32 subnormals (|x| < 1.2e-38) to zero, where ml_dtypes keeps them
# as bf16 subnormals: a difference far below any product's rounding.

_DNNL_F16 = 1
_DNNL_ARG_FROM, _DNNL_ARG_TO = 1, 17
_REORDER_FUNCTIONS = ("dnnl_reorder_primitive_desc_create",)
HAS_REORDER = HAS_PRIMITIVE and all(hasattr(_dnnl, f) for f in _REORDER_FUNCTIONS)
if HAS_REORDER:
    _reorder_pd_create = _bind("dnnl_reorder_primitive_desc_create", [ctypes.POINTER(_P), _P, _P, _P, _P, _P])


class _ReorderPlan(_Primitive):
    """One reorder primitive float32 (rows, cols, row stride) -> 16-bit C-contiguous (rows, cols),
    or (cols, rows) holding the transpose, ready to run."""

    def __init__(self, rows, cols, row_stride, dst_type, transpose=False):
        self.primitive = None
        self.memories = []
        self.lock = threading.Lock()
        engine, self.stream = _Runtime.get()
        if transpose:  # the same (cols, rows) matrix: read column-wise, written row-wise
            descs = [_memory_desc([cols, rows], [1, row_stride], _DNNL_F32),
                     _memory_desc([cols, rows], [rows, 1], dst_type)]
        else:
            descs = [_memory_desc([rows, cols], [row_stride, 1], _DNNL_F32),
                     _memory_desc([rows, cols], [cols, 1], dst_type)]
        pd = _P()
        try:
            _check(_reorder_pd_create(ctypes.byref(pd), descs[0], engine, descs[1], engine, None),
                   "dnnl_reorder_primitive_desc_create")
            primitive = _P()
            _check(_primitive_create(ctypes.byref(primitive), pd), "dnnl_primitive_create")
            self.primitive = primitive
            for desc in descs:
                memory = _P()
                _check(_memory_create(ctypes.byref(memory), desc, engine, None), "dnnl_memory_create")
                self.memories.append(memory)
            self.args = (_ExecArg * 2)(_ExecArg(_DNNL_ARG_FROM, self.memories[0]),
                                       _ExecArg(_DNNL_ARG_TO, self.memories[1]))
        finally:
            for desc in descs:
                _md_destroy(desc)
            if pd:
                _pd_destroy(pd)



_reorders = collections.OrderedDict()
_reorders_lock = threading.Lock()
_REORDER_CAPACITY = 256
_DST_TYPES = {"bfloat16": _DNNL_BF16, "float16": _DNNL_F16}


def convert(x, out, transpose=False):
    """``out[...] = x`` (``x.T`` with ``transpose``) rounded to nearest even: ``x`` a float32
    matrix whose rows are contiguous (any row stride), ``out`` a C-contiguous bfloat16 or
    float16 matrix of its shape (of its transpose's)."""
    rows, cols = x.shape
    row_stride = x.strides[0] // 4 if rows > 1 else cols
    threads = _thread_count() if _thread_count is not None else 0
    key = (rows, cols, row_stride, out.dtype.name, transpose, threads)
    plan = _reorders.get(key)
    if plan is None:
        plan = _ReorderPlan(rows, cols, row_stride, _DST_TYPES[out.dtype.name], transpose)
        with _reorders_lock:
            _reorders[key] = plan
            while len(_reorders) > _REORDER_CAPACITY:
                _reorders.popitem(last=False)
    plan.execute(_pointer(x), _pointer(out))
