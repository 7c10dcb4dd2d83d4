"""Numba version of the fastText training ops (contract in __init__.py, the order of every float
operation in reference.py): one job per call, compiled on first use, cached on disk, run without
the GIL so the model trains jobs on several threads at once (Hogwild).

The dot product and the sigmoid-table gradient are the word2vec kernel's (same bits as the
reference). Weights are passed flat (row r of width D starts at r * D); ``zero``/``one`` keep
arithmetic in the weights' dtype. Scratch is allocated once per job, never per word.
"""
import numba
import numpy as np

from .._numba_common import splitmix64
from ..word2vec.numba_impl import _add_scaled, _dot, _gradient, kept_words, window_words

_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_BITS24 = np.uint64(0xFFFFFF)
_S16, _S40 = np.uint64(16), np.uint64(40)


@numba.njit(inline="always")
def _step(loss, h, errors, syn1neg, D, target, counter, negative, seed, alias_prob, alias_index, n_alias, alpha,
          tables, T, mx, scale, zero, one):
    """The positive target then the negative draws, each output updated in turn; the input error
    accumulates into ``errors``. Returns ``loss`` plus each output's term, added in turn."""
    for k in range(negative + 1):
        if k == 0:
            row = np.int64(target)
            label = one
        else:
            r = splitmix64(seed, counter + k - 1)
            column = np.int64(((r >> _S32) * n_alias) >> _S32)
            if np.int64(r & _LOW32) < alias_prob[column]:
                row = column
            else:
                row = np.int64(alias_index[column])
            if row == target:
                continue
            label = zero
        ro = row * D
        f = _dot(h, 0, syn1neg, ro, D, zero)
        g, term = _gradient(f, label, k == 0, alpha, tables, T, mx, scale, one)
        loss += term
        _add_scaled(errors, 0, g, syn1neg, ro, D)
        _add_scaled(syn1neg, ro, g, h, 0, D)
    return loss


@numba.njit(cache=True, nogil=True)
def _train(sg, syn0, syn1neg, D, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
           alias_index, tables, mx, scale, window, negative, alpha_start, alpha_end, seed, shrink_windows, zero, one):
    n_tokens = tokens.shape[0]
    loss = 0.0
    trained = 0
    if n_tokens == 0:
        return loss, trained
    T = tables.shape[0] // 3
    n_alias = np.uint64(alias_prob.shape[0])
    span = max(1, min(window, n_tokens))
    if sg:
        stride = 2 + 2 * span * negative
    else:
        stride = 2 + negative
    kept = np.empty(n_tokens, np.int32)
    kept_at = np.empty(n_tokens, np.int64)
    context = np.empty(2 * span, np.int64)
    h = np.empty(D, syn0.dtype)
    errors = np.empty(D, syn0.dtype)
    cast = np.empty(1, syn0.dtype)
    start = 0
    for s in range(sentence_ends.shape[0]):
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
            for d in range(D):
                h[d] = zero
                errors[d] = zero
            count = 0
            if sg:
                for q in range(subword_starts[center], subword_starts[center + 1]):
                    ro = np.int64(subword_rows[q]) * D
                    for d in range(D):
                        h[d] += syn0[ro + d]
                    count += 1
            else:
                for b in range(B):
                    c = context[b]
                    for q in range(subword_starts[c], subword_starts[c + 1]):
                        ro = np.int64(subword_rows[q]) * D
                        for d in range(D):
                            h[d] += syn0[ro + d]
                        count += 1
            cast[0] = count
            for d in range(D):
                h[d] = h[d] / cast[0]
            if sg:
                for b in range(B):
                    loss = _step(loss, h, errors, syn1neg, D, context[b], t * stride + 2 + b * negative, negative, seed,
                                  alias_prob, alias_index, n_alias, alpha, tables, T, mx, scale, zero, one)
                for q in range(subword_starts[center], subword_starts[center + 1]):
                    ro = np.int64(subword_rows[q]) * D
                    for d in range(D):
                        syn0[ro + d] += errors[d]
            else:
                loss = _step(loss, h, errors, syn1neg, D, center, t * stride + 2, negative, seed,
                              alias_prob, alias_index, n_alias, alpha, tables, T, mx, scale, zero, one)
                for b in range(B):
                    c = context[b]
                    for q in range(subword_starts[c], subword_starts[c + 1]):
                        ro = np.int64(subword_rows[q]) * D
                        for d in range(D):
                            syn0[ro + d] += errors[d]
        start = end
    return loss, trained


def _run(sg, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
         alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    real = syn0.dtype.type
    T = sigmoid_tables.shape[1]
    loss, trained = _train(sg, syn0.reshape(-1), syn1neg.reshape(-1), syn0.shape[1], tokens, sentence_ends,
                           subword_starts, subword_rows, keep_below, alias_prob, alias_index,
                           sigmoid_tables.reshape(-1), real(max_exp), real(T / (2.0 * max_exp)), int(window),
                           int(negative), float(alpha_start), float(alpha_end), np.uint64(seed),
                           bool(shrink_windows), real(0), real(1))
    return float(loss), int(trained)


def fasttext_sg(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    return _run(True, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows)


def fasttext_cbow(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                  alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                  shrink_windows):
    return _run(False, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows)


@numba.njit(cache=True, nogil=True)
def _uniform(flat, begin, divisor, seed, step, one):
    # Element j of flat is element k = begin + j of the matrix: a pair of elements per draw. The
    # 24 bits are stored first (exactly: no rounding below 2**24), then scaled in the dtype.
    n = flat.shape[0]
    j = 0
    if n and begin % 2 == 1:  # k odd: the second half of draw (k - 1) / 2
        r = splitmix64(seed, np.uint64(begin >> 1))
        flat[0] = (r >> _S16) & _BITS24
        flat[0] = (flat[0] * step - one) / divisor
        j = 1
    while j + 1 < n:
        r = splitmix64(seed, np.uint64((begin + j) >> 1))
        flat[j] = r >> _S40
        flat[j + 1] = (r >> _S16) & _BITS24
        flat[j] = (flat[j] * step - one) / divisor
        flat[j + 1] = (flat[j + 1] * step - one) / divisor
        j += 2
    if j < n:  # k even, the last element: the first half of its draw
        r = splitmix64(seed, np.uint64((begin + j) >> 1))
        flat[j] = r >> _S40
        flat[j] = (flat[j] * step - one) / divisor


def fasttext_uniform_rows(rows, first_row, divisor, seed):
    real = rows.dtype.type
    _uniform(rows.reshape(-1), np.int64(first_row) * rows.shape[1], real(divisor), np.uint64(seed), real(2.0 ** -23),
             real(1))
