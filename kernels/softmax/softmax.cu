// exp_row_sums for CuPy RawModule (contract in __init__.py): one block of 256 threads per row
// (grid-stride over rows). Each thread takes every 256th value of the row, writes its exp and
// keeps a partial sum; the block adds the partial sums in a fixed tree, so a row's sum has
// the same bits every run. Inputs are validated on the host.

#define SOFTMAX_BLOCK 256

template <typename T> __device__ __forceinline__ T softmax_exp(T x);
template <> __device__ __forceinline__ float softmax_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double softmax_exp<double>(double x) { return exp(x); }

template <typename T>
__device__ void exp_row_sums_impl(const T* x, T* y, T* sums, long long rows, long long width) {
    __shared__ double buffer[SOFTMAX_BLOCK];  // room for either float type
    T* partial = reinterpret_cast<T*>(buffer);
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        T total = 0;
        for (long long j = threadIdx.x; j < width; j += blockDim.x) {
            const T v = softmax_exp(x[r * width + j]);
            y[r * width + j] = v;
            total += v;
        }
        partial[threadIdx.x] = total;
        __syncthreads();
        for (int half = SOFTMAX_BLOCK / 2; half > 0; half >>= 1) {
            if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) sums[r] = partial[0];
        __syncthreads();  // partial is read before the next row overwrites it
    }
}

extern "C" {
__global__ void exp_row_sums_f32(const float* x, float* y, float* sums, long long rows, long long width) {
    exp_row_sums_impl(x, y, sums, rows, width);
}
__global__ void exp_row_sums_f64(const double* x, double* y, double* sums, long long rows, long long width) {
    exp_row_sums_impl(x, y, sums, rows, width);
}
}
