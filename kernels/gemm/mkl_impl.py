"""The matrix product on Intel MKL's CBLAS, called through ctypes (arguments validated, see __init__.py).

Row-major CBLAS maps the contract one to one: the last two dims of every operand are
C-contiguous, so each leading dimension is the stored row length, ``trans_a``/``trans_b``
become CblasTrans, and ``accumulate`` is beta = 1. bfloat16 operands go to
``cblas_gemm_bf16bf16f32`` as their raw 16-bit buffers (float32 accumulation and output),
float16 ones to ``cblas_gemm_f16f16f32`` (an MKL without it: widened to float32 first).

Batches: float32/float64 use ``cblas_?gemm_batch_strided`` (one call; a batch stride of 0,
an operand broadcast over the batch, is accepted by MKL); bf16 has no batched entry point, so
it loops in Python, ~2 us a matrix (widening the batch to float32 for one sgemm call instead
measured 2.5x slower at the attention shapes: ml_dtypes' cast costs more than the loop). A
broadcast right operand under a batch-contiguous left one is folded into one 2-D product with
B*M rows.

MKL_INT is 32-bit here (``_libraries`` fixes the LP64 interface), so a problem with a dim,
stride or operand of 2**31 elements or more goes to NumPy instead.

ImportError at import when MKL cannot be loaded: the registry reports its message.
"""
import ctypes

import numpy as np

from ..memory import aligned_empty
from . import _libraries

_mkl = _libraries.load("mkl")

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_INT_LIMIT = 2**31  # MKL_INT is int32 (LP64)

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

# The hot functions are called without argtypes: ctypes' per-argument conversion was 40% of
# a tiny product's cost. Every integer argument is a C int (MKL_INT in LP64, CBLAS enums),
# which is what ctypes passes a Python int as: silently masked to 32 bits, which is why
# gemm sends anything of 2**31 or more to NumPy first. The scalars are ready-made
# c_float/c_double and the pointers c_void_p, so nothing else is left to convert.
_sgemm = _mkl.cblas_sgemm
_dgemm = _mkl.cblas_dgemm
_gemm_bf16 = _mkl.cblas_gemm_bf16bf16f32
_gemm_f16 = getattr(_mkl, "cblas_gemm_f16f16f32", None)  # float16 operands (MKL 2021 and later)
HAS_FLOAT16 = _gemm_f16 is not None
_F16 = np.dtype(np.float16)
_sgemm_batch = getattr(_mkl, "cblas_sgemm_batch_strided", None)  # MKL 2020 update 2 and later
_dgemm_batch = getattr(_mkl, "cblas_dgemm_batch_strided", None)
for _function in (_sgemm, _dgemm, _gemm_bf16, _gemm_f16, _sgemm_batch, _dgemm_batch):
    if _function is not None:
        _function.restype = None
_F_ONE, _F_ZERO = ctypes.c_float(1.0), ctypes.c_float(0.0)
_D_ONE, _D_ZERO = ctypes.c_double(1.0), ctypes.c_double(0.0)
_pointer = _libraries.data_pointer_reader()
_VOID_P = ctypes.c_void_p

# Without bf16 instructions MKL still computes bf16 products correctly, widening to float32
# as it packs. Measured with MKL_ENABLE_INSTRUCTIONS=AVX512 / AVX2 on the Xeon, that was as
# fast as widening the whole operands first and calling sgemm (182 vs 204 GFLOP/s at
# 700x650x2600, 55 vs 44 at 20x650x2600, 101 vs 83 on AVX2) and needs no temporary copies,
# so the bf16 entry point is used either way.
BF16_NATIVE_REASON = _libraries.bf16_support("mkl")


