// The embedding ops on float16 (__half) and bfloat16 (__nv_bfloat16) storage, for CuPy RawModule.
// Kept apart from embedding.cu so a toolkit without these headers still builds the float32 and
// float64 kernels. UNTESTED ON A DEVICE (written without a GPU; compiled only by a host C++
// syntax check with stand-in types).
//
// The contract (embedding/__init__.py): the gather copies bits; the scatter-add sums each
// touched row in float32, adding the row's ids in order of i, and rounds once (round to
// nearest even: __float2half_rn / __float2bfloat16_rn). No atomics: the host sorts the ids
// (cupy.argsort) and passes, per run of equal ids ("group"), where it starts in that order;
// one thread owns one (group, column) and adds the group's rows in sorted order.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float fastnlp_widen(__half x) { return __half2float(x); }
__device__ __forceinline__ float fastnlp_widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void fastnlp_narrow(float x, __half* out) { *out = __float2half_rn(x); }
__device__ __forceinline__ void fastnlp_narrow(float x, __nv_bfloat16* out) { *out = __float2bfloat16_rn(x); }

template <typename T>
__device__ void scatter_add_sorted_impl(T* dW, const long long* idx, const long long* order,
                                        const long long* starts, const T* rows, long long n_groups,
                                        long long width) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n_groups * width; k += stride) {
        long long g = k / width, j = k - g * width;
        long long row = idx[order[starts[g]]];
        float sum = fastnlp_widen(dW[row * width + j]);
        for (long long s = starts[g]; s < starts[g + 1]; ++s) sum += fastnlp_widen(rows[order[s] * width + j]);
        fastnlp_narrow(sum, &dW[row * width + j]);
    }
}

template <typename T>
__device__ void gather_bits_impl(const T* W, const long long* idx, T* out, long long n_ids, long long width) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n_ids * width; k += stride) {
        long long i = k / width, j = k - i * width;
        out[k] = W[idx[i] * width + j];
    }
}

extern "C" {
__global__ void scatter_add_sorted_f16(__half* dW, const long long* idx, const long long* order,
                                       const long long* starts, const __half* rows, long long n_groups,
                                       long long width) {
    scatter_add_sorted_impl<__half>(dW, idx, order, starts, rows, n_groups, width);
}
__global__ void scatter_add_sorted_bf16(__nv_bfloat16* dW, const long long* idx, const long long* order,
                                        const long long* starts, const __nv_bfloat16* rows, long long n_groups,
                                        long long width) {
    scatter_add_sorted_impl<__nv_bfloat16>(dW, idx, order, starts, rows, n_groups, width);
}
__global__ void gather_f16(const __half* W, const long long* idx, __half* out, long long n_ids, long long width) {
    gather_bits_impl<__half>(W, idx, out, n_ids, width);
}
__global__ void gather_bf16(const __nv_bfloat16* W, const long long* idx, __nv_bfloat16* out, long long n_ids,
                            long long width) {
    gather_bits_impl<__nv_bfloat16>(W, idx, out, n_ids, width);
}
}
