// Co-occurrence pair generation and PPMI for CuPy RawModule.
// Token ids are validated on the host side (ops.py) before launch.
//
// cooccurrence_pairs: one thread per (position j, distance d). Slot 2 * (j * window + d - 1)
// and the next hold the pair in both directions; pairs that do not count (i < n_context side,
// i < 0, or across a sentence boundary) get weight 0 and are dropped after the COO -> CSR sum.
// sentence[k] is the number of boundary tokens strictly before position k (a device cumsum).

extern "C" __global__ void cooccurrence_pairs(const long long* tokens, const long long* sentence,
                                              long long n, long long n_context, long long window,
                                              int harmonic, int* rows, int* cols, double* weights) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; k < n * window; k += stride) {
        long long j = k / window, d = k - j * window + 1, i = j - d;
        long long slot = 2 * k;
        bool counts = j >= n_context && i >= 0 && sentence[i] == sentence[j];
        double w = counts ? (harmonic ? 1.0 / (double)d : 1.0) : 0.0;
        int wi = counts ? (int)tokens[i] : 0, wj = counts ? (int)tokens[j] : 0;
        rows[slot] = wi;     cols[slot] = wj;     weights[slot] = w;
        rows[slot + 1] = wj; cols[slot + 1] = wi; weights[slot + 1] = w;
    }
}

// One thread per row of a CSR matrix: max(0, log2(C * N / (S_row * P_col) + eps)).
extern "C" __global__ void ppmi_values(const long long* indptr, const int* indices, const double* counts,
                                       const double* row_sums, const double* context_weights,
                                       double total, double eps, long long n_rows, double* out) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; r < n_rows; r += stride) {
        for (long long p = indptr[r]; p < indptr[r + 1]; ++p) {
            double pmi = log2(counts[p] * total / (row_sums[r] * context_weights[indices[p]]) + eps);
            out[p] = pmi > 0.0 ? pmi : 0.0;
        }
    }
}
