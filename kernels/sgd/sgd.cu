// sgd_update for CuPy RawModule (contract in __init__.py): a grid-stride loop,
// p[i] -= lr * (grad_scale * g[i]) with each product and the difference rounded separately
// (__fmul_rn / __fsub_rn: nvcc would otherwise fuse them into one FMA). Inputs are validated on the host.

extern "C" {
__global__ void sgd_update_f32(float* p, const float* g, float lr, float grad_scale, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        p[i] = __fsub_rn(p[i], __fmul_rn(lr, __fmul_rn(grad_scale, g[i])));
}
__global__ void sgd_update_f64(double* p, const double* g, double lr, double grad_scale, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        p[i] = __dsub_rn(p[i], __dmul_rn(lr, __dmul_rn(grad_scale, g[i])));
}
}
