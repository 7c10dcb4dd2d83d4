// topk for CuPy RawModule (contract in __init__.py): one thread per row runs the heap loop of
// topk.h (the k best so far, the worst at the root; a score enters only when above the root),
// then heapsorts its k values best first. Simple and exact (ties by lower index, NaN last);
// rows are independent, so Q rows keep Q threads busy. Inputs are validated on the host.

template <typename T>
__device__ __forceinline__ bool topk_worse(T av, long long ai, T bv, long long bi) {
    const bool an = av != av, bn = bv != bv;
    if (an != bn) return an;
    if (an) return ai > bi;
    return av < bv || (av == bv && ai > bi);
}

template <typename T>
__device__ void topk_sift_down(T* hv, long long* hi, long long n, long long pos) {
    const T v = hv[pos];
    const long long id = hi[pos];
    for (;;) {
        long long c = 2 * pos + 1;
        if (c >= n) break;
        if (c + 1 < n && topk_worse(hv[c + 1], hi[c + 1], hv[c], hi[c])) c++;
        if (!topk_worse(hv[c], hi[c], v, id)) break;
        hv[pos] = hv[c];
        hi[pos] = hi[c];
        pos = c;
    }
    hv[pos] = v;
    hi[pos] = id;
}

template <typename T>
__device__ void topk_impl(const T* scores, long long q, long long n, long long k, T* values, long long* indices) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < q; r += stride) {
        const T* row = scores + r * n;
        T* hv = values + r * k;
        long long* hi = indices + r * k;
        for (long long j = 0; j < k; ++j) {  // push the first k
            long long pos = j;
            const T v = row[j];
            while (pos > 0) {
                const long long p = (pos - 1) / 2;
                if (!topk_worse(v, j, hv[p], hi[p])) break;
                hv[pos] = hv[p];
                hi[pos] = hi[p];
                pos = p;
            }
            hv[pos] = v;
            hi[pos] = j;
        }
        for (long long j = k; j < n; ++j) {
            const T v = row[j];
            if (topk_worse(hv[0], hi[0], v, j)) {
                hv[0] = v;
                hi[0] = j;
                topk_sift_down(hv, hi, k, 0);
            }
        }
        for (long long m = k - 1; m > 0; --m) {
            const T v = hv[0];
            const long long id = hi[0];
            hv[0] = hv[m];
            hi[0] = hi[m];
            hv[m] = v;
            hi[m] = id;
            topk_sift_down(hv, hi, m, 0);
        }
    }
}

extern "C" {
__global__ void topk_f32(const float* scores, long long q, long long n, long long k, float* values,
                         long long* indices) {
    topk_impl(scores, q, n, k, values, indices);
}
__global__ void topk_f64(const double* scores, long long q, long long n, long long k, double* values,
                         long long* indices) {
    topk_impl(scores, q, n, k, values, indices);
}
}
