"""CuPy wrapper of the word2vec training ops around word2vec.cu (inputs validated, see __init__.py).

The registered ops launch one block: sentences are trained one after another in the
reference's order of float operations, so the result equals the CPU's (the check the generated
tests make). ``train_hogwild`` launches many blocks that train sentences at once and update
shared rows without locks: the fast GPU mode, not reproducible bit for bit.
"""
from pathlib import Path

import cupy
import numpy as np

from .._cuda import typed_kernel

SOURCE = Path(__file__).with_name("word2vec.cu")
THREADS = 128  # a multiple of 16: one dot product per 16 threads


def train_hogwild(sg, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index, points,
                  codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start, alpha_end, seed,
                  shrink_windows=True, blocks=1):
    """One job on ``blocks`` thread blocks; returns (loss, trained) like the registered ops."""
    V, D = syn0.shape
    N = tokens.shape[0]
    if V == 0 or N == 0:
        return 0.0, 0
    hs = code_lengths.shape[0] > 0
    max_code = points.shape[1] if hs else 0
    max_out = max_code + (negative + 1 if negative > 0 else 0)
    span = min(window, N)  # as word2vec.cu lays out a block's scratch
    max_in = 2 * span if sg else 1
    block_reals = max_out + max_in * max_out + max_in * D + D + THREADS
    block_ints = 2 * span + max_out + max_in + 3
    reals = cupy.empty(blocks * block_reals, dtype=syn0.dtype)
    ints = cupy.empty(blocks * block_ints, dtype=cupy.int64)
    kept = cupy.empty(N, dtype=cupy.int32)
    kept_at = cupy.empty(N, dtype=cupy.int64)
    loss = cupy.zeros(blocks, dtype=cupy.float64)
    trained = cupy.zeros(blocks, dtype=cupy.int64)
    real = syn0.dtype.type
    T = sigmoid_tables.shape[1]
    typed_kernel(SOURCE, "word2vec_train", syn0.dtype)(
        (blocks,), (THREADS,),
        (np.int32(bool(sg)), syn0, syn1neg, syn1, np.int64(D), tokens, np.int64(N), sentence_ends,
         np.int64(sentence_ends.shape[0]), keep_below, alias_prob, alias_index, np.int64(alias_prob.shape[0]),
         points, codes, code_lengths, np.int64(max_code), np.int32(hs), sigmoid_tables, np.int64(T),
         real(max_exp), real(T / (2.0 * max_exp)), np.int64(window), np.int64(negative), np.float64(alpha_start),
         np.float64(alpha_end), np.uint64(seed), np.int32(bool(shrink_windows)), kept, kept_at, reals, np.int64(block_reals), ints,
         np.int64(block_ints), loss, trained))
    return float(loss.sum()), int(trained.sum())


def word2vec_sg(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                alpha_end, seed, shrink_windows):
    return train_hogwild(True, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                         points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                         alpha_end, seed, shrink_windows)


def word2vec_cbow(syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                  points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                  alpha_end, seed, shrink_windows):
    return train_hogwild(False, syn0, syn1neg, syn1, tokens, sentence_ends, keep_below, alias_prob, alias_index,
                         points, codes, code_lengths, sigmoid_tables, max_exp, window, negative, alpha_start,
                         alpha_end, seed, shrink_windows)
