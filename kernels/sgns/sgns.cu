// Negative-sampling ops for CuPy RawModule (contract in __init__.py, float order in reference.py).
// Ids are validated on the host side before launch, so no bounds checks here. Products and sums
// use the _rn intrinsics, which nvcc never fuses into an FMA, so gather_dot and dh give the
// reference's bits; dW's scatter uses atomicAdd (double atomicAdd needs sm_60 or newer) and is
// exact only up to the order of the adds.

#include "../include/fastnlp/rng.h"  // splitmix64; kernels/_cuda.py pastes it in for NVRTC

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

// One thread per (n, k): a 16-lane dot product, lanes added pairwise.
template <typename T>
__device__ void gather_dot_impl(const T* W, const long long* idx, const T* h, T* out,
                                long long n, long long k, long long width) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; t < n * k; t += stride) {
        const T* w = W + idx[t] * width;
        const T* x = h + (t / k) * width;
        T s[16];
        for (int l = 0; l < 16; ++l) s[l] = 0;
        for (long long j = 0; j < width; ++j) s[j % 16] = add_rn(s[j % 16], mul_rn(w[j], x[j]));
        for (int half = 8; half >= 1; half /= 2)
            for (int l = 0; l < half; ++l) s[l] = add_rn(s[2 * l], s[2 * l + 1]);
        out[t] = s[0];
    }
}

// One thread per (n, j): dh[n, j] = sum_k dout[n, k] * W[idx[n, k], j], in order of k.
template <typename T>
__device__ void gather_dot_dh_impl(const T* W, const long long* idx, const T* dout, T* dh,
                                   long long n, long long k, long long width) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; t < n * width; t += stride) {
        long long i = t / width, j = t - i * width;
        T s = 0;
        for (long long c = 0; c < k; ++c)
            s = add_rn(s, mul_rn(dout[i * k + c], W[idx[i * k + c] * width + j]));
        dh[t] = s;
    }
}

// One thread per (n, k, j): dW[idx[n, k], j] += dout[n, k] * h[n, j], atomically.
template <typename T>
__device__ void gather_dot_dW_impl(const long long* idx, const T* h, const T* dout, T* dW,
                                   long long n, long long k, long long width) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; t < n * k * width; t += stride) {
        long long p = t / width, j = t - p * width;
        atomicAdd(&dW[idx[p] * width + j], mul_rn(dout[p], h[(p / k) * width + j]));
    }
}

extern "C" {
__global__ void gather_dot_f32(const float* W, const long long* idx, const float* h, float* out,
                               long long n, long long k, long long width) {
    gather_dot_impl<float>(W, idx, h, out, n, k, width);
}
__global__ void gather_dot_f64(const double* W, const long long* idx, const double* h, double* out,
                               long long n, long long k, long long width) {
    gather_dot_impl<double>(W, idx, h, out, n, k, width);
}
__global__ void gather_dot_dh_f32(const float* W, const long long* idx, const float* h,
                                  const float* dout, float* dW, float* dh, long long n, long long k,
                                  long long width) {
    gather_dot_dh_impl<float>(W, idx, dout, dh, n, k, width);
}
__global__ void gather_dot_dh_f64(const double* W, const long long* idx, const double* h,
                                  const double* dout, double* dW, double* dh, long long n,
                                  long long k, long long width) {
    gather_dot_dh_impl<double>(W, idx, dout, dh, n, k, width);
}
__global__ void gather_dot_dW_f32(const float* W, const long long* idx, const float* h,
                                  const float* dout, float* dW, float* dh, long long n, long long k,
                                  long long width) {
    gather_dot_dW_impl<float>(idx, h, dout, dW, n, k, width);
}
__global__ void gather_dot_dW_f64(const double* W, const long long* idx, const double* h,
                                  const double* dout, double* dW, double* dh, long long n,
                                  long long k, long long width) {
    gather_dot_dW_impl<double>(idx, h, dout, dW, n, k, width);
}

// One thread per slot (n, s): up to 7 alias picks, then the inverse-CDF draw without the target.
__global__ void sample_negatives(const long long* alias_prob, const long long* alias_index,
                                 const long long* cumulative, long long vocab,
                                 const long long* target, long long n, long long sample_size,
                                 unsigned long long seed, unsigned long long counter,
                                 long long* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; t < n * sample_size; t += stride) {
        const long long tg = target[t / sample_size];
        const unsigned long long base = (counter + (unsigned long long)t) * 8ULL;
        long long w = tg;
        for (int a = 0; a < 7 && w == tg; ++a) {
            const unsigned long long d = fastnlp_splitmix64(seed, base + a);
            const unsigned long long column = ((d >> 32) * (unsigned long long)vocab) >> 32;
            w = (d & 0xFFFFFFFFULL) < (unsigned long long)alias_prob[column] ? (long long)column
                                                                             : alias_index[column];
        }
        if (w == tg) {
            const unsigned long long d = fastnlp_splitmix64(seed, base + 7);
            const long long low = cumulative[tg], skip = cumulative[tg + 1] - low;
            const long long rest = cumulative[vocab] - skip;
            const double x = __dmul_rn(__dmul_rn(__ull2double_rn(d >> 11), 1.0 / 9007199254740992.0),
                                       __ll2double_rn(rest));
            long long r = (long long)x;
            if (r > rest - 1) r = rest - 1;
            if (r >= low) r += skip;
            long long lo = 0, hi = vocab;
            while (hi - lo > 1) {
                const long long mid = lo + (hi - lo) / 2;
                if (cumulative[mid] <= r) lo = mid; else hi = mid;
            }
            w = lo;
        }
        out[t] = w;
    }
}
}
