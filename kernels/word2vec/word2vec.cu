// word2vec training on the GPU (CuPy RawModule): the contract of kernels/word2vec/__init__.py.
//
// One thread block trains one sentence at a time (sentences first_sentence + blockIdx.x, +
// gridDim.x, ... below n_sentences: the host runs a job's sentences in ranges when it keeps
// private rows, reference.sync_ranges).
// Random draws are counter-based, so a block makes exactly the draws the CPU versions make for
// the same tokens. Inside a block, thread 0 does the serial parts (subsampling, the window, the
// list of outputs, the gradients and the loss) and all threads share the vector work, in the
// reference's order of float operations: a dot product is 16 lanes (lane k sums x[j] * y[j]
// for j = k, k + 16, ... in order) added pairwise by thread 0; a row update accumulates over
// outputs (or inputs) in order, one thread per column, rows one after another. Every product
// and sum uses the _rn intrinsics, which the compiler never fuses into an FMA, so one block
// (gridDim.x == 1) gives the CPU result bit for bit. With more blocks, sentences train at once
// and update shared rows without locks (Hogwild): fast, not reproducible.
//
// Inputs are validated on the host (ids, Huffman points in range), so no bounds checks here.
// Scratch is global memory from the host: kept/kept_at hold N entries (a sentence uses its own
// token range, so blocks never overlap), and each block owns `block_reals` reals and
// `block_ints` ints laid out as below.

#include "../include/fastnlp/rng.h"  // splitmix64; kernels/_cuda.py pastes it in for NVRTC

typedef long long i64;
typedef unsigned long long u64;

__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }


