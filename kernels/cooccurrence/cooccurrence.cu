// Co-occurrence pair generation and PPMI for CuPy RawModule.
// Token ids are validated on the host side (cooccurrence/__init__.py) before launch.
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

// One thread per row of a CSR matrix, in log space so no product overflows:
// max(0, log2(2^(log2 C + log2 N - log2 S_row - log2 P_col) + eps)); a stored 0 gives 0.
extern "C" __global__ void ppmi_values(const long long* indptr, const int* indices, const double* counts,
                                       const double* log_row_sums, const double* log_context_weights,
                                       double log_total, double log_eps, long long n_rows, double* out) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    const double inv_ln2 = 1.4426950408889634;
    for (; r < n_rows; r += stride) {
        for (long long p = indptr[r]; p < indptr[r + 1]; ++p) {
            if (counts[p] <= 0.0) { out[p] = 0.0; continue; }
            double log_ratio = log2(counts[p]) + log_total - log_row_sums[r] - log_context_weights[indices[p]];
            double high = fmax(log_ratio, log_eps);
            double pmi = high + log1p(exp2(-fabs(log_ratio - log_eps))) * inv_ln2;
            out[p] = pmi > 0.0 ? pmi : 0.0;
        }
    }
}

// csr_sum's COO rows: one thread per entry p in [begin, end) of a CSR matrix whose rows start at
// starts[0..n_rows]; its row r (starts[r] <= p < starts[r + 1]) by binary search, written at p - begin.
extern "C" __global__ void csr_row_ids(const long long* starts, long long n_rows, long long begin, long long end,
                                       int* rows) {
    long long p = begin + (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (; p < end; p += stride) {
        long long low = 0, high = n_rows;  // invariant: starts[low] <= p < starts[high]
        while (high - low > 1) {
            long long middle = low + (high - low) / 2;
            if (starts[middle] <= p) low = middle; else high = middle;
        }
        rows[p - begin] = (int)low;
    }
}
