// LSTM step, forward and backward, for CuPy RawModule (contract in __init__.py).
// One thread per (row n, unit j) of the (N, H) state; the gate blocks of a row of A are the
// book's [f, g, i, o], so thread (n, j) reads A[n, j], A[n, H + j], A[n, 2H + j], A[n, 3H + j].
// Inputs are validated on the host: C-contiguous, shapes agree, outputs overlap no input.

template <typename T> __device__ __forceinline__ T tanh_(T x);
template <> __device__ __forceinline__ float tanh_<float>(float x) { return tanhf(x); }
template <> __device__ __forceinline__ double tanh_<double>(double x) { return tanh(x); }

// sigmoid(x) = (1 + tanh(x / 2)) / 2, as in the reference (no overflow for very negative x)
template <typename T> __device__ __forceinline__ T sigmoid_(T x) {
    return T(0.5) * tanh_<T>(T(0.5) * x) + T(0.5);
}

template <typename T>
__device__ void forward_impl(T* A, const T* c_prev, T* h_next, T* c_next, T* tanh_c,
                             long long N, long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * H; k += stride) {
        long long n = k / H, j = k - n * H;
        T* a = A + n * 4 * H;
        T f = sigmoid_<T>(a[j]);
        T g = tanh_<T>(a[H + j]);
        T i = sigmoid_<T>(a[2 * H + j]);
        T o = sigmoid_<T>(a[3 * H + j]);
        T c = f * c_prev[k] + g * i;
        T t = tanh_<T>(c);
        c_next[k] = c;
        tanh_c[k] = t;
        h_next[k] = o * t;
        a[j] = f;
        a[H + j] = g;
        a[2 * H + j] = i;
        a[3 * H + j] = o;
    }
}

template <typename T>
__device__ void backward_impl(const T* dh_next, const T* dc_next, const T* gates, const T* c_prev,
                              const T* tanh_c, T* dA, T* dc_prev, long long N, long long H) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < N * H; k += stride) {
        long long n = k / H, j = k - n * H;
        const T* gt = gates + n * 4 * H;
        T* d = dA + n * 4 * H;
        T f = gt[j], g = gt[H + j], i = gt[2 * H + j], o = gt[3 * H + j];
        T t = tanh_c[k], dh = dh_next[k];
        T ds = dc_next[k] + dh * o * (T(1) - t * t);
        dc_prev[k] = ds * f;
        d[j] = ds * c_prev[k] * f * (T(1) - f);
        d[H + j] = ds * i * (T(1) - g * g);
        d[2 * H + j] = ds * g * i * (T(1) - i);
        d[3 * H + j] = dh * t * o * (T(1) - o);
    }
}

extern "C" {
__global__ void lstm_forward_f32(float* A, const float* c_prev, float* h_next, float* c_next,
                                 float* tanh_c, long long N, long long H) {
    forward_impl<float>(A, c_prev, h_next, c_next, tanh_c, N, H);
}
__global__ void lstm_forward_f64(double* A, const double* c_prev, double* h_next, double* c_next,
                                 double* tanh_c, long long N, long long H) {
    forward_impl<double>(A, c_prev, h_next, c_next, tanh_c, N, H);
}
__global__ void lstm_backward_f32(const float* dh_next, const float* dc_next, const float* gates,
                                  const float* c_prev, const float* tanh_c, float* dA, float* dc_prev,
                                  long long N, long long H) {
    backward_impl<float>(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, N, H);
}
__global__ void lstm_backward_f64(const double* dh_next, const double* dc_next, const double* gates,
                                  const double* c_prev, const double* tanh_c, double* dA, double* dc_prev,
                                  long long N, long long H) {
    backward_impl<double>(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev, N, H);
}
}
