// round_to_format for CuPy RawModule: one element per thread of a grid-stride loop, each with
// the draw its index gives (fastnlp/rounding.h, shared with the C loop), so the result does not
// depend on the launch shape. Inputs are validated on the host (rounding/__init__.py).
// kernels/_cuda.py pastes the shared headers (this one includes rng.h) in for NVRTC
#include "../include/fastnlp/rounding.h"

template <typename T>
__device__ void round_impl(const T* x, T* out, long long n, int man_bits, int emin, double max_finite,
                           int subnormals, int overflow, int stochastic, unsigned long long seed) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n; k += stride)
        out[k] = (T)fastnlp_round_one((double)x[k], (fastnlp_u64)k, man_bits, emin, max_finite, subnormals,
                                      overflow, stochastic, seed);
}

extern "C" {
__global__ void round_to_format_f32(const float* x, float* out, long long n, int man_bits, int emin,
                                    double max_finite, int subnormals, int overflow, int stochastic,
                                    unsigned long long seed) {
    round_impl(x, out, n, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed);
}
__global__ void round_to_format_f64(const double* x, double* out, long long n, int man_bits, int emin,
                                    double max_finite, int subnormals, int overflow, int stochastic,
                                    unsigned long long seed) {
    round_impl(x, out, n, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed);
}
}
