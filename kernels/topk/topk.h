/* The top-k selection of kernels/topk (contract in __init__.py), one row at a time.
 *
 * Per row a heap of the k best so far, its root the worst of them (NaN below every number,
 * then the smaller value, then the larger index), so that one comparison with the root
 * rejects almost every later score. Scores are scanned 16 at a time: "is any of them above
 * the root?" is one vector compare and a mask test (AVX-512, AVX2 or SSE2 intrinsics, the
 * widest this CPU runs, picked once per call as fastnlp/dispatch.h's clones would be; GCC
 * does not vectorise the "any" itself); only blocks with a candidate are walked one by one. Once the heap is full and its root a
 * number, "better than the root" is exactly ``v > root``: a later score has a larger index,
 * so an equal one loses the tie, and a NaN compares false. At the end the heap is sorted in
 * place (heapsort: the worst popped to the back), which gives the row best first. */
#include <stddef.h>
#include <stdint.h>

#include "fastnlp/dispatch.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTNLP_TOPK_X86 1
#include <immintrin.h>
#endif

#define FASTNLP_TOPK_BLOCK 16

#define FASTNLP_TOPK_OPS(T, SUFFIX)                                                               \
    /* a ranks below b */                                                                         \
    static inline int topk_worse_##SUFFIX(T av, int64_t ai, T bv, int64_t bi) {                  \
        const int an = av != av, bn = bv != bv;                                                   \
        if (an != bn) return an;                                                                  \
        if (an) return ai > bi;                                                                   \
        return av < bv || (av == bv && ai > bi);                                                  \
    }                                                                                             \
    static inline void topk_sift_down_##SUFFIX(T* hv, int64_t* hi, ptrdiff_t n, ptrdiff_t pos) { \
        const T v = hv[pos];                                                                      \
        const int64_t id = hi[pos];                                                               \
        for (;;) {                                                                                \
            ptrdiff_t c = 2 * pos + 1;                                                            \
            if (c >= n) break;                                                                    \
            if (c + 1 < n && topk_worse_##SUFFIX(hv[c + 1], hi[c + 1], hv[c], hi[c])) c++;        \
            if (!topk_worse_##SUFFIX(hv[c], hi[c], v, id)) break;                                 \
            hv[pos] = hv[c];                                                                      \
            hi[pos] = hi[c];                                                                      \
            pos = c;                                                                              \
        }                                                                                         \
        hv[pos] = v;                                                                              \
        hi[pos] = id;                                                                             \
    }                                                                                             \
    static inline void topk_sift_up_##SUFFIX(T* hv, int64_t* hi, ptrdiff_t pos) {                \
        const T v = hv[pos];                                                                      \
        const int64_t id = hi[pos];                                                               \
        while (pos > 0) {                                                                         \
            const ptrdiff_t p = (pos - 1) / 2;                                                    \
            if (!topk_worse_##SUFFIX(v, id, hv[p], hi[p])) break;                                 \
            hv[pos] = hv[p];                                                                      \
            hi[pos] = hi[p];                                                                      \
            pos = p;                                                                              \
        }                                                                                         \
        hv[pos] = v;                                                                              \
        hi[pos] = id;                                                                             \
    }                                                                                             \

FASTNLP_TOPK_OPS(float, f32)
FASTNLP_TOPK_OPS(double, f64)

/* One row: scores (n,), 1 <= k <= n; writes hv, hi (k,) best first. ANY(p, root) says whether
 * one of the 16 scores at p is above root (false for NaN); ATTR is the function's target. */
#define FASTNLP_TOPK_ROW(T, SUFFIX, ISA, ATTR, ANY)                                               \
    ATTR static void topk_row_##SUFFIX##_##ISA(const T* __restrict row, ptrdiff_t n,             \
                                               ptrdiff_t k, T* __restrict hv,                    \
                                               int64_t* __restrict hi) {                          \
        ptrdiff_t j;                                                                              \
        for (j = 0; j < k; ++j) {                                                                 \
            hv[j] = row[j];                                                                       \
            hi[j] = j;                                                                            \
            topk_sift_up_##SUFFIX(hv, hi, j);                                                     \
        }                                                                                         \
        T root = hv[0];                                                                           \
        /* While the worst kept is NaN every number beats it (slow path, rare). */               \
        for (; j < n && root != root; ++j) {                                                      \
            const T v = row[j];                                                                   \
            if (v == v) {                                                                         \
                hv[0] = v;                                                                        \
                hi[0] = j;                                                                        \
                topk_sift_down_##SUFFIX(hv, hi, k, 0);                                            \
                root = hv[0];                                                                     \
            }                                                                                     \
        }                                                                                         \
        for (; j + FASTNLP_TOPK_BLOCK <= n; j += FASTNLP_TOPK_BLOCK) {                            \
            if (!ANY(row + j, root)) continue;                                                    \
            for (int l = 0; l < FASTNLP_TOPK_BLOCK; ++l) {                                        \
                const T v = row[j + l];                                                           \
                if (v > root) {                                                                   \
                    hv[0] = v;                                                                    \
                    hi[0] = j + l;                                                                \
                    topk_sift_down_##SUFFIX(hv, hi, k, 0);                                        \
                    root = hv[0];                                                                 \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (; j < n; ++j) {                                                                      \
            const T v = row[j];                                                                   \
            if (v > root) {                                                                       \
                hv[0] = v;                                                                        \
                hi[0] = j;                                                                        \
                topk_sift_down_##SUFFIX(hv, hi, k, 0);                                            \
                root = hv[0];                                                                     \
            }                                                                                     \
        }                                                                                         \
        for (ptrdiff_t m = k - 1; m > 0; --m) { /* heapsort: worst to the back */                \
            const T v = hv[0];                                                                    \
            const int64_t id = hi[0];                                                             \
            hv[0] = hv[m];                                                                        \
            hi[0] = hi[m];                                                                        \
            hv[m] = v;                                                                            \
            hi[m] = id;                                                                           \
            topk_sift_down_##SUFFIX(hv, hi, m, 0);                                                \
        }                                                                                         \
    }

/* Portable test: a compare-and-or GCC may vectorise. */
#define FASTNLP_TOPK_ANY_PORTABLE(T)                                                              \
    static inline int topk_any_portable_##T(const T* p, T root) {                                \
        int any = 0;                                                                              \
        for (int l = 0; l < FASTNLP_TOPK_BLOCK; ++l) any |= p[l] > root;                          \
        return any;                                                                               \
    }
FASTNLP_TOPK_ANY_PORTABLE(float)
FASTNLP_TOPK_ANY_PORTABLE(double)

#ifdef FASTNLP_TOPK_X86
/* One compare per vector, its mask tested once (ordered compares: false for NaN). */
__attribute__((target("avx512f"))) static inline int topk_any_f32_avx512(const float* p, float root) {
    return _mm512_cmp_ps_mask(_mm512_loadu_ps(p), _mm512_set1_ps(root), _CMP_GT_OQ) != 0;
}
__attribute__((target("avx512f"))) static inline int topk_any_f64_avx512(const double* p, double root) {
    const __m512d r = _mm512_set1_pd(root);
    return (_mm512_cmp_pd_mask(_mm512_loadu_pd(p), r, _CMP_GT_OQ)
            | _mm512_cmp_pd_mask(_mm512_loadu_pd(p + 8), r, _CMP_GT_OQ)) != 0;
}
__attribute__((target("avx2"))) static inline int topk_any_f32_avx2(const float* p, float root) {
    const __m256 r = _mm256_set1_ps(root);
    return _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), r, _CMP_GT_OQ),
                                           _mm256_cmp_ps(_mm256_loadu_ps(p + 8), r, _CMP_GT_OQ))) != 0;
}
__attribute__((target("avx2"))) static inline int topk_any_f64_avx2(const double* p, double root) {
    const __m256d r = _mm256_set1_pd(root);
    const __m256d a = _mm256_or_pd(_mm256_cmp_pd(_mm256_loadu_pd(p), r, _CMP_GT_OQ),
                                   _mm256_cmp_pd(_mm256_loadu_pd(p + 4), r, _CMP_GT_OQ));
    const __m256d b = _mm256_or_pd(_mm256_cmp_pd(_mm256_loadu_pd(p + 8), r, _CMP_GT_OQ),
                                   _mm256_cmp_pd(_mm256_loadu_pd(p + 12), r, _CMP_GT_OQ));
    return _mm256_movemask_pd(_mm256_or_pd(a, b)) != 0;
}
static inline int topk_any_f32_sse2(const float* p, float root) {
    const __m128 r = _mm_set1_ps(root);
    const __m128 a = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p), r), _mm_cmpgt_ps(_mm_loadu_ps(p + 4), r));
    const __m128 b = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + 8), r), _mm_cmpgt_ps(_mm_loadu_ps(p + 12), r));
    return _mm_movemask_ps(_mm_or_ps(a, b)) != 0;
}
#define FASTNLP_TOPK_AVX512 __attribute__((target("avx512f")))
#define FASTNLP_TOPK_AVX2 __attribute__((target("avx2")))
FASTNLP_TOPK_ROW(float, f32, avx512, FASTNLP_TOPK_AVX512, topk_any_f32_avx512)
FASTNLP_TOPK_ROW(double, f64, avx512, FASTNLP_TOPK_AVX512, topk_any_f64_avx512)
FASTNLP_TOPK_ROW(float, f32, avx2, FASTNLP_TOPK_AVX2, topk_any_f32_avx2)
FASTNLP_TOPK_ROW(double, f64, avx2, FASTNLP_TOPK_AVX2, topk_any_f64_avx2)
FASTNLP_TOPK_ROW(float, f32, base, , topk_any_f32_sse2)
FASTNLP_TOPK_ROW(double, f64, base, , topk_any_portable_double)
#else
FASTNLP_TOPK_ROW(float, f32, base, , topk_any_portable_float)
FASTNLP_TOPK_ROW(double, f64, base, , topk_any_portable_double)
#endif

