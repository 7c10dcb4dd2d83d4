// Embedding lookup and its backward (scatter-add) for CuPy RawModule.
// Ids are validated on the host side (embedding/__init__.py) before launch, so no bounds checks here.
// One thread per output element; duplicate ids make scatter_add race, hence atomicAdd
// (double atomicAdd needs sm_60 or newer).

template <typename T>
__device__ void scatter_add_impl(T* dW, const long long* idx, const T* rows,
                                 long long n_ids, long long width) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n_ids * width; k += stride) {
        long long i = k / width, j = k - i * width;
        atomicAdd(&dW[idx[i] * width + j], rows[k]);
    }
}

template <typename T>
__device__ void gather_impl(const T* W, const long long* idx, T* out,
                            long long n_ids, long long width) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n_ids * width; k += stride) {
        long long i = k / width, j = k - i * width;
        out[k] = W[idx[i] * width + j];
    }
}

extern "C" {
__global__ void scatter_add_f32(float* dW, const long long* idx, const float* rows,
                                long long n_ids, long long width) {
    scatter_add_impl<float>(dW, idx, rows, n_ids, width);
}
__global__ void scatter_add_f64(double* dW, const long long* idx, const double* rows,
                                long long n_ids, long long width) {
    scatter_add_impl<double>(dW, idx, rows, n_ids, width);
}
__global__ void gather_f32(const float* W, const long long* idx, float* out,
                           long long n_ids, long long width) {
    gather_impl<float>(W, idx, out, n_ids, width);
}
__global__ void gather_f64(const double* W, const long long* idx, double* out,
                           long long n_ids, long long width) {
    gather_impl<double>(W, idx, out, n_ids, width);
}
}
