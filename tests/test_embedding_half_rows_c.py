"""kernels/embedding/row_ops.h's float16 / bfloat16 row passes of the scatter-add, every
instruction-set version this CPU runs (AVX-512, F16C, AVX512-FP16, AVX512-BF16) and half.h's passes they fall back on,
against half.h's exact scalar conversions, bit for bit, on random 16-bit patterns (subnormals,
inf and NaN included) and every row length from 1 to 100 (whole vectors and the overlapping last
one), with and without a next row to prefetch. The generated registry tests reach only the version the loader picks on this CPU; this
compiles the header into a small C program and calls each version directly. Needs gcc."""
import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"

PROGRAM = r"""
#include <stdio.h>
#include "row_ops.h"

static uint64_t state = 7;
static uint64_t next_random(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
static uint16_t pattern(void) { /* any bits, a third of them subnormal or tiny */
    uint16_t r = (uint16_t)next_random();
    switch (next_random() % 3) { case 0: return r & 0x83FF; case 1: return r & 0x80FF; default: return r; }
}

typedef void (*row_pass)(uint16_t*, const float*, const uint16_t*, ptrdiff_t);

/* The next rows the scatter-add's passes prefetch (NULL after the last id): set per trial, never
 * read by a pass, so its results must not depend on them. */
static uint16_t next_rows[2][128];
static const uint16_t *ahead_dst, *ahead_src;

/* takes_acc 0: a pass for the fused case only (acc NULL), as its dispatcher calls it. */
static long check(row_pass pass, int bf16, ptrdiff_t min_n, int takes_acc) {
    long bad = 0;
    for (int trial = 0; trial < 40000; ++trial) {
        ptrdiff_t n = min_n + (ptrdiff_t)(next_random() % (101 - min_n));
        int with_acc = takes_acc && next_random() % 2;
        ahead_dst = trial % 2 ? next_rows[0] : NULL;
        ahead_src = trial % 2 ? next_rows[1] : NULL;
        uint16_t dst[128], src[128], want[128];
        float acc[128];
        for (ptrdiff_t j = 0; j < n; ++j) {
            dst[j] = pattern();
            src[j] = pattern();
            uint32_t u = (uint32_t)next_random();
            if (next_random() % 3 == 0) u &= 0x80FFFFFFu; /* float32 subnormals in acc */
            memcpy(&acc[j], &u, 4);
        }
        for (ptrdiff_t j = 0; j < n; ++j) {
            float a = with_acc ? acc[j] : (bf16 ? fastnlp_bf16_to_f32(dst[j]) : fastnlp_f16_to_f32(dst[j]));
            float sum = a + (bf16 ? fastnlp_bf16_to_f32(src[j]) : fastnlp_f16_to_f32(src[j]));
            want[j] = bf16 ? fastnlp_f32_to_bf16(sum) : fastnlp_f32_to_f16(sum);
        }
        pass(dst, with_acc ? acc : NULL, src, n);
        uint16_t inf = bf16 ? 0x7F80 : 0x7C00;
        for (ptrdiff_t j = 0; j < n; ++j) {
            int want_nan = (want[j] & 0x7FFF) > inf, got_nan = (dst[j] & 0x7FFF) > inf;
            if (want_nan ? !got_nan : dst[j] != want[j]) ++bad;
        }
    }
    return bad;
}

static void dispatch_f16_pass(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    scatter_row_f16(dst, acc, src, n, ahead_dst, ahead_src);
}
static void dispatch_bf16_pass(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    scatter_row_bf16(dst, acc, src, n, ahead_dst, ahead_src);
}
#ifdef FASTNLP_HAVE_AVX512BF16
static void bf16_pass(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    scatter_row_bf16_avx512bf16(dst, acc, src, n, ahead_dst, ahead_src);
}
static void bf16_unpacked_pass(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    (void)acc;
    scatter_row_bf16_unpacked(dst, src, n, ahead_dst, ahead_src);
}
#endif
#ifdef FASTNLP_HAVE_AVX512FP16
static void fp16_pass(uint16_t* dst, const float* acc, const uint16_t* src, ptrdiff_t n) {
    (void)acc;
    scatter_row_f16_avx512fp16(dst, src, n, ahead_dst, ahead_src);
}
#endif

int main(void) {
    __builtin_cpu_init();
    printf("half.h-f16 %ld\n", check(fastnlp_add_f16, 0, 1, 1));
    printf("half.h-bf16 %ld\n", check(fastnlp_add_bf16_clones, 1, 1, 1));
    printf("dispatch-f16 %ld\n", check(dispatch_f16_pass, 0, 1, 1));
    printf("dispatch-bf16 %ld\n", check(dispatch_bf16_pass, 1, 1, 1));
    if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2"))
        printf("f16c %ld\n", check(scatter_row_f16_f16c, 0, 8, 1));
    if (__builtin_cpu_supports("avx512f"))
        printf("avx512f %ld\n", check(scatter_row_f16_avx512, 0, 16, 1));
#ifdef FASTNLP_HAVE_AVX512FP16
    if (fastnlp_has_avx512fp16())
        printf("avx512fp16 %ld\n", check(fp16_pass, 0, 32, 0));
#endif
#ifdef FASTNLP_HAVE_AVX512BF16
    if (fastnlp_bf16_fpclass_isa()) {
        printf("avx512bf16 %ld\n", check(bf16_pass, 1, 16, 1));
        printf("avx512bf16-unpacked %ld\n", check(bf16_unpacked_pass, 1, 32, 0));
    }
#endif
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH: the row passes are compiled here")
def test_every_row_pass_matches_the_scalar_conversions(tmp_path):
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the instruction-set versions are x86-64 code")
    source = tmp_path / "row_passes.c"
    source.write_text(PROGRAM)
    program = tmp_path / "row_passes"
    subprocess.run(["gcc", "-O3", f"-I{KERNELS / 'embedding'}", f"-I{KERNELS / 'include'}", str(source),
                    "-o", str(program)], check=True, capture_output=True, text=True)
    lines = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout.split("\n")
    mismatches = dict(line.split() for line in lines if line)
    assert {"half.h-f16", "half.h-bf16", "dispatch-f16", "dispatch-bf16"} <= set(mismatches)
    assert all(count == "0" for count in mismatches.values()), mismatches
