// The attention ops on float16 (__half) and bfloat16 (__nv_bfloat16) storage, for CuPy RawModule.
// Kept apart from attention.cu so a toolkit without these headers still builds the float32 and
// float64 kernels. Checked without a GPU: compiled to PTX by nvcc (tests/test_cuda.py) and run on
// CPU threads by the CUDA emulation (tests/test_cuda_emulation.py for float16,
// tests/test_attention_half.py for both formats).
//
// The contract (attention/__init__.py): inputs in the storage format, every product and sum in
// float32, each output rounded once (__float2half_rn / __float2bfloat16_rn: to nearest even).
// The intermediates that join the kernels of one op stay float32: the scores and the weights that
// weigh hs in the fused forward, ds (the gradient at the scores) and the fused backward's da.
// Layout as attention.cu: hs (N, T, H); queries X (N, Q, H); weights W (N, Q, T); C-contiguous,
// T >= 1. One thread per output element, summing its own terms in a fixed order (no atomics).
#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float att_widen(float x) { return x; }
__device__ __forceinline__ float att_widen(__half x) { return __half2float(x); }
__device__ __forceinline__ float att_widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void att_store(float x, float* out) { *out = x; }
__device__ __forceinline__ void att_store(float x, __half* out) { *out = __float2half_rn(x); }
__device__ __forceinline__ void att_store(float x, __nv_bfloat16* out) { *out = __float2bfloat16_rn(x); }

// out[n, q, t] = X[n, q, :] . Y[n, t, :]   (scores; da)
template <typename S, typename O>
__device__ void half_dots_impl(const S* X, const S* Y, O* out, long long N, long long Q, long long Tn,
                               long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Q * Tn; k += stride) {
        long long n = k / (Q * Tn), q = (k / Tn) % Q, t = k % Tn;
        const S* x = X + (n * Q + q) * H;
        const S* y = Y + (n * Tn + t) * H;
        float s = 0.0f;
        for (long long j = 0; j < H; ++j) s += att_widen(x[j]) * att_widen(y[j]);
        att_store(s, out + k);
    }
}

// each row of the float32 scores s (rows x Tn) replaced by its softmax, and stored rounded in a
template <typename S>
__device__ void half_softmax_rows_impl(float* s, S* a, long long rows, long long Tn) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < rows; r += stride) {
        float* row = s + r * Tn;
        float top = row[0], total = 0.0f;
        for (long long t = 1; t < Tn; ++t) top = row[t] > top ? row[t] : top;
        for (long long t = 0; t < Tn; ++t) {
            row[t] = expf(row[t] - top);
            total += row[t];
        }
        for (long long t = 0; t < Tn; ++t) {
            row[t] /= total;
            att_store(row[t], a + r * Tn + t);
        }
    }
}

// ds = a * (da - sum_t a * da), row by row (rows x Tn), in float32
template <typename S, typename D>
__device__ void half_softmax_backward_rows_impl(const S* a, const D* da, float* ds, long long rows, long long Tn) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < rows; r += stride) {
        const S* ar = a + r * Tn;
        const D* dr = da + r * Tn;
        float inner = 0.0f;
        for (long long t = 0; t < Tn; ++t) inner += att_widen(ar[t]) * att_widen(dr[t]);
        for (long long t = 0; t < Tn; ++t) ds[r * Tn + t] = att_widen(ar[t]) * (att_widen(dr[t]) - inner);
    }
}

// out[n, q, j] = sum_t W[n, q, t] Y[n, t, j]   (weighted sum; dh)
template <typename W, typename S>
__device__ void half_weigh_rows_impl(const W* Wt, const S* Y, S* out, long long N, long long Q, long long Tn,
                                     long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Q * H; k += stride) {
        long long n = k / (Q * H), q = (k / H) % Q, j = k % H;
        const W* w = Wt + (n * Q + q) * Tn;
        const S* y = Y + n * Tn * H + j;
        float s = 0.0f;
        for (long long t = 0; t < Tn; ++t) s += att_widen(w[t]) * att_widen(y[t * H]);
        att_store(s, out + k);
    }
}

