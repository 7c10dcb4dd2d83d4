/* Loops of the attention ops, compiled once per instruction set (FASTNLP_CLONES,
 * fastnlp/dispatch.h): the loader picks the AVX-512, AVX2 or baseline clone. The fused pair of one
 * decoder step in float32 also has explicit AVX-512 loops (below the clones), picked at run time.
 *
 * Layout (validated by the caller, see __init__.py): hs (N, T, H), h and dc (N, Q, H),
 * a, da (N, Q, T), all C-contiguous with one float type, no output overlapping an input, T >= 1.
 * One batch item at a time, so hs[n] (T x H) stays in L1 while every query of the item is
 * served. Dot products keep their partial sums in arrays (16 lanes): GCC vectorises that
 * without -ffast-math, and the order of additions is fixed (the same in every clone up to FMA
 * contraction), though not BLAS's: results are held to the op's tolerance. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/half.h"

/* exp(x) in float, written so GCC vectorises the softmax loop that calls it (libm's expf is one
 * call per element: 11 of the 82 us of the fused forward at the date task's size, 7 us this way):
 * x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts so r is exact), exp(r) by a degree-6
 * polynomial, 2^k from exponent bits in two factors so neither overflows alone. Within 1.4 ulp of
 * exp over the normal range (tests/test_attention_layers.py checks the weights it gives against
 * float64); subnormal results are only approximate, below -103.97 the result is 0 as expf's,
 * above 88.72 inf, and NaN stays NaN. */
static inline __attribute__((always_inline)) float att_expf(float x) {
    const float hi = 88.72283f, lo = -103.97208f, magic = 12582912.0f; /* 1.5 * 2^23 */
    const float xc = x < lo ? lo : (x > hi ? hi : x); /* NaN compares false both times: kept */
    float kf = xc * 1.44269504088896341f + magic;     /* round(x / ln2), in kf's low bits */
    unsigned int kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int k = (int)(kbits - 0x4B400000u), k1 = k / 2, k2 = k - k1;
    const unsigned int b1 = ((unsigned int)k1 + 127u) << 23, b2 = ((unsigned int)k2 + 127u) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    const float y = p * s1 * s2;
    return x < lo ? 0.0f : (x > hi ? __builtin_inff() : y);
}

