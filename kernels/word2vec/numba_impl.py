"""Numba version of the word2vec training ops (contract in __init__.py, the order of every float
operation in reference.py): one job per call, compiled on first use, cached on disk, run without
the GIL so the model can train jobs on several threads at once (Hogwild).

Weights are passed flat (row r of width D starts at r * D); scalars of the weights' dtype
(``zero``, ``one``, alpha) keep every operation in that dtype (a Python literal would turn
float32 arithmetic into float64). Scratch buffers are allocated once per job, never per word.
Outputs of the Huffman path (rows of syn1) come first, so the loops run over them and then over
the negative-sampling rows instead of choosing an array per output (each choice would cost a
reference-count update).

Measured on PTB (D = 100, one thread): about 4-5x slower than the Cython version, which is the
default. Numba's LLVM pipeline leaves the 16-lane dot product (whose order of additions is fixed
by the contract, so no fastmath) scalar; allowing reassociation would vectorise it but break the
bit-for-bit agreement with the reference.
"""
import numba
import numpy as np

from .._numba_common import splitmix64
from .reference import train_privately

_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@numba.njit(inline="always")
def kept_words(tokens, start, end, keep_below, seed, stride, kept, kept_at):
    """The words of tokens[start:end] that survive subsampling, into kept (ids) and kept_at
    (positions, whose counters draw the window); returns how many."""
    n = 0
    for t in range(start, end):
        word = tokens[t]
        kept[n] = word  # branch-free: write always, advance when kept
        kept_at[n] = t
        if np.int64(splitmix64(seed, t * stride) >> _S32) < keep_below[word]:
            n += 1
    return n


@numba.njit(inline="always")
def window_words(kept, kept_at, i, n, window, shrink_windows, seed, stride, context):
    """The context of kept word i (a window shrunk at random, as word2vec.c does, unless
    shrink_windows is off) into context; returns its length."""
    t = kept_at[i]
    if shrink_windows:
        reduced = 1 + np.int64(((splitmix64(seed, t * stride + 1) >> _S32) * np.uint64(window)) >> _S32)
    else:
        reduced = np.int64(window)
    B = 0
    for j in range(max(0, i - reduced), min(n, i + reduced + 1)):
        if j != i:
            context[B] = kept[j]
            B += 1
    return B


