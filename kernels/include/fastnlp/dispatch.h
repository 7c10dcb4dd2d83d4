/* The one instruction-set dispatch of the compiled kernels (C via Cython).
 *
 * A hot loop marked FASTNLP_CLONES is compiled once per instruction set in FASTNLP_ISA_LEVELS
 * (GCC function multiversioning); the dynamic loader calls the widest clone this CPU runs,
 * chosen once from cpuid. A portable build (no -march) thus still runs 512- or 256-bit code
 * where the CPU has it. fastnlp_isa_level() names the clone the loader picks, with the same
 * test GCC's resolver makes (for `fastnlp backends`, benchmarks and tests). Elsewhere (Clang,
 * other architectures or systems) loops are compiled once for the build's target. */
#ifndef FASTNLP_DISPATCH_H
#define FASTNLP_DISPATCH_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTNLP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* For a loop whose AVX-512 clone measured slower than its AVX2 one (word2vec's 4-lane step:
 * 7-13% slower on a Xeon with AVX-512, bench/compare_word2vec.py; kernels/word2vec now runs a
 * 16-lane step of its own on AVX-512 instead). */
#define FASTNLP_CLONES_UP_TO_AVX2 __attribute__((target_clones("avx2", "default")))
/* The clone the loader runs here: of FASTNLP_CLONES (with_avx512 = 1) or of
 * FASTNLP_CLONES_UP_TO_AVX2 (0). */
static inline const char* fastnlp_isa_level(int with_avx512) {
    __builtin_cpu_init();
    if (with_avx512 && __builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2")) return "avx2";
    return "default";
}
#else
#define FASTNLP_CLONES
#define FASTNLP_CLONES_UP_TO_AVX2
static inline const char* fastnlp_isa_level(int with_avx512) { (void)with_avx512; return "default"; }
#endif

/* FASTNLP_MAX_ISA caps the kernels' own instruction-set branches below (not the compiler's
 * clones above, which follow the CPU): "default", "avx2", "avx512f", "avx512bf16" (an AMD Zen 4
 * has no AVX512-FP16), "avx512fp16" or unset (no cap). It lets one machine run, and the tests
 * check, the paths other CPUs take. The Python side (kernels/cpu.py) refuses any other value
 * when a compiled kernel is first looked up; here an unknown one caps nothing. Read once. */
#include <stdlib.h>
#include <string.h>
enum { FASTNLP_CAP_DEFAULT, FASTNLP_CAP_AVX2, FASTNLP_CAP_AVX512F, FASTNLP_CAP_AVX512BF16, FASTNLP_CAP_NONE };
static inline int fastnlp_isa_cap(void) {
    static int cap = -1; /* a benign race: every thread computes the same value */
    if (cap < 0) {
        static const char* const names[] = {"default", "avx2", "avx512f", "avx512bf16"};
        const char* value = getenv("FASTNLP_MAX_ISA");
        int found = FASTNLP_CAP_NONE;
        for (int i = 0; value && i < FASTNLP_CAP_NONE; ++i)
            if (strcmp(value, names[i]) == 0) found = i;
        cap = found;
    }
    return cap;
}

/* For loops compiled with per-function target attributes rather than clones (half.h's conversion
 * intrinsics, which GCC will not put inside a target_clones function, and topk.h's scans): 2 = AVX-512F, 1 = AVX2
 * with F16C, 0 = neither. Asked of the CPU once; every run-time CPU question lives in this file. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
static inline int fastnlp_vector_level(void) {
    static int level = -1; /* a benign race: every thread computes the same value */
    if (level < 0) {
        __builtin_cpu_init();
        int cap = fastnlp_isa_cap();
        level = __builtin_cpu_supports("avx512f") && cap >= FASTNLP_CAP_AVX512F ? 2
                : (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2") && cap >= FASTNLP_CAP_AVX2) ? 1 : 0;
    }
    return level;
}
#else
static inline int fastnlp_vector_level(void) { return 0; }
#endif

/* 1 when the CPU runs AVX512-FP16 arithmetic (with AVX512-BW/VL), for the float16 passes that
 * add in float16 itself (embedding/row_ops.h). GCC names the feature from version 12. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__)
static inline int fastnlp_has_avx512fp16(void) {
    static int level = -1; /* a benign race, as above */
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512fp16") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && fastnlp_isa_cap() == FASTNLP_CAP_NONE;
    }
    return level;
}
#else
static inline int fastnlp_has_avx512fp16(void) { return 0; }
#endif

/* 1 when the CPU has AMX tiles with bf16 products (gemm/amx_gemm.h) and no FASTNLP_MAX_ISA cap
 * hides them; whether Linux grants the tile data is asked separately (fastnlp_amx_request). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__)
static inline int fastnlp_has_amx_bf16(void) {
    static int level = -1; /* a benign race, as above */
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
                fastnlp_isa_cap() == FASTNLP_CAP_NONE;
    }
    return level;
}
#else
static inline int fastnlp_has_amx_bf16(void) { return 0; }
#endif

#endif /* FASTNLP_DISPATCH_H */
