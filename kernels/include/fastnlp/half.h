/* float16 and bfloat16 storage for the C kernels: arrays hold the 16-bit patterns (uint16_t),
 * every sum is taken in float32, and a float32 result is rounded once to the storage format,
 * to nearest, ties to even, the way NumPy (float16) and ml_dtypes (bfloat16) round, so kernels
 * match the NumPy references bit for bit (NaN payloads aside: a NaN stays a quiet NaN).
 *
 * Scalar conversions (portable C, exact; used for loop tails and on any CPU):
 *   fastnlp_f16_to_f32 / fastnlp_f32_to_f16, fastnlp_bf16_to_f32 / fastnlp_f32_to_bf16.
 * Row conversions (the loops of the kernels):
 *   fastnlp_widen_<fmt>(src, dst, n)       dst[j] = float(src[j])
 *   fastnlp_accumulate_<fmt>(acc, src, n)  acc[j] += float(src[j])
 *   fastnlp_narrow_<fmt>(src, dst, n)      dst[j] = round_to_<fmt>(src[j])
 *   fastnlp_narrow_bf16_fast(src, dst, n)  fastnlp_narrow_bf16's bits, by vcvtneps2bf16 on AVX512-BF16
 *   fastnlp_add_<fmt>(dst, acc, src, n)    dst[j] = round_to_<fmt>((acc ? acc[j] : float(dst[j])) + float(src[j]))
 *
 * float16 uses the CPU's conversion instructions, picked once at run time (fastnlp_half_isa):
 * AVX-512F vcvtph2ps / vcvtps2ph on 16 lanes, F16C on 8, portable C elsewhere. No float16
 * arithmetic is done (the contracts accumulate in float32), so AVX512-FP16 adds nothing here.
 * bfloat16 widening is a 16-bit shift. Narrowing uses AVX512-BF16's vcvtneps2bf16 where the
 * CPU has it (fastnlp_bf16_isa), with the lanes it gets wrong redone exactly: it flushes float32
 * subnormals to zero, which ml_dtypes does not. Elsewhere the integer round-to-nearest-even
 * sequence below, compiled per instruction set (FASTNLP_CLONES). */
#ifndef FASTNLP_HALF_H
#define FASTNLP_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastnlp/dispatch.h"

static inline uint32_t fastnlp_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float fastnlp_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bfloat16 is the top half of a float32. */
static inline float fastnlp_bf16_to_f32(uint16_t h) { return fastnlp_bits_f32((uint32_t)h << 16); }

static inline uint16_t fastnlp_f32_to_bf16(float f) {
    uint32_t u = fastnlp_f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: quiet */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* ties to even; overflow -> inf */
}

static inline float fastnlp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    if (exponent == 0x1F) return fastnlp_bits_f32(sign | 0x7F800000u | (mantissa << 13)); /* inf, NaN */
    if (exponent != 0) return fastnlp_bits_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return fastnlp_bits_f32(sign);
    exponent = 113; /* a subnormal: normalise */
    while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        --exponent;
    }
    return fastnlp_bits_f32(sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13));
}

static inline uint16_t fastnlp_f32_to_f16(float f) {
    uint32_t u = fastnlp_f32_bits(f), sign = (u >> 16) & 0x8000u, x = u & 0x7FFFFFFFu;
    if (x > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((x >> 13) & 0x3FFu)); /* NaN: quiet */
    if (x >= 0x47800000u) return (uint16_t)(sign | 0x7C00u);                      /* >= 2^16, inf */
    if (x >= 0x38800000u) { /* a normal float16 (or a round up to inf): ties to even */
        x += 0xFFFu + ((x >> 13) & 1u);
        return (uint16_t)(sign | ((x - 0x38000000u) >> 13));
    }
    if (x <= 0x33000000u) return (uint16_t)sign; /* at most 2^-25: zero (2^-25 ties to even) */
    {                                             /* a float16 subnormal, in units of 2^-24 */
        uint32_t exponent = x >> 23, mantissa = (x & 0x7FFFFFu) | 0x800000u, shift = 126u - exponent;
        uint32_t h = mantissa >> shift, rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (h & 1u))) ++h; /* a carry into bit 10 gives 2^-14 */
        return (uint16_t)(sign | h);
    }
}

/* ----- bfloat16 rows: plain C that GCC vectorises, one clone per instruction set ------------ */