#define FASTNLP_ATTENTION_OPS(T_, SUFFIX, EXP)                                                        \
    /* the sum of a[0..15], folded in halves (a[j] + a[j + 8], ...): a fixed order that GCC     \
     * vectorises, where a running sum over j would be 16 dependent additions */                  \
    static inline __attribute__((always_inline)) T_ att_fold16_##SUFFIX(T_* a) {                    \
        for (int j = 0; j < 8; ++j) a[j] += a[j + 8];                                                 \
        for (int j = 0; j < 4; ++j) a[j] += a[j + 4];                                                 \
        return (a[0] + a[2]) + (a[1] + a[3]);                                                         \
    }                                                                                                 \
    /* out[q * T + t] = X[q] . Y[t] for q < Q, t < T; X (Q, H), Y (T, H). A block of four dot       \
     * products at a time, each with 16 partial sums (16 independent FMA chains in all): four      \
     * queries against one row of Y (one load of Y serves four FMAs), or, for the queries left      \
     * over (a decoder step has one), one query against four rows. */                               \
    static inline __attribute__((always_inline)) void att_dots_##SUFFIX(                              \
        const T_* X, const T_* Y, T_* out, ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {                  \
        const ptrdiff_t Hb = H - H % 16;                                                              \
        ptrdiff_t q = 0;                                                                              \
        for (; q + 4 <= Q; q += 4) {                                                                  \
            const T_* __restrict x0 = X + q * H;                                                      \
            const T_* __restrict x1 = x0 + H;                                                         \
            const T_* __restrict x2 = x1 + H;                                                         \
            const T_* __restrict x3 = x2 + H;                                                         \
            for (ptrdiff_t t = 0; t < T; ++t) {                                                       \
                const T_* __restrict y = Y + t * H;                                                   \
                T_ a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};                            \
                for (ptrdiff_t k = 0; k < Hb; k += 16)                                                \
                    for (int j = 0; j < 16; ++j) {                                                    \
                        const T_ yk = y[k + j];                                                       \
                        a0[j] += x0[k + j] * yk;                                                      \
                        a1[j] += x1[k + j] * yk;                                                      \
                        a2[j] += x2[k + j] * yk;                                                      \
                        a3[j] += x3[k + j] * yk;                                                      \
                    }                                                                                 \
                T_ s0 = att_fold16_##SUFFIX(a0), s1 = att_fold16_##SUFFIX(a1);                        \
                T_ s2 = att_fold16_##SUFFIX(a2), s3 = att_fold16_##SUFFIX(a3);                        \
                for (ptrdiff_t k = Hb; k < H; ++k) {                                                  \
                    s0 += x0[k] * y[k];                                                               \
                    s1 += x1[k] * y[k];                                                               \
                    s2 += x2[k] * y[k];                                                               \
                    s3 += x3[k] * y[k];                                                               \
                }                                                                                     \
                out[q * T + t] = s0;                                                                  \
                out[(q + 1) * T + t] = s1;                                                            \
                out[(q + 2) * T + t] = s2;                                                            \
                out[(q + 3) * T + t] = s3;                                                            \
            }                                                                                         \
        }                                                                                             \
        for (; q < Q; ++q) {                                                                          \
            const T_* __restrict x = X + q * H;                                                       \
            T_* row = out + q * T;                                                                    \
            ptrdiff_t t = 0;                                                                          \
            for (; t + 4 <= T; t += 4) {                                                              \
                const T_* __restrict y0 = Y + t * H;                                                  \
                const T_* __restrict y1 = y0 + H;                                                     \
                const T_* __restrict y2 = y1 + H;                                                     \
                const T_* __restrict y3 = y2 + H;                                                     \
                T_ a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};                            \
                for (ptrdiff_t k = 0; k < Hb; k += 16)                                                \
                    for (int j = 0; j < 16; ++j) {                                                    \
                        const T_ xk = x[k + j];                                                       \
                        a0[j] += xk * y0[k + j];                                                      \
                        a1[j] += xk * y1[k + j];                                                      \
                        a2[j] += xk * y2[k + j];                                                      \
                        a3[j] += xk * y3[k + j];                                                      \
                    }                                                                                 \
                T_ s0 = att_fold16_##SUFFIX(a0), s1 = att_fold16_##SUFFIX(a1);                        \
                T_ s2 = att_fold16_##SUFFIX(a2), s3 = att_fold16_##SUFFIX(a3);                        \
                for (ptrdiff_t k = Hb; k < H; ++k) {                                                  \
                    s0 += x[k] * y0[k];                                                               \
                    s1 += x[k] * y1[k];                                                               \
                    s2 += x[k] * y2[k];                                                               \
                    s3 += x[k] * y3[k];                                                               \
                }                                                                                     \
                row[t] = s0;                                                                          \
                row[t + 1] = s1;                                                                      \
                row[t + 2] = s2;                                                                      \
                row[t + 3] = s3;                                                                      \
            }                                                                                         \
            for (; t < T; ++t) {                                                                      \
                const T_* __restrict y = Y + t * H;                                                   \
                T_ a[16] = {0};                                                                       \
                for (ptrdiff_t k = 0; k < Hb; k += 16)                                                \
                    for (int j = 0; j < 16; ++j) a[j] += x[k + j] * y[k + j];                         \
                T_ s = att_fold16_##SUFFIX(a);                                                        \
                for (ptrdiff_t k = Hb; k < H; ++k) s += x[k] * y[k];                                  \
                row[t] = s;                                                                           \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
    /* each row (length T) of s (Q, T) replaced by its softmax */                                     \
    static inline __attribute__((always_inline)) void att_softmax_rows_##SUFFIX(T_* s, ptrdiff_t Q, ptrdiff_t T) {                   \
        for (ptrdiff_t q = 0; q < Q; ++q) {                                                           \
            T_* row = s + q * T;                                                                      \
            T_ top = row[0], total = 0;                                                               \
            for (ptrdiff_t t = 1; t < T; ++t) top = row[t] > top ? row[t] : top;                      \
            for (ptrdiff_t t = 0; t < T; ++t) row[t] = EXP(row[t] - top); /* vectorised apart */      \
            for (ptrdiff_t t = 0; t < T; ++t) total += row[t];                                        \
            for (ptrdiff_t t = 0; t < T; ++t) row[t] /= total;                                        \
        }                                                                                             \
    }                                                                                                 \
    /* out (+)= sum_j w[j * w_stride] rows[j]; rows (J, H); four rows per pass over out */            \
    static inline __attribute__((always_inline)) void att_combine_##SUFFIX(const T_* w, ptrdiff_t w_stride, const T_* rows,          \
                                            ptrdiff_t J, ptrdiff_t H, T_* __restrict out,             \
                                            int accumulate) {                                         \
        ptrdiff_t j = 0;                                                                              \
        if (!accumulate) {                                                                            \
            if (J == 0) {                                                                             \
                memset(out, 0, (size_t)H * sizeof(T_));                                               \
                return;                                                                               \
            }                                                                                         \
            const T_ w0 = w[0];                                                                       \
            const T_* __restrict y = rows;                                                            \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] = w0 * y[k];                                     \
            j = 1;                                                                                    \
        }                                                                                             \
        for (; j + 4 <= J; j += 4) {                                                                  \
            const T_ w0 = w[j * w_stride], w1 = w[(j + 1) * w_stride];                                \
            const T_ w2 = w[(j + 2) * w_stride], w3 = w[(j + 3) * w_stride];                          \
            const T_* __restrict y0 = rows + j * H;                                                   \
            const T_* __restrict y1 = y0 + H;                                                         \
            const T_* __restrict y2 = y1 + H;                                                         \
            const T_* __restrict y3 = y2 + H;                                                         \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] += w0 * y0[k] + w1 * y1[k] + w2 * y2[k] + w3 * y3[k]; \
        }                                                                                             \
        for (; j < J; ++j) {                                                                          \
            const T_ wj = w[j * w_stride];                                                            \
            const T_* __restrict y = rows + j * H;                                                    \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] += wj * y[k];                                    \
        }                                                                                             \
    }                                                                                                 \
    /* out = sum_j w1[j * ws] rows1[j] + w2[j * ws] rows2[j] (J >= 1): the gradient into one row of \
     * hs from both ops, written in one pass (two pairs of rows per pass over out) */                 \
    static inline __attribute__((always_inline)) void att_combine_two_##SUFFIX(                       \
        const T_* w1, const T_* rows1, const T_* w2, const T_* rows2, ptrdiff_t ws, ptrdiff_t J,      \
        ptrdiff_t H, T_* __restrict out) {                                                            \
        {                                                                                             \
            const T_ a1 = w1[0], a2 = w2[0];                                                          \
            const T_* __restrict y1 = rows1;                                                          \
            const T_* __restrict y2 = rows2;                                                          \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] = a1 * y1[k] + a2 * y2[k];                       \
        }                                                                                             \
        ptrdiff_t j = 1;                                                                              \
        for (; j + 2 <= J; j += 2) {                                                                  \
            const T_ a1 = w1[j * ws], a2 = w2[j * ws], a3 = w1[(j + 1) * ws], a4 = w2[(j + 1) * ws];  \
            const T_* __restrict y1 = rows1 + j * H;                                                  \
            const T_* __restrict y2 = rows2 + j * H;                                                  \
            const T_* __restrict y3 = y1 + H;                                                         \
            const T_* __restrict y4 = y2 + H;                                                         \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] += a1 * y1[k] + a2 * y2[k] + a3 * y3[k] + a4 * y4[k]; \
        }                                                                                             \
        if (j < J) {                                                                                  \
            const T_ a1 = w1[j * ws], a2 = w2[j * ws];                                                \
            const T_* __restrict y1 = rows1 + j * H;                                                  \
            const T_* __restrict y2 = rows2 + j * H;                                                  \
            for (ptrdiff_t k = 0; k < H; ++k) out[k] += a1 * y1[k] + a2 * y2[k];                      \
        }                                                                                             \
    }                                                                                                 \
    /* One query (a decoder step): dh = sum_t ds[t] hs[t] and dhs[t] = a[t] dc + ds[t] h in one   \
     * pass over the rows of hs, 64 columns at a time, so dh, dc and h stay in registers while    \
     * the rows stream by (summation order as att_combine's less its grouping by four). */          \
    static inline __attribute__((always_inline)) void att_backward_one_query_##SUFFIX(              \
        const T_* hs_n, const T_* a, const T_* ds, const T_* dc, const T_* h, ptrdiff_t T,            \
        ptrdiff_t H, T_* __restrict dhs_n, T_* __restrict dh) {                                       \
        ptrdiff_t kb = 0;                                                                             \
        for (; kb + 64 <= H; kb += 64) {                                                              \
            T_ acc[64], c[64], g[64];                                                                 \
            for (int j = 0; j < 64; ++j) {                                                            \
                acc[j] = 0;                                                                           \
                c[j] = dc[kb + j];                                                                    \
                g[j] = h[kb + j];                                                                     \
            }                                                                                         \
            for (ptrdiff_t t = 0; t < T; ++t) {                                                       \
                const T_ at = a[t], st = ds[t];                                                       \
                const T_* __restrict y = hs_n + t * H + kb;                                           \
                T_* __restrict out = dhs_n + t * H + kb;                                              \
                for (int j = 0; j < 64; ++j) {                                                        \
                    acc[j] += st * y[j];                                                              \
                    out[j] = at * c[j] + st * g[j];                                                   \
                }                                                                                     \
            }                                                                                         \
            for (int j = 0; j < 64; ++j) dh[kb + j] = acc[j];                                         \
        }                                                                                             \
        for (ptrdiff_t k = kb; k < H; ++k) {                                                          \
            T_ acc = 0;                                                                               \
            for (ptrdiff_t t = 0; t < T; ++t) {                                                       \
                acc += ds[t] * hs_n[t * H + k];                                                       \
                dhs_n[t * H + k] = a[t] * dc[k] + ds[t] * h[k];                                       \
            }                                                                                         \
            dh[k] = acc;                                                                              \
        }                                                                                             \
    }                                                                                                 \
    /* ds = a * (da - sum(a * da)) for each of the Q rows (length T) */                               \
    static inline __attribute__((always_inline)) void att_softmax_backward_##SUFFIX(const T_* a, const T_* da, T_* ds, ptrdiff_t Q,  \
                                                     ptrdiff_t T) {                                   \
        for (ptrdiff_t q = 0; q < Q; ++q) {                                                           \
            const T_* ar = a + q * T;                                                                 \
            const T_* dr = da + q * T;                                                                \
            T_ inner = 0;                                                                             \
            for (ptrdiff_t t = 0; t < T; ++t) inner += ar[t] * dr[t];                                 \
            for (ptrdiff_t t = 0; t < T; ++t) ds[q * T + t] = ar[t] * (dr[t] - inner);                \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void attention_weights_##SUFFIX(const T_* hs, const T_* h, T_* a,          \
                                                          ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T,      \
                                                          ptrdiff_t H) {                              \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            att_dots_##SUFFIX(h + n * Q * H, hs + n * T * H, a + n * Q * T, Q, T, H);                 \
            att_softmax_rows_##SUFFIX(a + n * Q * T, Q, T);                                           \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void weighted_sum_##SUFFIX(const T_* hs, const T_* a, T_* c, ptrdiff_t N,   \
                                                     ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {         \
        for (ptrdiff_t n = 0; n < N; ++n)                                                             \
            for (ptrdiff_t q = 0; q < Q; ++q)                                                         \
                att_combine_##SUFFIX(a + (n * Q + q) * T, 1, hs + n * T * H, T, H, c + (n * Q + q) * H, 0); \
    }                                                                                                 \
    FASTNLP_CLONES static void attention_context_##SUFFIX(const T_* hs, const T_* h, T_* a, T_* c,   \
                                                          ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T,      \
                                                          ptrdiff_t H) {                              \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            T_* an = a + n * Q * T;                                                                   \
            att_dots_##SUFFIX(h + n * Q * H, hs + n * T * H, an, Q, T, H);                            \
            att_softmax_rows_##SUFFIX(an, Q, T);                                                      \
            for (ptrdiff_t q = 0; q < Q; ++q)                                                         \
                att_combine_##SUFFIX(an + q * T, 1, hs + n * T * H, T, H, c + (n * Q + q) * H, 0);    \
        }                                                                                             \
    }                                                                                                 \
    /* ds: scratch (Q, T) */                                                                          \
    FASTNLP_CLONES static void attention_weights_backward_##SUFFIX(                                   \
        const T_* hs, const T_* h, const T_* a, const T_* da, T_* dhs, T_* dh, T_* ds, ptrdiff_t N,  \
        ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {                                                      \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            att_softmax_backward_##SUFFIX(a + n * Q * T, da + n * Q * T, ds, Q, T);                   \
            for (ptrdiff_t q = 0; q < Q; ++q)                                                         \
                att_combine_##SUFFIX(ds + q * T, 1, hs + n * T * H, T, H, dh + (n * Q + q) * H, 0);   \
            for (ptrdiff_t t = 0; t < T; ++t)                                                         \
                att_combine_##SUFFIX(ds + t, T, h + n * Q * H, Q, H, dhs + (n * T + t) * H, 0);       \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void weighted_sum_backward_##SUFFIX(const T_* hs, const T_* a, const T_* dc, \
                                                              T_* dhs, T_* da, ptrdiff_t N,           \
                                                              ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) { \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            att_dots_##SUFFIX(dc + n * Q * H, hs + n * T * H, da + n * Q * T, Q, T, H);               \
            for (ptrdiff_t t = 0; t < T; ++t)                                                         \
                att_combine_##SUFFIX(a + n * Q * T + t, T, dc + n * Q * H, Q, H, dhs + (n * T + t) * H, 0); \
        }                                                                                             \
    }                                                                                                 \
    /* da, ds: scratch (Q, T) each */                                                                 \
    FASTNLP_CLONES static void attention_context_backward_##SUFFIX(                                   \
        const T_* hs, const T_* h, const T_* a, const T_* dc, T_* dhs, T_* dh, T_* da, T_* ds,       \
        ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {                                         \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            const T_* hs_n = hs + n * T * H;                                                          \
            const T_* a_n = a + n * Q * T;                                                            \
            att_dots_##SUFFIX(dc + n * Q * H, hs_n, da, Q, T, H);                                     \
            att_softmax_backward_##SUFFIX(a_n, da, ds, Q, T);                                         \
            if (Q == 1) {                                                                             \
                att_backward_one_query_##SUFFIX(hs_n, a_n, ds, dc + n * H, h + n * H, T, H,           \
                                                dhs + n * T * H, dh + n * H);                         \
                continue;                                                                             \
            }                                                                                         \
            for (ptrdiff_t q = 0; q < Q; ++q)                                                         \
                att_combine_##SUFFIX(ds + q * T, 1, hs_n, T, H, dh + (n * Q + q) * H, 0);             \
            for (ptrdiff_t t = 0; t < T; ++t) {                                                       \
                T_* row = dhs + (n * T + t) * H;                                                      \
                if (Q)                                                                                \
                    att_combine_two_##SUFFIX(a_n + t, dc + n * Q * H, ds + t, h + n * Q * H, T, Q, H, row); \
                else                                                                                  \
                    memset(row, 0, (size_t)H * sizeof(T_));                                           \
            }                                                                                         \
        }                                                                                             \
    }

