/* dropout_forward of kernels/dropout (contract in __init__.py): the shared splitmix64 draw
 * (fastnlp/rng.h) per element, mask and product in one pass. GCC vectorises the loop at each
 * clone's width (FASTNLP_CLONES); the draw is integer arithmetic, so every width gives the
 * same bits. */
#ifndef FASTNLP_DROPOUT_OPS_H
#define FASTNLP_DROPOUT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/rng.h"

FASTNLP_CLONES
static void dropout_forward_f32(const float* __restrict x, float* __restrict out, float* __restrict mask,
                                uint64_t keep_below, float scale, uint64_t seed, uint64_t first, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; ++i) {
        const float m = (fastnlp_splitmix64(seed, first + (uint64_t)i) >> 32) < keep_below ? scale : 0.0f;
        mask[i] = m;
        out[i] = x[i] * m;
    }
}

FASTNLP_CLONES
static void dropout_forward_f64(const double* __restrict x, double* __restrict out, double* __restrict mask,
                                uint64_t keep_below, double scale, uint64_t seed, uint64_t first, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; ++i) {
        const double m = (fastnlp_splitmix64(seed, first + (uint64_t)i) >> 32) < keep_below ? scale : 0.0;
        mask[i] = m;
        out[i] = x[i] * m;
    }
}

#endif /* FASTNLP_DROPOUT_OPS_H */