// out[n, t, j] = sum_q Wa[n, q, t] Xa[n, q, j] (+ sum_q Wb[n, q, t] Xb[n, q, j] when Wb is given:
// both paths into hs of the fused backward, summed in float32 before the one rounding)
template <typename WA, typename WB, typename S>
__device__ void half_weigh_queries_impl(const WA* Wa, const S* Xa, const WB* Wb, const S* Xb, S* out, long long N,
                                        long long Q, long long Tn, long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Tn * H; k += stride) {
        long long n = k / (Tn * H), t = (k / H) % Tn, j = k % H;
        float s = 0.0f;
        for (long long q = 0; q < Q; ++q)
            s += att_widen(Wa[(n * Q + q) * Tn + t]) * att_widen(Xa[(n * Q + q) * H + j]);
        if (Wb != nullptr)
            for (long long q = 0; q < Q; ++q)
                s += att_widen(Wb[(n * Q + q) * Tn + t]) * att_widen(Xb[(n * Q + q) * H + j]);
        att_store(s, out + k);
    }
}

// One set of kernels per storage format. A weight argument named w32 / da32 is float32 (an
// intermediate of the op); every other array holds the storage format S.
#define FASTNLP_ATTENTION_HALF_KERNELS(S, SUFFIX)                                                      \
    __global__ void scores_##SUFFIX(const S* X, const S* Y, float* out, long long N, long long Q,     \
                                    long long Tn, long long H) {                                      \
        half_dots_impl<S, float>(X, Y, out, N, Q, Tn, H);                                             \
    }                                                                                                 \
    __global__ void dots_##SUFFIX(const S* X, const S* Y, S* out, long long N, long long Q,          \
                                  long long Tn, long long H) {                                        \
        half_dots_impl<S, S>(X, Y, out, N, Q, Tn, H);                                                 \
    }                                                                                                 \
    __global__ void softmax_rows_##SUFFIX(float* s, S* a, long long rows, long long Tn) {             \
        half_softmax_rows_impl<S>(s, a, rows, Tn);                                                    \
    }                                                                                                 \
    __global__ void softmax_backward_rows_##SUFFIX(const S* a, const S* da, float* ds, long long rows, \
                                                   long long Tn) {                                    \
        half_softmax_backward_rows_impl<S, S>(a, da, ds, rows, Tn);                                   \
    }                                                                                                 \
    __global__ void softmax_backward_rows_da32_##SUFFIX(const S* a, const float* da32, float* ds,     \
                                                        long long rows, long long Tn) {               \
        half_softmax_backward_rows_impl<S, float>(a, da32, ds, rows, Tn);                             \
    }                                                                                                 \
    __global__ void weigh_rows_##SUFFIX(const S* W, const S* Y, S* out, long long N, long long Q,    \
                                        long long Tn, long long H) {                                  \
        half_weigh_rows_impl<S, S>(W, Y, out, N, Q, Tn, H);                                           \
    }                                                                                                 \
    __global__ void weigh_rows_w32_##SUFFIX(const float* w32, const S* Y, S* out, long long N,       \
                                            long long Q, long long Tn, long long H) {                 \
        half_weigh_rows_impl<float, S>(w32, Y, out, N, Q, Tn, H);                                     \
    }                                                                                                 \
    __global__ void weigh_queries_##SUFFIX(const S* W, const S* X, S* out, long long N, long long Q, \
                                           long long Tn, long long H) {                               \
        half_weigh_queries_impl<S, float, S>(W, X, nullptr, nullptr, out, N, Q, Tn, H);               \
    }                                                                                                 \
    __global__ void weigh_queries_w32_##SUFFIX(const float* w32, const S* X, S* out, long long N,    \
                                               long long Q, long long Tn, long long H) {              \
        half_weigh_queries_impl<float, float, S>(w32, X, nullptr, nullptr, out, N, Q, Tn, H);         \
    }                                                                                                 \
    __global__ void weigh_queries_two_##SUFFIX(const S* W, const S* X, const float* w32, const S* X2, \
                                               S* out, long long N, long long Q, long long Tn,        \
                                               long long H) {                                         \
        half_weigh_queries_impl<S, float, S>(W, X, w32, X2, out, N, Q, Tn, H);                        \
    }

extern "C" {
FASTNLP_ATTENTION_HALF_KERNELS(__half, f16)
FASTNLP_ATTENTION_HALF_KERNELS(__nv_bfloat16, bf16)
}
