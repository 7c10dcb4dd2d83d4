// dropout_forward for CuPy RawModule (contract in __init__.py): a grid-stride loop drawing
// splitmix64 (fastnlp/rng.h, pasted in by kernels/_cuda.py) per element. Inputs are validated
// on the host.
#include "../include/fastnlp/rng.h"

extern "C" {
__global__ void dropout_forward_f32(const float* x, float* out, float* mask, unsigned long long keep_below,
                                    float scale, unsigned long long seed, unsigned long long first, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float m = (fastnlp_splitmix64(seed, first + (unsigned long long)i) >> 32) < keep_below ? scale : 0.0f;
        mask[i] = m;
        out[i] = __fmul_rn(x[i], m);
    }
}
__global__ void dropout_forward_f64(const double* x, double* out, double* mask, unsigned long long keep_below,
                                    double scale, unsigned long long seed, unsigned long long first, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const double m = (fastnlp_splitmix64(seed, first + (unsigned long long)i) >> 32) < keep_below ? scale : 0.0;
        mask[i] = m;
        out[i] = __dmul_rn(x[i], m);
    }
}
}