FASTNLP_ATTENTION_OPS(float, f32, att_expf)
FASTNLP_ATTENTION_OPS(double, f64, exp)

/* ----- one decoder step (Q = 1) in float32 on AVX-512: explicit 16-lane loops --------------------
 * The fused pair at the date task's size (N 128, T 29, H 256) streams hs, 3.8 MB and more than an
 * L2, through the core twice, and GCC's code for the generic loops above adds to the stream: in
 * the one-query backward it keeps accumulators on the stack and splits stores across cache lines.
 * These loops hold every sum in a register: a block of up to 256 columns (16 zmm accumulators)
 * takes one pass down an item's rows, each row read or written whole. On a Xeon with AVX-512 (2 MB
 * L2), walking the items the same way each time, they take the forward from 203 to 173 us and the
 * backward from 387 to 322 (bench/README.md, "Attention weights + weighted sum").
 *
 * Each call also walks the batch items in the direction opposite to the previous call's, so that
 * it starts on the items the previous one touched last, still in L2 (about half of hs at this
 * size): a forward followed by its backward, or one decoder step's backward by the next's, reads
 * that half from L2 instead of L3 or memory: there the forward drops from 173 to 127 us and the
 * backward from 322 to 294. Every item is computed alike in either direction, so the results do
 * not depend on it.
 *
 * Picked at run time where the CPU has AVX-512F and H is a multiple of 16 (the pick functions
 * below); every other shape, dtype and CPU runs the clones above. The dot products add in the
 * clones' order (16 lanes over k, folded in halves), so the weights are the clones' to the bit;
 * the context and the gradients sum over t in one chain per lane, not in groups of four (held to
 * the op's tolerance, as any order). */
