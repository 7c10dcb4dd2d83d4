/* Stand-in for CUDA's <cuda_bf16.h> in the CPU emulation (tests/cuda_emulation): __nv_bfloat16
 * is its 16-bit pattern, the top half of a float32; float -> bfloat16 rounds to nearest even and
 * keeps a NaN a (quiet) NaN, as __float2bfloat16_rn does. */
#ifndef FASTNLP_EMULATED_CUDA_BF16_H
#define FASTNLP_EMULATED_CUDA_BF16_H
#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    unsigned short x;
};
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 is 16 bits");

static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        h.x = (unsigned short)((u >> 16) | 0x0040u);
    else
        h.x = (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    return h;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
#endif
