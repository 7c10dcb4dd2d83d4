/* Loops of the negative-sampling ops (contract in __init__.py, float order in reference.py).
 *
 * The float loops are compiled once per instruction set (FASTNLP_CLONES, fastnlp/dispatch.h)
 * with FMA contraction turned off: an AVX-512 clone would otherwise fuse x * y + s, and the results would no longer equal the reference bit for bit. Callers
 * guarantee ids in range and dW sharing no memory with the inputs (see __init__.py). */
#include <stddef.h>
#include <stdint.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/rng.h"
#include "fastnlp/simd.h"

FASTNLP_CONTRACTION_OFF_BEGIN

#define FASTNLP_SGNS_OPS(T, SUFFIX, LANE)                                                        \
    FASTNLP_CLONES static void gather_dot_rows_##SUFFIX(const T* W, const int64_t* idx,          \
                                                        const T* h, T* out, ptrdiff_t n,          \
                                                        ptrdiff_t k, ptrdiff_t width) {           \
        for (ptrdiff_t i = 0; i < n; ++i)                                                         \
            for (ptrdiff_t c = 0; c < k; ++c)                                                     \
                out[i * k + c] = fastnlp_lane_dot_##LANE(W + idx[i * k + c] * width,             \
                                                         h + i * width, width);                   \
    }                                                                                             \
    /* dh[i] = sum_c dout[i, c] W[idx[i, c]] (in order of c), then dW[idx[i, c]] += dout h[i]. */ \
    FASTNLP_CLONES static void gather_dot_backward_rows_##SUFFIX(                                 \
        const T* W, const int64_t* idx, const T* h, const T* dout, T* dW, T* dh, ptrdiff_t n,     \
        ptrdiff_t k, ptrdiff_t width) {                                                           \
        for (ptrdiff_t i = 0; i < n; ++i) {                                                       \
            T* __restrict dhi = dh + i * width;                                                   \
            const T* __restrict hi = h + i * width;                                               \
            for (ptrdiff_t j = 0; j < width; ++j) dhi[j] = 0;                                     \
            for (ptrdiff_t c = 0; c < k; ++c) {                                                   \
                const T d = dout[i * k + c];                                                      \
                const T* __restrict w = W + idx[i * k + c] * width;                               \
                for (ptrdiff_t j = 0; j < width; ++j) dhi[j] += d * w[j];                         \
            }                                                                                     \
            for (ptrdiff_t c = 0; c < k; ++c) {                                                   \
                const T d = dout[i * k + c];                                                      \
                T* __restrict g = dW + idx[i * k + c] * width;                                    \
                for (ptrdiff_t j = 0; j < width; ++j) g[j] += d * hi[j];                          \
            }                                                                                     \
        }                                                                                         \
    }

FASTNLP_SGNS_OPS(float, f32, f)
FASTNLP_SGNS_OPS(double, f64, d)

FASTNLP_CONTRACTION_OFF_END

/* ----- the sampler: splitmix64 draws (fastnlp/rng.h), alias table, inverse-CDF fallback --- */

#define SGNS_ALIAS_ATTEMPTS 7
#define SGNS_DRAWS_PER_SLOT 8

static inline int64_t sgns_alias_pick(const int64_t* alias_prob, const int64_t* alias_index,
                                      uint64_t vocab, uint64_t d) {
    const uint64_t column = ((d >> 32) * vocab) >> 32;
    return (d & 0xFFFFFFFFULL) < (uint64_t)alias_prob[column] ? (int64_t)column : alias_index[column];
}

/* The word w with cumulative[w] <= r < cumulative[w + 1], the target's mass left out. */
static inline int64_t sgns_excluding(const int64_t* cumulative, int64_t vocab, int64_t target,
                                     uint64_t d) {
    const int64_t low = cumulative[target], skip = cumulative[target + 1] - low;
    const int64_t rest = cumulative[vocab] - skip;
    const double x = ((double)(d >> 11) * (1.0 / 9007199254740992.0)) * (double)rest;
    int64_t r = (int64_t)x;
    if (r > rest - 1) r = rest - 1;
    if (r >= low) r += skip;
    int64_t lo = 0, hi = vocab;
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cumulative[mid] <= r) lo = mid; else hi = mid;
    }
    return lo;
}

static void sample_negatives_rows(const int64_t* alias_prob, const int64_t* alias_index,
                                  const int64_t* cumulative, int64_t vocab, const int64_t* target,
                                  ptrdiff_t n, ptrdiff_t sample_size, uint64_t seed,
                                  uint64_t counter, int64_t* out) {
    for (ptrdiff_t i = 0; i < n; ++i) {
        const int64_t t = target[i];
        for (ptrdiff_t s = 0; s < sample_size; ++s) {
            const uint64_t base = (counter + (uint64_t)(i * sample_size + s)) * SGNS_DRAWS_PER_SLOT;
            int64_t w = t;
            for (int a = 0; a < SGNS_ALIAS_ATTEMPTS && w == t; ++a)
                w = sgns_alias_pick(alias_prob, alias_index, (uint64_t)vocab, fastnlp_splitmix64(seed, base + a));
            if (w == t)
                w = sgns_excluding(cumulative, vocab, t, fastnlp_splitmix64(seed, base + SGNS_ALIAS_ATTEMPTS));
            out[i * sample_size + s] = w;
        }
    }
}