@numba.njit(inline="always")
def _dot(x, xo, y, yo, D, zero):
    """Sum of x[xo + j] * y[yo + j] into 16 lanes (j % 16), then pairwise (reference._dot)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    s8 = s9 = s10 = s11 = s12 = s13 = s14 = s15 = zero
    j = 0
    while j + 16 <= D:
        s0 += x[xo + j] * y[yo + j]
        s1 += x[xo + j + 1] * y[yo + j + 1]
        s2 += x[xo + j + 2] * y[yo + j + 2]
        s3 += x[xo + j + 3] * y[yo + j + 3]
        s4 += x[xo + j + 4] * y[yo + j + 4]
        s5 += x[xo + j + 5] * y[yo + j + 5]
        s6 += x[xo + j + 6] * y[yo + j + 6]
        s7 += x[xo + j + 7] * y[yo + j + 7]
        s8 += x[xo + j + 8] * y[yo + j + 8]
        s9 += x[xo + j + 9] * y[yo + j + 9]
        s10 += x[xo + j + 10] * y[yo + j + 10]
        s11 += x[xo + j + 11] * y[yo + j + 11]
        s12 += x[xo + j + 12] * y[yo + j + 12]
        s13 += x[xo + j + 13] * y[yo + j + 13]
        s14 += x[xo + j + 14] * y[yo + j + 14]
        s15 += x[xo + j + 15] * y[yo + j + 15]
        j += 16
    r = D - j  # the tail: element j + k goes to lane k
    if r > 0:
        s0 += x[xo + j] * y[yo + j]
    if r > 1:
        s1 += x[xo + j + 1] * y[yo + j + 1]
    if r > 2:
        s2 += x[xo + j + 2] * y[yo + j + 2]
    if r > 3:
        s3 += x[xo + j + 3] * y[yo + j + 3]
    if r > 4:
        s4 += x[xo + j + 4] * y[yo + j + 4]
    if r > 5:
        s5 += x[xo + j + 5] * y[yo + j + 5]
    if r > 6:
        s6 += x[xo + j + 6] * y[yo + j + 6]
    if r > 7:
        s7 += x[xo + j + 7] * y[yo + j + 7]
    if r > 8:
        s8 += x[xo + j + 8] * y[yo + j + 8]
    if r > 9:
        s9 += x[xo + j + 9] * y[yo + j + 9]
    if r > 10:
        s10 += x[xo + j + 10] * y[yo + j + 10]
    if r > 11:
        s11 += x[xo + j + 11] * y[yo + j + 11]
    if r > 12:
        s12 += x[xo + j + 12] * y[yo + j + 12]
    if r > 13:
        s13 += x[xo + j + 13] * y[yo + j + 13]
    if r > 14:
        s14 += x[xo + j + 14] * y[yo + j + 14]
    return ((((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))
            + (((s8 + s9) + (s10 + s11)) + ((s12 + s13) + (s14 + s15))))


@numba.njit(inline="always")
def _gradient(f, label, is_positive, alpha, tables, T, mx, scale, one):
    """(g, loss term) as reference._gradient (``one`` unused; kernels/fasttext passes it too)."""
    if f < mx and f > -mx:
        index = np.int64((f + mx) * scale)
        if index >= T:
            index = T - 1
        return (label - tables[index]) * alpha, np.float64(tables[(1 + is_positive) * T + index])
    if f >= mx:  # saturated: skipped (g = 0)
        return label - label, (0.0 if is_positive else np.float64(f))
    if f <= -mx:
        return label - label, (-np.float64(f) if is_positive else 0.0)
    return f * alpha, np.nan


@numba.njit(inline="always")
def _add_scaled(out, oo, g, y, yo, D):
    """out[oo + d] += g * y[yo + d]"""
    for d in range(D):
        out[oo + d] += g * y[yo + d]


@numba.njit(inline="always")
def _add_to(y, yo, x, xo, D):
    """y[yo + d] += x[xo + d]"""
    for d in range(D):
        y[yo + d] += x[xo + d]


@numba.njit(cache=True, nogil=True)
def _train(sg, syn0, syn1neg, syn1, D, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
           codes, code_lengths, tables, mx, scale, window, negative, alpha_start, alpha_end, seed, shrink_windows, zero, one,
           first, stop):
    n_tokens = tokens.shape[0]
    T = tables.shape[0] // 3
    hs = code_lengths.shape[0] > 0
    n_alias = np.uint64(alias_prob.shape[0])
    max_code = points.shape[1] if hs else 0
    max_out = max_code + (negative + 1 if negative > 0 else 0)
    span = min(window, n_tokens)  # a context never reaches past the job: a huge window must not size scratch
    max_in = 2 * span if sg else 1
    kept = np.empty(n_tokens, np.int32)
    kept_at = np.empty(n_tokens, np.int64)
    context = np.empty(2 * span, np.int64)
    out_row = np.empty(max_out, np.int64)  # row * D
    in_row = np.empty(max_in, np.int64)  # row * D
    out_label = np.empty(max_out, syn0.dtype)
    G = np.empty(max_in * max_out, syn0.dtype)
    errors = np.empty(max_in * D, syn0.dtype)
    acc = np.empty(D, syn0.dtype)
    h = np.empty(D, syn0.dtype)
    cast = np.empty(1, syn0.dtype)  # rounds a float64 or an int to the weights' dtype
    stride = negative + 2
    loss = 0.0
    trained = 0
    start = sentence_ends[first - 1] if first > 0 else 0
    if n_tokens == 0:
        return loss, trained
    for s in range(first, stop):
        end = sentence_ends[s]
        cast[0] = alpha_start + (alpha_end - alpha_start) * (start / n_tokens)
        alpha = cast[0]
        n = kept_words(tokens, start, end, keep_below, seed, stride, kept, kept_at)
        for i in range(n):
            center = kept[i]
            t = kept_at[i]
            trained += 1
            B = window_words(kept, kept_at, i, n, window, shrink_windows, seed, stride, context)
            if B == 0:
                continue
            O = 0
            if hs:
                for k in range(code_lengths[center]):
                    out_row[O] = np.int64(points[center, k]) * D
                    out_label[O] = one - codes[center, k]
                    O += 1
            n_hs = O  # outputs [0, n_hs) are rows of syn1, the rest rows of syn1neg
            if negative > 0:
                out_row[O] = np.int64(center) * D
                out_label[O] = one
                O += 1
                for k in range(negative):
                    r = splitmix64(seed, t * stride + 2 + k)
                    column = np.int64(((r >> _S32) * n_alias) >> _S32)
                    if np.int64(r & _LOW32) < alias_prob[column]:
                        sample = column
                    else:
                        sample = np.int64(alias_index[column])
                    if sample != center:
                        out_row[O] = sample * D
                        out_label[O] = zero
                        O += 1
            if sg:
                n_in = B
                for a in range(B):
                    in_row[a] = context[a] * D
                inputs = syn0
            else:
                n_in = 1
                in_row[0] = 0
                for d in range(D):
                    h[d] = zero
                for a in range(B):
                    ra = context[a] * D
                    for d in range(D):
                        h[d] += syn0[ra + d]
                cast[0] = B
                for d in range(D):
                    h[d] = h[d] / cast[0]
                inputs = h
            # scores from the weights before the step
            for a in range(n_in):
                for o in range(O):
                    if o < n_hs:
                        f = _dot(inputs, in_row[a], syn1, out_row[o], D, zero)
                    else:
                        f = _dot(inputs, in_row[a], syn1neg, out_row[o], D, zero)
                    g, term = _gradient(f, out_label[o], out_label[o] == one, alpha, tables, T, mx, scale, one)
                    G[a * O + o] = g
                    loss += term
            # input errors (reading the outputs), then the outputs (reading the inputs), then inputs
            for a in range(n_in):
                e = a * D
                for d in range(D):
                    errors[e + d] = zero
                for o in range(n_hs):
                    _add_scaled(errors, e, G[a * O + o], syn1, out_row[o], D)
                for o in range(n_hs, O):
                    _add_scaled(errors, e, G[a * O + o], syn1neg, out_row[o], D)
            for o in range(O):
                for d in range(D):
                    acc[d] = zero
                for a in range(n_in):
                    _add_scaled(acc, 0, G[a * O + o], inputs, in_row[a], D)
                if o < n_hs:
                    _add_to(syn1, out_row[o], acc, 0, D)
                else:
                    _add_to(syn1neg, out_row[o], acc, 0, D)
            for a in range(B):
                _add_to(syn0, context[a] * D, errors, a * D if sg else 0, D)
        start = end
    return loss, trained


def _run(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points, codes,
         code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
         private_rows, sync_tokens):
    # The private rows get the rule's arithmetic between the ranges of sentences; the rows are
    # shared while a range runs (only the Cython loop keeps copies: threads scale there).
    return train_privately(
        lambda first, stop: _run_range(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                       alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                       negative, alpha_start, alpha_end, seed, shrink_windows, first, stop),
        syn0, syn1neg, sentence_ends, private_rows, sync_tokens)


def _run_range(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points, codes,
               code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
               first, stop):
    real = syn0.dtype.type
    T = sigmoid_tables.shape[1]
    loss, trained = _train(sg, syn0.reshape(-1), syn1neg.reshape(-1), syn1.reshape(-1), syn0.shape[1], tokens,
                           sentence_ends, keep_below, alias_prob, alias_index, points, codes, code_lengths,
                           sigmoid_tables.reshape(-1), real(max_exp), real(T / (2.0 * max_exp)), window, negative,
                           float(alpha_start), float(alpha_end), np.uint64(seed), bool(shrink_windows), real(0), real(1),
                           first, stop)
    return float(loss), int(trained)


def word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _run(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
                private_rows, sync_tokens)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    return _run(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows,
                private_rows, sync_tokens)
