# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython version of the word2vec training ops: typed loops over raw pointers, run without the GIL.

The contract is in __init__.py and the order of every float operation in reference.py; this
file performs the same operations in the same order, so single-threaded results equal the
reference bit for bit. That rules out contracting a * b + c into one fused multiply-add (a
different rounding), which GCC would do wherever the target has FMA (FASTNLP_NATIVE=1 builds):
the pragmas below switch contraction off for this file.

Cython (``_train``) does the control flow: subsampling, windows, negative sampling, the list
of outputs. The vector work of one centre word (CBOW mean, scores, gradients and loss, row
updates) is one small C function, ``w2v_step``, written over two primitives: two dot products
at once, and a weighted sum of rows taken 16 columns at a time, both with 4-lane vectors (GCC/
Clang vector extensions; SSE on x86-64, NEON on arm64) so the contract's 16 partial sums and a
16-column block stay in registers. The float step is compiled once per instruction set by the
one dispatch mechanism of the compiled kernels (FASTNLP_CLONES, kernels/include/fastnlp/
dispatch.h); on a CPU with AVX-512F a second version of the primitives over 16-lane vectors
runs instead (one register per 16 partial sums or 16-column block, the tail in masked lanes;
``SIMD`` names the step in use, ``use_simd`` switches for comparisons): a wheel built for any
x86-64 CPU still runs the wider code where it can. No BLAS: with D ~ 100 the call overhead of
sdot/saxpy (gensim's route) is larger than the work. Measured on PTB (one thread, D = 100, CPU
time), against the same algorithm as plain Cython loops left to GCC's auto-vectoriser: 1.35x
(CBOW) and 1.5x (skip-gram); of that, AVX2 gives 5-8%. On the Intel Xeon (AVX-512) the 16-lane
step takes 12% less CPU time than the AVX2 one for CBOW and 18% less for skip-gram (bench/
README.md, word2vec against gensim).

