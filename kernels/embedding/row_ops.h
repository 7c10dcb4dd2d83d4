/* Row loops of the embedding ops, compiled once per instruction set (FASTNLP_CLONES,
 * fastnlp/dispatch.h): the loader picks the AVX-512, AVX2 or baseline clone for the CPU at hand,
 * so a portable wheel still runs at the memory floor (a baseline SSE2 build ran 1.6x slower
 * at D = 650). Callers guarantee ids in range and rows not overlapping dW (see __init__.py);
 * each row is added element by element in order, so results equal the NumPy reference bit for bit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/half.h"

#define FASTNLP_ROW_OPS(T, SUFFIX)                                                              \
    FASTNLP_CLONES static void scatter_add_rows_##SUFFIX(T* dW, const int64_t* idx,             \
                                                         const T* rows, ptrdiff_t n_ids,       \
                                                         ptrdiff_t width) {                    \
        for (ptrdiff_t i = 0; i < n_ids; ++i) {                                                 \
            T* __restrict target = dW + idx[i] * width;                                         \
            const T* __restrict source = rows + i * width;                                      \
            for (ptrdiff_t j = 0; j < width; ++j) target[j] += source[j];                       \
        }                                                                                       \
    }                                                                                           \
    FASTNLP_CLONES static void gather_rows_##SUFFIX(const T* W, const int64_t* idx, T* out,      \
                                                    ptrdiff_t n_ids, ptrdiff_t width) {         \
        for (ptrdiff_t i = 0; i < n_ids; ++i) {                                                 \
            const T* __restrict source = W + idx[i] * width;                                    \
            T* __restrict target = out + i * width;                                             \
            for (ptrdiff_t j = 0; j < width; ++j) target[j] = source[j];                        \
        }                                                                                       \
    }

FASTNLP_ROW_OPS(float, f32)
FASTNLP_ROW_OPS(double, f64)

/* float16 / bfloat16 storage (uint16_t bit patterns, fastnlp/half.h). The gather copies bits.
 * The scatter-add follows the contract for these formats: each touched row of dW is converted
 * to float32, the rows with its id are added in float32 in order of i, and the sum is rounded
 * once to the storage format. Without sorting: link_duplicates chains each position i to the
 * next position with the same id (an open-addressing table of ids, O(n)); an id seen once (the
 * common case at V = 10000) is one fused pass over its row, dW[r] = round(dW[r] + rows[i]); a
 * repeated id is summed in a float32 row `acc` and rounded by the last row's pass.
 * Returns 0, or -1 when the scratch memory cannot be allocated (dW untouched then).
 *
 * Speed (bench/compare_scatter_add.py --dtypes): the row pass is scatter_row_<fmt> below, whole
 * vectors only (the row's last vector overlaps the one before it instead of a scalar tail: ten
 * scalar conversions per row of 650 cost as much as the other 640 lanes), and the next row the
 * loop updates (of dW) and adds (of rows) is prefetched: the conversions make each row long
 * enough that the out-of-order window no longer reaches the next row's first loads (the float32
 * loop gains nothing from it: asked line by line, it ran 1.15x slower). The fused pass (no acc)
 * does as few vector operations as the CPU allows, float16 one vaddph per 32 values where the
 * CPU has AVX512-FP16, bfloat16 an unpack per 16 values and one conversion per 32
 * (scatter_row_bf16_unpacked), and asks for the next rows one line per 32 values as it goes
 * (scatter_prefetch_line); the other passes ask for the next row of dW whole before they start
 * (scatter_prefetch_row). */
static void gather_rows_u16(const uint16_t* W, const int64_t* idx, uint16_t* out, ptrdiff_t n_ids,
                            ptrdiff_t width) {
    for (ptrdiff_t i = 0; i < n_ids; ++i)
        memcpy(out + i * width, W + idx[i] * width, (size_t)width * sizeof(uint16_t));
}

