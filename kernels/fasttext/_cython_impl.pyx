# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython version of the fastText training ops: typed loops over raw pointers, run without the GIL.

The contract is in __init__.py and the order of every float operation in reference.py; results
equal the reference bit for bit (one thread). Cython (``_train``) does the control flow, as the
word2vec kernel does: subsampling, windows, negative draws, and for each centre word two lists
of row pointers, its inputs (skip-gram: the centre word's rows; CBOW: every row of every context
word) and its outputs with their labels (skip-gram: the whole window's, context word by context
word). The vector work of the centre word is one C function over those lists, ``ft_step_*``
(fasttext_ops.h: the mean h, the outputs' scores a few at a time, e added to every input row),
built per instruction set. No prefetching: on PTB with 2,000,000 buckets, fetching the next
centre word's rows while a step runs, or the rows of the word about to enter the window 1 to 8
words ahead, changed nothing measurable (within the 5% noise of a shared machine), although the
same job runs about 1.5x faster when every row fits in the cache (1,000 buckets). Where a CBOW
step's time goes (PTB, 2,000,000 buckets, 100,000 words, thread CPU time; parts left out one at
a time): adding e to the ~90 input rows 30%, the scores and updates of the 6 outputs 20%, the
mean 15%, the lists and draws 6%, and the rest the first touch of rows from the big matrix.
Each of these measured within 5% of this loop: every vector loop at AVX-512 width with masked
tails (7 vectors a row instead of 13), the input rows updated in reverse order (the rows summed
last are still in L1), the outputs' rows prefetched one or two centre words ahead, all 6
outputs scored side by side, and rows of 96 floats (aligned to cache lines) instead of 100: the
time follows the bytes the rows move, not the instructions.

