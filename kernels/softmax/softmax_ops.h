/* exp_row_sums of kernels/softmax (contract in __init__.py): y = exp(x) and each row's sum.
 *
 * float32: exp(x) = 2^n * p(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, so r is
 * nearly exact), p the degree-6 polynomial of Cephes' expf on |r| <= ln 2 / 2 (1-2 ulp).
 * Written over 16-float GCC vectors, without branches or calls, at the clone's native width.
 * 2^n is built from its exponent bits in two halves (n from -150 to 128 does not fit one
 * float's exponent), which keeps results that overflow to +inf and those that fall into the
 * subnormals right. x is clamped to [-104, 88.8] first (exp is 0 below, +inf above in float32),
 * NaN carried through. The row's sum is kept in 16 float32 lanes, added pairwise at the end.
 * float64 calls libm's exp: only the gradient checks run softmax in float64. */
#ifndef FASTNLP_SOFTMAX_OPS_H
#define FASTNLP_SOFTMAX_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastnlp/dispatch.h"

#define SOFTMAX_LANES 16

/* Sixteen floats as one GCC vector: one AVX-512 register in the avx512f clone, two or four
 * narrower ones in the others (the plain loop with ternaries was not vectorised: GCC keeps
 * NaN-aware selects as branches). */
typedef float softmax_floats __attribute__((vector_size(4 * SOFTMAX_LANES)));
typedef int32_t softmax_ints __attribute__((vector_size(4 * SOFTMAX_LANES)));

static inline softmax_floats softmax_select(softmax_ints mask, softmax_floats when_set, softmax_floats otherwise) {
    return (softmax_floats)(((softmax_ints)when_set & mask) | ((softmax_ints)otherwise & ~mask));
}

static inline softmax_floats softmax_exp16(softmax_floats x) {
    const softmax_floats zero = {0}, lowest = zero - 104.0f, highest = zero + 88.8f;
    softmax_floats clamped = softmax_select(x < lowest, lowest, x);
    clamped = softmax_select(clamped > highest, highest, clamped);
    const softmax_ints is_nan = x != x;
    clamped = softmax_select(is_nan, zero, clamped); /* NaN: computed as 0, restored below */
    /* round to nearest by adding and subtracting 1.5 * 2^23 */
    const softmax_floats n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const softmax_floats r = (clamped - n * 0.693359375f) - n * -2.12194440e-4f;
    softmax_floats p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const softmax_ints whole = __builtin_convertvector(n, softmax_ints);
    const softmax_ints first = whole >> 1, second = whole - first; /* both in [-75, 64] */
    const softmax_floats first_scale = (softmax_floats)((first + 127) << 23);
    const softmax_floats second_scale = (softmax_floats)((second + 127) << 23);
    return softmax_select(is_nan, x, p * first_scale * second_scale);
}

FASTNLP_CLONES
static void softmax_exp_row_sums_f32(const float* __restrict x, float* __restrict y, float* __restrict sums,
                                     ptrdiff_t rows, ptrdiff_t width) {
    for (ptrdiff_t r = 0; r < rows; ++r) {
        const float* __restrict row = x + r * width;
        float* __restrict out = y + r * width;
        softmax_floats total = {0};
        ptrdiff_t j = 0;
        for (; j + SOFTMAX_LANES <= width; j += SOFTMAX_LANES) {
            softmax_floats v;
            memcpy(&v, row + j, sizeof v);
            v = softmax_exp16(v);
            memcpy(out + j, &v, sizeof v);
            total += v;
        }
        if (j < width) { /* the tail, padded with -inf: exp(-inf) = 0 adds nothing */
            float padded[SOFTMAX_LANES];
            const ptrdiff_t left = width - j;
            for (int l = 0; l < SOFTMAX_LANES; ++l) padded[l] = l < left ? row[j + l] : -INFINITY;
            softmax_floats v;
            memcpy(&v, padded, sizeof v);
            v = softmax_exp16(v);
            memcpy(padded, &v, sizeof v);
            for (ptrdiff_t l = 0; l < left; ++l) out[j + l] = padded[l];
            total += v;
        }
        float lanes[SOFTMAX_LANES];
        memcpy(lanes, &total, sizeof lanes);
        for (int half = SOFTMAX_LANES / 2; half >= 1; half /= 2)
            for (int l = 0; l < half; ++l) lanes[l] = lanes[2 * l] + lanes[2 * l + 1];
        sums[r] = lanes[0];
    }
}

static void softmax_exp_row_sums_f64(const double* __restrict x, double* __restrict y, double* __restrict sums,
                                     ptrdiff_t rows, ptrdiff_t width) {
    for (ptrdiff_t r = 0; r < rows; ++r) {
        double total = 0.0;
        for (ptrdiff_t j = 0; j < width; ++j) {
            const double v = exp(x[r * width + j]);
            y[r * width + j] = v;
            total += v;
        }
        sums[r] = total;
    }
}

static inline const char* softmax_isa_level(void) { return fastnlp_isa_level(1); }

#endif /* FASTNLP_SOFTMAX_OPS_H */
