# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython version of exp_row_sums: softmax_ops.h's vectorised exp and row sums, without the
GIL (contract in __init__.py)."""
import numpy as np


cdef extern from "softmax_ops.h" nogil:
    void softmax_exp_row_sums_f32(const float* x, float* y, float* sums, Py_ssize_t rows, Py_ssize_t width)
    void softmax_exp_row_sums_f64(const double* x, double* y, double* sums, Py_ssize_t rows, Py_ssize_t width)
    const char* softmax_isa_level()


def isa_level():
    """The instruction-set clone the loop runs here (avx512f, avx2 or default)."""
    return softmax_isa_level().decode()


def exp_row_sums(x, y, sums):
    if x.shape[0] == 0:
        return
    if x.dtype == np.float32:
        _rows_f32(x, y, sums)
    else:
        _rows_f64(x, y, sums)


cdef _rows_f32(const float[:, ::1] x, float[:, ::1] y, float[::1] sums):
    with nogil:
        softmax_exp_row_sums_f32(&x[0, 0], &y[0, 0], &sums[0], x.shape[0], x.shape[1])


cdef _rows_f64(const double[:, ::1] x, double[:, ::1] y, double[::1] sums):
    with nogil:
        softmax_exp_row_sums_f64(&x[0, 0], &y[0, 0], &sums[0], x.shape[0], x.shape[1])
