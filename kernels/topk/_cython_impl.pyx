# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython version of the top-k selection: the heap loop of topk.h per row, without the GIL
(contract in __init__.py)."""
import numpy as np

from libc.stdint cimport int64_t

from ..embedding._cython_impl import rounded, to_float32
from .reference import on_float32_rows


cdef extern from "topk.h" nogil:
    void topk_rows_f32(const float* scores, Py_ssize_t q, Py_ssize_t n, Py_ssize_t k, float* values,
                       int64_t* indices)
    void topk_rows_f64(const double* scores, Py_ssize_t q, Py_ssize_t n, Py_ssize_t k, double* values,
                       int64_t* indices)
    const char* topk_isa_level()


def isa_level():
    """The instruction-set clone the scan runs here (avx512f, avx2 or default)."""
    return topk_isa_level().decode()


def topk(scores, k):
    """Per row the k largest (values, int64 indices), best first; ties by lower index.
    float16 / bfloat16: blocks of rows converted to float32 (the CPU's conversion instructions;
    exact), selected by the float32 loop."""
    if scores.dtype.itemsize == 2:  # float16 / bfloat16
        return on_float32_rows(topk, scores, k, to_float32=to_float32, rounded=rounded)
    Q, N = scores.shape
    values = np.empty((Q, k), scores.dtype)
    indices = np.empty((Q, k), np.int64)
    if Q:
        if scores.dtype == np.float32:
            _rows_f32(scores, values, indices, k)
        else:
            _rows_f64(scores, values, indices, k)
    return values, indices


cdef _rows_f32(const float[:, ::1] scores, float[:, ::1] values, int64_t[:, ::1] indices, Py_ssize_t k):
    with nogil:
        topk_rows_f32(&scores[0, 0], scores.shape[0], scores.shape[1], k, &values[0, 0], &indices[0, 0])


cdef _rows_f64(const double[:, ::1] scores, double[:, ::1] values, int64_t[:, ::1] indices, Py_ssize_t k):
    with nogil:
        topk_rows_f64(&scores[0, 0], scores.shape[0], scores.shape[1], k, &values[0, 0], &indices[0, 0])
