/* Loops of the negative-sampling ops (contract in __init__.py, float order in reference.py).
 *
 * The float loops are compiled once per instruction set (GCC function multiversioning, as
 * kernels/embedding/row_ops.h) with FMA contraction turned off: an AVX-512 clone would otherwise
 * fuse x * y + s, and the results would no longer equal the reference bit for bit. Callers
 * guarantee ids in range and dW sharing no memory with the inputs (see __init__.py). */
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTNLP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTNLP_CLONES
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

#define SGNS_LANES 16

#define FASTNLP_SGNS_OPS(T, SUFFIX)                                                              \
    /* x . y: products into 16 partial sums (j % 16) in order of j, then pairwise. */            \
    static inline T lane_dot_##SUFFIX(const T* __restrict x, const T* __restrict y,              \
                                      ptrdiff_t width) {                                          \
        T s[SGNS_LANES] = {0};                                                                    \
        ptrdiff_t j = 0;                                                                          \
        for (; j + SGNS_LANES <= width; j += SGNS_LANES)                                          \
            for (int l = 0; l < SGNS_LANES; ++l) s[l] += x[j + l] * y[j + l];                     \
        for (int l = 0; j + l < width; ++l) s[l] += x[j + l] * y[j + l];                          \
        for (int half = SGNS_LANES / 2; half >= 1; half /= 2)                                     \
            for (int l = 0; l < half; ++l) s[l] = s[2 * l] + s[2 * l + 1];                        \
        return s[0];                                                                              \
    }                                                                                             \
    FASTNLP_CLONES static void gather_dot_rows_##SUFFIX(const T* W, const int64_t* idx,          \
                                                        const T* h, T* out, ptrdiff_t n,          \
                                                        ptrdiff_t k, ptrdiff_t width) {           \
        for (ptrdiff_t i = 0; i < n; ++i)                                                         \
            for (ptrdiff_t c = 0; c < k; ++c)                                                     \
                out[i * k + c] = lane_dot_##SUFFIX(W + idx[i * k + c] * width, h + i * width,     \
                                                   width);                                        \
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

FASTNLP_SGNS_OPS(float, f32)
FASTNLP_SGNS_OPS(double, f64)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ----- the sampler: counter-based splitmix64, alias table, inverse-CDF fallback ----------- */

#define SGNS_ALIAS_ATTEMPTS 7
#define SGNS_DRAWS_PER_SLOT 8

static inline uint64_t sgns_draw(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

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
                w = sgns_alias_pick(alias_prob, alias_index, (uint64_t)vocab, sgns_draw(seed, base + a));
            if (w == t)
                w = sgns_excluding(cumulative, vocab, t, sgns_draw(seed, base + SGNS_ALIAS_ATTEMPTS));
            out[i * sample_size + s] = w;
        }
    }
}