#if defined(__GNUC__) || defined(__clang__)
#define FASTNLP_HALF_UNUSED __attribute__((unused)) /* a kernel file may use only some row helpers */
#else
#define FASTNLP_HALF_UNUSED
#endif

FASTNLP_CLONES FASTNLP_HALF_UNUSED static void fastnlp_widen_bf16(const uint16_t* __restrict src, float* __restrict dst, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fastnlp_bf16_to_f32(src[j]);
}

FASTNLP_CLONES FASTNLP_HALF_UNUSED static void fastnlp_accumulate_bf16_clones(float* __restrict acc, const uint16_t* __restrict src,
                                                   ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; ++j) acc[j] += fastnlp_bf16_to_f32(src[j]);
}

/* fastnlp_f32_to_bf16 on the bits u, as a select rather than a branch (it vectorises). */
static inline uint16_t fastnlp_round_bf16(uint32_t u) {
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x0040u;
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
}

FASTNLP_CLONES FASTNLP_HALF_UNUSED static void fastnlp_narrow_bf16(const float* __restrict src,
                                                                  uint16_t* __restrict dst, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fastnlp_round_bf16(fastnlp_f32_bits(src[j]));
}

FASTNLP_CLONES FASTNLP_HALF_UNUSED static void fastnlp_add_bf16_clones(uint16_t* __restrict dst, const float* __restrict acc,
                                            const uint16_t* __restrict src, ptrdiff_t n) {
    if (acc) { /* two loops, each vectorised (a choice inside one loop keeps GCC from it) */
        for (ptrdiff_t j = 0; j < n; ++j)
            dst[j] = fastnlp_round_bf16(fastnlp_f32_bits(acc[j] + fastnlp_bf16_to_f32(src[j])));
    } else {
        for (ptrdiff_t j = 0; j < n; ++j)
            dst[j] = fastnlp_round_bf16(fastnlp_f32_bits(fastnlp_bf16_to_f32(dst[j]) + fastnlp_bf16_to_f32(src[j])));
    }
}

/* ----- float16 rows: the CPU's conversion instructions, chosen once ------------------------- */

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FASTNLP_HALF_X86 1
#include <immintrin.h>

/* 2: AVX-512F (16 lanes), 1: F16C with AVX2 (8 lanes), 0: portable C (dispatch.h asks the CPU). */
static inline int fastnlp_half_isa(void) { return fastnlp_vector_level(); }

__attribute__((target("avx512f"))) static void fastnlp_widen_f16_avx512(const uint16_t* src, float* dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dst + j, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(src + j))));
    for (; j < n; ++j) dst[j] = fastnlp_f16_to_f32(src[j]);
}

__attribute__((target("avx512f"))) static void fastnlp_accumulate_f16_avx512(float* acc, const uint16_t* src,
                                                                             ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(src + j)));
        _mm512_storeu_ps(acc + j, _mm512_add_ps(_mm512_loadu_ps(acc + j), x));
    }
    for (; j < n; ++j) acc[j] += fastnlp_f16_to_f32(src[j]);
}

__attribute__((target("avx512f"))) static void fastnlp_narrow_f16_avx512(const float* src, uint16_t* dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm256_storeu_si256((__m256i*)(dst + j),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; j < n; ++j) dst[j] = fastnlp_f32_to_f16(src[j]);
}

__attribute__((target("avx2,f16c"))) static void fastnlp_widen_f16_f16c(const uint16_t* src, float* dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + j))));
    for (; j < n; ++j) dst[j] = fastnlp_f16_to_f32(src[j]);
}

__attribute__((target("avx2,f16c"))) static void fastnlp_accumulate_f16_f16c(float* acc, const uint16_t* src,
                                                                            ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + j)));
        _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), x));
    }
    for (; j < n; ++j) acc[j] += fastnlp_f16_to_f32(src[j]);
}

__attribute__((target("avx2,f16c"))) static void fastnlp_narrow_f16_f16c(const float* src, uint16_t* dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm_storeu_si128((__m128i*)(dst + j),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; j < n; ++j) dst[j] = fastnlp_f32_to_f16(src[j]);
}

/* dst[j] = round((acc ? acc[j] : dst[j]) + src[j]) in one pass (the scatter-add's last row). */
__attribute__((target("avx512f"))) static void fastnlp_add_f16_avx512(uint16_t* dst, const float* acc, const uint16_t* src,
                                                                     ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 a = acc ? _mm512_loadu_ps(acc + j) : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(dst + j)));
        __m512 sum = _mm512_add_ps(a, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(src + j))));
        _mm256_storeu_si256((__m256i*)(dst + j), _mm512_cvtps_ph(sum, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; j < n; ++j) dst[j] = fastnlp_f32_to_f16((acc ? acc[j] : fastnlp_f16_to_f32(dst[j])) + fastnlp_f16_to_f32(src[j]));
}

