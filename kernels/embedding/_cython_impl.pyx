# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the embedding ops: typed memoryviews, loops run without the GIL.

Inputs arrive validated (see __init__.py: ids in range, C-contiguous, matching float dtype,
ids and rows not overlapping dW), which is what makes the unchecked indexing below safe.
"""
import numpy as np
from libc.stdint cimport int64_t, uint16_t

from ..validate import BFLOAT16


cdef extern from "row_ops.h" nogil:
    # The row loops live in C so GCC can compile one clone per instruction set (see row_ops.h).
    void scatter_add_rows_f32(float* dW, const int64_t* idx, const float* rows, Py_ssize_t n_ids, Py_ssize_t width)
    void scatter_add_rows_f64(double* dW, const int64_t* idx, const double* rows, Py_ssize_t n_ids, Py_ssize_t width)
    void gather_rows_f32(const float* W, const int64_t* idx, float* out, Py_ssize_t n_ids, Py_ssize_t width)
    void gather_rows_f64(const double* W, const int64_t* idx, double* out, Py_ssize_t n_ids, Py_ssize_t width)
    # float16 / bfloat16 as uint16_t bit patterns, float32 sums (fastnlp/half.h)
    void gather_rows_u16(const uint16_t* W, const int64_t* idx, uint16_t* out, Py_ssize_t n_ids, Py_ssize_t width)
    int scatter_add_rows_f16(uint16_t* dW, const int64_t* idx, const uint16_t* rows, Py_ssize_t n_ids,
                             Py_ssize_t width)
    int scatter_add_rows_bf16(uint16_t* dW, const int64_t* idx, const uint16_t* rows, Py_ssize_t n_ids,
                              Py_ssize_t width)
    const char* fastnlp_half_isa_name()
    void fastnlp_widen_f16(const uint16_t* src, float* dst, Py_ssize_t n)
    void fastnlp_narrow_f16(const float* src, uint16_t* dst, Py_ssize_t n)
    void fastnlp_widen_bf16(const uint16_t* src, float* dst, Py_ssize_t n)
    void fastnlp_narrow_bf16(const float* src, uint16_t* dst, Py_ssize_t n)

HALF = (np.dtype(np.float16), BFLOAT16)
# The float16 conversions in use here: 'avx512f' (16 lanes), 'f16c' (8) or 'portable'.
F16_ISA = fastnlp_half_isa_name().decode()


def scatter_add(dW, idx, rows):
    cdef const int64_t[::1] ids = idx
    cdef float[:, ::1] dW32
    cdef double[:, ::1] dW64
    cdef const float[:, ::1] rows32
    cdef const double[:, ::1] rows64
    cdef Py_ssize_t n = ids.shape[0], width = dW.shape[1]
    if n == 0 or width == 0:
        return
    if dW.dtype in HALF:
        _scatter_add_half(dW, ids, rows)
    elif dW.dtype == np.float32:
        dW32, rows32 = dW, rows
        with nogil:
            scatter_add_rows_f32(&dW32[0, 0], &ids[0], &rows32[0, 0], n, width)
    else:
        dW64, rows64 = dW, rows
        with nogil:
            scatter_add_rows_f64(&dW64[0, 0], &ids[0], &rows64[0, 0], n, width)


def embedding_gather(W, idx):
    cdef const int64_t[::1] ids = idx
    cdef const float[:, ::1] W32
    cdef const double[:, ::1] W64
    cdef float[:, ::1] out32
    cdef double[:, ::1] out64
    cdef Py_ssize_t n = ids.shape[0], width = W.shape[1]
    out = np.empty((n, width), dtype=W.dtype)
    if n == 0 or width == 0:
        return out
    if W.dtype in HALF:
        _gather_half(W, ids, out)
    elif W.dtype == np.float32:
        W32, out32 = W, out
        with nogil:
            gather_rows_f32(&W32[0, 0], &ids[0], &out32[0, 0], n, width)
    else:
        W64, out64 = W, out
        with nogil:
            gather_rows_f64(&W64[0, 0], &ids[0], &out64[0, 0], n, width)
    return out


def _scatter_add_half(dW, const int64_t[::1] ids, rows):
    """float16 / bfloat16 dW: each touched row summed in float32 in order of i, rounded once."""
    cdef uint16_t[:, ::1] target = dW.view(np.uint16)
    cdef const uint16_t[:, ::1] source = rows.view(np.uint16)
    cdef Py_ssize_t n = ids.shape[0], width = target.shape[1]
    cdef bint bf16 = dW.dtype == BFLOAT16
    cdef int failed
    with nogil:
        if bf16:
            failed = scatter_add_rows_bf16(&target[0, 0], &ids[0], &source[0, 0], n, width)
        else:
            failed = scatter_add_rows_f16(&target[0, 0], &ids[0], &source[0, 0], n, width)
    if failed:
        raise MemoryError(f"scatter_add: no scratch memory for {n} ids of width {width}")


def _gather_half(W, const int64_t[::1] ids, out):
    cdef const uint16_t[:, ::1] source = W.view(np.uint16)
    cdef uint16_t[:, ::1] target = out.view(np.uint16)
    cdef Py_ssize_t n = ids.shape[0], width = source.shape[1]
    with nogil:
        gather_rows_u16(&source[0, 0], &ids[0], &target[0, 0], n, width)


# The conversions of whole arrays that the other families' Cython kernels use for float16 /
# bfloat16 storage (fastnlp/half.h: F16C / AVX-512 for float16, vectorised shifts for bfloat16).
def to_float32(x):
    """A float32 copy of the float16 / bfloat16 array ``x`` (any shape)."""
    cdef const uint16_t[::1] bits = np.ascontiguousarray(x).reshape(-1).view(np.uint16)
    wide = np.empty(x.shape, np.float32)
    cdef float[::1] out = wide.reshape(-1)
    cdef bint bf16 = x.dtype == BFLOAT16
    cdef Py_ssize_t n = bits.shape[0]
    if n:
        with nogil:
            if bf16:
                fastnlp_widen_bf16(&bits[0], &out[0], n)
            else:
                fastnlp_widen_f16(&bits[0], &out[0], n)
    return wide


def round_into(values, x):
    """x[...] = the float32 array ``values`` rounded once (to nearest, ties to even) to the
    dtype of the C-contiguous float16 / bfloat16 array ``x`` of the same size."""
    cdef const float[::1] wide = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    cdef uint16_t[::1] bits = x.reshape(-1).view(np.uint16)
    cdef bint bf16 = x.dtype == BFLOAT16
    cdef Py_ssize_t n = bits.shape[0]
    if n:
        with nogil:
            if bf16:
                fastnlp_narrow_bf16(&wide[0], &bits[0], n)
            else:
                fastnlp_narrow_f16(&wide[0], &bits[0], n)


def rounded(values, dtype):
    """A new array of the float16 / bfloat16 ``dtype``: the float32 ``values`` rounded once."""
    out = np.empty(values.shape, dtype)
    round_into(values, out)
    return out
