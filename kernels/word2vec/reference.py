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


def private_copies(syn0, syn1neg, private_rows):
    """The rows a job keeps to itself (the first ``private_rows`` of syn0 and of syn1neg), copied."""
    return syn0[:private_rows].copy(), syn1neg[:private_rows].copy()


def sync_ranges(sentence_ends, sync_tokens):
    """The job's sentences cut into ranges ``(first, stop)``: a range ends with the first
    sentence that ends ``sync_tokens`` or more tokens past the range's first token (0: the
    whole job is one range). The private rows are synchronised after each range."""
    n = sentence_ends.shape[0]
    if sync_tokens <= 0 or n == 0:
        return [(0, n)]
    ranges, first, begin = [], 0, 0
    for s, end in enumerate(sentence_ends.tolist()):
        if end - begin >= sync_tokens:
            ranges.append((first, s + 1))
            first, begin = s + 1, end
    if first < n:
        ranges.append((first, n))
    return ranges


def train_privately(train_range, syn0, syn1neg, sentence_ends, private_rows, sync_tokens):
    """One job (``train_range(first, stop)`` trains sentences [first, stop) in place and returns
    (loss, trained)) under the private-rows rule, for a caller that is the only writer of the
    weights: after each range of :func:`sync_ranges`, every private row is set to its value at
    the range's start plus the range's change, ``start + (trained - start)``, the float
    operations of a job that trained copies and added their change to the shared rows."""
    loss, trained = 0.0, 0
    for first, stop in sync_ranges(sentence_ends, sync_tokens if private_rows else 0):
        at_start = private_copies(syn0, syn1neg, private_rows)
        range_loss, range_trained = train_range(first, stop)
        loss, trained = loss + range_loss, trained + range_trained
        for weights, start in zip((syn0, syn1neg), at_start):
            rows = start.shape[0]
            weights[:rows] = start + (weights[:rows] - start)
    return loss, trained


def _train(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
           points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
           alpha_end, seed, shrink_windows, private_rows, sync_tokens):
    # One call is one thread here, so nothing else writes the private rows during the job: it
    # trains them in place and applies the rule's arithmetic after each range.
    return train_privately(
        lambda first, stop: _train_rows(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob,
                                        alias_index, points, codes, code_lengths, sigmoid_tables, max_exp, window,
                                        negative, alpha_start, alpha_end, seed, shrink_windows, first, stop),
        syn0, syn1neg, sentence_ends, private_rows, sync_tokens)


def _train_rows(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows, first, stop):
    """Sentences [first, stop) of the job, trained in place; (loss, trained words)."""
    dtype = syn0.dtype.type
    hs = code_lengths.shape[0] > 0
    n_alias = alias_prob.shape[0]
    mx = dtype(max_exp)
    scale = dtype(sigmoid_tables.shape[1] / (2.0 * max_exp))
    one, zero = dtype(1), dtype(0)
    stride = negative + 2  # draws per token: subsample, window, then one per negative
    n_tokens = tokens.shape[0]
    loss, trained = 0.0, 0
    start = int(sentence_ends[first - 1]) if first > 0 else 0
    if n_tokens == 0:
        return loss, trained
    for end in sentence_ends[first:stop].tolist():
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
                alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    """Skip-gram with a window batch: the context words' input vectors against the outputs of
    the centre word (its Huffman path and/or itself plus shared negatives)."""
    return _train(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows, sync_tokens)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows=0, sync_tokens=0):
    """CBOW: the mean of the context words' input vectors against the centre word's outputs;
    the input error is added to every context word."""
    return _train(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows, private_rows, sync_tokens)


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