def gemm(a, b, out, trans_a, trans_b, accumulate):
    if out.size >= _INT_LIMIT or a.size >= _INT_LIMIT or b.size >= _INT_LIMIT:
        return _numpy_gemm(a, b, out, trans_a, trans_b, accumulate)
    dtype = a.dtype
    if dtype == _F32:
        call, batch_call, one, beta = _sgemm, _sgemm_batch, _F_ONE, _F_ONE if accumulate else _F_ZERO
    elif dtype == _F64:
        call, batch_call, one, beta = _dgemm, _dgemm_batch, _D_ONE, _D_ONE if accumulate else _D_ZERO
    else:  # bfloat16 or float16: no batched entry point
        if dtype == _F16 and _gemm_f16 is None:
            return _numpy_gemm(a, b, out, trans_a, trans_b, accumulate)  # widens, sums in float32
        call = _gemm_f16 if dtype == _F16 else _gemm_bf16
        batch_call, one, beta = None, _F_ONE, _F_ONE if accumulate else _F_ZERO
    a_shape, out_shape = a.shape, out.shape
    m, n = out_shape[-2], out_shape[-1]
    k = a_shape[-2] if trans_a else a_shape[-1]
    lda, ldb = a_shape[-1], b.shape[-1]
    ta = _TRANS if trans_a else _NO_TRANS
    tb = _TRANS if trans_b else _NO_TRANS
    if a.ndim == 2:
        call(_ROW_MAJOR, ta, tb, m, n, k, one, _pointer(a), lda, _pointer(b), ldb, beta, _pointer(out), n)
        return
    batch = out_shape[0]
    stride_a, stride_b = a.strides[0], b.strides[0]
    itemsize = a.itemsize
    if stride_b == 0 and not trans_a and stride_a == m * lda * itemsize:
        # out[i] = a[i] @ B for every i: one product of the stacked (batch*m, k) rows
        call(_ROW_MAJOR, ta, tb, batch * m, n, k, one, _pointer(a), lda, _pointer(b), ldb, beta, _pointer(out), n)
        return
    in_elements = (stride_a % itemsize == 0 and stride_b % itemsize == 0
                   and 0 <= stride_a < _INT_LIMIT * itemsize and 0 <= stride_b < _INT_LIMIT * itemsize)
    if batch_call is not None and in_elements:
        batch_call(_ROW_MAJOR, ta, tb, m, n, k, one, _pointer(a), lda, stride_a // itemsize,
                   _pointer(b), ldb, stride_b // itemsize, beta, _pointer(out), n, m * n, batch)
        return
    # bf16 batches, and batch strides MKL cannot take (negative, not whole elements): a loop
    a_address, b_address, out_address = _pointer(a).value, _pointer(b).value, _pointer(out).value
    out_stride = out.strides[0]
    for i in range(batch):
        call(_ROW_MAJOR, ta, tb, m, n, k, one, _VOID_P(a_address + i * stride_a), lda,
             _VOID_P(b_address + i * stride_b), ldb, beta, _VOID_P(out_address + i * out_stride), n)


def _numpy_gemm(a, b, out, trans_a, trans_b, accumulate):
    left = a.swapaxes(-1, -2) if trans_a else a
    right = b.swapaxes(-1, -2) if trans_b else b
    if left.dtype != out.dtype:
        left, right = left.astype(out.dtype), right.astype(out.dtype)
    if accumulate:
        out += np.matmul(left, right)
    else:
        np.matmul(left, right, out=out)


# --- bf16 products on a pre-packed right operand (autocast's cached weights) --------------------
#
# A recurrent step multiplies 20 rows by the same 650 x 2600 weight at each of 35 steps, and
# cblas_gemm_bf16bf16f32 re-packs that weight into its VNNI/AMX layout at every call: at 1
# thread on the AMX Xeon 213 GFLOP/s, against 460 on a weight packed once with
# cblas_gemm_bf16bf16f32_pack (20 x 2600 x 650: 250 vs 470). Packing costs about one such call,
# so autocast packs only weights it has cached (see _autocast.py).
_CBLAS_B_MATRIX, _CBLAS_PACKED = 162, 151
_pack_get_size = getattr(_mkl, "cblas_gemm_bf16bf16f32_pack_get_size", None)
_pack = getattr(_mkl, "cblas_gemm_bf16bf16f32_pack", None)
_compute = getattr(_mkl, "cblas_gemm_bf16bf16f32_compute", None)
HAS_BF16_PACK = None not in (_pack_get_size, _pack, _compute)
if HAS_BF16_PACK:
    _pack_get_size.restype = ctypes.c_size_t
    _pack.restype = None
    _compute.restype = None


def pack_bf16_b(b, trans_b, m):
    """``b`` (bf16, C-contiguous 2-D, (N, K) when ``trans_b``) packed as the right operand of
    products with ``m`` rows: a uint8 buffer for :func:`gemm_bf16_packed_b`."""
    n, k = (b.shape[0], b.shape[1]) if trans_b else (b.shape[1], b.shape[0])
    packed = aligned_empty(_pack_get_size(_CBLAS_B_MATRIX, m, n, k), np.uint8)  # reused, not faulted in anew
    _pack(_ROW_MAJOR, _CBLAS_B_MATRIX, _TRANS if trans_b else _NO_TRANS, m, n, k, _pointer(b), b.shape[1],
          _pointer(packed))
    return packed


def gemm_bf16_packed_b(a, trans_a, packed, ldb, out, accumulate):
    """``out (+)= op(a) @ B`` with B packed by :func:`pack_bf16_b` (same m, n, k); ``ldb`` is the
    row length of the matrix that was packed."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    _compute(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _CBLAS_PACKED, m, n, k, _F_ONE, _pointer(a), a.shape[1],
             _pointer(packed), ldb, _F_ONE if accumulate else _F_ZERO, _pointer(out), n)


# --- float32/float64 products on a pre-packed right operand (gemm.repeated_product) ------------
#
# The same story in full precision: cblas_sgemm packs its right operand at every call. A
# recurrent layer multiplies one weight at each of 35 steps; packed once with cblas_sgemm_pack,
# a step of 20 x 650 x 2600 took 560 us against 800 at 1 thread on the AMX Xeon, and 20 x 2600
# x 650 read transposed 600 against 833 (the packing costs about one plain call).
_float_packing = {}
for _dtype, _prefix in ((_F32, "cblas_sgemm"), (_F64, "cblas_dgemm")):
    _functions = [getattr(_mkl, _prefix + suffix, None) for suffix in ("_pack_get_size", "_pack", "_compute")]
    if None not in _functions:
        _functions[0].restype = ctypes.c_size_t
        _functions[1].restype = _functions[2].restype = None
        _float_packing[_dtype] = _functions
_ALPHA_ONE = {_F32: _F_ONE, _F64: _D_ONE}
_BETA = {(_F32, False): _F_ZERO, (_F32, True): _F_ONE, (_F64, False): _D_ZERO, (_F64, True): _D_ONE}


def can_pack(dtype) -> bool:
    """Whether this MKL packs right operands of ``dtype`` (float32, float64, bfloat16) for :func:`pack_b`."""
    dtype = np.dtype(dtype)
    return dtype in _float_packing or (HAS_BF16_PACK and dtype.name == "bfloat16")


def pack_b(b, trans_b, m):
    """``b`` (float32/float64/bfloat16, C-contiguous 2-D, (N, K) when ``trans_b``) packed as the
    right operand of products with ``m`` rows: a buffer for :func:`gemm_packed_b`."""
    if b.dtype.name == "bfloat16":
        return pack_bf16_b(b, trans_b, m)
    get_size, pack, _ = _float_packing[b.dtype]
    n, k = (b.shape[0], b.shape[1]) if trans_b else (b.shape[1], b.shape[0])
    packed = aligned_empty(get_size(_CBLAS_B_MATRIX, m, n, k), np.uint8)  # reused, not faulted in anew
    pack(_ROW_MAJOR, _CBLAS_B_MATRIX, _TRANS if trans_b else _NO_TRANS, m, n, k, _ALPHA_ONE[b.dtype], _pointer(b),
         b.shape[1], _pointer(packed))
    return packed


def gemm_packed_b(a, packed, ldb, out, accumulate):
    """``out (+)= a @ B``, B packed by :func:`pack_b` for ``a``'s rows; ``a`` (M, K) of B's dtype
    and ``out`` (M, N) of the product's (float32 for bfloat16), C-contiguous; ``ldb`` the row
    length of the matrix that was packed."""
    if a.dtype.name == "bfloat16":
        return gemm_bf16_packed_b(a, False, packed, ldb, out, accumulate)
    m, n = out.shape
    _float_packing[a.dtype][2](_ROW_MAJOR, _NO_TRANS, _CBLAS_PACKED, m, n, a.shape[1], _pointer(a), a.shape[1],
                               _pointer(packed), ldb, _BETA[a.dtype, accumulate], _pointer(out), n)