#ifdef FASTNLP_HALF_X86
#define ATT512 __attribute__((target("avx512f"))) static inline
#define ATT512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

/* att_fold16's sum of the 16 lanes: lanes j + 8 onto j, then j + 4 onto j, then (a0 + a2) + (a1 + a3) */
ATT512_INLINE float att512_fold(__m512 v) {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4)); /* (a0 + a2, a1 + a3, ...) */
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* out[t] = x . Y[t] for t < T (Y: T rows of H, H % 16 == 0): four rows per pass over x */
ATT512_INLINE void att512_dots(const float* x, const float* Y, float* out, ptrdiff_t T, ptrdiff_t H) {
    ptrdiff_t t = 0;
    for (; t + 4 <= T; t += 4) {
        const float* y0 = Y + t * H;
        const float *y1 = y0 + H, *y2 = y1 + H, *y3 = y2 + H;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (ptrdiff_t k = 0; k < H; k += 16) {
            const __m512 xk = _mm512_loadu_ps(x + k);
            s0 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(y0 + k), s0);
            s1 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(y1 + k), s1);
            s2 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(y2 + k), s2);
            s3 = _mm512_fmadd_ps(xk, _mm512_loadu_ps(y3 + k), s3);
        }
        out[t] = att512_fold(s0);
        out[t + 1] = att512_fold(s1);
        out[t + 2] = att512_fold(s2);
        out[t + 3] = att512_fold(s3);
    }
    for (; t < T; ++t) {
        const float* y = Y + t * H;
        __m512 s = _mm512_setzero_ps();
        for (ptrdiff_t k = 0; k < H; k += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k), s);
        out[t] = att512_fold(s);
    }
}