Inputs arrive validated (__init__.check_problem / check_job): ids and Huffman points in range,
C-contiguous arrays of one float dtype, weights not sharing memory. Several threads may run
jobs on the same weights at once (Hogwild): rows are then read and written without locks, except
a job's private rows (the contract's ``private_rows``): the most frequent words' rows of syn0 and
syn1neg, which this loop alone trains in copies of its own (``_run_typed`` makes them; ``_train``
points the words below ``n_own`` at them) and adds back every ``sync_tokens`` tokens, so two
threads stop passing those rows' cache lines to and fro (CBOW, 2 threads, one PTB epoch: 0.18 ->
0.14 s).
"""
from cpython.dict cimport PyDict_GetItemWithError
from cpython.long cimport PyLong_AsLong
from cpython.object cimport PyObject
from cython cimport floating
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

cdef extern from *:
    """
    #if defined(__clang__)
    #pragma clang fp contract(off)
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    #include <math.h>
    #include <string.h>

    #include "fastnlp/dispatch.h"
    #include "fastnlp/rng.h"
    #include "fastnlp/simd.h"

    /* The vector primitives, for float (_f) and double (_d), written for the contract's order:
       a dot product is the lane dot of fastnlp/simd.h (16 partial sums j % 16 in order of j,
       then added pairwise); a weighted sum accumulates g[i] * rows[i] over i from 0, then stores
       or adds the result once. The scalar loops are the definition (and the double version).
       For float, GCC/Clang get four 4-lane vectors (native width on every clone, so the 16
       partial sums stay in registers), which performs exactly the same operations. */

    /* f[0] = x . y0 and, unless y1 is NULL, f[1] = x . y1 */
    static inline void w2v_dot2_d(const double* x, const double* y0, const double* y1, Py_ssize_t D,
                                  double* f) {
        f[0] = fastnlp_lane_dot_d(x, y0, D);
        if (y1) f[1] = fastnlp_lane_dot_d(x, y1, D);
    }

    /* out = sum_i g[i * g_stride] * rows[i] (add: out += that sum) */
    static inline void w2v_weighted_sum_d(double* out, const double* g, Py_ssize_t g_stride, double** rows,
                                          Py_ssize_t n, Py_ssize_t D, int add) {
        Py_ssize_t d, i;
        for (d = 0; d < D; d++) {
            double r = 0;
            for (i = 0; i < n; i++) r += g[i * g_stride] * rows[i][d];
            if (add) out[d] += r; else out[d] = r;
        }
    }

    #if defined(__GNUC__) || defined(__clang__)
    typedef float w2v_v4 __attribute__((vector_size(16)));
    static inline w2v_v4 w2v_load(const float* p) { w2v_v4 v; memcpy(&v, p, sizeof v); return v; }
    static inline void w2v_store(float* p, w2v_v4 v) { memcpy(p, &v, sizeof v); }

    static inline void w2v_dot2_f(const float* x, const float* y0, const float* y1, Py_ssize_t D, float* f) {
        w2v_v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        float s[16], t[16];
        Py_ssize_t j = 0, k;
        if (y1) {
            for (; j + 16 <= D; j += 16) {
                w2v_v4 x0 = w2v_load(x + j), x1 = w2v_load(x + j + 4);
                w2v_v4 x2 = w2v_load(x + j + 8), x3 = w2v_load(x + j + 12);
                a0 += x0 * w2v_load(y0 + j); a1 += x1 * w2v_load(y0 + j + 4);
                a2 += x2 * w2v_load(y0 + j + 8); a3 += x3 * w2v_load(y0 + j + 12);
                b0 += x0 * w2v_load(y1 + j); b1 += x1 * w2v_load(y1 + j + 4);
                b2 += x2 * w2v_load(y1 + j + 8); b3 += x3 * w2v_load(y1 + j + 12);
            }
        } else {
            for (; j + 16 <= D; j += 16) {
                a0 += w2v_load(x + j) * w2v_load(y0 + j);
                a1 += w2v_load(x + j + 4) * w2v_load(y0 + j + 4);
                a2 += w2v_load(x + j + 8) * w2v_load(y0 + j + 8);
                a3 += w2v_load(x + j + 12) * w2v_load(y0 + j + 12);
            }
        }
        w2v_store(s, a0); w2v_store(s + 4, a1); w2v_store(s + 8, a2); w2v_store(s + 12, a3);
        w2v_store(t, b0); w2v_store(t + 4, b1); w2v_store(t + 8, b2); w2v_store(t + 12, b3);
        for (k = 0; j + k < D; k++) {
            s[k] += x[j + k] * y0[j + k];
            if (y1) t[k] += x[j + k] * y1[j + k];
        }
        f[0] = fastnlp_lane_tree_f(s);
        if (y1) f[1] = fastnlp_lane_tree_f(t);
    }

    static inline void w2v_weighted_sum_f(float* out, const float* g, Py_ssize_t g_stride, float** rows,
                                          Py_ssize_t n, Py_ssize_t D, int add) {
        Py_ssize_t d0 = 0, i, d;
        for (; d0 + 16 <= D; d0 += 16) {
            w2v_v4 r0 = {0}, r1 = {0}, r2 = {0}, r3 = {0};
            for (i = 0; i < n; i++) {
                float c = g[i * g_stride];
                w2v_v4 w = {c, c, c, c};
                const float* y = rows[i] + d0;
                r0 += w * w2v_load(y); r1 += w * w2v_load(y + 4);
                r2 += w * w2v_load(y + 8); r3 += w * w2v_load(y + 12);
            }
            if (add) {
                r0 = w2v_load(out + d0) + r0; r1 = w2v_load(out + d0 + 4) + r1;
                r2 = w2v_load(out + d0 + 8) + r2; r3 = w2v_load(out + d0 + 12) + r3;
            }
            w2v_store(out + d0, r0); w2v_store(out + d0 + 4, r1);
            w2v_store(out + d0 + 8, r2); w2v_store(out + d0 + 12, r3);
        }
        for (d = d0; d < D; d++) {
            float r = 0;
            for (i = 0; i < n; i++) r += g[i * g_stride] * rows[i][d];
            if (add) out[d] += r; else out[d] = r;
        }
    }
    #else
    static inline void w2v_dot2_f(const float* x, const float* y0, const float* y1, Py_ssize_t D, float* f) {
        f[0] = fastnlp_lane_dot_f(x, y0, D);
        if (y1) f[1] = fastnlp_lane_dot_f(x, y1, D);
    }
    static inline void w2v_weighted_sum_f(float* out, const float* g, Py_ssize_t g_stride, float** rows,
                                          Py_ssize_t n, Py_ssize_t D, int add) {
        Py_ssize_t d, i;
        for (d = 0; d < D; d++) {
            float r = 0;
            for (i = 0; i < n; i++) r += g[i * g_stride] * rows[i][d];
            if (add) out[d] += r; else out[d] = r;
        }
    }
    #endif

    /* The AVX-512 primitives: the same operations on 16-lane vectors, so one register holds the
       contract's 16 partial sums of a dot product, or a 16-column block of a weighted sum (the
       4-lane code above, merely recompiled for AVX-512, ran slower than its AVX2 build). The
       tail past the last full block runs in masked lanes, element j + k into partial sum k. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define W2V_HAS_AVX512 1
    #include <immintrin.h>
    #define W2V_AVX512 __attribute__((target("avx512f")))
    typedef float w2v_v16 __attribute__((vector_size(64)));
    W2V_AVX512 static inline w2v_v16 w2v_load16(const float* p) { w2v_v16 v; memcpy(&v, p, sizeof v); return v; }
    W2V_AVX512 static inline void w2v_store16(float* p, w2v_v16 v) { memcpy(p, &v, sizeof v); }

    W2V_AVX512 static inline void w2v_dot2_f16(const float* x, const float* y0, const float* y1, Py_ssize_t D,
                                               float* f) {
        w2v_v16 a = {0}, b = {0};
        float s[16], t[16];
        Py_ssize_t j = 0;
        if (y1) {
            for (; j + 16 <= D; j += 16) {
                w2v_v16 xv = w2v_load16(x + j);
                a += xv * w2v_load16(y0 + j);
                b += xv * w2v_load16(y1 + j);
            }
        } else {
            for (; j + 16 <= D; j += 16) a += w2v_load16(x + j) * w2v_load16(y0 + j);
        }
        if (j < D) {  /* the tail in masked lanes: +0 added to a partial sum leaves it as it is */
            __mmask16 m = (__mmask16)((1u << (D - j)) - 1);
            w2v_v16 xv = (w2v_v16)_mm512_maskz_loadu_ps(m, x + j);
            a += xv * (w2v_v16)_mm512_maskz_loadu_ps(m, y0 + j);
            if (y1) b += xv * (w2v_v16)_mm512_maskz_loadu_ps(m, y1 + j);
        }
        w2v_store16(s, a);
        w2v_store16(t, b);
        f[0] = fastnlp_lane_tree_f(s);
        if (y1) f[1] = fastnlp_lane_tree_f(t);
    }

    W2V_AVX512 static inline void w2v_weighted_sum_f16(float* out, const float* g, Py_ssize_t g_stride,
                                                       float** rows, Py_ssize_t n, Py_ssize_t D, int add) {
        Py_ssize_t d0 = 0, i;
        for (; d0 + 64 <= D; d0 += 64) {  /* four blocks at once: one load of g[i] and rows[i] */
            w2v_v16 r0 = {0}, r1 = {0}, r2 = {0}, r3 = {0};
            for (i = 0; i < n; i++) {
                float c = g[i * g_stride];
                const float* y = rows[i] + d0;
                r0 += c * w2v_load16(y); r1 += c * w2v_load16(y + 16);
                r2 += c * w2v_load16(y + 32); r3 += c * w2v_load16(y + 48);
            }
            if (add) {
                r0 = w2v_load16(out + d0) + r0; r1 = w2v_load16(out + d0 + 16) + r1;
                r2 = w2v_load16(out + d0 + 32) + r2; r3 = w2v_load16(out + d0 + 48) + r3;
            }
            w2v_store16(out + d0, r0); w2v_store16(out + d0 + 16, r1);
            w2v_store16(out + d0 + 32, r2); w2v_store16(out + d0 + 48, r3);
        }
        for (; d0 + 16 <= D; d0 += 16) {
            w2v_v16 r = {0};
            for (i = 0; i < n; i++) r += g[i * g_stride] * w2v_load16(rows[i] + d0);
            if (add) r = w2v_load16(out + d0) + r;
            w2v_store16(out + d0, r);
        }
        if (d0 < D) {  /* the tail in masked lanes, read and written only where the row has them */
            __mmask16 m = (__mmask16)((1u << (D - d0)) - 1);
            w2v_v16 r = {0};
            for (i = 0; i < n; i++) r += g[i * g_stride] * (w2v_v16)_mm512_maskz_loadu_ps(m, rows[i] + d0);
            if (add) r = (w2v_v16)_mm512_maskz_loadu_ps(m, out + d0) + r;
            _mm512_mask_storeu_ps(out + d0, m, (__m512)r);
        }
    }
    #else
    #define W2V_HAS_AVX512 0
    #endif

    /* One centre word, everything after the sampling: the CBOW mean (when !sg), the scores from
       the weights before the step, gradients and loss, the input errors, the output rows one
       after another, then the context rows. ctx: the B context rows; out/label: the O outputs;
       in/G/errors/h: scratch. See reference._train for the order of every operation. */
    #define W2V_DEFINE_STEP(NAME, T, SFX, ATTRIBUTES)                                              \\
    ATTRIBUTES static void NAME(int sg, T** ctx, Py_ssize_t B, T** out, const T* label, Py_ssize_t O,    \\
                                Py_ssize_t D, T alpha, const T* tables, Py_ssize_t n_table, T mx,       \\
                                T scale, T** in, T* G, T* errors, T* h, double* loss) {                 \\
        Py_ssize_t n_in, a, o, d, index;                                                        \\
        const T one = 1, zero = 0;                                                              \\
        if (sg) {                                                                               \\
            n_in = B;                                                                           \\
            for (a = 0; a < B; a++) in[a] = ctx[a];                                             \\
        } else {                                                                                \\
            T count = (T)B;                                                                     \\
            n_in = 1;                                                                           \\
            in[0] = h;                                                                          \\
            for (d = 0; d < D; d++) h[d] = zero;                                                \\
            for (a = 0; a < B; a++)                                                             \\
                for (d = 0; d < D; d++) h[d] += ctx[a][d];                                      \\
            for (d = 0; d < D; d++) h[d] = h[d] / count;                                        \\
        }                                                                                       \\
        for (a = 0; a < n_in; a++) {                                                            \\
            for (o = 0; o + 2 <= O; o += 2) w2v_dot2_##SFX(in[a], out[o], out[o + 1], D, G + a * O + o); \\
            if (o < O) w2v_dot2_##SFX(in[a], out[o], NULL, D, G + a * O + o);                   \\
            for (o = 0; o < O; o++) {                                                           \\
                T f = G[a * O + o], g;                                                          \\
                if (f < mx && f > -mx) {                                                        \\
                    index = (Py_ssize_t)((f + mx) * scale);                                     \\
                    if (index >= n_table) index = n_table - 1;                                  \\
                    g = (label[o] - tables[index]) * alpha;                                     \\
                    *loss += tables[(label[o] == one ? 2 : 1) * n_table + index];               \\
                } else if (f >= mx) { /* saturated: skipped, as gensim does */                \\
                    g = zero;                                                                   \\
                    if (label[o] != one) *loss += f;                                            \\
                } else if (f <= -mx) {                                                          \\
                    g = zero;                                                                   \\
                    if (label[o] == one) *loss += -(double)f;                                   \\
                } else {                                                                        \\
                    g = f * alpha;                                                              \\
                    *loss = NAN; /* the weights have diverged; the caller stops */             \\
                }                                                                               \\
                G[a * O + o] = g;                                                               \\
            }                                                                                   \\
        }                                                                                       \\
        for (a = 0; a < n_in; a++) w2v_weighted_sum_##SFX(errors + a * D, G + a * O, 1, out, O, D, 0); \\
        for (o = 0; o < O; o++) w2v_weighted_sum_##SFX(out[o], G + o, O, in, n_in, D, 1);       \\
        for (a = 0; a < B; a++) {                                                               \\
            T* x = ctx[a];                                                                      \\
            const T* e = errors + (sg ? a * D : 0);                                             \\
            for (d = 0; d < D; d++) x[d] += e[d];                                               \\
        }                                                                                       \\
    }

    /* The float step over 4-lane vectors is compiled for AVX2 and the baseline (three-operand
       VEX code, wider auto-vectorised loops; no FMA, so both give the same roundings); the
       loader picks one. Where the CPU has AVX-512F, w2v_step_f runs the 16-lane step instead,
       unless use_simd chose the narrower one (w2v_wide = 0). */
    W2V_DEFINE_STEP(w2v_step_f_narrow, float, f, FASTNLP_CLONES_UP_TO_AVX2)
    W2V_DEFINE_STEP(w2v_step_d, double, d, )
    #if W2V_HAS_AVX512
    W2V_DEFINE_STEP(w2v_step_f_avx512, float, f16, W2V_AVX512)
    #endif
    static int w2v_wide = 0;  /* 1: the AVX-512 step; set at import where the CPU has it, and by use_simd */

    static int w2v_avx512_available(void) { return W2V_HAS_AVX512 && fastnlp_vector_level() == 2; }

    static void w2v_step_f(int sg, float** ctx, Py_ssize_t B, float** out, const float* label, Py_ssize_t O,
                           Py_ssize_t D, float alpha, const float* tables, Py_ssize_t n_table, float mx,
                           float scale, float** in, float* G, float* errors, float* h, double* loss) {
    #if W2V_HAS_AVX512
        if (w2v_wide > 0) {
            w2v_step_f_avx512(sg, ctx, B, out, label, O, D, alpha, tables, n_table, mx, scale, in, G, errors, h, loss);
            return;
        }
    #endif
        w2v_step_f_narrow(sg, ctx, B, out, label, O, D, alpha, tables, n_table, mx, scale, in, G, errors, h, loss);
    }
    """
    const char* fastnlp_isa_level(int with_avx512) nogil
    int w2v_wide
    int w2v_avx512_available() nogil
    uint64_t fastnlp_splitmix64(uint64_t seed, uint64_t counter) nogil
    void w2v_step_f(int sg, float** ctx, Py_ssize_t B, float** out, const float* label, Py_ssize_t O,
                    Py_ssize_t D, float alpha, const float* tables, Py_ssize_t n_table, float mx, float scale,
                    float** inputs, float* G, float* errors, float* h, double* loss) noexcept nogil
    void w2v_step_d(int sg, double** ctx, Py_ssize_t B, double** out, const double* label, Py_ssize_t O,
                    Py_ssize_t D, double alpha, const double* tables, Py_ssize_t n_table, double mx, double scale,
                    double** inputs, double* G, double* errors, double* h, double* loss) noexcept nogil
    void w2v_dot2_f(const float* x, const float* y0, const float* y1, Py_ssize_t D, float* f) noexcept nogil
    void w2v_dot2_d(const double* x, const double* y0, const double* y1, Py_ssize_t D, double* f) noexcept nogil
    void w2v_weighted_sum_f(float* out, const float* g, Py_ssize_t g_stride, float** rows, Py_ssize_t n,
                            Py_ssize_t D, int add) noexcept nogil
    void w2v_weighted_sum_d(double* out, const double* g, Py_ssize_t g_stride, double** rows, Py_ssize_t n,
                            Py_ssize_t D, int add) noexcept nogil

# The float steps this CPU can run, the default first: "avx512f" (16-lane vectors) where the CPU
# has AVX-512F, then the clone of the 4-lane step the loader picks, "avx2" or "default"
# (fastnlp/dispatch.h). SIMD names the one in use (cf. gensim's FAST_VERSION).
SIMD_LEVELS = (("avx512f",) if w2v_avx512_available() else ()) + (fastnlp_isa_level(0).decode(),)
SIMD = SIMD_LEVELS[0]
w2v_wide = SIMD == "avx512f"


def use_simd(level):
    """Run the float step at ``level``, one of SIMD_LEVELS (to compare them; every level gives
    the same bits). Returns the level now in use; ValueError for a level this CPU lacks. Not
    to be called while a job trains."""
    global SIMD, w2v_wide
    if level not in SIMD_LEVELS:
        raise ValueError(f"SIMD level {level!r} is not available here; available: {SIMD_LEVELS}")
    SIMD = level
    w2v_wide = level == "avx512f"
    return SIMD


cdef inline void _merge_private(floating* shared, floating* own, floating* at_start, Py_ssize_t n,
                                bint again) noexcept nogil:
    # The private rows' synchronisation: shared += own - at_start (changes other threads made
    # meanwhile are kept); again: own and at_start restart from the shared rows.
    cdef Py_ssize_t q
    for q in range(n):
        shared[q] += own[q] - at_start[q]
    if again:
        memcpy(own, shared, n * sizeof(floating))
        memcpy(at_start, shared, n * sizeof(floating))


cdef (double, int64_t) _train(bint sg, floating* syn0, floating* syn1neg, floating* syn1, Py_ssize_t D,
                             const int32_t* tokens, Py_ssize_t n_tokens, const int64_t* sentence_ends,
                             Py_ssize_t n_sentences, const int64_t* keep_below, const int64_t* alias_prob,
                             const int32_t* alias_index, Py_ssize_t n_alias, const int32_t* points,
                             const uint8_t* codes, const int32_t* code_lengths, Py_ssize_t max_code, bint hs,
                             const floating* tables, Py_ssize_t T, floating mx, floating scale, Py_ssize_t window,
                             Py_ssize_t negative, double alpha_start, double alpha_end, uint64_t seed,
                             bint shrink_windows, int32_t* kept, int64_t* kept_at, floating** ctx_ptr,
                             floating** out_ptr, floating** in_ptr, floating* out_label, floating* G, floating* errors,
                             floating* h, floating* own0, Py_ssize_t n_own0, floating* own1,
                             Py_ssize_t n_own1, floating* start0, floating* start1,
                             Py_ssize_t sync_tokens) noexcept nogil:
    # One job, sentence by sentence, in the order of reference._train: the sampling here, the
    # vector work of each centre word in w2v_step_*. Scratch (from _run_typed): kept/kept_at (N),
    # ctx_ptr (2 min(window, N) context rows), out_ptr/out_label (outputs: rows of syn1 or syn1neg),
    # in_ptr (inputs), G (inputs x outputs), errors (inputs x D), h (D). Rows below n_own0 of
    # syn0 and below n_own1 of syn1neg are read and written in the job's own copies own0/own1
    # (start0/start1: the copies' values at the last synchronisation), synchronised after each
    # sentence that ends sync_tokens or more tokens past the last one (reference.sync_ranges).
    cdef double loss = 0.0, total = 0.0
    cdef int64_t trained = 0, synced = 0
    cdef Py_ssize_t s, t, i, j, k, n, B, O, start = 0, end, reduced, lo, hi
    cdef uint64_t stride = negative + 2, r
    cdef int64_t word, center, sample, column
    cdef floating alpha, one = 1, zero = 0
    if n_tokens == 0:
        return loss, trained
    for s in range(n_sentences):
        end = sentence_ends[s]
        alpha = <floating>(alpha_start + (alpha_end - alpha_start) * (<double>start / <double>n_tokens))
        n = 0
        for t in range(start, end):  # branch-free: write always, advance when kept
            word = tokens[t]
            kept[n] = <int32_t>word
            kept_at[n] = t
            n += <int64_t>(fastnlp_splitmix64(seed, t * stride) >> 32) < keep_below[word]
        for i in range(n):
            center = kept[i]
            t = kept_at[i]
            trained += 1
            if shrink_windows:
                reduced = 1 + <Py_ssize_t>(((fastnlp_splitmix64(seed, t * stride + 1) >> 32) * <uint64_t>window) >> 32)
            else:
                reduced = window
            lo = i - reduced if i > reduced else 0
            hi = i + reduced + 1 if i + reduced + 1 < n else n
            B = 0
            for j in range(lo, hi):
                if j != i:
                    ctx_ptr[B] = (own0 if kept[j] < n_own0 else syn0) + <Py_ssize_t>kept[j] * D
                    B += 1
            if B == 0:
                continue
            O = 0
            if hs:
                for k in range(code_lengths[center]):
                    out_ptr[O] = syn1 + <Py_ssize_t>points[center * max_code + k] * D
                    out_label[O] = one - <floating>codes[center * max_code + k]
                    O += 1
            if negative > 0:
                out_ptr[O] = (own1 if center < n_own1 else syn1neg) + center * D
                out_label[O] = one
                O += 1
                for k in range(negative):
                    r = fastnlp_splitmix64(seed, t * stride + 2 + k)
                    column = <int64_t>(((r >> 32) * <uint64_t>n_alias) >> 32)
                    if <int64_t>(r & 0xFFFFFFFFULL) < alias_prob[column]:
                        sample = column
                    else:
                        sample = alias_index[column]
                    if sample != center:
                        out_ptr[O] = (own1 if sample < n_own1 else syn1neg) + sample * D
                        out_label[O] = zero
                        O += 1
            if floating is float:
                w2v_step_f(sg, ctx_ptr, B, out_ptr, out_label, O, D, alpha, tables, T, mx, scale, in_ptr, G,
                           errors, h, &loss)
            else:
                w2v_step_d(sg, ctx_ptr, B, out_ptr, out_label, O, D, alpha, tables, T, mx, scale, in_ptr, G,
                           errors, h, &loss)
        start = end
        if (n_own0 or n_own1) and sync_tokens > 0 and end - synced >= sync_tokens and s + 1 < n_sentences:
            _merge_private(syn0, own0, start0, n_own0 * D, True)
            _merge_private(syn1neg, own1, start1, n_own1 * D, True)
            synced = end
            total += loss  # the loss of the job is the sum of its ranges' (reference.train_privately)
            loss = 0.0
    return total + loss, trained


cdef (double, int64_t) _run_typed(bint sg, floating[:, ::1] syn0, floating[:, ::1] syn1neg,
                                  floating[:, ::1] syn1, const int32_t[::1] tokens,
                                  const int64_t[::1] sentence_ends, const int64_t[::1] keep_below,
                                  const int64_t[::1] alias_prob, const int32_t[::1] alias_index,
                                  const int32_t[:, ::1] points, const uint8_t[:, ::1] codes,
                                  const int32_t[::1] code_lengths, const floating[:, ::1] tables,
                                  double max_exp, Py_ssize_t window, Py_ssize_t negative, double alpha_start,
                                  double alpha_end, uint64_t seed, bint shrink_windows,
                                  Py_ssize_t private_rows, Py_ssize_t sync_tokens) except *:
    cdef Py_ssize_t D = syn0.shape[1], N = tokens.shape[0], T = tables.shape[1]
    cdef bint hs = code_lengths.shape[0] > 0
    cdef Py_ssize_t max_code = points.shape[1] if hs else 0
    cdef Py_ssize_t max_out = max_code + (negative + 1 if negative > 0 else 0)
    # A context never reaches past the job's N tokens: a huge window must not size the scratch.
    cdef Py_ssize_t span = window if window < N else N
    cdef Py_ssize_t max_in = 2 * span if sg else 1
    cdef floating dummy = 0
    # One block of scratch per job (never per word); +1 keeps every size non-zero.
    cdef int32_t* kept = <int32_t*>malloc((N + 1) * sizeof(int32_t))
    cdef int64_t* kept_at = <int64_t*>malloc((N + 1) * sizeof(int64_t))
    cdef floating** ctx_ptr = <floating**>malloc((2 * span + 1) * sizeof(floating*))
    cdef floating** out_ptr = <floating**>malloc((max_out + 1) * sizeof(floating*))
    cdef floating** in_ptr = <floating**>malloc((max_in + 1) * sizeof(floating*))
    cdef floating* reals = <floating*>malloc((max_out + max_in * max_out + max_in * D + D + 1) * sizeof(floating))
    cdef (double, int64_t) result = (0.0, 0)
    # The job's own copies of the first rows (the most frequent words'): [syn0 rows | syn1neg
    # rows], then the same again as they were at the last synchronisation, whose difference is
    # the change each synchronisation adds to the shared rows.
    cdef Py_ssize_t n_own0 = min(private_rows, syn0.shape[0]), n_own1 = min(private_rows, syn1neg.shape[0])
    cdef Py_ssize_t own_size = (n_own0 + n_own1) * D
    cdef floating* own = <floating*>malloc((2 * own_size + 1) * sizeof(floating))
    cdef floating* syn0_p = &syn0[0, 0]
    cdef floating* syn1neg_p = &syn1neg[0, 0] if syn1neg.shape[0] else &dummy
    cdef floating* syn1_p = &syn1[0, 0] if syn1.shape[0] else &dummy
    cdef const int32_t* tokens_p = &tokens[0] if N else <const int32_t*>kept
    cdef const int64_t* ends_p = &sentence_ends[0] if sentence_ends.shape[0] else <const int64_t*>kept_at
    cdef const int64_t* alias_prob_p = &alias_prob[0] if alias_prob.shape[0] else <const int64_t*>kept_at
    cdef const int32_t* alias_index_p = &alias_index[0] if alias_index.shape[0] else <const int32_t*>kept
    cdef const int32_t* points_p = &points[0, 0] if points.size else <const int32_t*>kept
    cdef const uint8_t* codes_p = &codes[0, 0] if codes.size else <const uint8_t*>kept
    cdef const int32_t* lengths_p = &code_lengths[0] if hs else <const int32_t*>kept
    try:
        if (kept == NULL or kept_at == NULL or ctx_ptr == NULL or out_ptr == NULL or in_ptr == NULL or reals == NULL
                or own == NULL):
            raise MemoryError()
        with nogil:
            memcpy(own, syn0_p, n_own0 * D * sizeof(floating))
            memcpy(own + n_own0 * D, syn1neg_p, n_own1 * D * sizeof(floating))
            memcpy(own + own_size, own, own_size * sizeof(floating))
            result = _train(sg, syn0_p, syn1neg_p, syn1_p, D, tokens_p, N, ends_p, sentence_ends.shape[0],
                            &keep_below[0], alias_prob_p, alias_index_p, alias_prob.shape[0], points_p, codes_p,
                            lengths_p, max_code, hs, &tables[0, 0], T, <floating>max_exp,
                            <floating>(T / (2.0 * max_exp)), window, negative, alpha_start, alpha_end, seed,
                            shrink_windows, kept, kept_at, ctx_ptr, out_ptr, in_ptr, reals, reals + max_out,
                            reals + max_out + max_in * max_out, reals + max_out + max_in * max_out + max_in * D,
                            own, n_own0, own + n_own0 * D, n_own1, own + own_size, own + own_size + n_own0 * D,
                            sync_tokens)
            # row += (own copy now - own copy at the start): other threads' changes to these rows
            # during the job are kept (Hogwild, as for every other row).
            _merge_private(syn0_p, own, own + own_size, n_own0 * D, False)
            _merge_private(syn1neg_p, own + n_own0 * D, own + own_size + n_own0 * D, n_own1 * D, False)
    finally:
        free(own)
        free(kept)
        free(kept_at)
        free(ctx_ptr)
        free(out_ptr)
        free(in_ptr)
        free(reals)
    return result


def _run(bint sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
         codes, code_lengths, sigmoid_tables, double max_exp, Py_ssize_t window, Py_ssize_t negative,
         double alpha_start, double alpha_end, uint64_t seed, bint shrink_windows, Py_ssize_t private_rows,
         Py_ssize_t sync_tokens):
    cdef (double, int64_t) result
    if syn0.shape[0] == 0:
        return 0.0, 0
    if syn0.dtype == np.float32:
        result = _run_typed[float](sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                   alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                   negative, alpha_start, alpha_end, seed, shrink_windows, private_rows, sync_tokens)
    else:
        result = _run_typed[double](sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                    alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                    negative, alpha_start, alpha_end, seed, shrink_windows, private_rows, sync_tokens)
    return float(result[0]), int(result[1])


def word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _run(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                shrink_windows, private_rows, sync_tokens)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _run(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                shrink_windows, private_rows, sync_tokens)


def word2vec_encode(list sentences, dict word_to_id):
    """reference.word2vec_encode as one loop of C-level dict look-ups (no list of all tokens,
    no Python call per token): about 4x faster, which matters in a first epoch or when a corpus
    is streamed from disk."""
    cdef Py_ssize_t total = 0, i = 0, k = 0
    cdef long word_id
    cdef PyObject* value
    for sentence in sentences:
        total += len(sentence)
    ids = np.empty(total, dtype=np.int32)
    ends = np.empty(len(sentences), dtype=np.int64)
    cdef int32_t[::1] ids_view = ids
    cdef int64_t[::1] ends_view = ends
    for sentence in sentences:
        for token in sentence:
            # borrowed reference; NULL: missing (an error, e.g. an unhashable token, is raised)
            value = PyDict_GetItemWithError(word_to_id, token)
            if value != NULL:
                word_id = PyLong_AsLong(<object>value)
                if word_id < 0 or word_id > INT32_MAX:  # a silent cast would train another row
                    raise OverflowError(f"word_to_id[{token!r}] is {word_id}, outside the id range "
                                        f"[0, 2**31) of int32 token ids")
                ids_view[k] = <int32_t>word_id
                k += 1
        ends_view[i] = k
        i += 1
    return (ids if k == total else ids[:k].copy()), ends