template <typename T>
__device__ void train_impl(int sg, T* syn0, T* syn1neg, T* syn1, i64 D, const int* tokens, i64 n_tokens,
                           const i64* sentence_ends, i64 first_sentence, i64 n_sentences, const i64* keep_below,
                           const i64* alias_prob, const int* alias_index, i64 n_alias, const int* points,
                           const unsigned char* codes, const int* code_lengths, i64 max_code, int hs,
                           const T* tables, i64 n_table, T mx, T scale, i64 window, i64 negative,
                           double alpha_start, double alpha_end, u64 seed, int shrink_windows, int* kept,
                           i64* kept_at, T* reals, i64 block_reals, i64* ints, i64 block_ints, double* loss_out,
                           i64* trained_out) {
    const i64 max_out = max_code + (negative > 0 ? negative + 1 : 0);
    // a context never reaches past the job's tokens, so a huge window does not size the scratch
    const i64 span = window < n_tokens ? window : n_tokens;
    const i64 max_in = sg ? 2 * span : 1;
    // this block's scratch
    T* out_label = reals + (i64)blockIdx.x * block_reals;  // max_out
    T* G = out_label + max_out;                             // max_in * max_out
    T* errors = G + max_in * max_out;                       // max_in * D
    T* h = errors + max_in * D;                             // D
    T* lanes = h + D;                                       // 16 * blockDim.x / 16 (one dot per 16 threads)
    i64* context = ints + (i64)blockIdx.x * block_ints;     // 2 * span
    i64* out_row = context + 2 * span;                      // max_out: row * D
    i64* in_row = out_row + max_out;                        // max_in: row * D (-1: h)
    i64* shape = in_row + max_in;                           // [B, O, n_hs]
    const int tid = threadIdx.x, nthreads = blockDim.x;
    const u64 stride = (u64)negative + 2;
    const T one = (T)1, zero = (T)0;
    double loss = 0.0;
    i64 trained = 0;
    __shared__ i64 n_kept;

    for (i64 s = first_sentence + blockIdx.x; s < n_sentences; s += gridDim.x) {
        const i64 start = s == 0 ? 0 : sentence_ends[s - 1];
        const i64 end = sentence_ends[s];
        const double frac = div_rn((double)start, (double)n_tokens);
        const T alpha = (T)add_rn(alpha_start, mul_rn(sub_rn(alpha_end, alpha_start), frac));
        // subsampling (thread 0): kept words of this sentence go to kept[start, start + n)
        if (tid == 0) {
            i64 n = 0;
            for (i64 t = start; t < end; t++) {
                const int word = tokens[t];
                if ((i64)(fastnlp_splitmix64(seed, (u64)t * stride) >> 32) < keep_below[word]) {
                    kept[start + n] = word;
                    kept_at[start + n] = t;
                    n++;
                }
            }
            n_kept = n;
        }
        __syncthreads();
        const i64 n = n_kept;
        __syncthreads();  // everyone has read n_kept before thread 0 may write it again
        for (i64 i = 0; i < n; i++) {
            if (tid == 0) {
                const i64 center = kept[start + i], t = kept_at[start + i];
                trained++;
                const i64 reduced = shrink_windows
                    ? 1 + (i64)(((fastnlp_splitmix64(seed, (u64)t * stride + 1) >> 32) * (u64)window) >> 32) : window;
                const i64 lo = i > reduced ? i - reduced : 0;
                const i64 hi = i + reduced + 1 < n ? i + reduced + 1 : n;
                i64 B = 0, O = 0;
                for (i64 j = lo; j < hi; j++)
                    if (j != i) context[B++] = kept[start + j];
                if (B > 0) {
                    if (hs)
                        for (i64 k = 0; k < code_lengths[center]; k++) {
                            out_row[O] = (i64)points[center * max_code + k] * D;
                            out_label[O] = sub_rn(one, (T)codes[center * max_code + k]);
                            O++;
                        }
                    shape[2] = O;
                    if (negative > 0) {
                        out_row[O] = center * D;
                        out_label[O] = one;
                        O++;
                        for (i64 k = 0; k < negative; k++) {
                            const u64 r = fastnlp_splitmix64(seed, (u64)t * stride + 2 + (u64)k);
                            const i64 column = (i64)(((r >> 32) * (u64)n_alias) >> 32);
                            const i64 sample = (i64)(r & 0xFFFFFFFFULL) < alias_prob[column]
                                                   ? column : (i64)alias_index[column];
                            if (sample != center) {
                                out_row[O] = sample * D;
                                out_label[O] = zero;
                                O++;
                            }
                        }
                    }
                    if (sg)
                        for (i64 a = 0; a < B; a++) in_row[a] = context[a] * D;
                    else
                        in_row[0] = -1;
                }
                shape[0] = B;
                shape[1] = O;
            }
            __syncthreads();
            const i64 B = shape[0], O = shape[1], n_hs = shape[2];
            if (B == 0) {
                __syncthreads();
                continue;
            }
            const i64 n_in = sg ? B : 1;
            if (!sg) {  // h = mean of the context rows, summed in window order
                for (i64 d = tid; d < D; d += nthreads) {
                    T sum = zero;
                    for (i64 a = 0; a < B; a++) sum = add_rn(sum, syn0[context[a] * D + d]);
                    h[d] = div_rn(sum, (T)B);
                }
                __syncthreads();
            }
            // scores: dot number q = a * O + o is computed by the 16 threads of group q % groups
            const i64 groups = nthreads / 16;
            for (i64 q0 = 0; q0 < n_in * O; q0 += groups) {
                const i64 q = q0 + tid / 16, lane = tid % 16;
                if (tid < groups * 16 && q < n_in * O) {
                    const i64 a = q / O, o = q % O;
                    const T* x = sg ? syn0 + in_row[a] : h;
                    const T* y = (o < n_hs ? syn1 : syn1neg) + out_row[o];
                    T sum = zero;
                    for (i64 j = lane; j < D; j += 16) sum = add_rn(sum, mul_rn(x[j], y[j]));
                    lanes[tid] = sum;
                }
                __syncthreads();
                if (tid == 0) {
                    for (i64 g = 0; g < groups && q0 + g < n_in * O; g++) {
                        T p[16];
                        for (int k = 0; k < 16; k++) p[k] = lanes[g * 16 + k];
                        for (int w = 8; w >= 1; w /= 2)
                            for (int k = 0; k < w; k++) p[k] = add_rn(p[2 * k], p[2 * k + 1]);
                        G[q0 + g] = p[0];
                    }
                }
                __syncthreads();
            }
            if (tid == 0) {  // gradients and loss, in order of (input, output)
                for (i64 q = 0; q < n_in * O; q++) {
                    const T f = G[q], label = out_label[q % O];
                    T g;
                    if (f < mx && f > -mx) {
                        i64 index = (i64)mul_rn(add_rn(f, mx), scale);
                        if (index >= n_table) index = n_table - 1;
                        g = mul_rn(sub_rn(label, tables[index]), alpha);
                        loss += (double)tables[(label == one ? 2 : 1) * n_table + index];
                    } else if (f >= mx) {  // saturated: skipped, as gensim does
                        g = zero;
                        if (label != one) loss += (double)f;
                    } else if (f <= -mx) {
                        g = zero;
                        if (label == one) loss += -(double)f;
                    } else {
                        g = mul_rn(f, alpha);
                        loss = __longlong_as_double(0x7ff8000000000000LL);  // NaN: diverged
                    }
                    G[q] = g;
                }
            }
            __syncthreads();
            // input errors (reading the outputs)
            for (i64 a = 0; a < n_in; a++)
                for (i64 d = tid; d < D; d += nthreads) {
                    T e = zero;
                    for (i64 o = 0; o < O; o++)
                        e = add_rn(e, mul_rn(G[a * O + o], (o < n_hs ? syn1 : syn1neg)[out_row[o] + d]));
                    errors[a * D + d] = e;
                }
            __syncthreads();
            // outputs (reading the inputs), one row after another: a row may appear twice
            for (i64 o = 0; o < O; o++) {
                T* y = (o < n_hs ? syn1 : syn1neg) + out_row[o];
                for (i64 d = tid; d < D; d += nthreads) {
                    T acc = zero;
                    for (i64 a = 0; a < n_in; a++)
                        acc = add_rn(acc, mul_rn(G[a * O + o], sg ? syn0[in_row[a] + d] : h[d]));
                    y[d] = add_rn(y[d], acc);
                }
                __syncthreads();
            }
            // inputs, one row after another (a context word may appear twice)
            for (i64 a = 0; a < B; a++) {
                T* x = syn0 + context[a] * D;
                const T* e = errors + (sg ? a * D : 0);
                for (i64 d = tid; d < D; d += nthreads) x[d] = add_rn(x[d], e[d]);
                __syncthreads();
            }
        }
    }
    if (tid == 0) {
        loss_out[blockIdx.x] = loss;
        trained_out[blockIdx.x] = trained;
    }
}

