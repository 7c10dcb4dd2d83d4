# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the attention ops: the loops live in attention_ops.h (C, one clone per
instruction set), called here without the GIL on validated, C-contiguous arrays of one float
dtype (see __init__.py). Outputs are allocated here, never overlapping an input.
"""
import numpy as np

from ..memory import aligned_empty_like  # dhs, the one large output: rows streamed by vector stores


cdef extern from "attention_ops.h" nogil:
    void attention_weights_f32(const float* hs, const float* h, float* a,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_f64(const double* hs, const double* h, double* a,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_f32(const float* hs, const float* a, float* c,
                          Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_f64(const double* hs, const double* a, double* c,
                          Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_f32(const float* hs, const float* h, float* a, float* c,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_f64(const double* hs, const double* h, double* a, double* c,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_backward_f32(const float* hs, const float* h, const float* a, const float* da,
                                        float* dhs, float* dh, float* ds,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_backward_f64(const double* hs, const double* h, const double* a, const double* da,
                                        double* dhs, double* dh, double* ds,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_backward_f32(const float* hs, const float* a, const float* dc, float* dhs, float* da,
                                   Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_backward_f64(const double* hs, const double* a, const double* dc, double* dhs, double* da,
                                   Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_backward_f32(const float* hs, const float* h, const float* a, const float* dc,
                                        float* dhs, float* dh, float* da, float* ds,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_backward_f64(const double* hs, const double* h, const double* a, const double* dc,
                                        double* dhs, double* dh, double* da, double* ds,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)


ctypedef fused real:
    float
    double


# Empty extents are fine: &x[0, 0, 0] only computes the data pointer (boundscheck is off) and
# the C loops never read along an axis of length 0.

def _attention_weights(const real[:, :, ::1] hs, const real[:, :, ::1] h, real[:, :, ::1] a):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if real is float:
            attention_weights_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], N, Q, T, H)
        else:
            attention_weights_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], N, Q, T, H)


def _weighted_sum(const real[:, :, ::1] hs, const real[:, :, ::1] a, real[:, :, ::1] c):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = a.shape[1]
    with nogil:
        if real is float:
            weighted_sum_f32(&hs[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)
        else:
            weighted_sum_f64(&hs[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)


def _attention_context(const real[:, :, ::1] hs, const real[:, :, ::1] h, real[:, :, ::1] a,
                       real[:, :, ::1] c):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if real is float:
            attention_context_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)
        else:
            attention_context_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)


def _attention_weights_backward(const real[:, :, ::1] hs, const real[:, :, ::1] h, const real[:, :, ::1] a,
                                const real[:, :, ::1] da, real[:, :, ::1] dhs, real[:, :, ::1] dh,
                                real[:, ::1] ds):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if real is float:
            attention_weights_backward_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &da[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &ds[0, 0], N, Q, T, H)
        else:
            attention_weights_backward_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &da[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &ds[0, 0], N, Q, T, H)


def _weighted_sum_backward(const real[:, :, ::1] hs, const real[:, :, ::1] a, const real[:, :, ::1] dc,
                           real[:, :, ::1] dhs, real[:, :, ::1] da):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = a.shape[1]
    with nogil:
        if real is float:
            weighted_sum_backward_f32(&hs[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0], &dhs[0, 0, 0], &da[0, 0, 0],
                                      N, Q, T, H)
        else:
            weighted_sum_backward_f64(&hs[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0], &dhs[0, 0, 0], &da[0, 0, 0],
                                      N, Q, T, H)


def _attention_context_backward(const real[:, :, ::1] hs, const real[:, :, ::1] h, const real[:, :, ::1] a,
                                const real[:, :, ::1] dc, real[:, :, ::1] dhs, real[:, :, ::1] dh,
                                real[:, ::1] da, real[:, ::1] ds):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if real is float:
            attention_context_backward_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &da[0, 0], &ds[0, 0], N, Q, T, H)
        else:
            attention_context_backward_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &da[0, 0], &ds[0, 0], N, Q, T, H)


# ----- the backend functions (the reference's signatures) ------------------------------------
# Every extent may be 0 but T (validated): the C loops then do nothing, or write the uniform
# weights of all-zero scores (H = 0) and zero gradients (Q = 0).

def attention_weights(hs, h):
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    _attention_weights(hs, h, a)
    return a


def attention_weights_backward(hs, h, a, da):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    _attention_weights_backward(hs, h, a, da, dhs, dh, np.empty(a.shape[1:], dtype=hs.dtype))
    return dhs, dh


def weighted_sum(hs, a):
    c = np.empty((hs.shape[0], a.shape[1], hs.shape[2]), dtype=hs.dtype)
    _weighted_sum(hs, a, c)
    return c


def weighted_sum_backward(hs, a, dc):
    dhs, da = aligned_empty_like(hs), np.empty_like(a)
    _weighted_sum_backward(hs, a, dc, dhs, da)
    return dhs, da


def attention_context(hs, h):
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    c = np.empty((hs.shape[0], h.shape[1], hs.shape[2]), dtype=hs.dtype)
    _attention_context(hs, h, a, c)
    return a, c


def attention_context_backward(hs, h, a, dc):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    scratch = a.shape[1:]
    _attention_context_backward(hs, h, a, dc, dhs, dh, np.empty(scratch, dtype=hs.dtype),
                                np.empty(scratch, dtype=hs.dtype))
    return dhs, dh
