"""fastText (Bojanowski et al. 2017): word2vec whose words are bags of character n-grams, so
that words never seen in training still get a vector.

The input vector of a vocabulary word is the mean of its own row and one row per character
n-gram of ``"<" + word + ">"`` (n from ``min_n`` to ``max_n``, duplicates kept), each n-gram
hashed with fastText's 32-bit FNV-1a (:func:`fasttext_hash`) into one of ``bucket`` rows, as
fastText and gensim do. Training is skip-gram or CBOW with negative sampling in a fused
compiled loop (``fastnlp.kernels.fasttext``, contract there), on Word2Vec's machinery: the
vocabulary, subsampling, alias noise table, counter-based random streams, learning-rate
schedule, jobs and Hogwild worker threads are those of :class:`fastnlp.Word2Vec`, of which
:class:`FastText` is a subclass. The gradient of the input vector goes in full to the word's
row and to each of its n-gram rows (fastText's unsupervised update).

``model.wv`` is a :class:`FastTextVectors` (a :class:`fastnlp.WordVectors`): its ``vectors``
are the vocabulary words' composed vectors, so ``most_similar``, ``analogy``, evaluation and
the file formats work on vocabulary words as for Word2Vec. ``wv[word]`` (and ``get_vector``)
also answers a word out of the vocabulary: the mean of its n-gram rows (KeyError naming it
when it has no n-gram of length ``min_n``..``max_n``). To find neighbours of such a word, pass
its vector: ``wv.most_similar(wv["unseenword"])``. ``word in wv`` says whether the word is in
the vocabulary; ``wv.has_ngrams(word)`` whether any word can get a vector.
"""
from __future__ import annotations

import numpy as np

from .. import device as fdevice
from ..kernels import fasttext as kernel_ops
from ..kernels._numba_common import combine_seeds
from ..kernels.dispatch import BackendUnavailableError
from ..kernels.word2vec import Tables
from ..serialization import register_class, write_file
from ..text import Vocabulary
from ..vectors import WordVectors
from .word2vec import Word2Vec, _int_setting

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def fasttext_hash(text) -> int:
    """fastText's hash of a word or n-gram: 32-bit FNV-1a over its UTF-8 bytes, each byte taken
    as a *signed* char (``h ^= uint32_t(int8_t(c))``), so bytes >= 128 XOR in as 0xffffffXX, as
    fastText's dictionary and gensim's ``ft_hash_bytes`` compute it. Returns an int in [0, 2**32)."""
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise TypeError(f"fasttext_hash takes a str (or its UTF-8 bytes), got {type(text).__name__}")
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ (byte | 0xFFFFFF00 if byte >= 128 else byte)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def _hash_many(texts) -> np.ndarray:
    """fasttext_hash of every string of ``texts`` (uint32), vectorised over the strings."""
    encoded = [t.encode("utf-8") for t in texts]
    out = np.empty(len(encoded), dtype=np.uint32)
    chunk = 65536
    for begin in range(0, len(encoded), chunk):
        part = encoded[begin:begin + chunk]
        lengths = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        width = int(lengths.max()) if part else 0
        mask = np.arange(width) < lengths[:, None]
        matrix = np.zeros((len(part), width), dtype=np.uint8)
        matrix[mask] = np.frombuffer(b"".join(part), dtype=np.uint8)
        h = np.full(len(part), _FNV_OFFSET, dtype=np.uint32)
        for j in range(width):
            signed = matrix[:, j].view(np.int8).astype(np.int32).view(np.uint32)  # int8_t -> uint32_t
            h = np.where(mask[:, j], (h ^ signed) * np.uint32(_FNV_PRIME), h)
        out[begin:begin + len(part)] = h
    return out


def char_ngrams(word: str, min_n: int, max_n: int) -> list:
    """The character n-grams of ``"<" + word + ">"``, n from ``min_n`` to ``max_n``, shortest
    first and left to right, duplicates kept (gensim's ``compute_ngrams``; fastText's subwords
    for n >= 2). Characters are Unicode code points."""
    extended = f"<{word}>"
    return [extended[i:i + n] for n in range(min_n, min(len(extended), max_n) + 1)
            for i in range(len(extended) - n + 1)]


def ngram_buckets(word: str, min_n: int, max_n: int, bucket: int) -> np.ndarray:
    """The bucket (row of the n-gram matrix) of each n-gram of ``word``, int64."""
    grams = char_ngrams(word, min_n, max_n)
    if not grams:
        return np.zeros(0, dtype=np.int64)
    return _hash_many(grams).astype(np.int64) % bucket


