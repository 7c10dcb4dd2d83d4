"""The book's chapter-3 helpers: contexts and targets from a corpus, and one-hot encoding."""
from __future__ import annotations

import numbers

import numpy as np


def _ids(corpus, who):
    corpus = np.asarray(corpus.get() if hasattr(corpus, "get") and not isinstance(corpus, np.ndarray) else corpus)
    if corpus.size == 0:
        raise ValueError(f"{who}: empty corpus")
    if corpus.dtype.kind not in "iu":
        raise TypeError(f"{who}: corpus must hold integer word ids, got dtype {corpus.dtype}")
    return corpus


def create_contexts_target(corpus, window_size: int = 1):
    """``(contexts, target)``: for every word with ``window_size`` words on both sides, the
    ``2 * window_size`` words around it (left to right, itself left out) and the word.

    ``contexts`` has shape (N - 2 * window_size, 2 * window_size), ``target`` (N - 2 * window_size,),
    both of the corpus's integer dtype, as in the book. Raises ValueError for an empty corpus
    or one too short to hold a single window (fewer than 2 * window_size + 1 words).
    """
    corpus = _ids(corpus, "create_contexts_target")
    if corpus.ndim != 1:
        raise ValueError(f"create_contexts_target: corpus must be 1-D word ids, got shape {corpus.shape}")
    if isinstance(window_size, bool) or not isinstance(window_size, numbers.Integral):
        raise TypeError(f"window_size must be an integer, got {window_size!r}")
    if window_size < 1:
        raise ValueError(f"window_size must be at least 1, got {window_size}")
    span = 2 * int(window_size) + 1
    if corpus.shape[0] < span:
        raise ValueError(f"window_size {window_size} needs a corpus of at least {span} words, "
                         f"got {corpus.shape[0]}")
    windows = np.lib.stride_tricks.sliding_window_view(corpus, span)
    contexts = np.ascontiguousarray(np.delete(windows, window_size, axis=1))
    return contexts, corpus[window_size:-window_size].copy()


def convert_one_hot(corpus, vocab_size: int):
    """One-hot int32 rows of shape ``corpus.shape + (vocab_size,)`` (the book's for 1-D and 2-D
    ids; any shape here). Ids must lie in ``[0, vocab_size)``; an empty corpus is an error."""
    corpus = _ids(corpus, "convert_one_hot")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise TypeError(f"vocab_size must be an integer, got {vocab_size!r}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    low, high = int(corpus.min()), int(corpus.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise IndexError(f"word id {bad} is out of range for vocab_size {vocab_size}")
    one_hot = np.zeros((corpus.size, int(vocab_size)), dtype=np.int32)
    one_hot[np.arange(corpus.size), corpus.reshape(-1)] = 1
    return one_hot.reshape(corpus.shape + (int(vocab_size),))