Inputs arrive validated (__init__.check_problem / check_job): ids and subword rows in range,
C-contiguous arrays of one float dtype, weights not sharing memory. Several threads may run jobs
on the same weights at once (Hogwild): rows are then read and written without locks.
"""
from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef extern from "fastnlp/rng.h" nogil:
    uint64_t fastnlp_splitmix64(uint64_t seed, uint64_t counter)

cdef extern from "fasttext_ops.h" nogil:
    const char* ft_simd_level()
    void ft_step_f(float** inputs, Py_ssize_t n_in, float** outputs, const unsigned char* positive, Py_ssize_t n_out,
                   Py_ssize_t D, float alpha, const float* tables, Py_ssize_t n_table, float mx, float scale, float* h,
                   float* e, double* loss)
    void ft_step_d(double** inputs, Py_ssize_t n_in, double** outputs, const unsigned char* positive,
                   Py_ssize_t n_out, Py_ssize_t D, double alpha, const double* tables, Py_ssize_t n_table, double mx,
                   double scale, double* h, double* e, double* loss)
    void ft_uniform_f(float* out, Py_ssize_t n, uint64_t begin, float divisor, uint64_t seed)
    void ft_uniform_d(double* out, Py_ssize_t n, uint64_t begin, double divisor, uint64_t seed)

# The build of the float step that runs on this CPU (cf. gensim's FAST_VERSION): "avx2" or
# "default" (fasttext_ops.h).
SIMD = ft_simd_level().decode()


cdef struct Lists:
    # One centre word's work: its input rows and its outputs (row, label), in the reference's order.
    void** inputs
    Py_ssize_t n_in
    void** outputs
    unsigned char* positive
    Py_ssize_t n_out


cdef Py_ssize_t _noise(uint64_t seed, uint64_t counter, const int64_t* alias_prob, const int32_t* alias_index,
                       uint64_t n_alias) noexcept nogil:
    """Draw ``counter`` of the noise distribution (Walker's alias table, reference._noise)."""
    cdef uint64_t r = fastnlp_splitmix64(seed, counter)
    cdef int64_t column = <int64_t>(((r >> 32) * n_alias) >> 32)
    if <int64_t>(r & 0xFFFFFFFFULL) < alias_prob[column]:
        return column
    return alias_index[column]


cdef void _list_outputs(Lists* lists, char* syn1neg, Py_ssize_t row_bytes, Py_ssize_t target, uint64_t counter,
                        Py_ssize_t negative, uint64_t seed, const int64_t* alias_prob, const int32_t* alias_index,
                        uint64_t n_alias) noexcept nogil:
    """Append the target (label 1) and its ``negative`` draws from ``counter`` on (label 0; a
    draw equal to the target is skipped)."""
    cdef Py_ssize_t k, sample
    lists.outputs[lists.n_out] = syn1neg + target * row_bytes
    lists.positive[lists.n_out] = 1
    lists.n_out += 1
    for k in range(negative):
        sample = _noise(seed, counter + k, alias_prob, alias_index, n_alias)
        if sample != target:
            lists.outputs[lists.n_out] = syn1neg + sample * row_bytes
            lists.positive[lists.n_out] = 0
            lists.n_out += 1


cdef void _list_inputs(Lists* lists, char* syn0, Py_ssize_t row_bytes, Py_ssize_t word,
                       const int64_t* subword_starts, const int32_t* subword_rows) noexcept nogil:
    """Append the input rows of ``word`` in list order."""
    cdef int64_t q
    for q in range(subword_starts[word], subword_starts[word + 1]):
        lists.inputs[lists.n_in] = syn0 + <Py_ssize_t>subword_rows[q] * row_bytes
        lists.n_in += 1


cdef bint _list_centre(bint sg, Lists* lists, Py_ssize_t i, Py_ssize_t n, const int32_t* kept,
                       const int64_t* kept_at, char* syn0, char* syn1neg, Py_ssize_t row_bytes,
                       const int64_t* subword_starts, const int32_t* subword_rows, Py_ssize_t window,
                       bint shrink_windows, Py_ssize_t negative, uint64_t seed, uint64_t stride,
                       const int64_t* alias_prob, const int32_t* alias_index, uint64_t n_alias) noexcept nogil:
    """The lists of kept word i (of n): False when its window holds no other word."""
    cdef Py_ssize_t center = kept[i], reduced, lo, hi, j, b = 0
    cdef uint64_t t = <uint64_t>kept_at[i]
    if shrink_windows:
        reduced = 1 + <Py_ssize_t>(((fastnlp_splitmix64(seed, t * stride + 1) >> 32) * <uint64_t>window) >> 32)
    else:
        reduced = window
    lo = i - reduced if i > reduced else 0
    hi = i + reduced + 1 if i + reduced + 1 < n else n
    if hi - lo <= 1:
        return False
    lists.n_in = 0
    lists.n_out = 0
    if sg:
        _list_inputs(lists, syn0, row_bytes, center, subword_starts, subword_rows)
        for j in range(lo, hi):
            if j != i:
                _list_outputs(lists, syn1neg, row_bytes, kept[j], t * stride + 2 + b * negative, negative, seed,
                              alias_prob, alias_index, n_alias)
                b += 1
    else:
        for j in range(lo, hi):
            if j != i:
                _list_inputs(lists, syn0, row_bytes, kept[j], subword_starts, subword_rows)
        _list_outputs(lists, syn1neg, row_bytes, center, t * stride + 2, negative, seed, alias_prob, alias_index,
                      n_alias)
    return True


cdef (double, int64_t) _train(bint sg, floating* syn0, floating* syn1neg, Py_ssize_t D, const int32_t* tokens,
                             Py_ssize_t n_tokens, const int64_t* sentence_ends, Py_ssize_t n_sentences,
                             const int64_t* subword_starts, const int32_t* subword_rows, const int64_t* keep_below,
                             const int64_t* alias_prob, const int32_t* alias_index, Py_ssize_t n_alias,
                             const floating* tables, Py_ssize_t T, floating mx, floating scale, Py_ssize_t window,
                             Py_ssize_t negative, double alpha_start, double alpha_end, uint64_t seed,
                             bint shrink_windows, int32_t* kept, int64_t* kept_at, Lists* lists, floating* h,
                             floating* e) noexcept nogil:
    # One job, sentence by sentence, in the order of reference._train. Scratch (from _run_typed):
    # kept/kept_at (N), the lists of one centre word, h and e (D).
    cdef double loss = 0.0
    cdef int64_t trained = 0
    cdef Py_ssize_t s, t, i, n, start = 0, end
    cdef Py_ssize_t span = window if window < n_tokens else n_tokens
    cdef uint64_t stride = <uint64_t>(2 + 2 * (span if span > 1 else 1) * negative) if sg else <uint64_t>(2 + negative)
    cdef Py_ssize_t row_bytes = D * sizeof(floating)
    cdef int64_t word
    cdef floating alpha
    if n_tokens == 0:
        return loss, trained
    for s in range(n_sentences):
        end = sentence_ends[s]
        alpha = <floating>(alpha_start + (alpha_end - alpha_start) * (<double>start / <double>n_tokens))
        n = 0
        for t in range(start, end):  # branch-free: write always, advance when kept
            word = tokens[t]
            kept[n] = <int32_t>word
            kept_at[n] = t
            n += <int64_t>(fastnlp_splitmix64(seed, t * stride) >> 32) < keep_below[word]
        for i in range(n):
            trained += 1
            if not _list_centre(sg, lists, i, n, kept, kept_at, <char*>syn0, <char*>syn1neg, row_bytes,
                                subword_starts, subword_rows, window, shrink_windows, negative, seed, stride,
                                alias_prob, alias_index, n_alias):
                continue
            if floating is float:
                ft_step_f(<float**>lists.inputs, lists.n_in, <float**>lists.outputs, lists.positive, lists.n_out,
                          D, alpha, tables, T, mx, scale, h, e, &loss)
            else:
                ft_step_d(<double**>lists.inputs, lists.n_in, <double**>lists.outputs, lists.positive,
                          lists.n_out, D, alpha, tables, T, mx, scale, h, e, &loss)
        start = end
    return loss, trained


cdef bint _allocate(Lists* lists, Py_ssize_t max_in, Py_ssize_t max_out) noexcept nogil:
    lists.inputs = <void**>malloc((max_in + 1) * sizeof(void*))
    lists.outputs = <void**>malloc((max_out + 1) * sizeof(void*))
    lists.positive = <unsigned char*>malloc(max_out + 1)
    return lists.inputs != NULL and lists.outputs != NULL and lists.positive != NULL


cdef void _release(Lists* lists) noexcept nogil:
    free(lists.inputs)
    free(lists.outputs)
    free(lists.positive)


cdef (double, int64_t) _run_typed(bint sg, floating[:, ::1] syn0, floating[:, ::1] syn1neg,
                                  const int32_t[::1] tokens, const int64_t[::1] sentence_ends,
                                  const int64_t[::1] subword_starts, const int32_t[::1] subword_rows,
                                  const int64_t[::1] keep_below, const int64_t[::1] alias_prob,
                                  const int32_t[::1] alias_index, const floating[:, ::1] tables, double max_exp,
                                  Py_ssize_t window, Py_ssize_t negative, double alpha_start, double alpha_end,
                                  uint64_t seed, bint shrink_windows) except *:
    cdef Py_ssize_t D = syn0.shape[1], N = tokens.shape[0], V = syn1neg.shape[0], T = tables.shape[1], w
    cdef Py_ssize_t most_rows = 1
    for w in range(V):  # the longest subword list sizes the input lists
        if subword_starts[w + 1] - subword_starts[w] > most_rows:
            most_rows = subword_starts[w + 1] - subword_starts[w]
    # A context never reaches past the job's N tokens: a huge window must not size the scratch.
    cdef Py_ssize_t span = window if window < N else N
    cdef Py_ssize_t max_in = most_rows if sg else 2 * span * most_rows
    cdef Py_ssize_t max_out = (2 * span if sg else 1) * (negative + 1)
    cdef Lists lists
    lists.inputs = lists.outputs = NULL
    lists.positive = NULL
    # One block of scratch per job (never per word); +1 keeps every size non-zero.
    cdef int32_t* kept = <int32_t*>malloc((N + 1) * sizeof(int32_t))
    cdef int64_t* kept_at = <int64_t*>malloc((N + 1) * sizeof(int64_t))
    cdef floating* reals = <floating*>malloc((2 * D + 1) * sizeof(floating))
    cdef (double, int64_t) result = (0.0, 0)
    cdef floating dummy = 0
    cdef floating* syn1neg_p = &syn1neg[0, 0] if V else &dummy
    cdef const int32_t* tokens_p = &tokens[0] if N else <const int32_t*>kept
    cdef const int64_t* ends_p = &sentence_ends[0] if sentence_ends.shape[0] else <const int64_t*>kept_at
    cdef const int32_t* rows_p = &subword_rows[0] if subword_rows.shape[0] else <const int32_t*>kept
    cdef const int64_t* keep_p = &keep_below[0] if V else <const int64_t*>kept_at
    cdef const int64_t* alias_prob_p = &alias_prob[0] if V else <const int64_t*>kept_at
    cdef const int32_t* alias_index_p = &alias_index[0] if V else <const int32_t*>kept
    try:
        if not _allocate(&lists, max_in, max_out) or kept == NULL or kept_at == NULL or reals == NULL:
            raise MemoryError()
        with nogil:
            result = _train(sg, &syn0[0, 0], syn1neg_p, D, tokens_p, N, ends_p, sentence_ends.shape[0],
                            &subword_starts[0], rows_p, keep_p, alias_prob_p, alias_index_p, V, &tables[0, 0], T,
                            <floating>max_exp, <floating>(T / (2.0 * max_exp)), window, negative, alpha_start,
                            alpha_end, seed, shrink_windows, kept, kept_at, &lists, reals, reals + D)
    finally:
        _release(&lists)
        free(kept)
        free(kept_at)
        free(reals)
    return result


def _run(bint sg, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
         alias_index, sigmoid_tables, double max_exp, Py_ssize_t window, Py_ssize_t negative, double alpha_start,
         double alpha_end, uint64_t seed, bint shrink_windows):
    cdef (double, int64_t) result
    if tokens.shape[0] == 0:  # also every job of an empty vocabulary (tokens are ids below V)
        return 0.0, 0
    if syn0.dtype == np.float32:
        result = _run_typed[float](sg, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows,
                                   keep_below, alias_prob, alias_index, sigmoid_tables, max_exp, window, negative,
                                   alpha_start, alpha_end, seed, shrink_windows)
    else:
        result = _run_typed[double](sg, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows,
                                    keep_below, alias_prob, alias_index, sigmoid_tables, max_exp, window, negative,
                                    alpha_start, alpha_end, seed, shrink_windows)
    return float(result[0]), int(result[1])


def fasttext_sg(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    return _run(True, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows)


def fasttext_cbow(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                  alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                  shrink_windows):
    return _run(False, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows)



def fasttext_uniform_rows(rows, first_row, divisor, seed):
    cdef float[:, ::1] single
    cdef double[:, ::1] double_rows
    cdef Py_ssize_t n = rows.size
    cdef uint64_t begin = <uint64_t>first_row * <uint64_t>rows.shape[1], stream = seed
    cdef double scale = divisor
    if n == 0:
        return
    if rows.dtype == np.float32:
        single = rows
        with nogil:
            ft_uniform_f(&single[0, 0], n, begin, <float>scale, stream)
    else:
        double_rows = rows
        with nogil:
            ft_uniform_d(&double_rows[0, 0], n, begin, scale, stream)
