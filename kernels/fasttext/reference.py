"""NumPy reference of the fastText training ops: a plain loop, obviously right, slow.

The contract (``__init__.py``) written as code: the Numba version performs these float
operations in this order and gives the same bits. It reuses the word2vec reference's dot
product (16 lanes, then pairwise), gradient (sigmoid table) and counter-based draws.
"""
import numpy as np

from ..sgns.reference import draw as draw_many
from ..word2vec.reference import _dot, _gradient, draw


def _noise(seed, counter, alias_prob, alias_index):
    r = draw(seed, counter)
    column = ((r >> 32) * alias_prob.shape[0]) >> 32
    return column if (r & 0xFFFFFFFF) < int(alias_prob[column]) else int(alias_index[column])


def _train(sg, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
           alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    dtype = syn0.dtype.type
    mx = dtype(max_exp)
    scale = dtype(sigmoid_tables.shape[1] / (2.0 * max_exp))
    one, zero = dtype(1), dtype(0)
    n_tokens = tokens.shape[0]
    span = max(1, min(window, n_tokens))
    stride = 2 + 2 * span * negative if sg else 2 + negative
    D = syn0.shape[1]
    loss, trained, start = 0.0, 0, 0
    if n_tokens == 0:
        return loss, trained

    def rows_of(word):
        return [int(r) for r in subword_rows[subword_starts[word]:subword_starts[word + 1]]]

    def step(h, errors, target, counter, alpha):
        """The positive target then ``negative`` draws, one output after another; returns the
        loss and the input error accumulated into ``errors``."""
        nonlocal loss
        outputs = [(target, one)]
        for k in range(negative):
            sample = _noise(seed, counter + k, alias_prob, alias_index)
            if sample != target:
                outputs.append((sample, zero))
        for row, label in outputs:
            g, term = _gradient(_dot(h, syn1neg[row]), label, alpha, sigmoid_tables, mx, scale)
            loss += term
            errors = errors + g * syn1neg[row]
            syn1neg[row] = syn1neg[row] + g * h
        return errors

    for end in sentence_ends.tolist():
        alpha = dtype(alpha_start + (alpha_end - alpha_start) * (start / n_tokens))
        kept = []
        for t in range(start, end):
            word = int(tokens[t])
            if (draw(seed, t * stride) >> 32) < int(keep_below[word]):
                kept.append((word, t))
        for i, (center, t) in enumerate(kept):
            trained += 1
            reduced = 1 + (((draw(seed, t * stride + 1) >> 32) * window) >> 32) if shrink_windows else window
            context = [kept[j][0] for j in range(max(0, i - reduced), min(len(kept), i + reduced + 1)) if j != i]
            if not context:
                continue
            errors = np.zeros(D, dtype=syn0.dtype)
            if sg:
                inputs = rows_of(center)
                h = np.zeros(D, dtype=syn0.dtype)
                for r in inputs:
                    h = h + syn0[r]
                h = h / dtype(len(inputs))
                for b, c in enumerate(context):
                    errors = step(h, errors, c, t * stride + 2 + b * negative, alpha)
            else:
                inputs = [r for c in context for r in rows_of(c)]
                h = np.zeros(D, dtype=syn0.dtype)
                for r in inputs:
                    h = h + syn0[r]
                h = h / dtype(len(inputs))
                errors = step(h, errors, center, t * stride + 2, alpha)
            for r in inputs:
                syn0[r] = syn0[r] + errors
        start = end
    return loss, trained


def fasttext_sg(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    """Skip-gram: the centre word's input (mean of its subword rows) predicts each context word."""
    return _train(True, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below,
                  alias_prob, alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end,
                  seed, shrink_windows)


def fasttext_cbow(syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below, alias_prob,
                  alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed, shrink_windows):
    """CBOW: the mean of every subword row of every context word predicts the centre word."""
    return _train(False, syn0, syn1neg, tokens, sentence_ends, subword_starts, subword_rows, keep_below,
                  alias_prob, alias_index, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end,
                  seed, shrink_windows)


def fasttext_uniform_rows(rows, first_row, divisor, seed):
    """Fill ``rows`` (rows first_row.. of a matrix) with uniform values in [-1, 1) / divisor:
    element k = (first_row + i) * D + d is 24 bits u of draw k >> 1 (bits 40-63 for an even k,
    16-39 for an odd one), (u * 2**-23 - 1) / divisor in the rows' dtype."""
    dtype = rows.dtype.type
    flat = rows.reshape(-1)
    begin = int(first_row) * rows.shape[1]
    chunk = 1 << 20  # bounded temporaries for a matrix of any size
    for lo in range(0, flat.shape[0], chunk):
        k = np.arange(begin + lo, begin + min(flat.shape[0], lo + chunk), dtype=np.uint64)
        r = draw_many(np.uint64(seed), k >> np.uint64(1))
        u = np.where(k & np.uint64(1), (r >> np.uint64(16)) & np.uint64(0xFFFFFF), r >> np.uint64(40))
        flat[lo:lo + k.shape[0]] = (u.astype(dtype) * dtype(2.0 ** -23) - dtype(1)) / dtype(divisor)