/* next[i]: the next position after i holding idx[i], or -1; repeat[i]: 1 when an earlier
 * position holds idx[i]. `table` has `capacity` (a power of two >= 2 n) slots of (id, last i). */
static void link_duplicates(const int64_t* idx, ptrdiff_t n, int64_t* next, unsigned char* repeat,
                            int64_t* table, ptrdiff_t capacity) {
    int bits = 0;
    while (((ptrdiff_t)1 << bits) < capacity) ++bits;
    for (ptrdiff_t s = 0; s < capacity; ++s) table[2 * s] = -1;
    for (ptrdiff_t i = 0; i < n; ++i) {
        uint64_t slot = bits ? ((uint64_t)idx[i] * 0x9E3779B97F4A7C15ull) >> (64 - bits) : 0;
        while (table[2 * slot] != -1 && table[2 * slot] != idx[i]) slot = (slot + 1) & (uint64_t)(capacity - 1);
        next[i] = -1;
        if (table[2 * slot] == -1) {
            table[2 * slot] = idx[i];
            repeat[i] = 0;
        } else {
            next[table[2 * slot + 1]] = i;
            repeat[i] = 1;
        }
        table[2 * slot + 1] = i;
    }
}

/* Asks the memory system for a row before the loop reaches it (write intent: it is updated);
 * NULL (no next row) asks for nothing. */
static inline void scatter_prefetch_row(const uint16_t* row, ptrdiff_t width) {
#if defined(__GNUC__) || defined(__clang__)
    if (!row) return;
    for (ptrdiff_t byte = 0; byte < width * (ptrdiff_t)sizeof(uint16_t); byte += 64)
        __builtin_prefetch((const char*)row + byte, 1);
#else
    (void)row;
    (void)width;
#endif
}

/* Asks for the line at value j of the next row of dW (write intent) and of rows, from inside a
 * row pass: one line per 32 values keeps the requests spread over the pass, where a whole row
 * asked for up front (21 prefetches back to back at D = 650) stalls on free fill buffers.
 * Callers pass NULL for both after the last row. */
static inline void scatter_prefetch_line(const uint16_t* next_dst, const uint16_t* next_src, ptrdiff_t j) {
#if defined(__GNUC__) || defined(__clang__)
    if (!next_dst) return;
    __builtin_prefetch(next_dst + j, 1);
    __builtin_prefetch(next_src + j, 0);
#else
    (void)next_dst;
    (void)next_src;
    (void)j;
#endif
}

/* dst[j] = round((acc ? acc[j] : float(dst[j])) + float(src[j])), the last pass over a touched row,
 * for dst not overlapping acc or src (the scatter-add's contract). A row of at least one vector
 * is done in whole vectors: the last vector, at n - lanes, is summed from the inputs first and
 * stored after the loop, over lanes the loop also wrote with the same values (each lane's
 * result depends only on its own inputs), so no lane needs the scalar conversion. next_dst and
 * next_src are the rows of dW and of rows the caller passes next (NULL after the last): each
 * pass prefetches them, whole or line by line. */
#ifdef FASTNLP_HALF_X86
#define SCATTER_ROUND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* an immediate, even at -O0 */

__attribute__((target("avx512f"))) static inline __m512 scatter_sum16_f16(const uint16_t* dst, const float* acc,
                                                                          const uint16_t* src) {
    __m512 a = acc ? _mm512_loadu_ps(acc) : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)dst));
    return _mm512_add_ps(a, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)src)));
}

