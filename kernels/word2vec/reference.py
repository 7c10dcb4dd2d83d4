"""NumPy reference of the word2vec training ops: a plain loop, obviously right, slow.

It is the contract written as code (see __init__.py for the words): every compiled version
performs these float operations in this order and must give the same bits. Vectors are handled
with NumPy element-wise operations, which round each product and each sum exactly as a scalar
loop does; only the dot product has an order to keep, spelled out in ``_dot``. Inputs arrive
validated: ids in range, C-contiguous arrays of matching dtypes.
"""
import math

import numpy as np

LANES = 16  # dot products sum into 16 partial sums, element j into sum j % 16 (see _dot)
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """The splitmix64 finaliser: a 64-bit integer hash."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw(seed, counter):
    """Random 64 bits number ``counter`` of the stream ``seed``: splitmix64's output at that
    position, so any draw can be made without the ones before it (counter-based)."""
    return mix64((seed + (counter + 1) * GOLDEN) & MASK64)


def _dot(x, y):
    """x . y in the dtype of x: products rounded, summed into LANES partial sums in order of j,
    then the partial sums added pairwise (0+1, 2+3, ...; then pairs of those, and so on)."""
    products = x * y
    partial = np.zeros(LANES, dtype=x.dtype)
    for start in range(0, products.shape[0], LANES):
        chunk = products[start:start + LANES]
        partial[:chunk.shape[0]] = partial[:chunk.shape[0]] + chunk
    while partial.shape[0] > 1:
        partial = partial[0::2] + partial[1::2]
    return partial[0]


def _gradient(f, label, alpha, tables, max_exp, scale):
    """(g, loss term) of one output: g = (label - sigmoid(f)) * alpha, sigmoid from the table;
    a score at or beyond +-max_exp is skipped (g = 0, as gensim does) and its loss term is |f|
    or 0 (the loss -log sigmoid(+-f) comes from the table otherwise)."""
    if f < max_exp and f > -max_exp:
        index = min(int((f + max_exp) * scale), tables.shape[1] - 1)
        return (label - tables[0, index]) * alpha, float(tables[1 + int(label), index])
    if f >= max_exp:
        return label.dtype.type(0), (0.0 if label else float(f))
    if f <= -max_exp:
        return label.dtype.type(0), (-float(f) if label else 0.0)
    return f * alpha, math.nan  # f is NaN: the weights have diverged, the caller stops


def _train(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
           points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
           alpha_end, seed, shrink_windows):
    dtype = syn0.dtype.type
    hs = code_lengths.shape[0] > 0
    n_alias = alias_prob.shape[0]
    mx = dtype(max_exp)
    scale = dtype(sigmoid_tables.shape[1] / (2.0 * max_exp))
    one, zero = dtype(1), dtype(0)
    stride = negative + 2  # draws per token: subsample, window, then one per negative
    n_tokens = tokens.shape[0]
    loss, trained, start = 0.0, 0, 0
    if n_tokens == 0:
        return loss, trained
    for end in sentence_ends.tolist():
        alpha = dtype(alpha_start + (alpha_end - alpha_start) * (start / n_tokens))
        kept = []  # (word, position in tokens) of the words that survive subsampling
        for t in range(start, end):
            word = int(tokens[t])
            if (draw(seed, t * stride) >> 32) < int(keep_below[word]):  # 2**32: always kept
                kept.append((word, t))
        for i, (center, t) in enumerate(kept):
            trained += 1
            reduced = 1 + (((draw(seed, t * stride + 1) >> 32) * window) >> 32) if shrink_windows else window
            context = [kept[j][0] for j in range(max(0, i - reduced), min(len(kept), i + reduced + 1)) if j != i]
            if not context:
                continue
            outputs = []  # (matrix, row, label)
            if hs:
                for k in range(int(code_lengths[center])):
                    outputs.append((syn1, int(points[center, k]), one - dtype(codes[center, k])))
            if negative > 0:
                outputs.append((syn1neg, center, one))
                for k in range(negative):
                    r = draw(seed, t * stride + 2 + k)
                    column = ((r >> 32) * n_alias) >> 32
                    sample = column if (r & 0xFFFFFFFF) < int(alias_prob[column]) else int(alias_index[column])
                    if sample != center:  # word2vec.c's rule: a draw of the target is skipped
                        outputs.append((syn1neg, sample, zero))
            if sg:
                inputs = [syn0[c] for c in context]  # views: rows are read before any write
            else:
                h = np.zeros(syn0.shape[1], dtype=syn0.dtype)
                for c in context:
                    h = h + syn0[c]
                inputs = [h / dtype(len(context))]
            # Every score uses the weights as they were before this step (one batch update).
            G = np.empty((len(inputs), len(outputs)), dtype=syn0.dtype)
            for a, x in enumerate(inputs):
                for o, (matrix, row, label) in enumerate(outputs):
                    G[a, o], term = _gradient(_dot(x, matrix[row]), label, alpha, sigmoid_tables, mx, scale)
                    loss += term
            # The input errors from the outputs before the step; then the outputs, one row after
            # another (a row listed twice gets both updates); then the inputs.
            errors = []
            for a in range(len(inputs)):
                acc = np.zeros(syn0.shape[1], dtype=syn0.dtype)
                for o, (matrix, row, _) in enumerate(outputs):
                    acc = acc + G[a, o] * matrix[row]
                errors.append(acc)
            for o, (matrix, row, _) in enumerate(outputs):
                acc = np.zeros(syn0.shape[1], dtype=syn0.dtype)
                for a, x in enumerate(inputs):
                    acc = acc + G[a, o] * x
                matrix[row] = matrix[row] + acc
            for a, c in enumerate(context):
                syn0[c] = syn0[c] + errors[a if sg else 0]
        start = end
    return loss, trained


def word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows):
    """Skip-gram with a window batch: the context words' input vectors against the outputs of
    the centre word (its Huffman path and/or itself plus shared negatives)."""
    return _train(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows):
    """CBOW: the mean of the context words' input vectors against the centre word's outputs;
    the input error is added to every context word."""
    return _train(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows)


def word2vec_encode(sentences, word_to_id):
    """Ids of a batch of token sequences, words missing from ``word_to_id`` left out: ``(ids
    int32, sentence_ends int64)``, the ends counting the kept words (an all-unknown sentence
    becomes empty)."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    flat = [token for sentence in sentences for token in sentence]
    ids = np.fromiter(map(word_to_id.get, flat, [-1] * len(flat)), dtype=np.int32, count=len(flat))
    known = ids >= 0
    if not known.all():
        sentence_of = np.repeat(np.arange(len(sentences)), lengths)
        lengths = np.bincount(sentence_of[known], minlength=len(sentences)).astype(np.int64)
        ids = np.ascontiguousarray(ids[known])
    return ids, np.cumsum(lengths, dtype=np.int64)
