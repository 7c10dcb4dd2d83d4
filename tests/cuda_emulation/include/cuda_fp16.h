/* Stand-in for CUDA's <cuda_fp16.h> in the CPU emulation (tests/cuda_emulation): __half is its
 * 16-bit pattern; conversions go through GCC's _Float16, whose float -> _Float16 conversion rounds
 * once to nearest even (libgcc), independently of the project's half.h and of NumPy. */
#ifndef FASTNLP_EMULATED_CUDA_FP16_H
#define FASTNLP_EMULATED_CUDA_FP16_H
#include <string.h>

struct __half {
    unsigned short x;
};
static_assert(sizeof(__half) == 2, "__half is 16 bits");

static inline float __half2float(__half h) {
    _Float16 f;
    memcpy(&f, &h.x, 2);
    return (float)f;
}
static inline __half __float2half_rn(float x) {
    _Float16 f = (_Float16)x;
    __half h;
    memcpy(&h.x, &f, 2);
    return h;
}
static inline __half __float2half(float x) { return __float2half_rn(x); }
#endif