__attribute__((target("avx512f"))) static void scatter_row_f16_avx512(uint16_t* dst, const float* acc,
                                                                       const uint16_t* src, ptrdiff_t n) {
    ptrdiff_t last = n - 16;
    __m512 tail_sum = scatter_sum16_f16(dst + last, acc ? acc + last : NULL, src + last);
    __m256i tail = _mm512_cvtps_ph(tail_sum, SCATTER_ROUND);
    if (acc) {
        for (ptrdiff_t j = 0; j < last; j += 16)
            _mm256_storeu_si256((__m256i*)(dst + j), _mm512_cvtps_ph(scatter_sum16_f16(dst + j, acc + j, src + j),
                                                                     SCATTER_ROUND));
    } else {
        for (ptrdiff_t j = 0; j < last; j += 16)
            _mm256_storeu_si256((__m256i*)(dst + j), _mm512_cvtps_ph(scatter_sum16_f16(dst + j, NULL, src + j),
                                                                     SCATTER_ROUND));
    }
    _mm256_storeu_si256((__m256i*)(dst + last), tail);
}

__attribute__((target("avx2,f16c"))) static inline __m256 scatter_sum8_f16(const uint16_t* dst, const float* acc,
                                                                           const uint16_t* src) {
    __m256 a = acc ? _mm256_loadu_ps(acc) : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)dst));
    return _mm256_add_ps(a, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)src)));
}

__attribute__((target("avx2,f16c"))) static void scatter_row_f16_f16c(uint16_t* dst, const float* acc,
                                                                      const uint16_t* src, ptrdiff_t n) {
    ptrdiff_t last = n - 8;
    __m256 tail_sum = scatter_sum8_f16(dst + last, acc ? acc + last : NULL, src + last);
    __m128i tail = _mm256_cvtps_ph(tail_sum, SCATTER_ROUND);
    if (acc) {
        for (ptrdiff_t j = 0; j < last; j += 8)
            _mm_storeu_si128((__m128i*)(dst + j), _mm256_cvtps_ph(scatter_sum8_f16(dst + j, acc + j, src + j),
                                                                  SCATTER_ROUND));
    } else {
        for (ptrdiff_t j = 0; j < last; j += 8)
            _mm_storeu_si128((__m128i*)(dst + j), _mm256_cvtps_ph(scatter_sum8_f16(dst + j, NULL, src + j),
                                                                  SCATTER_ROUND));
    }
    _mm_storeu_si128((__m128i*)(dst + last), tail);
}
#endif

/* float16 with AVX512-FP16 (the fused pass, no acc): one vaddph per 32 values. The float32 sum
 * of two float16 values rounded to float16 is their sum rounded once to float16 (float32's 24
 * bits are at least 2 x 11 + 2, so rounding twice changes nothing), which is what vaddph
 * computes; its rounding is fixed to nearest even here, and float16 instructions never flush
 * subnormals (MXCSR's DAZ and FTZ do not apply to them). The conversions, not memory, bounded
 * the F16C / AVX-512F pass: with this one the scatter-add runs 1.5-1.8x faster at D = 650
 * (bench/compare_scatter_add.py --dtypes, loaded machine). The duplicate path keeps its float32
 * row and the conversions. */
#if defined(FASTNLP_HALF_X86) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define FASTNLP_HAVE_AVX512FP16 1
#define SCATTER_FP16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512fp16")))

SCATTER_FP16_TARGET static inline __m512h scatter_sum32_f16(const uint16_t* dst, const uint16_t* src) {
    return _mm512_add_round_ph(_mm512_loadu_ph(dst), _mm512_loadu_ph(src), SCATTER_ROUND);
}

SCATTER_FP16_TARGET static void scatter_row_f16_avx512fp16(uint16_t* dst, const uint16_t* src, ptrdiff_t n,
                                                           const uint16_t* next_dst, const uint16_t* next_src) {
    ptrdiff_t last = n - 32;
    __m512h tail = scatter_sum32_f16(dst + last, src + last);
    for (ptrdiff_t j = 0; j < last; j += 32) {
        scatter_prefetch_line(next_dst, next_src, j);
        _mm512_storeu_ph(dst + j, scatter_sum32_f16(dst + j, src + j));
    }
    scatter_prefetch_line(next_dst, next_src, n - 1); /* the line the blocks' starts can miss */
    _mm512_storeu_ph(dst + last, tail);
}