__attribute__((target("avx2,f16c"))) static void fastnlp_add_f16_f16c(uint16_t* dst, const float* acc, const uint16_t* src,
                                                                     ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 a = acc ? _mm256_loadu_ps(acc + j) : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(dst + j)));
        __m256 sum = _mm256_add_ps(a, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + j))));
        _mm_storeu_si128((__m128i*)(dst + j), _mm256_cvtps_ph(sum, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; j < n; ++j) dst[j] = fastnlp_f32_to_f16((acc ? acc[j] : fastnlp_f16_to_f32(dst[j])) + fastnlp_f16_to_f32(src[j]));
}

static inline const char* fastnlp_half_isa_name(void) {
    static const char* names[] = {"portable", "f16c", "avx512f"};
    return names[fastnlp_half_isa()];
}

/* bfloat16 with AVX512-BF16: vcvtneps2bf16 rounds 16 lanes to nearest even in one instruction
 * but flushes float32 subnormals to zero, so lanes holding one (|x| < 2^-126, not zero) are
 * redone with the exact integer rounding: the same bits as the reference, at the
 * instruction's speed in the common case. 1 when this CPU has it (and the compiler knows it). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define FASTNLP_HAVE_AVX512BF16 1
static inline int fastnlp_bf16_isa(void) {
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && fastnlp_isa_cap() >= FASTNLP_CAP_AVX512BF16;
    }
    return level;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static inline __m512 fastnlp_widen16_bf16(
    const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static inline void fastnlp_store16_bf16(
    uint16_t* dst, __m512 sum) {
    __m256i rounded = (__m256i)_mm512_cvtneps_pbh(sum);
    __m512i magnitude = _mm512_and_si512(_mm512_castps_si512(sum), _mm512_set1_epi32(0x7FFFFFFF));
    __mmask16 subnormal = _mm512_cmplt_epu32_mask(magnitude, _mm512_set1_epi32(0x00800000)) &
                          _mm512_cmpneq_epi32_mask(magnitude, _mm512_setzero_si512());
    _mm256_storeu_si256((__m256i*)dst, rounded);
    if (subnormal) { /* rare: redo those lanes exactly */
        float lanes[16];
        _mm512_storeu_ps(lanes, sum);
        for (int l = 0; l < 16; ++l)
            if (subnormal & (1u << l)) dst[l] = fastnlp_f32_to_bf16(lanes[l]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void fastnlp_add_bf16_avx512bf16(
    uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 a = acc ? _mm512_loadu_ps(acc + j) : fastnlp_widen16_bf16(dst + j);
        fastnlp_store16_bf16(dst + j, _mm512_add_ps(a, fastnlp_widen16_bf16(src + j)));
    }
    for (; j < n; ++j)
        dst[j] = fastnlp_f32_to_bf16((acc ? acc[j] : fastnlp_bf16_to_f32(dst[j])) + fastnlp_bf16_to_f32(src[j]));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void fastnlp_accumulate_bf16_avx512bf16(
    float* acc, const uint16_t* src, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(acc + j, _mm512_add_ps(_mm512_loadu_ps(acc + j), fastnlp_widen16_bf16(src + j)));
    for (; j < n; ++j) acc[j] += fastnlp_bf16_to_f32(src[j]);
}
#endif /* FASTNLP_HAVE_AVX512BF16 */
#else
static inline int fastnlp_half_isa(void) { return 0; }
static inline const char* fastnlp_half_isa_name(void) { return "portable"; }
#endif /* FASTNLP_HALF_X86 */
#if !defined(FASTNLP_HAVE_AVX512BF16)
static inline int fastnlp_bf16_isa(void) { return 0; }
#endif

FASTNLP_HALF_UNUSED static void fastnlp_widen_f16(const uint16_t* src, float* dst, ptrdiff_t n) {
#ifdef FASTNLP_HALF_X86
    int isa = fastnlp_half_isa();
    if (isa == 2) { fastnlp_widen_f16_avx512(src, dst, n); return; }
    if (isa == 1) { fastnlp_widen_f16_f16c(src, dst, n); return; }
#endif
    for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fastnlp_f16_to_f32(src[j]);
}

FASTNLP_HALF_UNUSED static void fastnlp_accumulate_f16(float* acc, const uint16_t* src, ptrdiff_t n) {
#ifdef FASTNLP_HALF_X86
    int isa = fastnlp_half_isa();
    if (isa == 2) { fastnlp_accumulate_f16_avx512(acc, src, n); return; }
    if (isa == 1) { fastnlp_accumulate_f16_f16c(acc, src, n); return; }
#endif
    for (ptrdiff_t j = 0; j < n; ++j) acc[j] += fastnlp_f16_to_f32(src[j]);
}

FASTNLP_HALF_UNUSED static void fastnlp_narrow_f16(const float* src, uint16_t* dst, ptrdiff_t n) {
#ifdef FASTNLP_HALF_X86
    int isa = fastnlp_half_isa();
    if (isa == 2) { fastnlp_narrow_f16_avx512(src, dst, n); return; }
    if (isa == 1) { fastnlp_narrow_f16_f16c(src, dst, n); return; }
#endif
    for (ptrdiff_t j = 0; j < n; ++j) dst[j] = fastnlp_f32_to_f16(src[j]);
}

FASTNLP_HALF_UNUSED static void fastnlp_add_f16(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
#ifdef FASTNLP_HALF_X86
    int isa = fastnlp_half_isa();
    if (isa == 2) { fastnlp_add_f16_avx512(dst, acc, src, n); return; }
    if (isa == 1) { fastnlp_add_f16_f16c(dst, acc, src, n); return; }
#endif
    for (ptrdiff_t j = 0; j < n; ++j)
        dst[j] = fastnlp_f32_to_f16((acc ? acc[j] : fastnlp_f16_to_f32(dst[j])) + fastnlp_f16_to_f32(src[j]));
}

FASTNLP_HALF_UNUSED static void fastnlp_add_bf16(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
#ifdef FASTNLP_HAVE_AVX512BF16
    if (fastnlp_bf16_isa()) { fastnlp_add_bf16_avx512bf16(dst, acc, src, n); return; }
#endif
    fastnlp_add_bf16_clones(dst, acc, src, n);
}

FASTNLP_HALF_UNUSED static void fastnlp_accumulate_bf16(float* acc, const uint16_t* src, ptrdiff_t n) {
#ifdef FASTNLP_HAVE_AVX512BF16
    if (fastnlp_bf16_isa()) { fastnlp_accumulate_bf16_avx512bf16(acc, src, n); return; }
#endif
    fastnlp_accumulate_bf16_clones(acc, src, n);
}

/* dst[j] = round_to_bf16(src[j]): the bits of fastnlp_narrow_bf16, with AVX512-BF16's
 * vcvtneps2bf16 (subnormal lanes redone exactly, fastnlp_store16_bf16) where the CPU has it. */
#ifdef FASTNLP_HAVE_AVX512BF16
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) FASTNLP_HALF_UNUSED static void fastnlp_narrow_bf16_avx512bf16(
    const float* src, uint16_t* dst, ptrdiff_t n) {
    ptrdiff_t j = 0;
    for (; j + 16 <= n; j += 16) fastnlp_store16_bf16(dst + j, _mm512_loadu_ps(src + j));
    for (; j < n; ++j) dst[j] = fastnlp_f32_to_bf16(src[j]);
}
#endif

FASTNLP_HALF_UNUSED static void fastnlp_narrow_bf16_fast(const float* src, uint16_t* dst, ptrdiff_t n) {
#ifdef FASTNLP_HAVE_AVX512BF16
    if (fastnlp_bf16_isa()) { fastnlp_narrow_bf16_avx512bf16(src, dst, n); return; }
#endif
    fastnlp_narrow_bf16(src, dst, n);
}

/* 1 when the CPU has AVX512-BF16 (fastnlp_bf16_isa) and AVX512-DQ's vfpclassps, with which a
 * bfloat16 narrowing finds the float32 subnormals vcvtneps2bf16 flushes in one instruction (the
 * scatter-add's row pass, kernels/embedding/row_ops.h). Asked of the CPU once. */
static inline int fastnlp_bf16_fpclass_isa(void) {
#ifdef FASTNLP_HAVE_AVX512BF16
    static int level = -1; /* a benign race: every thread computes the same value */
    if (level < 0) level = fastnlp_bf16_isa() && __builtin_cpu_supports("avx512dq");
    return level;
#else
    return 0;
#endif
}

#endif /* FASTNLP_HALF_H */