/* c[kb, kb + 16 nv) = sum_t w[t] Y[t][kb, ...): nv (1, 4 or 16) accumulators in registers over
 * one pass down the rows */
ATT512_INLINE void att512_context_block(const float* w, const float* Y, ptrdiff_t T, ptrdiff_t H, ptrdiff_t kb,
                                        const int nv, float* c) {
    __m512 acc[16];
    const __m512 w0 = _mm512_set1_ps(w[0]);
    for (int i = 0; i < nv; ++i) acc[i] = _mm512_mul_ps(w0, _mm512_loadu_ps(Y + kb + 16 * i));
    for (ptrdiff_t t = 1; t < T; ++t) {
        const __m512 wt = _mm512_set1_ps(w[t]);
        const float* y = Y + t * H + kb;
        for (int i = 0; i < nv; ++i) acc[i] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(y + 16 * i), acc[i]);
    }
    for (int i = 0; i < nv; ++i) _mm512_storeu_ps(c + kb + 16 * i, acc[i]);
}

/* dh[kb, ...) = sum_t ds[t] Y[t][kb, ...) and dY[t][kb, ...) = a[t] dc[kb, ...) + ds[t] h[kb, ...),
 * one pass down the rows with dh's nv accumulators in registers (dc and h are read from L1) */