#endif

static void scatter_row_f16(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n,
                            const uint16_t* next_dst, const uint16_t* next_src) {
#ifdef FASTNLP_HAVE_AVX512FP16
    if (!acc && n >= 32 && fastnlp_has_avx512fp16()) {
        scatter_row_f16_avx512fp16(dst, src, n, next_dst, next_src);
        return;
    }
#endif
    (void)next_src;
    scatter_prefetch_row(next_dst, n);
#ifdef FASTNLP_HALF_X86
    int isa = fastnlp_half_isa();
    if (isa == 2 && n >= 16) { scatter_row_f16_avx512(dst, acc, src, n); return; }
    if (isa >= 1 && n >= 8) { scatter_row_f16_f16c(dst, acc, src, n); return; }
#endif
    fastnlp_add_f16(dst, acc, src, n);
}

#ifdef FASTNLP_HAVE_AVX512BF16
/* bfloat16: vcvtneps2bf16 flushes float32 subnormal sums to zero (see fastnlp/half.h), so the
 * lanes holding one are redone exactly. They are found with one vfpclassps (AVX512-DQ) per
 * vector and one test per pair of vectors: the and-and-two-compares test of half.h made this
 * loop a third slower, because the conversion work, not memory, bounds it here. */
#define SCATTER_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

SCATTER_BF16_TARGET static void scatter_redo_subnormal_bf16(uint16_t* dst, __m512 sum, __mmask16 subnormal) {
    float lanes[16];
    _mm512_storeu_ps(lanes, sum);
    for (int l = 0; l < 16; ++l)
        if (subnormal & (1u << l)) dst[l] = fastnlp_f32_to_bf16(lanes[l]);
}

SCATTER_BF16_TARGET static inline __m512 scatter_sum16_bf16(const uint16_t* dst, const float* acc,
                                                            const uint16_t* src) {
    return _mm512_add_ps(acc ? _mm512_loadu_ps(acc) : fastnlp_widen16_bf16(dst), fastnlp_widen16_bf16(src));
}

SCATTER_BF16_TARGET static inline void scatter_store16_bf16(uint16_t* dst, __m512 sum) {
    __mmask16 subnormal = _mm512_fpclass_ps_mask(sum, 0x20); /* 0x20: a denormal */
    _mm256_storeu_si256((__m256i*)dst, (__m256i)_mm512_cvtneps_pbh(sum));
    if (__builtin_expect(subnormal != 0, 0)) scatter_redo_subnormal_bf16(dst, sum, subnormal);
}

SCATTER_BF16_TARGET static void scatter_row_bf16_sequential(uint16_t* dst, const float* acc, const uint16_t* src,
                                                             ptrdiff_t n) {
    ptrdiff_t last = n - 16, j = 0;
    uint16_t tail[16];
    scatter_store16_bf16(tail, scatter_sum16_bf16(dst + last, acc ? acc + last : NULL, src + last));
    for (; j + 32 <= last; j += 32) {
        __m512 low = scatter_sum16_bf16(dst + j, acc ? acc + j : NULL, src + j);
        __m512 high = scatter_sum16_bf16(dst + j + 16, acc ? acc + j + 16 : NULL, src + j + 16);
        __mmask16 low_subnormal = _mm512_fpclass_ps_mask(low, 0x20);
        __mmask16 high_subnormal = _mm512_fpclass_ps_mask(high, 0x20);
        _mm256_storeu_si256((__m256i*)(dst + j), (__m256i)_mm512_cvtneps_pbh(low));
        _mm256_storeu_si256((__m256i*)(dst + j + 16), (__m256i)_mm512_cvtneps_pbh(high));
        if (__builtin_expect(!_kortestz_mask16_u8(low_subnormal, high_subnormal), 0)) {
            scatter_redo_subnormal_bf16(dst + j, low, low_subnormal);
            scatter_redo_subnormal_bf16(dst + j + 16, high, high_subnormal);
        }
    }
    for (; j < last; j += 16) scatter_store16_bf16(dst + j, scatter_sum16_bf16(dst + j, acc ? acc + j : NULL, src + j));
    memcpy(dst + last, tail, sizeof tail);
}