#define W2V_KERNEL(NAME, T)                                                                         \
    __global__ void NAME(int sg, T* syn0, T* syn1neg, T* syn1, i64 D, const int* tokens, i64 n_tokens,\
                         const i64* sentence_ends, i64 first_sentence, i64 n_sentences,             \
                         const i64* keep_below, const i64* alias_prob, const int* alias_index,      \
                         i64 n_alias, const int* points, const unsigned char* codes,                \
                         const int* code_lengths, i64 max_code, int hs, const T* tables, i64 n_table,\
                         T mx, T scale, i64 window, i64 negative, double alpha_start, double alpha_end,\
                         u64 seed, int shrink_windows, int* kept, i64* kept_at, T* reals,           \
                         i64 block_reals, i64* ints, i64 block_ints, double* loss_out,              \
                         i64* trained_out) {                                                        \
        train_impl<T>(sg, syn0, syn1neg, syn1, D, tokens, n_tokens, sentence_ends, first_sentence,  \
                      n_sentences, keep_below, alias_prob, alias_index, n_alias, points, codes,     \
                      code_lengths, max_code, hs, tables, n_table, mx, scale, window, negative,     \
                      alpha_start, alpha_end, seed, shrink_windows, kept, kept_at, reals, block_reals,\
                      ints, block_ints, loss_out, trained_out);                                     \
    }

extern "C" {
W2V_KERNEL(word2vec_train_f32, float)
W2V_KERNEL(word2vec_train_f64, double)
}
