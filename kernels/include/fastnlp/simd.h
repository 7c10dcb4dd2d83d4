/* Vector primitives shared by the op families, written for the contracts' order of float
 * operations (the NumPy references compute the same bits).
 *
 * The lane dot product: x . y summed into FASTNLP_LANES partial sums (lane j % 16, in order
 * of j), the lanes then added pairwise (0+1, 2+3, ... and again until one is left). A fixed
 * order that GCC vectorises without -ffast-math. FMA contraction is off for these functions:
 * a fused x * y + s rounds once instead of twice and would no longer match the reference. */
#ifndef FASTNLP_SIMD_H
#define FASTNLP_SIMD_H

#include <stddef.h>

#define FASTNLP_LANES 16

/* Contraction off between these two (a fused x * y + s rounds once where the contracts round
 * twice): the one way every header of the families writes it. */
#if defined(__clang__)
#define FASTNLP_CONTRACTION_OFF_BEGIN _Pragma("STDC FP_CONTRACT OFF")
#define FASTNLP_CONTRACTION_OFF_END
#elif defined(__GNUC__)
#define FASTNLP_CONTRACTION_OFF_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define FASTNLP_CONTRACTION_OFF_END _Pragma("GCC pop_options")
#else
#define FASTNLP_CONTRACTION_OFF_BEGIN
#define FASTNLP_CONTRACTION_OFF_END
#endif

FASTNLP_CONTRACTION_OFF_BEGIN

/* s[0..15] added pairwise; s is overwritten. */
#define FASTNLP_DEFINE_LANE_TREE(T, SUFFIX)                                                      \
    static inline T fastnlp_lane_tree_##SUFFIX(T* s) {                                           \
        for (int half = FASTNLP_LANES / 2; half >= 1; half /= 2)                                 \
            for (int l = 0; l < half; ++l) s[l] = s[2 * l] + s[2 * l + 1];                       \
        return s[0];                                                                             \
    }                                                                                            \
    static inline T fastnlp_lane_dot_##SUFFIX(const T* __restrict x, const T* __restrict y,      \
                                              ptrdiff_t width) {                                 \
        T s[FASTNLP_LANES] = {0};                                                                \
        ptrdiff_t j = 0;                                                                         \
        for (; j + FASTNLP_LANES <= width; j += FASTNLP_LANES)                                   \
            for (int l = 0; l < FASTNLP_LANES; ++l) s[l] += x[j + l] * y[j + l];                 \
        for (int l = 0; j + l < width; ++l) s[l] += x[j + l] * y[j + l];                         \
        return fastnlp_lane_tree_##SUFFIX(s);                                                    \
    }

FASTNLP_DEFINE_LANE_TREE(float, f)
FASTNLP_DEFINE_LANE_TREE(double, d)

FASTNLP_CONTRACTION_OFF_END

#endif /* FASTNLP_SIMD_H */
