# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython kernels of the LSTM step ops: raw pointers, loops run without the GIL.

Inputs arrive validated (see __init__.py: C-contiguous, one dtype, shapes agree, no output
overlapping an input), which is what makes the unchecked pointer loops below safe.

float32 uses Eigen's clamped rational approximation of tanh (a few ulp; plain arithmetic, so
GCC vectorises the loops, which it cannot do around libm's ``tanhf``); float64 calls libm's
``tanh``. The tanh/sigmoid loops and the whole backward are C functions compiled once per
instruction set (AVX-512, AVX2, baseline; the loader picks one), so a portable build still
runs 16-lane vectors on this kind of CPU. Every loop writes one output and reads few arrays.

float16 / bfloat16 storage: the arrays are converted up to float32 (fastnlp/half.h's row
conversions: F16C / AVX-512 for float16, vectorised shifts for bfloat16), the float32 step
runs on them, and each output is rounded once back (to nearest, ties to even).
"""
import numpy as np
from cython cimport floating
from libc.math cimport tanh

from ..embedding._cython_impl import round_into, to_float32


cdef extern from *:
    """
    /* float32 tanh and sigmoid loops, in C so GCC vectorises them: Eigen's clamped rational
       approximation of tanh (a few ulp, plain arithmetic). GCC if-converts the clamp only
       without -ftrapping-math (a comparison may raise FE_INVALID on NaN, which nothing here
       observes), hence the option, limited to these functions. No fused multiply-add either
       (fp-contract=off): fma(-t, t, 1) rounds 1 - t*t unlike the reference, and near |t| = 1 that
       cancellation turns one rounding into a large relative difference in the backward.
       Compiled once per instruction set (FASTNLP_CLONES, fastnlp/dispatch.h): the loader picks
       the AVX-512, AVX2 or baseline clone, so a portable build still gets 16-lane vectors. */
    #include "fastnlp/dispatch.h"
    #pragma GCC push_options
    #pragma GCC optimize ("no-trapping-math", "fp-contract=off")
    static inline float fastnlp_tanhf(float x) {
        const float clamp = 7.90531110763549805f;  /* tanh rounds to +-1 in float32 beyond */
        x = x < -clamp ? -clamp : x;
        x = x > clamp ? clamp : x;
        const float x2 = x * x;
        float p = -2.76076847742355e-16f;
        p = p * x2 + 2.00018790482477e-13f;
        p = p * x2 + -8.60467152213735e-11f;
        p = p * x2 + 5.12229709037114e-08f;
        p = p * x2 + 1.48572235717979e-05f;
        p = p * x2 + 6.37261928875436e-04f;
        p = p * x2 + 4.89352455891786e-03f;
        float q = 1.19825839466702e-06f;
        q = q * x2 + 1.18534705686654e-04f;
        q = q * x2 + 2.26843463243900e-03f;
        q = q * x2 + 4.89352518554385e-03f;
        return p * x / q;
    }
    /* y[j] = tanh(x[j]); y may be x */
    FASTNLP_CLONES static void fastnlp_tanh_f32(const float* x, float* y, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) y[j] = fastnlp_tanhf(x[j]);
    }
    /* a[j] = sigmoid(a[j]) = (1 + tanh(a[j] / 2)) / 2 */
    FASTNLP_CLONES static void fastnlp_sigmoid_f32(float* a, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) a[j] = 0.5f * fastnlp_tanhf(0.5f * a[j]) + 0.5f;
    }
    /* The whole backward of a step; one output per loop (ds lives in dc_prev until the last
       loop scales it by f); the arrays never overlap (validated), hence restrict. */
    #define FASTNLP_LSTM_BACKWARD(T, SUFFIX)                                                     \
    FASTNLP_CLONES static void fastnlp_lstm_backward_##SUFFIX(                              \
            const T* dh_next, const T* dc_next, const T* gates, const T* c_prev,                 \
            const T* tanh_c, T* dA, T* dc_prev, Py_ssize_t N, Py_ssize_t H) {                    \
        for (Py_ssize_t n = 0; n < N; n++) {                                                     \
            const T* __restrict f = gates + n * 4 * H;                                           \
            const T* __restrict g = f + H;                                                       \
            const T* __restrict i = f + 2 * H;                                                  \
            const T* __restrict o = f + 3 * H;                                                   \
            T* __restrict df = dA + n * 4 * H;                                                   \
            T* __restrict dg = df + H;                                                           \
            T* __restrict di = df + 2 * H;                                                       \
            T* __restrict dO = df + 3 * H;                                                       \
            const T* __restrict dh = dh_next + n * H;                                            \
            const T* __restrict dc = dc_next + n * H;                                            \
            const T* __restrict cp = c_prev + n * H;                                             \
            const T* __restrict tc = tanh_c + n * H;                                             \
            T* __restrict ds = dc_prev + n * H;                                                  \
            for (Py_ssize_t j = 0; j < H; j++) ds[j] = dc[j] + dh[j] * o[j] * ((T)1 - tc[j] * tc[j]); \
            for (Py_ssize_t j = 0; j < H; j++) df[j] = ds[j] * cp[j] * f[j] * ((T)1 - f[j]);    \
            for (Py_ssize_t j = 0; j < H; j++) dg[j] = ds[j] * i[j] * ((T)1 - g[j] * g[j]);     \
            for (Py_ssize_t j = 0; j < H; j++) di[j] = ds[j] * g[j] * i[j] * ((T)1 - i[j]);     \
            for (Py_ssize_t j = 0; j < H; j++) dO[j] = dh[j] * tc[j] * o[j] * ((T)1 - o[j]);    \
            for (Py_ssize_t j = 0; j < H; j++) ds[j] *= f[j];                                    \
        }                                                                                        \
    }
    FASTNLP_LSTM_BACKWARD(float, f32)
    FASTNLP_LSTM_BACKWARD(double, f64)
    #pragma GCC pop_options
    """
    void _tanh_f32 "fastnlp_tanh_f32"(const float* x, float* y, Py_ssize_t n) noexcept nogil
    void _sigmoid_f32 "fastnlp_sigmoid_f32"(float* a, Py_ssize_t n) noexcept nogil
    void _backward_f32 "fastnlp_lstm_backward_f32"(const float* dh_next, const float* dc_next, const float* gates,
                                                   const float* c_prev, const float* tanh_c, float* dA,
                                                   float* dc_prev, Py_ssize_t N, Py_ssize_t H) noexcept nogil
    void _backward_f64 "fastnlp_lstm_backward_f64"(const double* dh_next, const double* dc_next,
                                                   const double* gates, const double* c_prev,
                                                   const double* tanh_c, double* dA, double* dc_prev,
                                                   Py_ssize_t N, Py_ssize_t H) noexcept nogil


cdef inline void _tanh_loop(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    if floating is float:
        _tanh_f32(x, y, n)
    else:
        for j in range(n):
            y[j] = tanh(x[j])


cdef inline void _sigmoid_loop(floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    if floating is float:
        _sigmoid_f32(a, n)
    else:
        for j in range(n):
            a[j] = 0.5 * tanh(0.5 * a[j]) + 0.5


cdef void _forward(floating* A, const floating* c_prev, floating* h_next, floating* c_next,
                   floating* tanh_c, Py_ssize_t N, Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t n, j
    cdef floating *f
    cdef floating *g
    cdef floating *i
    cdef floating *o
    cdef const floating* cp
    cdef floating *cn
    cdef floating *tc
    cdef floating *hn
    for n in range(N):
        f = A + n * 4 * H
        g = f + H
        i = g + H
        o = i + H
        _sigmoid_loop(f, H)
        _tanh_loop(g, g, H)
        _sigmoid_loop(i, 2 * H)  # i and o
        cp, cn, tc, hn = c_prev + n * H, c_next + n * H, tanh_c + n * H, h_next + n * H
        for j in range(H):
            cn[j] = f[j] * cp[j] + g[j] * i[j]
        _tanh_loop(cn, tc, H)
        for j in range(H):
            hn[j] = o[j] * tc[j]


def _in_float32(step, args, written):
    """The float32 ``step`` on float32 copies of the 16-bit ``args``; each argument at a
    position in ``written`` rounded once back into its array."""
    wide = [to_float32(x) for x in args]
    step(*wide)
    for k in written:
        round_into(wide[k], args[k])


def lstm_step_forward(A, c_prev, h_next, c_next, tanh_c):
    if A.dtype.itemsize == 2:  # float16 / bfloat16 (a cheaper test than dtype equality)
        _in_float32(lstm_step_forward, (A, c_prev, h_next, c_next, tanh_c), (0, 2, 3, 4))
        return
    cdef float[:, ::1] A32, h32, c32, t32
    cdef const float[:, ::1] cp32
    cdef double[:, ::1] A64, h64, c64, t64
    cdef const double[:, ::1] cp64
    cdef Py_ssize_t N = c_prev.shape[0], H = c_prev.shape[1]
    if N == 0 or H == 0:
        return
    if A.dtype == np.float32:
        A32, cp32, h32, c32, t32 = A, c_prev, h_next, c_next, tanh_c
        with nogil:
            _forward(&A32[0, 0], &cp32[0, 0], &h32[0, 0], &c32[0, 0], &t32[0, 0], N, H)
    else:
        A64, cp64, h64, c64, t64 = A, c_prev, h_next, c_next, tanh_c
        with nogil:
            _forward(&A64[0, 0], &cp64[0, 0], &h64[0, 0], &c64[0, 0], &t64[0, 0], N, H)


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev):
    if gates.dtype.itemsize == 2:
        _in_float32(lstm_step_backward, (dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev), (5, 6))
        return
    cdef const float[:, ::1] dh32, dc32, g32, cp32, t32
    cdef float[:, ::1] dA32, dcp32
    cdef const double[:, ::1] dh64, dc64, g64, cp64, t64
    cdef double[:, ::1] dA64, dcp64
    cdef Py_ssize_t N = c_prev.shape[0], H = c_prev.shape[1]
    if N == 0 or H == 0:
        return
    if gates.dtype == np.float32:
        dh32, dc32, g32, cp32, t32, dA32, dcp32 = dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev
        with nogil:
            _backward_f32(&dh32[0, 0], &dc32[0, 0], &g32[0, 0], &cp32[0, 0], &t32[0, 0], &dA32[0, 0],
                          &dcp32[0, 0], N, H)
    else:
        dh64, dc64, g64, cp64, t64, dA64, dcp64 = dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev
        with nogil:
            _backward_f64(&dh64[0, 0], &dc64[0, 0], &g64[0, 0], &cp64[0, 0], &t64[0, 0], &dA64[0, 0],
                          &dcp64[0, 0], N, H)