/* The fused pass dst = round(dst + src) (no acc), 32 values at a time. Widening by an unpack
 * with zeros puts each value in the high half of a float32 lane directly (one shuffle and no
 * shift per 16 values, where the zero extension above takes both), in the unpack's in-lane
 * order: low = values 0-3, 8-11, 16-19, 24-27 and high = the others. One vcvtne2ps2bf16 rounds
 * both halves and one qword permutation puts the 32 results back in order. A result word that
 * is +-0 is the only sign of a float32 subnormal sum, which vcvtne2ps2bf16 flushes: one
 * vptestnmw per 32 values finds them, and only then are the sums classified and the subnormal
 * lanes redone exactly. Against the sequential pass: 1.0-1.2x the scatter-add's speed at
 * D = 650. The next rows asked for one line per block instead of dW's row whole before the row:
 * 1.06-1.27x faster (bfloat16 1.45-1.62x float32's speed before, 1.69-1.86x after; float16's
 * vaddph pass 0.96-1.12x, measured side by side in one process, load 5-6). Rounding by shifts
 * and vpermw, a masked last block and prefetching two rows ahead measured no faster. */
SCATTER_BF16_TARGET static inline __m512i scatter_sum32_bf16(const uint16_t* dst, const uint16_t* src, __m512* low,
                                                             __m512* high) {
    const __m512i zero = _mm512_setzero_si512(), in_order = _mm512_set_epi64(7, 3, 6, 2, 5, 1, 4, 0);
    __m512i d = _mm512_loadu_si512(dst), s = _mm512_loadu_si512(src);
    *low = _mm512_add_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, d)),
                         _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, s)));
    *high = _mm512_add_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, d)),
                          _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, s)));
    return _mm512_permutexvar_epi64(in_order, (__m512i)_mm512_cvtne2ps_pbh(*high, *low));
}

SCATTER_BF16_TARGET static inline void scatter_store32_bf16(uint16_t* dst, __m512i rounded, __m512 low, __m512 high) {
    static const unsigned char low_position[16] = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    __mmask32 zero = _mm512_testn_epi16_mask(rounded, _mm512_set1_epi16(0x7FFF));
    _mm512_storeu_si512(dst, rounded);
    if (__builtin_expect(zero != 0, 0)) {
        __mmask16 low_subnormal = _mm512_fpclass_ps_mask(low, 0x20);
        __mmask16 high_subnormal = _mm512_fpclass_ps_mask(high, 0x20);
        if (low_subnormal | high_subnormal) {
            float low_sums[16], high_sums[16];
            _mm512_storeu_ps(low_sums, low);
            _mm512_storeu_ps(high_sums, high);
            for (int l = 0; l < 16; ++l) { /* high lane l holds the value 4 after low lane l's */
                if (low_subnormal & (1u << l)) dst[low_position[l]] = fastnlp_f32_to_bf16(low_sums[l]);
                if (high_subnormal & (1u << l)) dst[low_position[l] + 4] = fastnlp_f32_to_bf16(high_sums[l]);
            }
        }
    }
}

