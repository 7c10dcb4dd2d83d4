# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the negative-sampling ops: the loops live in sgns_ops.h (compiled per
instruction set, no FMA contraction), run here without the GIL.

Inputs arrive validated (see __init__.py: ids in range, C-contiguous, matching float dtype,
dW not sharing memory with the inputs), which is what makes the unchecked indexing safe.
"""
import numpy as np
from libc.stdint cimport int64_t, uint64_t

from ..embedding._cython_impl import rounded, to_float32
from .reference import on_touched_rows


cdef extern from "sgns_ops.h" nogil:
    void gather_dot_rows_f32(const float* W, const int64_t* idx, const float* h, float* out,
                             Py_ssize_t n, Py_ssize_t k, Py_ssize_t width)
    void gather_dot_rows_f64(const double* W, const int64_t* idx, const double* h, double* out,
                             Py_ssize_t n, Py_ssize_t k, Py_ssize_t width)
    void gather_dot_backward_rows_f32(const float* W, const int64_t* idx, const float* h, const float* dout,
                                      float* dW, float* dh, Py_ssize_t n, Py_ssize_t k, Py_ssize_t width)
    void gather_dot_backward_rows_f64(const double* W, const int64_t* idx, const double* h, const double* dout,
                                      double* dW, double* dh, Py_ssize_t n, Py_ssize_t k, Py_ssize_t width)
    void sample_negatives_rows(const int64_t* alias_prob, const int64_t* alias_index, const int64_t* cumulative,
                               int64_t vocab, const int64_t* target, Py_ssize_t n, Py_ssize_t sample_size,
                               uint64_t seed, uint64_t counter, int64_t* out)


def gather_dot(W, idx, h):
    if W.dtype.itemsize == 2:  # float16 / bfloat16: float32 on the touched rows (the CPU converts)
        return on_touched_rows(gather_dot, W, idx, h, to_float32=to_float32, rounded=rounded)
    cdef const int64_t[:, ::1] ids = idx
    cdef const float[:, ::1] W32, h32
    cdef const double[:, ::1] W64, h64
    cdef float[:, ::1] out32
    cdef double[:, ::1] out64
    cdef Py_ssize_t n = ids.shape[0], k = ids.shape[1], width = W.shape[1]
    out = np.empty((n, k), dtype=W.dtype)
    if n == 0 or k == 0:
        return out
    if W.dtype == np.float32:
        W32, h32, out32 = W, h, out
        with nogil:
            gather_dot_rows_f32(&W32[0, 0], &ids[0, 0], &h32[0, 0], &out32[0, 0], n, k, width)
    else:
        W64, h64, out64 = W, h, out
        with nogil:
            gather_dot_rows_f64(&W64[0, 0], &ids[0, 0], &h64[0, 0], &out64[0, 0], n, k, width)
    return out


def gather_dot_backward(W, idx, h, dout, dW):
    if W.dtype.itemsize == 2:
        return on_touched_rows(gather_dot_backward, W, idx, h, dout, dW, to_float32=to_float32, rounded=rounded)
    cdef const int64_t[:, ::1] ids = idx
    cdef const float[:, ::1] W32, h32, dout32
    cdef const double[:, ::1] W64, h64, dout64
    cdef float[:, ::1] dW32, dh32
    cdef double[:, ::1] dW64, dh64
    cdef Py_ssize_t n = ids.shape[0], k = ids.shape[1], width = W.shape[1]
    dh = np.zeros((n, width), dtype=W.dtype)
    if n == 0 or k == 0 or width == 0:
        return dh
    if W.dtype == np.float32:
        W32, h32, dout32, dW32, dh32 = W, h, dout, dW, dh
        with nogil:
            gather_dot_backward_rows_f32(&W32[0, 0], &ids[0, 0], &h32[0, 0], &dout32[0, 0], &dW32[0, 0],
                                         &dh32[0, 0], n, k, width)
    else:
        W64, h64, dout64, dW64, dh64 = W, h, dout, dW, dh
        with nogil:
            gather_dot_backward_rows_f64(&W64[0, 0], &ids[0, 0], &h64[0, 0], &dout64[0, 0], &dW64[0, 0],
                                         &dh64[0, 0], n, k, width)
    return dh


def sample_negatives(alias_prob, alias_index, cumulative, target, Py_ssize_t sample_size, uint64_t seed,
                     uint64_t counter):
    cdef const int64_t[::1] prob = alias_prob, alias = alias_index, cum = cumulative, tgt = target
    cdef Py_ssize_t n = tgt.shape[0]
    cdef int64_t vocab = prob.shape[0]
    out = np.empty((n, sample_size), dtype=np.int64)
    cdef int64_t[:, ::1] result = out
    if n == 0 or sample_size == 0:
        return out
    with nogil:
        sample_negatives_rows(&prob[0], &alias[0], &cum[0], vocab, &tgt[0], n, sample_size, seed, counter,
                              &result[0, 0])
    return out
