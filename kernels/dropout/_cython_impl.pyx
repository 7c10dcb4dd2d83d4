# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython version of dropout_forward: dropout_ops.h's loop without the GIL (contract in __init__.py)."""
import numpy as np
from libc.stdint cimport uint64_t


cdef extern from "dropout_ops.h" nogil:
    void dropout_forward_f32(const float* x, float* out, float* mask, uint64_t keep_below, float scale,
                             uint64_t seed, uint64_t first, Py_ssize_t n)
    void dropout_forward_f64(const double* x, double* out, double* mask, uint64_t keep_below, double scale,
                             uint64_t seed, uint64_t first, Py_ssize_t n)


def dropout_forward(x, out, mask, keep_below, scale, seed, first):
    cdef uint64_t below = <uint64_t>int(keep_below), s = <uint64_t>int(seed), start = <uint64_t>int(first)
    if x.dtype == np.float32:
        _forward_f32(x.reshape(-1), out.reshape(-1), mask.reshape(-1), below, scale, s, start)
    else:
        _forward_f64(x.reshape(-1), out.reshape(-1), mask.reshape(-1), below, scale, s, start)


cdef _forward_f32(const float[::1] x, float[::1] out, float[::1] mask, uint64_t below, float scale, uint64_t seed,
                  uint64_t first):
    if x.shape[0] == 0:
        return
    with nogil:
        dropout_forward_f32(&x[0], &out[0], &mask[0], below, scale, seed, first, x.shape[0])


cdef _forward_f64(const double[::1] x, double[::1] out, double[::1] mask, uint64_t below, double scale,
                  uint64_t seed, uint64_t first):
    if x.shape[0] == 0:
        return
    with nogil:
        dropout_forward_f64(&x[0], &out[0], &mask[0], below, scale, seed, first, x.shape[0])