ATT512_INLINE void att512_backward_block(const float* Y, const float* a, const float* ds, const float* dc,
                                         const float* h, ptrdiff_t T, ptrdiff_t H, ptrdiff_t kb, const int nv,
                                         float* dY, float* dh) {
    __m512 acc[16];
    for (int i = 0; i < nv; ++i) acc[i] = _mm512_setzero_ps();
    for (ptrdiff_t t = 0; t < T; ++t) {
        const __m512 at = _mm512_set1_ps(a[t]), st = _mm512_set1_ps(ds[t]);
        const float* y = Y + t * H + kb;
        float* out = dY + t * H + kb;
        for (int i = 0; i < nv; ++i) {
            acc[i] = _mm512_fmadd_ps(st, _mm512_loadu_ps(y + 16 * i), acc[i]);
            const __m512 g = _mm512_mul_ps(st, _mm512_loadu_ps(h + kb + 16 * i));
            _mm512_storeu_ps(out + 16 * i, _mm512_fmadd_ps(at, _mm512_loadu_ps(dc + kb + 16 * i), g));
        }
    }
    for (int i = 0; i < nv; ++i) _mm512_storeu_ps(dh + kb + 16 * i, acc[i]);
}

/* attention_context_f32 for Q = 1, H % 16 == 0 (H may be 0), items walked from the last when reverse */
ATT512 void att512_context_one(const float* hs, const float* h, float* a, float* c, ptrdiff_t N, ptrdiff_t T,
                               ptrdiff_t H, int reverse) {
    for (ptrdiff_t i = 0; i < N; ++i) {
        const ptrdiff_t n = reverse ? N - 1 - i : i;
        const float* Y = hs + n * T * H;
        float *an = a + n * T, *cn = c + n * H;
        att512_dots(h + n * H, Y, an, T, H);
        att_softmax_rows_f32(an, 1, T);
        ptrdiff_t kb = 0;
        for (; kb + 256 <= H; kb += 256) att512_context_block(an, Y, T, H, kb, 16, cn);
        for (; kb + 64 <= H; kb += 64) att512_context_block(an, Y, T, H, kb, 4, cn);
        for (; kb < H; kb += 16) att512_context_block(an, Y, T, H, kb, 1, cn);
    }
}

/* attention_context_backward_f32 for Q = 1, H % 16 == 0; da, ds: scratch of T each */
ATT512 void att512_context_backward_one(const float* hs, const float* h, const float* a, const float* dc,
                                        float* dhs, float* dh, float* da, float* ds, ptrdiff_t N, ptrdiff_t T,
                                        ptrdiff_t H, int reverse) {
    for (ptrdiff_t i = 0; i < N; ++i) {
        const ptrdiff_t n = reverse ? N - 1 - i : i;
        const float* Y = hs + n * T * H;
        const float *an = a + n * T, *dcn = dc + n * H, *hn = h + n * H;
        float *dY = dhs + n * T * H, *dhn = dh + n * H;
        att512_dots(dcn, Y, da, T, H);
        att_softmax_backward_f32(an, da, ds, 1, T);
        ptrdiff_t kb = 0;
        for (; kb + 256 <= H; kb += 256) att512_backward_block(Y, an, ds, dcn, hn, T, H, kb, 16, dY, dhn);
        for (; kb + 64 <= H; kb += 64) att512_backward_block(Y, an, ds, dcn, hn, T, H, kb, 4, dY, dhn);
        for (; kb < H; kb += 16) att512_backward_block(Y, an, ds, dcn, hn, T, H, kb, 1, dY, dhn);
    }
}

/* 1 when this call walks the items from the last: flips on every call (any interleaving of
 * threads is correct, the direction only decides what is found in cache) */
