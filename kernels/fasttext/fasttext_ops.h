/* The vector work of one centre word of the fastText training ops (contract in __init__.py,
 * the order of every float operation in reference.py).
 *
 * One call does everything after the sampling: the input vector h (the mean of the n_in input
 * rows, summed in list order), each of the n_out outputs in turn (f = h . y with the lane dot of
 * fastnlp/simd.h, g from the sigmoid table, e += g * y, then y += g * h), then e added to every
 * input row. Skip-gram lists the centre word's rows as inputs and the outputs of its whole window;
 * CBOW the rows of every context word and one target's outputs: the same function serves both.
 *
 * Per element these are the reference's operations in its order, so the results equal it bit
 * for bit: the loops vectorise over columns (no column depends on another), never across rows,
 * and FMA contraction is off (AVX-512 or AVX2 code would otherwise fuse g * y + e, rounding once
 * instead of twice). Two things make the step fast without changing an operation:
 *   - h is summed a few vectors of columns at a time over all the rows, the sums in registers;
 *   - the scores of up to FT_GROUP consecutive outputs with different rows are taken side by
 *     side (independent chains of adds and row loads) before any of them is updated: an output's
 *     update changes only its own row, so these scores are the ones the contract's order gives.
 * The float step is written once with vectors of FT_W floats (fasttext_float_step.h) and built
 * per instruction set at its native width, 8 (AVX2) and 4 (baseline: SSE2, NEON), the build for
 * this CPU chosen from cpuid (fastnlp_vector_level, fastnlp/dispatch.h). Not FASTNLP_CLONES:
 * clones compile one text at one vector width, and 16-float vectors (AVX-512's width) in the
 * AVX2 clone went through the stack at half the speed. An AVX-512 build of 16-float vectors
 * measured the same as the AVX2 one on an AVX-512 Xeon (PTB, 2,000,000 buckets): there is none.
 *
 * Inputs come checked (__init__.check_problem / check_job): every row pointer is inside syn0 or
 * syn1neg, which share no memory with each other or with the scratch h and e, so the loops
 * declare their pointers __restrict. Rows may repeat in either list (Hogwild threads may also
 * write them meanwhile): each update reads the row as the previous one left it. */
#ifndef FASTNLP_FASTTEXT_OPS_H
#define FASTNLP_FASTTEXT_OPS_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/rng.h"
#include "fastnlp/simd.h"

FASTNLP_CONTRACTION_OFF_BEGIN

/* The helpers are compiled into each step that calls them, at its instruction set: GCC would
 * otherwise call one baseline (SSE2) copy from all of them. */
#if defined(__GNUC__) || defined(__clang__)
#define FT_INLINE static inline __attribute__((always_inline))
#else
#define FT_INLINE static inline
#endif

/* Outputs scored side by side, vectors of columns of h summed side by side (at most; the
 * switches of fasttext_float_step.h list every count up to these). */
#define FT_GROUP 4
#define FT_PASS 8

/* How many outputs from out[0] (at most FT_GROUP and n) have pairwise different rows. */
FT_INLINE int ft_group(void* const* out, ptrdiff_t n) {
    int k = 1;
    while (k < FT_GROUP && k < n) {
        for (int q = 0; q < k; ++q)
            if (out[q] == out[k]) return k;
        ++k;
    }
    return k;
}

/* The plain loops: the double step (not on the models' path), and the float one where the
 * compiler has no vector extensions. h = (0 + x_0 + ... + x_{n-1}) / count column by column. */
#define FT_PLAIN_HELPERS(T, SUFFIX)                                                              \
    FT_INLINE void ft_mean_rows_##SUFFIX(T* __restrict h, T* const* rows, ptrdiff_t n, ptrdiff_t D, \
                                         T count) {                                              \
        for (ptrdiff_t d = 0; d < D; ++d) {                                                      \
            T sum = 0;                                                                           \
            for (ptrdiff_t i = 0; i < n; ++i) sum += rows[i][d];                                 \
            h[d] = sum / count;                                                                  \
        }                                                                                        \
    }                                                                                            \
    FT_INLINE void ft_dots_##SUFFIX(const T* h, T* const* rows, int k, ptrdiff_t D, T* f) {      \
        for (int q = 0; q < k; ++q) f[q] = fastnlp_lane_dot_##SUFFIX(h, rows[q], D);             \
    }

