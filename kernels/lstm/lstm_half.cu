// The LSTM step on float16 (__half) and bfloat16 (__nv_bfloat16) storage, for CuPy RawModule.
// Kept apart from lstm.cu so a toolkit without these headers still builds the float32 and
// float64 kernels. The contract (lstm/__init__.py): every input converted up, the step computed
// in float32 as lstm.cu's float32 kernels compute it (the gates, c and tanh(c) used at float32),
// each output rounded once to the storage format (to nearest even: __float2half_rn /
// __float2bfloat16_rn). One thread per (row n, unit j), as in lstm.cu.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float fastnlp_lstm_widen(__half x) { return __half2float(x); }
__device__ __forceinline__ float fastnlp_lstm_widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void fastnlp_lstm_narrow(float x, __half* out) { *out = __float2half_rn(x); }
__device__ __forceinline__ void fastnlp_lstm_narrow(float x, __nv_bfloat16* out) { *out = __float2bfloat16_rn(x); }

// sigmoid(x) = (1 + tanh(x / 2)) / 2, as in the reference (no overflow for very negative x)
__device__ __forceinline__ float fastnlp_lstm_sigmoid(float x) { return 0.5f * tanhf(0.5f * x) + 0.5f; }

template <typename T>
__device__ void forward_half_impl(T* A, const T* c_prev, T* h_next, T* c_next, T* tanh_c, long long N,
                                  long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * H; k += stride) {
        long long n = k / H, j = k - n * H;
        T* a = A + n * 4 * H;
        float f = fastnlp_lstm_sigmoid(fastnlp_lstm_widen(a[j]));
        float g = tanhf(fastnlp_lstm_widen(a[H + j]));
        float i = fastnlp_lstm_sigmoid(fastnlp_lstm_widen(a[2 * H + j]));
        float o = fastnlp_lstm_sigmoid(fastnlp_lstm_widen(a[3 * H + j]));
        float c = f * fastnlp_lstm_widen(c_prev[k]) + g * i;
        float t = tanhf(c);
        fastnlp_lstm_narrow(c, &c_next[k]);
        fastnlp_lstm_narrow(t, &tanh_c[k]);
        fastnlp_lstm_narrow(o * t, &h_next[k]);
        fastnlp_lstm_narrow(f, &a[j]);
        fastnlp_lstm_narrow(g, &a[H + j]);
        fastnlp_lstm_narrow(i, &a[2 * H + j]);
        fastnlp_lstm_narrow(o, &a[3 * H + j]);
    }
}

template <typename T>
__device__ void backward_half_impl(const T* dh_next, const T* dc_next, const T* gates, const T* c_prev,
                                   const T* tanh_c, T* dA, T* dc_prev, long long N, long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * H; k += stride) {
        long long n = k / H, j = k - n * H;
        const T* gt = gates + n * 4 * H;
        T* d = dA + n * 4 * H;
        float f = fastnlp_lstm_widen(gt[j]), g = fastnlp_lstm_widen(gt[H + j]);
        float i = fastnlp_lstm_widen(gt[2 * H + j]), o = fastnlp_lstm_widen(gt[3 * H + j]);
        float t = fastnlp_lstm_widen(tanh_c[k]), dh = fastnlp_lstm_widen(dh_next[k]);
        float ds = fastnlp_lstm_widen(dc_next[k]) + dh * o * (1.0f - t * t);
        fastnlp_lstm_narrow(ds * f, &dc_prev[k]);
        fastnlp_lstm_narrow(ds * fastnlp_lstm_widen(c_prev[k]) * f * (1.0f - f), &d[j]);
        fastnlp_lstm_narrow(ds * i * (1.0f - g * g), &d[H + j]);
        fastnlp_lstm_narrow(ds * g * i * (1.0f - i), &d[2 * H + j]);
        fastnlp_lstm_narrow(dh * t * o * (1.0f - o), &d[3 * H + j]);
    }
}

extern "C" {
__global__ void lstm_forward_f16(__half* A, const __half* c_prev, __half* h_next, __half* c_next, __half* tanh_c,
                                 long long N, long long H) {
    forward_half_impl<__half>(A, c_prev, h_next, c_next, tanh_c, N, H);
}
__global__ void lstm_forward_bf16(__nv_bfloat16* A, const __nv_bfloat16* c_prev, __nv_bfloat16* h_next,
                                  __nv_bfloat16* c_next, __nv_bfloat16* tanh_c, long long N, long long H) {
    forward_half_impl<__nv_bfloat16>(A, c_prev, h_next, c_next, tanh_c, N, H);
}
__global__ void lstm_backward_f16(const __half* dh_next, const __half* dc_next, const __half* gates,
                                  const __half* c_prev, const __half* tanh_c, __half* dA, __half* dc_prev,
                                  long long N, long long H) {
    backward_half_impl<__half>(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, N, H);
}
__global__ void lstm_backward_bf16(const __nv_bfloat16* dh_next, const __nv_bfloat16* dc_next,
                                   const __nv_bfloat16* gates, const __nv_bfloat16* c_prev,
                                   const __nv_bfloat16* tanh_c, __nv_bfloat16* dA, __nv_bfloat16* dc_prev,
                                   long long N, long long H) {
    backward_half_impl<__nv_bfloat16>(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, N, H);
}
}
