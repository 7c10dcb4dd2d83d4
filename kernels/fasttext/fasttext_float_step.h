/* The float step of the fastText ops at one vector width: included by fasttext_ops.h once per
 * instruction set, with FT_ISA (the names' suffix), FT_W (floats per vector: the width of the
 * set's registers) and FT_TARGET (the function attribute that compiles for the set). Defines
 * ft_step_f_<FT_ISA>. GCC/Clang vector extensions; no intrinsics, so one text serves x86-64
 * and arm64 alike. FMA contraction is off here as in the including file. */

#ifndef FT_CAT
#define FT_CAT_(a, b) a##b
#define FT_CAT(a, b) FT_CAT_(a, b)
#endif
#define FT_NAME(x) FT_CAT(x, FT_ISA)
#define FT_VEC FT_NAME(ft_vec_)

typedef float FT_VEC __attribute__((vector_size(FT_W * sizeof(float))));

/* Columns [off[b], off[b] + FT_W) of h for b < blocks (at most FT_PASS; a constant where
 * called, so the loops unroll): one pass over the rows with `blocks` independent sums in
 * registers. Each column's sum is a chain of n dependent adds; the chains of a pass run side by
 * side, so the fewer the passes the less the step waits on them. */
FT_TARGET FT_INLINE void FT_NAME(ft_mean_pass_)(float* __restrict h, float* const* rows, ptrdiff_t n,
                                               const ptrdiff_t* off, int blocks, float count) {
    FT_VEC sum[FT_PASS] = {{0}}, x;
    for (ptrdiff_t i = 0; i < n; ++i)
        for (int b = 0; b < blocks; ++b) {
            memcpy(&x, rows[i] + off[b], sizeof x);
            sum[b] += x;
        }
    for (int b = 0; b < blocks; ++b) {
        sum[b] = sum[b] / count;
        memcpy(h + off[b], &sum[b], sizeof sum[b]);
    }
}

/* h = (0 + x_0 + ... + x_{n-1}) / count in vectors of FT_W columns, the last one ending at
 * column D (it may overlap the one before: those columns are then summed twice, the same way,
 * to the same value), in as few passes of at most FT_PASS vectors as there can be. */
FT_TARGET FT_INLINE void FT_NAME(ft_mean_rows_)(float* __restrict h, float* const* rows, ptrdiff_t n,
                                               ptrdiff_t D, float count) {
    if (D < FT_W) {
        for (ptrdiff_t d = 0; d < D; ++d) {
            float sum = 0;
            for (ptrdiff_t i = 0; i < n; ++i) sum += rows[i][d];
            h[d] = sum / count;
        }
        return;
    }
    const ptrdiff_t blocks = (D + FT_W - 1) / FT_W, passes = (blocks + FT_PASS - 1) / FT_PASS;
    ptrdiff_t done = 0, off[FT_PASS];
    for (ptrdiff_t p = 0; p < passes; ++p) {
        const int now = (int)((blocks - done) / (passes - p)); /* the vectors split evenly */
        for (int b = 0; b < now; ++b) off[b] = (done + b) * FT_W < D - FT_W ? (done + b) * FT_W : D - FT_W;
        switch (now) {
#define FT_PASS_CASE(blocks) case blocks: FT_NAME(ft_mean_pass_)(h, rows, n, off, blocks, count); break;
            FT_PASS_CASE(8) FT_PASS_CASE(7) FT_PASS_CASE(6) FT_PASS_CASE(5)
            FT_PASS_CASE(4) FT_PASS_CASE(3) FT_PASS_CASE(2) FT_PASS_CASE(1)
#undef FT_PASS_CASE
        }
        done += now;
    }
}

/* f[q] = h . rows[q] for q < k (k <= FT_GROUP, a constant where called), each the lane dot of
 * fastnlp/simd.h: element j into partial sum j % 16 in order of j (the 16 sums are the
 * 16 / FT_W vectors of sum[q], in order), then the sums added pairwise. */
FT_TARGET FT_INLINE void FT_NAME(ft_dots_k_)(const float* h, float* const* rows, int k, ptrdiff_t D,
                                            float* f) {
    FT_VEC sum[FT_GROUP][FASTNLP_LANES / FT_W] = {{{0}}}, x, y;
    float lanes[FASTNLP_LANES];
    ptrdiff_t j = 0;
    for (; j + FASTNLP_LANES <= D; j += FASTNLP_LANES)
        for (int v = 0; v < FASTNLP_LANES / FT_W; ++v) {
            memcpy(&x, h + j + FT_W * v, sizeof x);
            for (int q = 0; q < k; ++q) {
                memcpy(&y, rows[q] + j + FT_W * v, sizeof y);
                sum[q][v] += x * y;
            }
        }
    for (int q = 0; q < k; ++q) {
        memcpy(lanes, sum[q], sizeof lanes);
        for (ptrdiff_t l = 0; j + l < D; ++l) lanes[l] += h[j + l] * rows[q][j + l];
        f[q] = fastnlp_lane_tree_f(lanes);
    }
}

FT_TARGET FT_INLINE void FT_NAME(ft_dots_)(const float* h, float* const* rows, int k, ptrdiff_t D, float* f) {
    switch (k) {
        case 4: FT_NAME(ft_dots_k_)(h, rows, 4, D, f); break;
        case 3: FT_NAME(ft_dots_k_)(h, rows, 3, D, f); break;
        case 2: FT_NAME(ft_dots_k_)(h, rows, 2, D, f); break;
        default: FT_NAME(ft_dots_k_)(h, rows, 1, D, f); break;
    }
}

FASTNLP_FASTTEXT_STEP(float, FT_NAME(ft_step_f_), FT_NAME(ft_mean_rows_), FT_NAME(ft_dots_), FT_TARGET)

#undef FT_VEC
#undef FT_NAME
#undef FT_ISA
#undef FT_W
#undef FT_TARGET