def subword_lists(words, min_n: int, max_n: int, bucket: int):
    """(starts int64 (V+1,), rows int32): word w's input rows are w itself then V + the bucket
    of each of its n-grams (the kernel's contract)."""
    V = len(words)
    per_word = [char_ngrams(w, min_n, max_n) for w in words]
    counts = np.fromiter(map(len, per_word), dtype=np.int64, count=V)
    flat = [g for grams in per_word for g in grams]
    hashes = (_hash_many(flat).astype(np.int64) % bucket) if flat else np.zeros(0, np.int64)
    starts = np.zeros(V + 1, dtype=np.int64)
    np.cumsum(counts + 1, out=starts[1:])
    rows = np.empty(int(starts[-1]), dtype=np.int64)
    rows[starts[:-1]] = np.arange(V)
    is_gram = np.ones(rows.shape[0], dtype=bool)
    is_gram[starts[:-1]] = False
    rows[is_gram] = V + hashes
    return starts, rows.astype(np.int32)


class FastTextVectors(WordVectors):
    """The vectors of a trained :class:`FastText`: a :class:`fastnlp.WordVectors` over the
    vocabulary (each row the mean of the word's row and its n-gram rows, as trained) that also
    gives a vector to a word out of the vocabulary through its n-grams (``wv[word]``,
    ``get_vector``): the mean of its n-gram rows. Searches (``most_similar``, ``similarity``,
    ``analogy``...) take vocabulary words, or vectors: ``most_similar(wv["unseenword"])``."""

    def __init__(self, vectors, words, ngram_vectors, min_n, max_n, bucket):
        super().__init__(vectors, words)
        ngram_vectors = ngram_vectors.view()
        ngram_vectors.flags.writeable = False
        self._ngrams = ngram_vectors
        self.min_n, self.max_n, self.bucket = int(min_n), int(max_n), int(bucket)

    @property
    def vectors_ngrams(self):
        """The n-gram matrix (bucket, D), read-only (gensim's name)."""
        return self._ngrams

    def has_ngrams(self, word) -> bool:
        """True when ``word`` can get a vector: it is in the vocabulary or has an n-gram in range."""
        return isinstance(word, str) and (word in self or bool(char_ngrams(word, self.min_n, self.max_n)))

    def oov_vector(self, word) -> np.ndarray:
        """The mean of ``word``'s n-gram rows (for any word, in the vocabulary or not); KeyError
        naming it when it has no n-gram of length min_n..max_n."""
        if not isinstance(word, str):
            raise KeyError(f"word {word!r} not in vocabulary (and not a str, so it has no n-grams)")
        rows = ngram_buckets(word, self.min_n, self.max_n, self.bucket)
        if rows.size == 0:
            raise KeyError(f"word {word!r} is not in the vocabulary and has no character n-gram of length "
                           f"{self.min_n}..{self.max_n} (with its < > boundaries): no vector")
        total = np.add.reduce(self._ngrams[rows], axis=0)
        return total / self._ngrams.dtype.type(rows.size)

    def __getitem__(self, word):
        if isinstance(word, str) and word not in self:
            return self.oov_vector(word)
        return super().__getitem__(word)

    def get_vector(self, word, norm=False):
        if isinstance(word, str) and word not in self:
            vector = self.oov_vector(word)
            if norm:
                length = np.linalg.norm(vector)
                return vector / length if length > 0 else vector
            return vector
        return super().get_vector(word, norm=norm)

    def __repr__(self):
        return (f"FastTextVectors({len(self)} words, {self._ngrams.shape[0]} n-gram buckets, "
                f"n={self.min_n}..{self.max_n}, dim={self.vector_size})")


