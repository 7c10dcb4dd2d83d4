// Attention ops for CuPy RawModule (contract in __init__.py): batched products of small
// matrices and a softmax per row. hs (N, T, H); queries X (N, Q, H); weights W (N, Q, T);
// everything C-contiguous with one float type, validated on the host, T >= 1.
// One thread per output element, each summing its own terms in a fixed order: no atomics, so
// results are deterministic (not bit-equal to BLAS on the host: held to the op's tolerance).

template <typename T> __device__ __forceinline__ T exp_(T x);
template <> __device__ __forceinline__ float exp_<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double exp_<double>(double x) { return exp(x); }

// out[n, q, t] = X[n, q, :] . Y[n, t, :]
template <typename T>
__device__ void dots_impl(const T* X, const T* Y, T* out, long long N, long long Q, long long Tn,
                          long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Q * Tn; k += stride) {
        long long n = k / (Q * Tn), q = (k / Tn) % Q, t = k % Tn;
        const T* x = X + (n * Q + q) * H;
        const T* y = Y + (n * Tn + t) * H;
        T s = 0;
        for (long long j = 0; j < H; ++j) s += x[j] * y[j];
        out[k] = s;
    }
}

// each row of s (rows x Tn) replaced by its softmax, shifted by the row maximum
template <typename T>
__device__ void softmax_rows_impl(T* s, long long rows, long long Tn) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < rows; r += stride) {
        T* row = s + r * Tn;
        T top = row[0], total = 0;
        for (long long t = 1; t < Tn; ++t) top = row[t] > top ? row[t] : top;
        for (long long t = 0; t < Tn; ++t) {
            row[t] = exp_<T>(row[t] - top);
            total += row[t];
        }
        for (long long t = 0; t < Tn; ++t) row[t] /= total;
    }
}

// ds = a * (da - sum_t a * da), row by row (rows x Tn)
template <typename T>
__device__ void softmax_backward_rows_impl(const T* a, const T* da, T* ds, long long rows, long long Tn) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < rows; r += stride) {
        const T* ar = a + r * Tn;
        const T* dr = da + r * Tn;
        T inner = 0;
        for (long long t = 0; t < Tn; ++t) inner += ar[t] * dr[t];
        for (long long t = 0; t < Tn; ++t) ds[r * Tn + t] = ar[t] * (dr[t] - inner);
    }
}

// out[n, q, j] = sum_t W[n, q, t] Y[n, t, j]   (weighted sum; dh)
template <typename T>
__device__ void weigh_rows_impl(const T* W, const T* Y, T* out, long long N, long long Q, long long Tn,
                                long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Q * H; k += stride) {
        long long n = k / (Q * H), q = (k / H) % Q, j = k % H;
        const T* w = W + (n * Q + q) * Tn;
        const T* y = Y + n * Tn * H + j;
        T s = 0;
        for (long long t = 0; t < Tn; ++t) s += w[t] * y[t * H];
        out[k] = s;
    }
}

// out[n, t, j] (+)= sum_q W[n, q, t] X[n, q, j]   (the gradient into hs)
template <typename T>
__device__ void weigh_queries_impl(const T* W, const T* X, T* out, long long N, long long Q, long long Tn,
                                   long long H, int accumulate) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * Tn * H; k += stride) {
        long long n = k / (Tn * H), t = (k / H) % Tn, j = k % H;
        const T* w = W + n * Q * Tn + t;
        const T* x = X + n * Q * H + j;
        T s = 0;
        for (long long q = 0; q < Q; ++q) s += w[q * Tn] * x[q * H];
        out[k] = accumulate ? out[k] + s : s;
    }
}

#define FASTNLP_ATTENTION_KERNELS(T, SUFFIX)                                                          \
    __global__ void dots_##SUFFIX(const T* X, const T* Y, T* out, long long N, long long Q,          \
                                  long long Tn, long long H) {                                       \
        dots_impl<T>(X, Y, out, N, Q, Tn, H);                                                        \
    }                                                                                                \
    __global__ void softmax_rows_##SUFFIX(T* s, long long rows, long long Tn) {                      \
        softmax_rows_impl<T>(s, rows, Tn);                                                           \
    }                                                                                                \
    __global__ void softmax_backward_rows_##SUFFIX(const T* a, const T* da, T* ds, long long rows,   \
                                                   long long Tn) {                                   \
        softmax_backward_rows_impl<T>(a, da, ds, rows, Tn);                                          \
    }                                                                                                \
    __global__ void weigh_rows_##SUFFIX(const T* W, const T* Y, T* out, long long N, long long Q,    \
                                        long long Tn, long long H) {                                 \
        weigh_rows_impl<T>(W, Y, out, N, Q, Tn, H);                                                  \
    }                                                                                                \
    __global__ void weigh_queries_##SUFFIX(const T* W, const T* X, T* out, long long N, long long Q, \
                                           long long Tn, long long H, int accumulate) {              \
        weigh_queries_impl<T>(W, X, out, N, Q, Tn, H, accumulate);                                   \
    }

extern "C" {
FASTNLP_ATTENTION_KERNELS(float, f32)
FASTNLP_ATTENTION_KERNELS(double, f64)
}