SCATTER_BF16_TARGET static void scatter_row_bf16_unpacked(uint16_t* dst, const uint16_t* src, ptrdiff_t n,
                                                          const uint16_t* next_dst, const uint16_t* next_src) {
    ptrdiff_t last = n - 32;
    __m512 low, high, tail_low, tail_high;
    __m512i tail = scatter_sum32_bf16(dst + last, src + last, &tail_low, &tail_high);
    for (ptrdiff_t j = 0; j < last; j += 32) {
        scatter_prefetch_line(next_dst, next_src, j);
        __m512i rounded = scatter_sum32_bf16(dst + j, src + j, &low, &high);
        scatter_store32_bf16(dst + j, rounded, low, high);
    }
    scatter_prefetch_line(next_dst, next_src, n - 1); /* the line the blocks' starts can miss */
    scatter_store32_bf16(dst + last, tail, tail_low, tail_high);
}

SCATTER_BF16_TARGET static void scatter_row_bf16_avx512bf16(uint16_t* dst, const float* acc, const uint16_t* src,
                                                            ptrdiff_t n, const uint16_t* next_dst,
                                                            const uint16_t* next_src) {
    if (!acc && n >= 32) {
        scatter_row_bf16_unpacked(dst, src, n, next_dst, next_src);
        return;
    }
    scatter_prefetch_row(next_dst, n);
    scatter_row_bf16_sequential(dst, acc, src, n);
}
#endif

static void scatter_row_bf16(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n,
                             const uint16_t* next_dst, const uint16_t* next_src) {
#ifdef FASTNLP_HAVE_AVX512BF16
    if (n >= 16 && fastnlp_bf16_fpclass_isa()) {
        scatter_row_bf16_avx512bf16(dst, acc, src, n, next_dst, next_src);
        return;
    }
#endif
    (void)next_src;
    scatter_prefetch_row(next_dst, n);
    fastnlp_add_bf16(dst, acc, src, n);
}

#define FASTNLP_HALF_SCATTER(FMT)                                                                \
    static int scatter_add_rows_##FMT(uint16_t* dW, const int64_t* idx, const uint16_t* rows,  \
                                      ptrdiff_t n_ids, ptrdiff_t width) {                      \
        ptrdiff_t capacity = 16;                                                                \
        while (capacity < 2 * n_ids) capacity *= 2;                                             \
        int64_t* next = (int64_t*)malloc(sizeof(int64_t) * (size_t)(n_ids + 2 * capacity));    \
        unsigned char* repeat = (unsigned char*)malloc((size_t)n_ids);                          \
        float* acc = (float*)malloc(sizeof(float) * (size_t)width);                             \
        if (!next || !repeat || !acc) {                                                         \
            free(next); free(repeat); free(acc);                                                \
            return -1;                                                                          \
        }                                                                                       \
        link_duplicates(idx, n_ids, next, repeat, next + n_ids, capacity);                      \
        for (ptrdiff_t i = 0, ahead; i < n_ids; i = ahead) {                                    \
            /* ahead: the next position the loop updates (repeats are summed with their first) */ \
            for (ahead = i + 1; ahead < n_ids && repeat[ahead]; ++ahead) {}                     \
            uint16_t* target = dW + idx[i] * width;                                             \
            const uint16_t* next_target = ahead < n_ids ? dW + idx[ahead] * width : NULL;       \
            const uint16_t* next_source = ahead < n_ids ? rows + ahead * width : NULL;          \
            if (next[i] < 0) {                                                                  \
                scatter_row_##FMT(target, NULL, rows + i * width, width, next_target, next_source); \
                continue;                                                                       \
            }                                                                                   \
            scatter_prefetch_row(next_target, width); /* while the id's rows are summed */      \
            fastnlp_widen_##FMT(target, acc, width);                                            \
            ptrdiff_t k = i;                                                                    \
            for (; next[k] >= 0; k = next[k]) fastnlp_accumulate_##FMT(acc, rows + k * width, width); \
            scatter_row_##FMT(target, acc, rows + k * width, width, NULL, NULL);                \
        }                                                                                       \
        free(next); free(repeat); free(acc);                                                    \
        return 0;                                                                               \
    }

FASTNLP_HALF_SCATTER(f16)
FASTNLP_HALF_SCATTER(bf16)