static int att512_walk;
static inline int att512_next_walk(void) { return __atomic_fetch_xor(&att512_walk, 1, __ATOMIC_RELAXED); }

static inline int att512_applies(ptrdiff_t Q, ptrdiff_t H) { return Q == 1 && H % 16 == 0 && fastnlp_vector_level() == 2; }
#endif /* FASTNLP_HALF_X86 */

/* The fused pair in float32 as the .pyx calls it: the AVX-512 decoder-step loops where they
 * apply, the clones everywhere else. */
static void attention_context_pick_f32(const float* hs, const float* h, float* a, float* c, ptrdiff_t N,
                                       ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {
#ifdef FASTNLP_HALF_X86
    if (att512_applies(Q, H)) {
        att512_context_one(hs, h, a, c, N, T, H, att512_next_walk());
        return;
    }
#endif
    attention_context_f32(hs, h, a, c, N, Q, T, H);
}

static void attention_context_backward_pick_f32(const float* hs, const float* h, const float* a, const float* dc,
                                                float* dhs, float* dh, float* da, float* ds, ptrdiff_t N,
                                                ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {
#ifdef FASTNLP_HALF_X86
    if (att512_applies(Q, H)) {
        att512_context_backward_one(hs, h, a, dc, dhs, dh, da, ds, N, T, H, att512_next_walk());
        return;
    }
#endif
    attention_context_backward_f32(hs, h, a, dc, dhs, dh, da, ds, N, Q, T, H);
}

/* ----- float16 / bfloat16 storage (uint16_t bit patterns, fastnlp/half.h) ----------------------
 * The contract for these formats (__init__.py): everything computed in float32, each output
 * rounded once. Per batch item the inputs are widened into float32 scratch (hs[n] is 14.5 KB of
 * float16 at the date task's size: widened once, it stays in cache for every query), the float32
 * loops above run on it unchanged, and the outputs are rounded to the storage format as each item
 * is done. Widening uses the CPU's conversion instructions (vcvtph2ps: AVX-512F or F16C; bfloat16
 * is a shift), rounding vcvtps2ph or AVX512-BF16's vcvtneps2bf16 where the CPU has them. The
 * float32 weights and the scores' gradient stay float32 between the two halves of a fused op.
 *
 * work: float32 scratch of at least ATTENTION_HALF_WORK(Q, T, H) elements. */
#define ATTENTION_HALF_WORK(Q, T, H) (2 * (T) * (H) + 3 * (Q) * (H) + 3 * (Q) * (T))

#define FASTNLP_ATTENTION_HALF_OPS(FMT, NARROW)                                                       \
    FASTNLP_CLONES static void attention_weights_##FMT(const uint16_t* hs, const uint16_t* h, uint16_t* a, \
                                                       float* work, ptrdiff_t N, ptrdiff_t Q,         \
                                                       ptrdiff_t T, ptrdiff_t H) {                    \
        float *hs32 = work, *h32 = hs32 + T * H, *a32 = h32 + Q * H;                                  \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(h + n * Q * H, h32, Q * H);                                           \
            att_dots_f32(h32, hs32, a32, Q, T, H);                                                    \
            att_softmax_rows_f32(a32, Q, T);                                                          \
            NARROW(a32, a + n * Q * T, Q * T);                                                        \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void weighted_sum_##FMT(const uint16_t* hs, const uint16_t* a, uint16_t* c,  \
                                                  float* work, ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T, \
                                                  ptrdiff_t H) {                                      \
        float *hs32 = work, *a32 = hs32 + T * H, *c32 = a32 + Q * T;                                  \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(a + n * Q * T, a32, Q * T);                                           \
            for (ptrdiff_t q = 0; q < Q; ++q) att_combine_f32(a32 + q * T, 1, hs32, T, H, c32 + q * H, 0); \
            NARROW(c32, c + n * Q * H, Q * H);                                                        \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void attention_context_##FMT(const uint16_t* hs, const uint16_t* h, uint16_t* a, \
                                                       uint16_t* c, float* work, ptrdiff_t N,         \
                                                       ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {       \
        float *hs32 = work, *h32 = hs32 + T * H, *a32 = h32 + Q * H, *c32 = a32 + Q * T;              \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(h + n * Q * H, h32, Q * H);                                           \
            att_dots_f32(h32, hs32, a32, Q, T, H);                                                    \
            att_softmax_rows_f32(a32, Q, T);                                                          \
            for (ptrdiff_t q = 0; q < Q; ++q) att_combine_f32(a32 + q * T, 1, hs32, T, H, c32 + q * H, 0); \
            NARROW(a32, a + n * Q * T, Q * T); /* c was weighed by the float32 weights */             \
            NARROW(c32, c + n * Q * H, Q * H);                                                        \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void attention_weights_backward_##FMT(                                      \
        const uint16_t* hs, const uint16_t* h, const uint16_t* a, const uint16_t* da, uint16_t* dhs,  \
        uint16_t* dh, float* work, ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {              \
        float *hs32 = work, *dhs32 = hs32 + T * H, *h32 = dhs32 + T * H, *dh32 = h32 + Q * H;         \
        float *a32 = dh32 + Q * H, *da32 = a32 + Q * T, *ds = da32 + Q * T;                           \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(h + n * Q * H, h32, Q * H);                                           \
            fastnlp_widen_##FMT(a + n * Q * T, a32, Q * T);                                           \
            fastnlp_widen_##FMT(da + n * Q * T, da32, Q * T);                                         \
            att_softmax_backward_f32(a32, da32, ds, Q, T);                                            \
            for (ptrdiff_t q = 0; q < Q; ++q) att_combine_f32(ds + q * T, 1, hs32, T, H, dh32 + q * H, 0); \
            for (ptrdiff_t t = 0; t < T; ++t) att_combine_f32(ds + t, T, h32, Q, H, dhs32 + t * H, 0);  \
            NARROW(dhs32, dhs + n * T * H, T * H);                                                    \
            NARROW(dh32, dh + n * Q * H, Q * H);                                                      \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void weighted_sum_backward_##FMT(                                           \
        const uint16_t* hs, const uint16_t* a, const uint16_t* dc, uint16_t* dhs, uint16_t* da,       \
        float* work, ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {                            \
        float *hs32 = work, *dhs32 = hs32 + T * H, *dc32 = dhs32 + T * H, *a32 = dc32 + Q * H;        \
        float *da32 = a32 + Q * T;                                                                    \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(a + n * Q * T, a32, Q * T);                                           \
            fastnlp_widen_##FMT(dc + n * Q * H, dc32, Q * H);                                         \
            att_dots_f32(dc32, hs32, da32, Q, T, H);                                                  \
            for (ptrdiff_t t = 0; t < T; ++t) att_combine_f32(a32 + t, T, dc32, Q, H, dhs32 + t * H, 0); \
            NARROW(dhs32, dhs + n * T * H, T * H);                                                    \
            NARROW(da32, da + n * Q * T, Q * T);                                                      \
        }                                                                                             \
    }                                                                                                 \
    FASTNLP_CLONES static void attention_context_backward_##FMT(                                      \
        const uint16_t* hs, const uint16_t* h, const uint16_t* a, const uint16_t* dc, uint16_t* dhs,  \
        uint16_t* dh, float* work, ptrdiff_t N, ptrdiff_t Q, ptrdiff_t T, ptrdiff_t H) {              \
        float *hs32 = work, *dhs32 = hs32 + T * H, *h32 = dhs32 + T * H, *dc32 = h32 + Q * H;         \
        float *dh32 = dc32 + Q * H, *a32 = dh32 + Q * H, *da32 = a32 + Q * T, *ds = da32 + Q * T;     \
        for (ptrdiff_t n = 0; n < N; ++n) {                                                           \
            fastnlp_widen_##FMT(hs + n * T * H, hs32, T * H);                                         \
            fastnlp_widen_##FMT(h + n * Q * H, h32, Q * H);                                           \
            fastnlp_widen_##FMT(a + n * Q * T, a32, Q * T);                                           \
            fastnlp_widen_##FMT(dc + n * Q * H, dc32, Q * H);                                         \
            att_dots_f32(dc32, hs32, da32, Q, T, H); /* da: float32, never stored */                  \
            att_softmax_backward_f32(a32, da32, ds, Q, T);                                            \
            if (Q == 1) {                                                                             \
                att_backward_one_query_f32(hs32, a32, ds, dc32, h32, T, H, dhs32, dh32);              \
            } else {                                                                                  \
                for (ptrdiff_t q = 0; q < Q; ++q)                                                     \
                    att_combine_f32(ds + q * T, 1, hs32, T, H, dh32 + q * H, 0);                      \
                for (ptrdiff_t t = 0; t < T; ++t) {                                                   \
                    if (Q)                                                                            \
                        att_combine_two_f32(a32 + t, dc32, ds + t, h32, T, Q, H, dhs32 + t * H);      \
                    else                                                                              \
                        memset(dhs32 + t * H, 0, (size_t)H * sizeof(float));                          \
                }                                                                                     \
            }                                                                                         \
            NARROW(dhs32, dhs + n * T * H, T * H);                                                    \
            NARROW(dh32, dh + n * Q * H, Q * H);                                                      \
        }                                                                                             \
    }

FASTNLP_ATTENTION_HALF_OPS(f16, fastnlp_narrow_f16)
FASTNLP_ATTENTION_HALF_OPS(bf16, fastnlp_narrow_bf16_fast)
