/* sgd_update of kernels/sgd (contract in __init__.py):
 * p[i] = p[i] - round(lr * round(grad_scale * g[i])).
 *
 * Contraction is off for this file's loops: a fused multiply-add would round once where the
 * contract (NumPy's g *= grad_scale; p -= lr * g) rounds each product and the difference. GCC
 * vectorises the plain loop at each clone's width (FASTNLP_CLONES). */
#ifndef FASTNLP_SGD_OPS_H
#define FASTNLP_SGD_OPS_H

#include <stddef.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/simd.h"

FASTNLP_CONTRACTION_OFF_BEGIN

FASTNLP_CLONES
static void sgd_update_f32(float* __restrict p, const float* __restrict g, float lr, float grad_scale,
                           ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; ++i) {
        const float scaled = grad_scale * g[i];
        const float step = lr * scaled;
        p[i] = p[i] - step;
    }
}

FASTNLP_CLONES
static void sgd_update_f64(double* __restrict p, const double* __restrict g, double lr, double grad_scale,
                           ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; ++i) {
        const double scaled = grad_scale * g[i];
        const double step = lr * scaled;
        p[i] = p[i] - step;
    }
}

FASTNLP_CONTRACTION_OFF_END

#endif /* FASTNLP_SGD_OPS_H */