/* The step over its helpers MEAN (h) and DOTS (the scores of a group of outputs). */
#define FASTNLP_FASTTEXT_STEP(T, NAME, MEAN, DOTS, ATTRIBUTES)                                   \
    ATTRIBUTES static void NAME(T* const* in, ptrdiff_t n_in, T* const* out,                     \
                                const unsigned char* positive, ptrdiff_t n_out, ptrdiff_t D,     \
                                T alpha, const T* tables, ptrdiff_t n_table, T mx, T scale,      \
                                T* __restrict h, T* __restrict e, double* loss) {                \
        const T one = 1, zero = 0, count = (T)n_in;                                              \
        ptrdiff_t i, o, d;                                                                       \
        int k, q;                                                                                \
        MEAN(h, in, n_in, D, count);                                                             \
        for (d = 0; d < D; ++d) e[d] = zero;                                                     \
        for (o = 0; o < n_out; o += k) {                                                         \
            T f[FT_GROUP];                                                                       \
            k = ft_group((void* const*)(out + o), n_out - o);                                    \
            DOTS(h, out + o, k, D, f);                                                           \
            for (q = 0; q < k; ++q) {                                                            \
                T* __restrict y = out[o + q];                                                    \
                const int is_positive = positive[o + q];                                         \
                const T label = is_positive ? one : zero;                                        \
                T g;                                                                             \
                if (f[q] < mx && f[q] > -mx) {                                                   \
                    ptrdiff_t index = (ptrdiff_t)((f[q] + mx) * scale);                          \
                    if (index >= n_table) index = n_table - 1;                                   \
                    g = (label - tables[index]) * alpha;                                         \
                    *loss += tables[(is_positive ? 2 : 1) * n_table + index];                    \
                } else if (f[q] >= mx) { /* saturated: skipped (g = 0), as word2vec does */     \
                    g = zero;                                                                    \
                    if (!is_positive) *loss += f[q];                                             \
                } else if (f[q] <= -mx) {                                                        \
                    g = zero;                                                                    \
                    if (is_positive) *loss += -(double)f[q];                                     \
                } else {                                                                         \
                    g = f[q] * alpha;                                                            \
                    *loss = NAN; /* the weights have diverged; the caller stops */               \
                }                                                                                \
                for (d = 0; d < D; ++d) {                                                        \
                    e[d] += g * y[d];                                                            \
                    y[d] += g * h[d];                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        for (i = 0; i < n_in; ++i) {                                                             \
            T* __restrict x = in[i];                                                             \
            for (d = 0; d < D; ++d) x[d] += e[d];                                                \
        }                                                                                        \
    }

FT_PLAIN_HELPERS(double, d)
FASTNLP_FASTTEXT_STEP(double, ft_step_d, ft_mean_rows_d, ft_dots_d, )

#if defined(__GNUC__) || defined(__clang__)
/* The float step at each native vector width. */
#define FT_ISA default
#define FT_W 4
#define FT_TARGET
#include "fasttext_float_step.h"

#if defined(__x86_64__)
#define FT_ISA avx2
#define FT_W 8
#define FT_TARGET __attribute__((target("avx2")))
#include "fasttext_float_step.h"
#endif

/* The float step for this CPU, and its name. */
static void ft_step_f(float* const* in, ptrdiff_t n_in, float* const* out, const unsigned char* positive,
                      ptrdiff_t n_out, ptrdiff_t D, float alpha, const float* tables, ptrdiff_t n_table,
                      float mx, float scale, float* h, float* e, double* loss) {
#if defined(__x86_64__)
    if (fastnlp_vector_level() >= 1) {
        ft_step_f_avx2(in, n_in, out, positive, n_out, D, alpha, tables, n_table, mx, scale, h, e, loss);
        return;
    }
#endif
    ft_step_f_default(in, n_in, out, positive, n_out, D, alpha, tables, n_table, mx, scale, h, e, loss);
}

static const char* ft_simd_level(void) {
#if defined(__x86_64__)
    return fastnlp_vector_level() >= 1 ? "avx2" : "default";
#else
    return "default";
#endif
}
#else
FT_PLAIN_HELPERS(float, f)
FASTNLP_FASTTEXT_STEP(float, ft_step_f, ft_mean_rows_f, ft_dots_f, )
static const char* ft_simd_level(void) { return "default"; }
#endif

/* The initialisation of the input rows (fasttext_uniform_rows, reference.py): the n elements of
 * out are elements begin.. of the matrix; element k takes 24 bits u of draw k >> 1 (bits 40-63
 * when k is even, 16-39 when odd) and becomes (u * 2^-23 - 1) / divisor. u * 2^-23 and the
 * subtraction are exact, the division rounds once: the same bits in every backend. One draw
 * fills two elements, and the draws are independent, so the loop vectorises. The bits are taken
 * as an int32_t: it converts to float in vector instructions of every x86-64 level, a uint64_t
 * only with AVX-512DQ (the loop ran 1.5x slower). */
#define FT_UNIFORM_BITS(r, odd) ((int32_t)((odd) ? (((r) >> 16) & 0xFFFFFFu) : ((r) >> 40)))
#define FT_UNIFORM(T, NAME)                                                                      \
    FASTNLP_CLONES static void NAME(T* __restrict out, ptrdiff_t n, uint64_t begin, T divisor,     \
                                    uint64_t seed) {                                             \
        const T step = (T)(1.0 / 8388608.0), one = 1;                                            \
        ptrdiff_t j = 0, pairs, p;                                                               \
        if (n > 0 && (begin & 1)) { /* an odd first element: the second half of its draw */      \
            out[0] = ((T)FT_UNIFORM_BITS(fastnlp_splitmix64(seed, begin >> 1), 1) * step - one) / divisor; \
            j = 1;                                                                               \
        }                                                                                        \
        const uint64_t first_draw = (begin + (uint64_t)j) >> 1;                                  \
        T* __restrict pair = out + j;                                                            \
        pairs = (n - j) / 2;                                                                     \
        for (p = 0; p < pairs; ++p) {                                                            \
            const uint64_t r = fastnlp_splitmix64(seed, first_draw + (uint64_t)p);               \
            pair[2 * p] = ((T)FT_UNIFORM_BITS(r, 0) * step - one) / divisor;                     \
            pair[2 * p + 1] = ((T)FT_UNIFORM_BITS(r, 1) * step - one) / divisor;                 \
        }                                                                                        \
        if (j + 2 * pairs < n) { /* an even last element: the first half of its draw */          \
            const uint64_t r = fastnlp_splitmix64(seed, first_draw + (uint64_t)pairs);           \
            out[n - 1] = ((T)FT_UNIFORM_BITS(r, 0) * step - one) / divisor;                      \
        }                                                                                        \
    }

FT_UNIFORM(float, ft_uniform_f)
FT_UNIFORM(double, ft_uniform_d)

FASTNLP_CONTRACTION_OFF_END

#endif /* FASTNLP_FASTTEXT_OPS_H */
