/* round_to_format for one element, shared by the Cython loop (C) and the CUDA kernel: the
 * reference's steps (kernels/rounding/reference.py) in float64. Counter i of the stream `seed`
 * gives element i its uniform draw, so any split of the work gives the same bits. */
#ifndef FASTNLP_ROUNDING_H
#define FASTNLP_ROUNDING_H

#include "fastnlp/rng.h"

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FASTNLP_ROUND_INLINE __device__ __forceinline__
/* NVRTC has no <math.h> macros for these; the bit patterns are IEEE double's. */
#define FASTNLP_INFINITY __longlong_as_double(0x7FF0000000000000LL)
#define FASTNLP_NAN __longlong_as_double(0x7FF8000000000000LL)
#else
#include <math.h>
#define FASTNLP_ROUND_INLINE static inline
#define FASTNLP_INFINITY INFINITY
#define FASTNLP_NAN NAN
#endif

#define FASTNLP_OVERFLOW_TO_INF 0
#define FASTNLP_OVERFLOW_TO_NAN 1

FASTNLP_ROUND_INLINE double fastnlp_round_one(double v, fastnlp_u64 i, int man_bits, int emin, double max_finite,
                                              int subnormals, int overflow, int stochastic, fastnlp_u64 seed) {
    if (isnan(v)) return v;
    double magnitude = fabs(v), y, u = 0.0;
    if (stochastic) u = (double)(fastnlp_splitmix64(seed, i) >> 11) * (1.0 / 9007199254740992.0);  /* 53 bits in [0, 1) */
    if (isinf(v)) {
        y = magnitude;
    } else {
        int exponent;
        frexp(magnitude, &exponent);
        int shift = (exponent - 1 > emin ? exponent - 1 : emin) - man_bits;
        double scaled = ldexp(magnitude, -shift);
        double base = floor(scaled), fraction = scaled - base, integral = base;
        if (stochastic ? u < fraction : (fraction > 0.5 || (fraction == 0.5 && fmod(base, 2.0) == 1.0)))
            integral = base + 1.0;
        y = ldexp(integral, shift);
        if (!subnormals) {
            double smallest = ldexp(1.0, emin);
            if (magnitude < smallest)
                y = (stochastic ? u < magnitude / smallest : magnitude > smallest / 2) ? smallest : 0.0;
        }
    }
    if (y > max_finite) {
        if (overflow == FASTNLP_OVERFLOW_TO_INF) y = FASTNLP_INFINITY;
        else if (overflow == FASTNLP_OVERFLOW_TO_NAN) return FASTNLP_NAN;
        else y = max_finite;
    }
    return copysign(y, v);
}

#endif /* FASTNLP_ROUNDING_H */