typedef void (*topk_row_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, float*, int64_t*);
typedef void (*topk_row_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, double*, int64_t*);

/* The widest version this CPU runs (asked of the CPU in dispatch.h, as every kernel does). */
#define FASTNLP_TOPK_ROWS(T, SUFFIX)                                                              \
    static void topk_rows_##SUFFIX(const T* scores, ptrdiff_t q, ptrdiff_t n, ptrdiff_t k,       \
                                   T* values, int64_t* indices) {                                 \
        topk_row_##SUFFIX##_fn row = topk_row_##SUFFIX##_base;                                    \
        TOPK_PICK_##SUFFIX                                                                        \
        for (ptrdiff_t r = 0; r < q; ++r) row(scores + r * n, n, k, values + r * k, indices + r * k); \
    }
#ifdef FASTNLP_TOPK_X86
#define TOPK_PICK(SUFFIX)                                                                         \
    if (fastnlp_vector_level() == 2) row = topk_row_##SUFFIX##_avx512;                            \
    else if (fastnlp_vector_level() == 1) row = topk_row_##SUFFIX##_avx2;
#else
#define TOPK_PICK(SUFFIX)
#endif
#define TOPK_PICK_f32 TOPK_PICK(f32)
#define TOPK_PICK_f64 TOPK_PICK(f64)
FASTNLP_TOPK_ROWS(float, f32)
FASTNLP_TOPK_ROWS(double, f64)

/* The version topk_rows runs here. */
static inline const char* topk_isa_level(void) {
#ifdef FASTNLP_TOPK_X86
    static const char* const names[] = {"default", "avx2", "avx512f"};
    return names[fastnlp_vector_level()];
#else
    return "default";
#endif
}
