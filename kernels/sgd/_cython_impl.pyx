# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython version of sgd_update: sgd_ops.h's loop without the GIL (contract in __init__.py)."""
import numpy as np


cdef extern from "sgd_ops.h" nogil:
    void sgd_update_f32(float* p, const float* g, float lr, float grad_scale, Py_ssize_t n)
    void sgd_update_f64(double* p, const double* g, double lr, double grad_scale, Py_ssize_t n)


def sgd_update(p, g, lr, grad_scale=1.0):
    if p.dtype == np.float32:
        _update_f32(p.reshape(-1), g.reshape(-1), lr, grad_scale)
    else:
        _update_f64(p.reshape(-1), g.reshape(-1), lr, grad_scale)


cdef _update_f32(float[::1] p, const float[::1] g, float lr, float grad_scale):
    with nogil:
        sgd_update_f32(&p[0], &g[0], lr, grad_scale, p.shape[0])


cdef _update_f64(double[::1] p, const double[::1] g, double lr, double grad_scale):
    with nogil:
        sgd_update_f64(&p[0], &g[0], lr, grad_scale, p.shape[0])
