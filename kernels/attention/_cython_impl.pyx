# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the attention ops: the loops live in attention_ops.h (C, one clone per
instruction set, and explicit AVX-512 loops for the fused pair of one decoder step in float32,
picked at run time), called here without the GIL on validated, C-contiguous arrays of one storage
dtype (see __init__.py). Outputs are allocated here, never overlapping an input. float16 and
bfloat16 arrays reach the C loops as their uint16 bit patterns, with a float32 scratch buffer
(one batch item's inputs widened, its float32 results before rounding).
"""
import numpy as np
from libc.stdint cimport uint16_t
from libc.stdlib cimport free, malloc

from ..memory import aligned_empty_like  # dhs, the one large output: rows streamed by vector stores
from ..validate import BFLOAT16


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
    # the fused pair in float32: AVX-512 decoder-step loops where they apply, else the clones above
    void attention_context_pick_f32(const float* hs, const float* h, float* a, float* c,
                                    Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_backward_pick_f32(const float* hs, const float* h, const float* a, const float* dc,
                                             float* dhs, float* dh, float* da, float* ds,
                                             Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)

    # float16 (f16) / bfloat16 (bf16) storage: uint16_t bit patterns, float32 arithmetic
    Py_ssize_t ATTENTION_HALF_WORK(Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_f16(const uint16_t* hs, const uint16_t* h, uint16_t* a, float* work,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_bf16(const uint16_t* hs, const uint16_t* h, uint16_t* a, float* work,
                                Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_f16(const uint16_t* hs, const uint16_t* a, uint16_t* c, float* work,
                          Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_bf16(const uint16_t* hs, const uint16_t* a, uint16_t* c, float* work,
                           Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_f16(const uint16_t* hs, const uint16_t* h, uint16_t* a, uint16_t* c, float* work,
                               Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_bf16(const uint16_t* hs, const uint16_t* h, uint16_t* a, uint16_t* c, float* work,
                                Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_backward_f16(const uint16_t* hs, const uint16_t* h, const uint16_t* a,
                                        const uint16_t* da, uint16_t* dhs, uint16_t* dh, float* work,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_weights_backward_bf16(const uint16_t* hs, const uint16_t* h, const uint16_t* a,
                                         const uint16_t* da, uint16_t* dhs, uint16_t* dh, float* work,
                                         Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void weighted_sum_backward_f16(const uint16_t* hs, const uint16_t* a, const uint16_t* dc, uint16_t* dhs,
                                   uint16_t* da, float* work, Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T,
                                   Py_ssize_t H)
    void weighted_sum_backward_bf16(const uint16_t* hs, const uint16_t* a, const uint16_t* dc, uint16_t* dhs,
                                    uint16_t* da, float* work, Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T,
                                    Py_ssize_t H)
    void attention_context_backward_f16(const uint16_t* hs, const uint16_t* h, const uint16_t* a,
                                        const uint16_t* dc, uint16_t* dhs, uint16_t* dh, float* work,
                                        Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)
    void attention_context_backward_bf16(const uint16_t* hs, const uint16_t* h, const uint16_t* a,
                                         const uint16_t* dc, uint16_t* dhs, uint16_t* dh, float* work,
                                         Py_ssize_t N, Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H)

HALF = (np.dtype(np.float16), BFLOAT16)


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


# The fused pair, one function per dtype rather than a fused type: the pair runs right after
# streaming megabytes through the caches, where each Python-level step pays in cache misses (the
# fused-type dispatch alone took 4-5 us a call there). float32 goes to the pick functions
# (attention_ops.h); the (2, Q, T) scratch of the backward is taken in C.

def _attention_context_f32(const float[:, :, ::1] hs, const float[:, :, ::1] h, float[:, :, ::1] a,
                           float[:, :, ::1] c):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        attention_context_pick_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)


def _attention_context_backward_f32(const float[:, :, ::1] hs, const float[:, :, ::1] h,
                                    const float[:, :, ::1] a, const float[:, :, ::1] dc, float[:, :, ::1] dhs,
                                    float[:, :, ::1] dh):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    cdef float* scratch = <float*>malloc(max(2 * Q * T, 1) * sizeof(float))  # da, ds: (Q, T) each
    if scratch == NULL:
        raise MemoryError("attention_context_backward: no memory for its (2, Q, T) scratch")
    with nogil:
        attention_context_backward_pick_f32(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0],
                                            &dhs[0, 0, 0], &dh[0, 0, 0], scratch, scratch + Q * T, N, Q, T, H)
    free(scratch)


def _attention_context_f64(const double[:, :, ::1] hs, const double[:, :, ::1] h, double[:, :, ::1] a,
                           double[:, :, ::1] c):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        attention_context_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], N, Q, T, H)


def _attention_context_backward_f64(const double[:, :, ::1] hs, const double[:, :, ::1] h,
                                    const double[:, :, ::1] a, const double[:, :, ::1] dc, double[:, :, ::1] dhs,
                                    double[:, :, ::1] dh):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    cdef double* scratch = <double*>malloc(max(2 * Q * T, 1) * sizeof(double))  # da, ds: (Q, T) each
    if scratch == NULL:
        raise MemoryError("attention_context_backward: no memory for its (2, Q, T) scratch")
    with nogil:
        attention_context_backward_f64(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0], &dhs[0, 0, 0],
                                       &dh[0, 0, 0], scratch, scratch + Q * T, N, Q, T, H)
    free(scratch)


# float16 / bfloat16: the C loops get the arrays' uint16 bit patterns (``_bits``) and a float32
# scratch buffer (``_work``); ``bf16`` picks the format.

def _bits(x):
    return x.view(np.uint16)


def _work(Py_ssize_t Q, Py_ssize_t T, Py_ssize_t H):
    return np.empty(max(ATTENTION_HALF_WORK(Q, T, H), 1), dtype=np.float32)


def _attention_weights_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] h, uint16_t[:, :, ::1] a,
                            float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if bf16:
            attention_weights_bf16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &work[0], N, Q, T, H)
        else:
            attention_weights_f16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &work[0], N, Q, T, H)


def _weighted_sum_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] a, uint16_t[:, :, ::1] c,
                       float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = a.shape[1]
    with nogil:
        if bf16:
            weighted_sum_bf16(&hs[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], &work[0], N, Q, T, H)
        else:
            weighted_sum_f16(&hs[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], &work[0], N, Q, T, H)


def _attention_context_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] h, uint16_t[:, :, ::1] a,
                            uint16_t[:, :, ::1] c, float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if bf16:
            attention_context_bf16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], &work[0], N, Q, T, H)
        else:
            attention_context_f16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &c[0, 0, 0], &work[0], N, Q, T, H)


def _attention_weights_backward_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] h,
                                     const uint16_t[:, :, ::1] a, const uint16_t[:, :, ::1] da,
                                     uint16_t[:, :, ::1] dhs, uint16_t[:, :, ::1] dh, float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if bf16:
            attention_weights_backward_bf16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &da[0, 0, 0],
                                            &dhs[0, 0, 0], &dh[0, 0, 0], &work[0], N, Q, T, H)
        else:
            attention_weights_backward_f16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &da[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &work[0], N, Q, T, H)


def _weighted_sum_backward_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] a,
                                const uint16_t[:, :, ::1] dc, uint16_t[:, :, ::1] dhs, uint16_t[:, :, ::1] da,
                                float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = a.shape[1]
    with nogil:
        if bf16:
            weighted_sum_backward_bf16(&hs[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0], &dhs[0, 0, 0], &da[0, 0, 0],
                                       &work[0], N, Q, T, H)
        else:
            weighted_sum_backward_f16(&hs[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0], &dhs[0, 0, 0], &da[0, 0, 0],
                                      &work[0], N, Q, T, H)


def _attention_context_backward_half(const uint16_t[:, :, ::1] hs, const uint16_t[:, :, ::1] h,
                                     const uint16_t[:, :, ::1] a, const uint16_t[:, :, ::1] dc,
                                     uint16_t[:, :, ::1] dhs, uint16_t[:, :, ::1] dh, float[::1] work, bint bf16):
    cdef Py_ssize_t N = hs.shape[0], T = hs.shape[1], H = hs.shape[2], Q = h.shape[1]
    with nogil:
        if bf16:
            attention_context_backward_bf16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0],
                                            &dhs[0, 0, 0], &dh[0, 0, 0], &work[0], N, Q, T, H)
        else:
            attention_context_backward_f16(&hs[0, 0, 0], &h[0, 0, 0], &a[0, 0, 0], &dc[0, 0, 0],
                                           &dhs[0, 0, 0], &dh[0, 0, 0], &work[0], N, Q, T, H)


# ----- the backend functions (the reference's signatures) ------------------------------------
# Every extent may be 0 but T (validated): the C loops then do nothing, or write the uniform
# weights of all-zero scores (H = 0) and zero gradients (Q = 0).

def attention_weights(hs, h):
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=hs.dtype)
    if hs.dtype in HALF:
        _attention_weights_half(_bits(hs), _bits(h), _bits(a), _work(*a.shape[1:], hs.shape[2]),
                                hs.dtype == BFLOAT16)
    else:
        _attention_weights(hs, h, a)
    return a


def attention_weights_backward(hs, h, a, da):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    if hs.dtype in HALF:
        _attention_weights_backward_half(_bits(hs), _bits(h), _bits(a), _bits(da), _bits(dhs), _bits(dh),
                                         _work(*a.shape[1:], hs.shape[2]), hs.dtype == BFLOAT16)
    else:
        _attention_weights_backward(hs, h, a, da, dhs, dh, np.empty(a.shape[1:], dtype=hs.dtype))
    return dhs, dh


def weighted_sum(hs, a):
    c = np.empty((hs.shape[0], a.shape[1], hs.shape[2]), dtype=hs.dtype)
    if hs.dtype in HALF:
        _weighted_sum_half(_bits(hs), _bits(a), _bits(c), _work(*a.shape[1:], hs.shape[2]), hs.dtype == BFLOAT16)
    else:
        _weighted_sum(hs, a, c)
    return c


def weighted_sum_backward(hs, a, dc):
    dhs, da = aligned_empty_like(hs), np.empty_like(a)
    if hs.dtype in HALF:
        _weighted_sum_backward_half(_bits(hs), _bits(a), _bits(dc), _bits(dhs), _bits(da),
                                    _work(*a.shape[1:], hs.shape[2]), hs.dtype == BFLOAT16)
    else:
        _weighted_sum_backward(hs, a, dc, dhs, da)
    return dhs, da


def attention_context(hs, h):
    dtype = hs.dtype
    a = np.empty((hs.shape[0], h.shape[1], hs.shape[1]), dtype=dtype)
    c = np.empty((hs.shape[0], h.shape[1], hs.shape[2]), dtype=dtype)
    if dtype.itemsize == 4:  # float32 (the storage dtypes have distinct sizes)
        _attention_context_f32(hs, h, a, c)
    elif dtype.itemsize == 2:
        _attention_context_half(_bits(hs), _bits(h), _bits(a), _bits(c), _work(*a.shape[1:], hs.shape[2]),
                                dtype == BFLOAT16)
    else:
        _attention_context_f64(hs, h, a, c)
    return a, c


def attention_context_backward(hs, h, a, dc):
    dhs, dh = aligned_empty_like(hs), np.empty_like(h)
    cdef Py_ssize_t itemsize = hs.dtype.itemsize
    if itemsize == 4:
        _attention_context_backward_f32(hs, h, a, dc, dhs, dh)
    elif itemsize == 2:
        _attention_context_backward_half(_bits(hs), _bits(h), _bits(a), _bits(dc), _bits(dhs), _bits(dh),
                                         _work(*a.shape[1:], hs.shape[2]), hs.dtype == BFLOAT16)
    else:
        _attention_context_backward_f64(hs, h, a, dc, dhs, dh)
    return dhs, dh
