"""The book's own Python-loop implementations: the slow baseline in benchmarks and the
behavioural truth in tests (tests/test_kernels_count.py imports them)."""
import numpy as np


def book_create_co_matrix(corpus, vocab_size, window_size=1):
    corpus_size = len(corpus)
    co_matrix = np.zeros((vocab_size, vocab_size), dtype=np.int32)
    for idx, word_id in enumerate(corpus):
        for i in range(1, window_size + 1):
            left_idx, right_idx = idx - i, idx + i
            if left_idx >= 0:
                co_matrix[word_id, corpus[left_idx]] += 1
            if right_idx < corpus_size:
                co_matrix[word_id, corpus[right_idx]] += 1
    return co_matrix