@register_class
class FastText(Word2Vec):
    """fastText trained on ``sentences`` at construction, like gensim's ``FastText``.

    ``sentences``: as :class:`fastnlp.Word2Vec` takes them (lists of str tokens, a 2-D array of
    str, a path to a text file); ``sg=1`` skip-gram, ``sg=0`` CBOW; ``negative`` noise words per
    target (>= 1: negative sampling is the only objective); ``min_n``..``max_n`` the n-gram
    lengths (1 <= min_n <= max_n); ``bucket`` n-gram rows (>= 1; 2,000,000 as fastText, which at
    vector_size 100 is 800 MB of float32); other arguments as Word2Vec. Keyword-only: ``sample``,
    ``alpha``, ``min_alpha``, ``ns_exponent``, ``shrink_windows``, ``callbacks``, ``progress``,
    ``batch_words``, ``corpus_file`` and ``encoding`` (a text file streamed in ``workers`` byte
    ranges, as Word2Vec reads it), ``device`` (None or ``"cpu"``: FastText has no GPU kernel, so
    ``set_device``'s choice leaves it on the host and a GPU raises BackendUnavailableError).
    ``workers=1`` with a ``seed`` gives the same vectors bit for bit every run.

    After training: ``wv`` (:class:`FastTextVectors`), ``syn0`` (V + bucket, D: the word rows,
    then the n-gram rows; ``vectors_vocab`` and ``vectors_ngrams`` are views of it), ``syn1neg``,
    ``loss_history``, ``epochs_trained``. ``fastnlp.save``/``fastnlp.load`` (or
    ``save``/``FastText.load``) keep the whole model, n-gram matrix included.
    """

    def __init__(self, sentences=None, sg=0, vector_size=100, window=5, negative=5, min_n=3, max_n=6,
                 bucket=2000000, min_count=5, epochs=5, workers=1, seed=1, *, sample=1e-3, alpha=0.025,
                 min_alpha=0.0001, ns_exponent=0.75, shrink_windows=True, callbacks=(), progress=True,
                 batch_words=10000, corpus_file=None, encoding="utf-8", device=None):
        self.min_n = _int_setting(min_n, "min_n", 1)
        self.max_n = _int_setting(max_n, "max_n", 1)
        if self.min_n > self.max_n:
            raise ValueError(f"min_n must be <= max_n (the n-gram lengths), got min_n={min_n}, max_n={max_n}")
        self.bucket = _int_setting(bucket, "bucket", 1)
        if not isinstance(negative, bool) and isinstance(negative, (int, np.integer)) and negative < 1:
            raise ValueError(f"negative must be >= 1 (FastText trains with negative sampling only), got {negative}")
        _int_setting(window, "window", 1, kernel_ops.MAX_WINDOW)
        super().__init__(None, sg=sg, vector_size=vector_size, window=window, negative=negative, hs=0,
                         sample=sample, min_count=min_count, alpha=alpha, min_alpha=min_alpha, epochs=epochs,
                         workers=workers, seed=seed, ns_exponent=ns_exponent, shrink_windows=shrink_windows,
                         callbacks=callbacks, progress=progress, batch_words=batch_words, encoding=encoding,
                         device=device)
        self.subword_starts = self.subword_rows = None
        if sentences is not None or corpus_file is not None:
            self.build_vocab(sentences, corpus_file=corpus_file)
            self.train(sentences, corpus_file=corpus_file)

    def _device_for(self, device) -> str:
        """The host: None and ``"cpu"`` (``set_device``'s choice does not move a FastText);
        BackendUnavailableError for a GPU, which FastText's kernel does not run on."""
        if device is not None and fdevice.normalize(device) != fdevice.CPU:
            raise BackendUnavailableError(f"FastText cannot run on device {device!r}: its kernel has no GPU version "
                                          "(fastText trains on CPU threads, Hogwild, like gensim and fastText)")
        return fdevice.CPU

    # ----- vocabulary --------------------------------------------------------------------------

    def build_vocab(self, sentences=None, corpus_file=None):
        """Count the words (``min_count``) of ``sentences`` or of the text file ``corpus_file``
        (streamed), list every word's n-gram rows, build the sampling tables and initialise the
        weights: word rows and n-gram rows uniform in [-1, 1) / D (fastText's and gensim's
        initialisation), drawn in place by a compiled counter-based fill (the op
        ``fasttext_uniform_rows``: the same bits on every backend for a seed, no temporary of the
        800 MB matrix); outputs zero."""
        words, counts, file_index = self._count_words(sentences, corpus_file)
        if "" in words:
            raise ValueError("the corpus holds an empty word (''): tokens must be non-empty strings")
        self._file_index = file_index
        self._set_vocabulary(Vocabulary(words, counts=counts))
        V, D = len(words), self.vector_size
        self.syn0 = np.empty((V + self.bucket, D), dtype=np.float32)
        # the seed hashed once: not the stream of any training job (hashed with its epoch and number)
        kernel_ops.uniform_rows(self.syn0, 0, D, combine_seeds(self.seed))
        self.syn1neg = np.zeros((V, D), dtype=np.float32)
        self.loss_history, self.epochs_trained = [], 0
        self._schedule_epochs = self._schedule_done = 0
        return self

    def _set_vocabulary(self, vocabulary):
        self.vocabulary = vocabulary
        V = len(vocabulary)
        self.syn1 = np.zeros((0, self.vector_size), dtype=np.float32)
        self._tables = Tables.build(vocabulary.counts, sample=self.sample, negative=self.negative,
                                    ns_exponent=self.ns_exponent)
        self.subword_starts, self.subword_rows = subword_lists(vocabulary.id_to_word, self.min_n, self.max_n,
                                                               self.bucket)
        assert self.subword_starts.shape[0] == V + 1
        self._wv = None

    @property
    def vectors_vocab(self):
        """The word rows of the input matrix (V, D), a view of ``syn0``."""
        return None if self.syn0 is None else self.syn0[:len(self.vocabulary)]

    @property
    def vectors_ngrams(self):
        """The n-gram rows of the input matrix (bucket, D), a view of ``syn0``."""
        return None if self.syn0 is None else self.syn0[len(self.vocabulary):]

    # ----- training ----------------------------------------------------------------------------

    def _training_kernel(self, largest_job: int):
        """Word2Vec.train's schedule, checks and jobs run this loop: the input vector of a word is
        the mean of its row and its n-gram rows. Words out of the vocabulary are skipped in
        training (they still get vectors from their n-grams)."""
        return kernel_ops.TrainingKernel(self.syn0, self.syn1neg, self.subword_starts, self.subword_rows,
                                         self._tables, sg=bool(self.sg), window=self.window,
                                         negative=self.negative, shrink_windows=self.shrink_windows)

    # ----- results -----------------------------------------------------------------------------

    def word_vectors(self) -> np.ndarray:
        """(V, D) float32: each vocabulary word's input vector as trained, the mean of its rows."""
        V = len(self.vocabulary)
        starts, rows = self.subword_starts, self.subword_rows
        out = np.empty((V, self.vector_size), dtype=np.float32)
        step = 4096
        for begin in range(0, V, step):
            end = min(V, begin + step)
            lo, hi = int(starts[begin]), int(starts[end])
            sums = np.add.reduceat(self.syn0[rows[lo:hi]], starts[begin:end] - lo, axis=0)
            out[begin:end] = sums / np.diff(starts[begin:end + 1]).astype(np.float32)[:, None]
        return out

    def _vectors_snapshot(self) -> FastTextVectors:
        """``wv``: :class:`FastTextVectors`, answering unseen words from the n-gram rows too."""
        return FastTextVectors(self.word_vectors(), self.vocabulary.id_to_word, self.vectors_ngrams.copy(),
                               self.min_n, self.max_n, self.bucket)

    def __repr__(self):
        size = "no vocabulary" if self.vocabulary is None else f"{len(self.vocabulary)} words"
        return (f"FastText({size}, sg={self.sg}, vector_size={self.vector_size}, window={self.window}, "
                f"negative={self.negative}, n={self.min_n}..{self.max_n}, bucket={self.bucket}, "
                f"epochs_trained={self.epochs_trained})")

    # ----- saving ------------------------------------------------------------------------------

    _SETTINGS = ("sg", "vector_size", "window", "negative", "min_n", "max_n", "bucket", "min_count", "epochs",
                 "workers", "seed", "sample", "alpha", "min_alpha", "ns_exponent", "shrink_windows", "progress",
                 "batch_words", "encoding")

    def save(self, path):
        """Write the whole model (input matrix with its n-gram rows, outputs, vocabulary with
        counts, settings, training progress) to one ``.npz``, atomically; ``fastnlp.load`` or
        ``FastText.load`` reads it back, ready to train on."""
        if self.vocabulary is None:
            raise RuntimeError("nothing to save: the model has no vocabulary yet")
        state = self._saved_state()
        arrays = {"syn0": self.syn0, "syn1neg": self.syn1neg, "counts": self.vocabulary.counts}
        settings = {name: getattr(self, name) for name in self._SETTINGS}
        return write_file(path, self, arrays, kind="model", settings=settings, state=state)

    _to_file = save

    @classmethod
    def _from_file(cls, header, arrays, path, device=None):
        model = cls(device=device, **header["settings"])
        state = header["state"]
        model._set_vocabulary(Vocabulary(state["words"], counts=arrays["counts"]))
        V, D = len(model.vocabulary), model.vector_size
        for key, shape in (("syn0", (V + model.bucket, D)), ("syn1neg", (V, D))):
            if arrays[key].shape != shape or arrays[key].dtype != np.float32:
                raise ValueError(f"{path}: {key} has shape {arrays[key].shape} dtype {arrays[key].dtype}, "
                                 f"expected {shape} float32")
            setattr(model, key, np.array(arrays[key], dtype=np.float32, order="C"))
        model._restore_training(state["training"])
        return model


__all__ = ["FastText", "FastTextVectors", "char_ngrams", "fasttext_hash"]
