"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling and/or hierarchical
softmax, trained by a fused compiled loop (``fastnlp.kernels.word2vec``).

Python reads the sentences, turns them into id arrays and cuts them into jobs of about
``batch_words`` words; a compiled loop trains each job without the GIL. What is the same as
word2vec.c / gensim: the vocabulary (``min_count``, sorted by frequency), subsampling of
frequent words (word2vec.c's formula), the reduced random window, the noise distribution
count**0.75, the Huffman tree, a sigmoid table (a score beyond +-6 trains nothing, as in gensim),
the learning rate decaying linearly from ``alpha`` to ``min_alpha`` over all words of all epochs,
gensim 4's initial input vectors (uniform in [-1, 1) / vector_size: the same bits as gensim's for
the same seed). What differs (see the kernel's contract):

* skip-gram trains each window as one batch: the context words' vectors against the centre
  word's outputs with the negatives shared by the whole window (Ji et al. 2016, pWord2Vec);
* a negative sample that equals the target word is skipped, as in word2vec.c (not redrawn);
* random numbers are counter-based (splitmix64 at a position fixed by the job and token), so
  ``workers=1`` with a ``seed`` gives the same vectors bit for bit on every run and on every
  CPU backend; ``workers > 1`` trains jobs on threads at once, updating shared rows without
  locks (Hogwild), which is fast and as accurate but not reproducible bit for bit.

``corpus_file=`` (gensim's name) trains from a text file without ever holding it: the
vocabulary pass streams it, and each worker thread reads, encodes and trains its own byte range
of the file (ranges start at line starts). ``device="cuda"`` keeps the weights on the GPU and
trains each job with the multi-block Hogwild kernel (``kernels/word2vec/cupy_impl.py``).

``model.wv`` is a :class:`fastnlp.WordVectors` (most_similar, analogies, evaluation, the
word2vec file formats gensim reads). ``save``/``load`` keep the whole model, so training
resumes where it stopped.
"""
from __future__ import annotations

import codecs
import json
import math
import os
import queue
import stat
import threading
import types
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from .. import device as fdevice
from ..amp import Precision
from ..kernels import registry
from ..kernels._numba_common import combine_seeds
from ..kernels import word2vec as kernel_ops
from ..serialization import class_name, read_file, register_class, write_file
from ..text import Vocabulary
from ..trainer import progress_bar
from ..vectors import WordVectors
from .huffman import huffman_tree

_LEGACY_FORMAT = "fastnlp.Word2Vec"  # the model's own format before the library had one
_LEGACY_FORMAT_VERSION = 1


def job_seed(seed: int, epoch: int, job: int) -> int:
    """The random stream of one job: a hash of (seed, epoch of the model's life, job number)."""
    return combine_seeds(seed, epoch, job)


def _int_setting(value, name, low, high=None, why=""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}{why}, got {value}")
    return int(value)


def _float_setting(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_token_types(counter, corpus):
    """Raise TypeError if a key of ``counter`` (the distinct tokens counted so far) is not a str,
    naming the first sentence of ``corpus`` that holds such a token (a second pass, on error only)."""
    if all(issubclass(kind, str) for kind in set(map(type, counter))):
        return
    for index, sentence in enumerate(corpus):
        for token in sentence:
            if not isinstance(token, str):
                hint = ("; for integer ids pass the vocabulary they index with vocabulary="
                        if isinstance(token, (int, np.integer)) else "")
                raise TypeError(f"tokens must be str: sentence {index} holds {token!r} of type "
                                f"{type(token).__name__}{hint}")
    raise TypeError("tokens must be str, but the corpus held a token of another type while the vocabulary was "
                    "counted and no longer does: does iterating it give the same sentences every time?")


def _group_into_jobs(sentences, job_words):
    """(sentences, words) per job: consecutive sentences gathered until they hold ``job_words``
    words (the last job may hold fewer)."""
    batch, n_raw = [], 0
    for sentence in sentences:
        batch.append(sentence)
        n_raw += len(sentence)
        if n_raw >= job_words:
            yield batch, n_raw
            batch, n_raw = [], 0
    if batch:
        yield batch, n_raw


class _Corpus:
    """The sentences of one training call: re-iterable, each pass yields lists/arrays of tokens."""

    def __init__(self, sentences, ids: bool, encoding: str = "utf-8"):
        self.ids = ids
        self.encoding = encoding
        self.path = None
        self.stream = False  # a 1-D array of ids, cut into pieces
        self.rows_to_lists = False  # a 2-D array of tokens, one sentence a row
        if isinstance(sentences, (str, os.PathLike)):
            path = Path(sentences)
            if not path.is_file():
                raise FileNotFoundError(f"sentences is a path ({str(path)!r}: a text file with one sentence a line) "
                                        "but no such file exists")
            self.path = path
            self.source = None
        elif isinstance(sentences, np.ndarray) and not (sentences.ndim == 1 and sentences.dtype == object):
            # (a 1-D object array holds sentences, like a list: the branch below)
            if sentences.ndim not in (1, 2):
                raise ValueError(f"sentences as an array must be 1-D (a stream of ids, with vocabulary=) or 2-D "
                                 f"(one sentence a row), got shape {sentences.shape}")
            if sentences.ndim == 1:
                if sentences.dtype.kind in "US":
                    raise TypeError("a 1-D array of str is one sentence: pass a list of sentences, or a 2-D array "
                                    "with one sentence a row")
                if not ids:
                    raise TypeError("a 1-D array of ids needs the vocabulary= it was encoded with")
                self.stream = True
            else:
                # Rows of ids stay arrays (vocabulary= reads them as such); rows of tokens become
                # lists of Python str, what the token path expects.
                self.rows_to_lists = not ids
            self.source = sentences
        else:
            try:
                one_shot = iter(sentences) is sentences
            except TypeError:
                raise TypeError(f"sentences must be a list of token lists, a path or, with vocabulary=, id "
                                f"sequences; got {type(sentences).__name__}") from None
            if one_shot or isinstance(sentences, (types.GeneratorType, map, filter, zip)):
                raise TypeError("sentences is a one-shot iterator (a generator, say) but training reads the corpus "
                                "once per epoch and once to build the vocabulary: pass a list, a re-iterable "
                                "object, or a path to a text file")
            self.source = sentences
        self.in_memory = isinstance(self.source, (list, tuple, np.ndarray))

    STREAM_PIECE = 10000  # a flat id stream is cut into sentences of this many words

    def __iter__(self):
        if self.path is not None:
            with open(self.path, encoding=self.encoding) as f:
                try:
                    for line in f:
                        yield line.split()
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{str(self.path)!r} is not valid {self.encoding} ({exc.reason}); pass "
                                     "encoding= (e.g. 'latin-1') if the file is written in another encoding") from None
        elif self.stream:
            for start in range(0, self.source.shape[0], self.STREAM_PIECE):
                yield self.source[start:start + self.STREAM_PIECE]
        elif self.rows_to_lists:
            for row in self.source:
                yield row.tolist()
        else:
            yield from self.source


def _file_encoding(encoding) -> tuple:
    """(codec name, skip a UTF-8 byte-order mark) for reading a corpus file in byte ranges cut at
    b"\\n": the encoding must write a newline and a space as those single bytes."""
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str naming a codec ('utf-8', 'latin-1'...), got {encoding!r}")
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    if name == "utf-8-sig":
        return "utf-8", True
    if "\n".encode(name) != b"\n" or " ".encode(name) != b" ":
        raise ValueError(f"encoding {encoding!r} does not write a newline as the one byte 0x0A, but corpus_file is "
                         "split into byte ranges at that byte (UTF-8, Latin-1, cp1252 and the like do; UTF-16 and "
                         "UTF-32 do not): re-encode the file as UTF-8")
    return name, False


@dataclass(frozen=True)
class _FileIndex:
    """What one pass over a corpus file learned: its size and modification time when read
    (``identity``), totals, and checkpoints at line starts (byte offset, words before it)
    where the file can be split into ranges of known word counts."""

    identity: tuple
    words: int
    sentences: int
    longest: int
    offsets: np.ndarray
    words_before: np.ndarray


@dataclass(frozen=True)
class _FileRange:
    """Bytes [start, end) of a corpus file (both line starts, or end of file) and their words."""

    number: int
    start: int
    end: int
    words: int


class _CorpusFile:
    """``corpus_file=``: a text file with one sentence a line (tokens split on whitespace; lines
    end as ``open`` reads text, at "\\n", "\\r\\n" or "\\r"), read in pieces of whole lines cut
    after a b"\\n", from any line start, so that each worker reads its own byte range and no list
    of the corpus's sentences is ever built. A line is read whole (it is one sentence, trained
    in one job)."""

    MAX_BLOCK = 1 << 20  # bytes read at once
    MIN_BLOCK = 1 << 12
    CHECKPOINTS = 256  # about this many range boundaries to choose from (small files: fewer)

    def __init__(self, path, encoding):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"corpus_file must be a path (str or os.PathLike) to a text file with one sentence a "
                            f"line, got {type(path).__name__}")
        self.path = Path(path)
        self.name = repr(str(self.path))
        self.encoding, self.skip_bom = _file_encoding(encoding)
        self.identity()  # exists, a regular file
        try:
            with open(self.path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise type(exc)(exc.errno, f"corpus_file {self.name} cannot be read ({exc.strerror or exc})") from None

    def identity(self) -> tuple:
        """(size, modification time in ns): a file whose identity changed is counted again."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"corpus_file {self.name} does not exist") from None
        except OSError as exc:
            raise type(exc)(exc.errno, f"corpus_file {self.name} cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"corpus_file {self.name} is a directory, not a text file")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"corpus_file {self.name} is not a regular file (workers seek to their byte ranges, "
                             "which a pipe or device cannot do)")
        return info.st_size, info.st_mtime_ns

    def _pieces(self, start, end, block):
        """(offset, bytes) of bytes [start, end) in pieces of about ``block`` bytes, each ending
        after a b"\\n" (the last one at ``end``). A file shorter than ``end`` just ends early:
        the caller's word counts tell."""
        with open(self.path, "rb") as f:
            f.seek(start)
            pending = bytearray()
            offset = position = start
            while position < end:
                data = f.read(min(block, end - position))
                if not data:
                    break
                position += len(data)
                searched = len(pending)  # pending holds no b"\n" (it was cut after the last one)
                pending += data
                cut = len(pending) if position >= end else pending.rfind(b"\n", searched) + 1
                if cut == 0:
                    continue  # a line longer than a block: read on
                if offset == 0 and self.skip_bom and pending.startswith(codecs.BOM_UTF8):
                    del pending[:3]
                    cut -= 3
                    offset = 3
                yield offset, bytes(pending[:cut])
                del pending[:cut]
                offset += cut
            if pending:
                yield offset, bytes(pending)

    def _lines(self, piece, offset, lines_before=None):
        """The lines (str, without their b"\\n") of a piece from ``_pieces``."""
        try:
            text = piece.decode(self.encoding)
        except UnicodeDecodeError as exc:
            where = f"byte {offset + exc.start}"
            if lines_before is not None:
                line = lines_before + piece.count(b"\n", 0, exc.start) + 1
                where = f"line {line}, {where}"
            raise ValueError(f"corpus_file {self.name} is not valid {self.encoding}: {where} "
                             f"({piece[exc.start:exc.end]!r}: {exc.reason}); pass encoding= (e.g. 'latin-1') if "
                             "the file is written in another encoding") from None
        if "\r" in text:  # universal newlines, as open() reads text: "\r\n" and "\r" end a line too
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the text after the last newline: no line
        return lines

    def scan(self, on_sentences=None) -> _FileIndex:
        """One pass over the file: word and sentence counts, the longest sentence and the
        checkpoints; ``on_sentences(token_lists)`` is called with each piece's sentences (the
        vocabulary counter)."""
        identity = self.identity()
        size = identity[0]
        block = min(self.MAX_BLOCK, max(self.MIN_BLOCK, size // self.CHECKPOINTS))
        offsets, words_before = [], []
        words = sentences = longest = 0
        for offset, piece in self._pieces(0, size, block):
            offsets.append(offset)
            words_before.append(words)
            split = list(map(str.split, self._lines(piece, offset, sentences)))
            if split:
                lengths = list(map(len, split))
                words += sum(lengths)
                longest = max(longest, max(lengths))
                sentences += len(split)
                if on_sentences is not None:
                    on_sentences(split)
        if words == 0:
            raise ValueError(f"empty corpus: corpus_file {self.name} holds no words")
        if self.identity() != identity:
            raise RuntimeError(f"corpus_file {self.name} changed while it was being read; read it again once "
                               "nothing writes to it")
        return _FileIndex(identity, words, sentences, longest, np.array(offsets, dtype=np.int64),
                          np.array(words_before, dtype=np.int64))

    @staticmethod
    def ranges(index: _FileIndex, parts: int) -> list:
        """``parts`` byte ranges of about equal size, cut at the checkpoints nearest to each
        1/parts of the file (fewer when the file has fewer checkpoints); ranges without words
        are left out."""
        offsets, size = index.offsets, index.identity[0]
        cuts = {0}
        for k in range(1, parts):
            target = size * k / parts
            i = int(np.searchsorted(offsets, target))
            if i == len(offsets) or (i > 0 and target - offsets[i - 1] <= offsets[i] - target):
                i -= 1
            cuts.add(i)
        cuts = sorted(cuts)
        bounds = [(int(offsets[i]), int(index.words_before[i])) for i in cuts] + [(size, index.words)]
        ranges = []
        for (start, before), (end, after) in zip(bounds, bounds[1:]):
            if after > before:
                ranges.append(_FileRange(len(ranges), start, end, after - before))
        return ranges

    def batches(self, part: _FileRange, job_words: int):
        """(sentences as token lists, words) per job of range ``part``: sentences gathered until
        they hold ``job_words`` words, as Word2Vec groups an in-memory corpus."""
        block = min(self.MAX_BLOCK, max(self.MIN_BLOCK, 8 * job_words))
        sentences = (line.split() for offset, piece in self._pieces(part.start, part.end, block)
                     for line in self._lines(piece, offset))
        yield from _group_into_jobs(sentences, job_words)


class _EncodedJobs:
    """The id arrays of one training call's jobs, by job number, kept for the later epochs."""

    def __init__(self):
        self.jobs: dict = {}  # number -> (tokens, sentence_ends, raw words)
        self.complete = False  # True once a whole epoch has been encoded


@register_class
class Word2Vec:
    """word2vec trained on ``sentences`` at construction, like gensim's ``Word2Vec``.

    ``sentences``: a re-iterable of token lists (a list of lists of str; a generator raises
    TypeError since every epoch reads the corpus again; every token must be a str, checked
    while the vocabulary is counted), a 2-D array of str (one sentence a row), a path to a text
    file with one sentence a line (tokens split on whitespace), or, with ``vocabulary=`` (a
    :class:`fastnlp.Vocabulary`), sentences of integer ids in it (arrays or lists, or a 2-D
    array with one sentence a row; a single 1-D array is one stream, cut into 10,000-word
    sentences). Without ``sentences`` nothing is trained: call :meth:`build_vocab` and
    :meth:`train`.

    ``corpus_file`` (keyword-only, instead of ``sentences``; gensim's name): a path to a text
    file with one sentence a line (the lines and tokens of ``sentences=path``: universal
    newlines, whitespace), read with ``encoding`` (UTF-8 by default; any encoding that writes
    a newline as the one byte 0x0A, so not UTF-16). It is never held in memory: the vocabulary
    pass streams it, and training splits it into ``workers`` byte ranges starting at line starts,
    each worker thread reading, encoding and training its own range in jobs of ``batch_words``
    words, its learning rate decaying over its range's words (counted by the vocabulary pass).
    With ``workers=1`` the jobs are those of the same sentences in memory, so the vectors are
    the same bit for bit. A missing, unreadable or undecodable file raises (FileNotFoundError,
    PermissionError, ValueError naming the file and the line) before any weight changes; a file
    that changes while training raises RuntimeError and the epoch is not counted.

    ``device`` (keyword-only): None follows ``fastnlp.set_device`` (the host when nothing was
    chosen), ``"cpu"``, or ``"cuda"`` / ``"cuda:N"``: the weights live on that GPU as CuPy
    arrays and every job is one launch of the multi-block Hogwild kernel, its ids checked on the
    host and copied over (in-memory corpora once per ``train`` call). Each of the B thread blocks
    (8 per streaming multiprocessor) is a worker, so a launch trains B x ``batch_words`` words
    and ``workers`` is not used; not reproducible bit for bit. A device that is not there raises
    ``fastnlp.kernels.BackendUnavailableError`` with the reason, at construction. ``to(device)``
    moves a model; ``save`` writes host arrays and ``load(path, device=...)`` puts them on either.

    With ``vocabulary=``, a vocabulary that has counts supplies them (for ``min_count``,
    subsampling, the noise distribution, the Huffman tree) in place of the corpus's. Its words
    that never occur in the corpus are kept but never trained: they keep their random initial
    vectors and still turn up in ``wv`` (``most_similar`` among them). ``drop_unseen=True``
    removes them from the model's vocabulary before training.

    ``sg=1`` skip-gram, ``sg=0`` CBOW (the mean of the context vectors); ``negative`` noise
    words per target, at most 1024 (drawn from unigram**``ns_exponent``: 0 is uniform, a
    negative exponent favours rare words, a large one the most frequent), ``hs=1`` hierarchical
    softmax (both may be on); ``window`` context words each side, below 2**32 (a window longer
    than the sentences costs nothing; one whose scratch would pass 1 GiB over very long
    sentences raises ValueError);
    ``sample`` the subsampling threshold (0: off); ``min_count`` drops rarer words;
    ``alpha`` decays linearly to ``min_alpha`` over all words of all epochs; ``workers``
    training threads; ``seed`` fixes initial vectors and every random draw, so ``workers=1``
    gives the same vectors bit for bit on every run. ``workers > 1`` is Hogwild (threads update
    shared rows without locks): as good, faster, not reproducible bit for bit. Each job then keeps
    its own copies of the most frequent words' rows (``private_rows``, keyword-only: None picks
    128 KiB of rows with several workers and none with one; 0 turns it off), adding their
    change to the shared rows every 2,500 tokens: those rows are the ones every thread writes,
    and sharing them cache line by cache line kept two CBOW workers at 1.3x one (see
    ``fastnlp.kernels.word2vec``).
    Keyword-only: ``vocabulary``, ``max_vocab_size`` (prune rare words while counting, as
    word2vec.c), ``ns_exponent``, ``shrink_windows`` (True: each centre word's window is drawn
    from 1..``window`` as in word2vec.c and gensim, weighting near contexts more; False: always
    ``window`` words each side, as the book's CBOW), ``callbacks`` (each called as ``callback(model, epoch,
    loss)`` after every epoch), ``progress`` (a bar with epoch, words/s, alpha and ETA on a terminal, one line per epoch in
    a log, a summary line at the end: see ``fastnlp.trainer.progress_bar``),
    ``batch_words`` (words per job), ``drop_unseen`` (see above), ``precision`` ("fp32", the
    default; "bf16", "fp16" or "simulate:<format>": the weights are rounded to that format when
    training starts and after every job, pure low-precision training, see ``fastnlp.amp``; the
    mixed modes do not apply to this fused kernel, which has no matrix products and no separate
    forward and backward) and ``rounding`` ("nearest" or "stochastic": each job's rounding draws
    from a stream of (seed, epoch, job), so ``workers=1`` stays reproducible; with several workers
    a job's rounding may overwrite another's concurrent updates, one more Hogwild race).

    After training: ``wv`` (WordVectors), ``vocabulary`` (counts), ``syn0``, ``syn1neg``,
    ``syn1`` (the weights), ``loss_history`` (the loss of every epoch: the sum of the
    -log sigmoid terms), ``epochs_trained``, ``kernel_backend``. A loss that turns NaN or inf
    stops training with FloatingPointError naming the epoch and job. ``save``/``load`` keep
    everything but the callbacks; ``train(sentences, stop_after=k)`` and a later ``train``
    split one schedule across runs; a new schedule after that takes an explicit
    ``train(sentences, epochs=n)``, as in gensim.
    """

    def __init__(self, sentences=None, sg=0, vector_size=100, window=5, negative=5, hs=0, sample=1e-3,
                 min_count=5, alpha=0.025, min_alpha=0.0001, epochs=5, workers=1, seed=1, *, corpus_file=None,
                 vocabulary=None, max_vocab_size=None, ns_exponent=0.75, shrink_windows=True, callbacks=(),
                 progress=True, batch_words=10000, drop_unseen=False, precision="fp32", rounding="nearest",
                 encoding="utf-8", device=None, private_rows=None):
        self.sg = _int_setting(int(sg) if isinstance(sg, bool) else sg, "sg", 0)
        self.hs = _int_setting(int(hs) if isinstance(hs, bool) else hs, "hs", 0)
        if self.sg > 1 or self.hs > 1:
            raise ValueError(f"sg and hs are 0 or 1, got sg={sg}, hs={hs}")
        self.vector_size = _int_setting(vector_size, "vector_size", 1)
        self.window = _int_setting(window, "window", 1, kernel_ops.MAX_WINDOW,
                                   " (the kernels draw each reduced window from 32 random bits)")
        self.negative = _int_setting(negative, "negative", 0, kernel_ops.MAX_NEGATIVE,
                                     " (5-20 noise words are usual; each costs a dot product and an update per "
                                     "context word)")
        if self.negative == 0 and self.hs == 0:
            raise ValueError("negative=0 with hs=0 trains nothing: use negative sampling (negative > 0), "
                             "hierarchical softmax (hs=1) or both")
        self.sample = _float_setting(sample, "sample")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0, got {sample}")
        self.min_count = _int_setting(min_count, "min_count", 1)
        self.alpha = _float_setting(alpha, "alpha")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.min_alpha = _float_setting(min_alpha, "min_alpha")
        if not 0 <= self.min_alpha <= self.alpha:
            raise ValueError(f"min_alpha must be in [0, alpha={self.alpha}], got {min_alpha}")
        self.epochs = _int_setting(epochs, "epochs", 1)
        self.workers = _int_setting(workers, "workers", 1)
        self.seed = _int_setting(seed, "seed", 0)
        self.max_vocab_size = None if max_vocab_size is None else _int_setting(max_vocab_size, "max_vocab_size", 1)
        self.ns_exponent = _float_setting(ns_exponent, "ns_exponent")
        if not isinstance(shrink_windows, (bool, np.bool_)):
            raise TypeError(f"shrink_windows must be True or False, got {shrink_windows!r}")
        self.shrink_windows = bool(shrink_windows)
        self.batch_words = _int_setting(batch_words, "batch_words", 1)
        if not isinstance(drop_unseen, (bool, np.bool_)):
            raise TypeError(f"drop_unseen must be True or False, got {drop_unseen!r}")
        self.drop_unseen = bool(drop_unseen)
        if private_rows is not None:
            private_rows = _int_setting(private_rows, "private_rows", 0)
        self.private_rows = private_rows
        self._precision = Precision(precision, rounding=rounding)
        if self._precision.mode == "mixed":
            raise ValueError(f"Word2Vec trains with a fused kernel (no matrix products, no separate forward and "
                             f"backward), so mixed precision ({precision!r}) does not apply: precision takes 'fp32', "
                             "'bf16', 'fp16' or 'simulate:<format>' (weights rounded after every job)")
        self.precision, self.rounding = self._precision.name, self._precision.rounding
        self.callbacks = tuple(callbacks)
        for callback in self.callbacks:
            if not callable(callback):
                raise TypeError(f"callbacks must be callables taking (model, epoch, loss), got {callback!r}")
        self.progress = bool(progress)
        if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a fastnlp.Vocabulary, got {type(vocabulary).__name__}")
        self.input_vocabulary = vocabulary
        _file_encoding(encoding)  # a codec that exists (corpus_file checks the newline byte too)
        self.encoding = encoding
        self._device = self._device_for(device)
        self._blocks = None  # thread blocks of a launch on the device, read from it when training there
        self._file_index = None  # (path, _FileIndex) of the corpus_file build_vocab counted

        self.vocabulary = None
        self.syn0 = self.syn1neg = self.syn1 = None
        self._remap = None  # input id -> model id (-1: dropped), when trained from ids
        self._tables = None
        self._wv = None
        self.loss_history: list[float] = []
        self.epochs_trained = 0  # over the model's whole life: numbers the random streams
        self.corpus_count = self.corpus_total_words = None  # sentences and words build_vocab counted
        self._schedule_epochs = 0  # epochs of the current alpha schedule, and how many are done
        self._schedule_done = 0
        self.kernel_backend = None
        if sentences is not None or corpus_file is not None:
            self.build_vocab(sentences, corpus_file=corpus_file)
            self.train(sentences, corpus_file=corpus_file)

    # ----- device ------------------------------------------------------------------------------

    def _device_for(self, device) -> str:
        """``device`` checked and normalised (None: ``fastnlp.set_device``'s choice, else the
        host); BackendUnavailableError with the reason when it is not here."""
        if device is None:
            device = fdevice.get_device()
        return fdevice.CPU if device is None else fdevice.require(device)

    @property
    def device(self) -> str:
        """``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where the weights are (or will be, once built)."""
        return self._device

    def to(self, device):
        """Move the weights to ``device`` (``"cuda"``, ``"cuda:N"`` or ``"cpu"``) and train there
        from now on; returns the model."""
        fdevice.normalize(device)  # a name, not None
        self._device = self._device_for(device)
        self._place_weights()
        return self

    def _place_weights(self):
        """syn0, syn1neg and syn1 onto the model's device (nothing to do where they are already)."""
        for name in ("syn0", "syn1neg", "syn1"):
            weights = getattr(self, name)
            if weights is not None:
                setattr(self, name, fdevice.to_device(weights, self._device))
        self._blocks = None
        self._wv = None

    def _on_device(self) -> bool:
        return self._device != fdevice.CPU

    # ----- vocabulary --------------------------------------------------------------------------

    def build_vocab(self, sentences=None, corpus_file=None):
        """Count the words of ``sentences`` (or of the text file ``corpus_file``, streamed), keep
        those seen ``min_count`` times or more (most frequent first), build the sampling tables
        and initialise the weights (on the host, then on the model's device)."""
        words, counts, file_index = self._count_words(sentences, corpus_file)
        self._file_index = file_index
        self.vocabulary = Vocabulary(words, counts=counts)
        V, D = len(words), self.vector_size
        rng = np.random.default_rng(self.seed)
        # gensim 4's initialisation: inputs uniform in [-1, 1) / D, outputs zero (word2vec.c's
        # [-0.5, 0.5) / D trained CBOW to a WordSim-353 0.002-0.003 lower on PTB: from half-size
        # inputs the outputs learn more slowly at first). The same float32 operations in the same
        # order as gensim's, in place, so a seed gives gensim's initial vectors bit for bit.
        syn0 = rng.random((V, D), dtype=np.float32)
        syn0 *= np.float32(2)
        syn0 -= np.float32(1)
        syn0 /= np.float32(D)
        self.syn0 = syn0
        self.syn1neg = np.zeros((V if self.negative else 0, D), dtype=np.float32)
        self.syn1 = np.zeros((max(V - 1, 0) if self.hs else 0, D), dtype=np.float32)
        self._tables = kernel_ops.Tables.build(
            counts, sample=self.sample, negative=self.negative, ns_exponent=self.ns_exponent,
            huffman=huffman_tree(counts) if self.hs else None)
        self._wv = None
        self.loss_history, self.epochs_trained = [], 0
        self._schedule_epochs = self._schedule_done = 0
        self._place_weights()
        return self

    def _source(self, sentences, corpus_file, ids: bool):
        """The corpus of one call: a :class:`_Corpus` or a :class:`_CorpusFile` (checked: the
        file exists, is readable, ``encoding`` splits it at newline bytes)."""
        if corpus_file is not None:
            if sentences is not None:
                raise TypeError("pass sentences or corpus_file, not both: one corpus per call (as gensim)")
            if ids:
                raise TypeError("corpus_file holds text, but this model reads sentences of ids (it was given "
                                "vocabulary=): pass the ids as sentences")
            return _CorpusFile(corpus_file, self.encoding)
        if sentences is None:
            raise TypeError("no corpus: pass sentences (token lists, or a path) or corpus_file (a text file)")
        return _Corpus(sentences, ids=ids, encoding=self.encoding)

    def _count_words(self, sentences, corpus_file):
        """``(words, counts, file index)`` of the corpus, the index (path, :class:`_FileIndex`)
        when it is a ``corpus_file`` (so that ``train`` on the same file need not read it again),
        else None. Sets ``corpus_count`` and ``corpus_total_words`` (and, from ids, the map to the
        model's ids)."""
        source = self._source(sentences, corpus_file, ids=self.input_vocabulary is not None)
        if isinstance(source, _CorpusFile):
            words, counts, index = self._count_file(source)
            self.corpus_count, self.corpus_total_words = index.sentences, index.words
            return words, counts, (source.path.resolve(), index)
        if source.ids:
            words, counts, self._remap = self._count_ids(source)
        else:
            words, counts = self._count_tokens(source)
        return words, counts, None

    def _count_file(self, corpus_file):
        """``(words, counts, index)`` of a corpus file, in one streamed pass (the counter and one
        piece of the file in memory)."""
        counter: Counter = Counter()
        min_reduce = 1

        def count(sentences):
            nonlocal min_reduce
            if self.max_vocab_size is None:
                counter.update(chain.from_iterable(sentences))
                return
            for sentence in sentences:  # pruned after every sentence, as a list of sentences is
                counter.update(sentence)
                if len(counter) > self.max_vocab_size:
                    for word in [w for w, c in counter.items() if c <= min_reduce]:
                        del counter[word]
                    min_reduce += 1

        index = corpus_file.scan(count)
        words, counts = self._kept_words(counter)
        return words, counts, index

    def _count_tokens(self, corpus):
        counter: Counter = Counter()
        total, min_reduce = 0, 1
        for index, sentence in enumerate(corpus):
            if isinstance(sentence, (str, bytes)):
                raise TypeError(f"sentence {index} is a {type(sentence).__name__}, not a list of tokens; split it "
                                "first (text.split())")
            try:
                counter.update(sentence)
                total += len(sentence)
            except TypeError as exc:  # not iterable, no len, or an unhashable token
                raise TypeError(f"sentence {index} must be a list of str tokens: {exc}") from None
            if self.max_vocab_size is not None and len(counter) > self.max_vocab_size:
                # Every token passes through the counter, so checking its distinct keys (here, before
                # pruning drops some, and at the end) checks every token at a fraction of the cost.
                _check_token_types(counter, corpus)
                # word2vec.c's ReduceVocab: drop the rarest words, raising the bar each time.
                for word in [w for w, c in counter.items() if c <= min_reduce]:
                    del counter[word]
                min_reduce += 1
        if total == 0:
            raise ValueError("empty corpus: the sentences hold no words")
        self.corpus_count, self.corpus_total_words = index + 1, total
        _check_token_types(counter, corpus)
        return self._kept_words(counter)

    def _kept_words(self, counter):
        """The words of ``counter`` seen ``min_count`` times or more, most frequent first (ties
        in order of first appearance), and their counts."""
        if not counter:
            raise ValueError(f"max_vocab_size={self.max_vocab_size} pruned every word while counting: whenever more "
                             "than max_vocab_size distinct words are held, word2vec.c's rule drops all those seen at "
                             "most k times (k = 1, 2, ... rising each time); raise max_vocab_size or leave it None")
        kept = [(w, c) for w, c in counter.items() if c >= self.min_count]
        if not kept:
            raise ValueError(f"min_count={self.min_count} removes every word: the most frequent word occurs "
                             f"{max(counter.values())} times")
        kept.sort(key=lambda wc: -wc[1])  # stable: ties keep their first appearance
        return [w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64)

    def _count_ids(self, corpus):
        vocab = self.input_vocabulary
        n = len(vocab)
        counts = np.zeros(n, dtype=np.int64)
        total = 0
        for index, sentence in enumerate(corpus):
            try:
                ids = self._as_ids(sentence, n)
            except (TypeError, IndexError) as exc:
                raise type(exc)(f"sentence {index}: {exc}") from None
            counts += np.bincount(ids, minlength=n)
            total += ids.shape[0]
        if total == 0:
            raise ValueError("empty corpus: the sentences hold no words")
        self.corpus_count, self.corpus_total_words = index + 1, total
        seen = counts > 0
        if vocab.counts.sum() > 0:  # the vocabulary's own counts, if it has them
            counts = vocab.counts.astype(np.int64)
        candidates = seen if self.drop_unseen else np.ones(n, dtype=bool)
        keep = np.flatnonzero(candidates & (counts >= self.min_count))
        if keep.size == 0:
            which = "word seen in the corpus" if self.drop_unseen else "word"
            raise ValueError(f"min_count={self.min_count} removes every word: the most frequent {which} occurs "
                             f"{int(counts[candidates].max())} times")
        keep = keep[np.argsort(-counts[keep], kind="stable")]
        remap = np.full(n, -1, dtype=np.int32)
        remap[keep] = np.arange(keep.size, dtype=np.int32)
        return [vocab.id_to_word[i] for i in keep.tolist()], counts[keep], remap

    @staticmethod
    def _as_ids(sentence, n):
        if isinstance(sentence, (str, bytes)):
            raise TypeError("with vocabulary=, sentences hold integer ids, got a str")
        ids = np.asarray(sentence)
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"with vocabulary=, each sentence must be a 1-D sequence of integer ids, got "
                            f"shape {ids.shape} dtype {ids.dtype}")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= n:
            raise IndexError(f"id {low if low < 0 else high} is out of range for the vocabulary of {n} words")
        return ids.astype(np.int64, copy=False)

    # ----- training ----------------------------------------------------------------------------

    def train(self, sentences=None, total_examples=None, total_words=None, epochs=None, *, corpus_file=None,
              stop_after=None, callbacks=None, progress=None):
        """Train on ``sentences`` (same forms as the constructor's) or on the text file
        ``corpus_file`` (read in ``workers`` byte ranges, see the class); returns the model.

        The learning rate follows a schedule of ``epochs`` epochs from ``alpha`` down to
        ``min_alpha``, linear in the words trained. As in gensim, a new schedule on a model that
        has trained before needs ``epochs`` given explicitly (ValueError "You must specify an
        explicit epochs count" otherwise: ``train(more)`` used to run ``self.epochs`` more
        epochs unasked); a model that has never trained (``build_vocab`` then ``train``) runs
        the constructor's ``epochs`` when it is left out. ``stop_after=k`` trains only the
        first k epochs of the schedule; a later call (after ``save``/``load``, say) continues
        the unfinished schedule, without ``epochs``, so the result equals one uninterrupted
        run. Once a schedule is finished, a call starts a new one from ``alpha`` again, as
        gensim's second ``train`` does. Words not in the vocabulary are skipped.

        ``total_examples`` (sentences) and ``total_words`` (words, before vocabulary pruning
        and subsampling) are gensim's arguments. The corpus is counted here anyway (the
        learning rate decays over its exact word count), so they are optional; when given they
        must match that count (ValueError otherwise: a mismatch means the corpus is not the one
        the caller thinks). A ``corpus_file`` that ``build_vocab`` counted, unchanged since
        (same size and modification time), is not read again for its counts. ``corpus_count``
        and ``corpus_total_words`` hold the counts of the corpus ``build_vocab`` saw, as in gensim.
        """
        if self.vocabulary is None:
            raise RuntimeError("build the vocabulary first: model.build_vocab(sentences)")
        source = self._source(sentences, corpus_file, ids=self._remap is not None)
        remaining = self._schedule_epochs - self._schedule_done
        if remaining > 0:
            if epochs is not None:
                raise ValueError(f"a schedule is in progress ({remaining} of its {self._schedule_epochs} epochs "
                                 "left): train(sentences) continues it, without epochs=")
        else:
            if epochs is None:
                if self.epochs_trained > 0:
                    raise ValueError(f"You must specify an explicit epochs count: the model has trained "
                                     f"{self.epochs_trained} epochs and its schedule is finished, so train(sentences, "
                                     f"epochs=n) starts a new one of n epochs (as gensim asks)")
                epochs = self.epochs
            epochs = _int_setting(epochs, "epochs", 1)
        total_examples = None if total_examples is None else _int_setting(total_examples, "total_examples", 0)
        total_words = None if total_words is None else _int_setting(total_words, "total_words", 0)
        new_schedule = remaining <= 0  # started below, once the corpus has passed its checks
        if new_schedule:
            remaining = epochs
        epochs = remaining if stop_after is None else min(_int_setting(stop_after, "stop_after", 1), remaining)
        callbacks = self.callbacks if callbacks is None else tuple(callbacks)
        progress = self.progress if progress is None else progress

        index = None
        if isinstance(source, _CorpusFile):
            index = self._counted(source)
            words_per_epoch, longest, n_sentences = index.words, index.longest, index.sentences
        else:
            words_per_epoch = longest = n_sentences = 0
            for sentence in source:
                length = len(sentence)
                words_per_epoch += length
                n_sentences += 1
                if length > longest:
                    longest = length
            if words_per_epoch == 0:
                raise ValueError("empty corpus: the sentences hold no words")
        for name, given, counted in (("total_examples", total_examples, n_sentences),
                                     ("total_words", total_words, words_per_epoch)):
            if given is not None and given != counted:
                raise ValueError(f"{name}={given}, but the corpus holds {counted} "
                                 f"{'sentences' if name == 'total_examples' else 'words'}; leave {name} out "
                                 "(the corpus is counted anyway) or pass the count of this corpus")
        # A job gathers sentences until it holds job_words words (on a device, one launch: a
        # job of batch_words for each thread block).
        job_words = self.batch_words * self._device_blocks() if self._on_device() else self.batch_words
        kernel = self._training_kernel(min(words_per_epoch, job_words - 1 + longest))
        self.kernel_backend = kernel.backend
        encode = registry.kernel("word2vec_encode")  # resolved here: worker threads see no use_backend
        # An in-memory corpus is encoded once per call and its id arrays reused by later epochs;
        # files and other iterables are read (and encoded) again every epoch.
        encoded = _EncodedJobs() if getattr(source, "in_memory", False) else None
        if new_schedule:  # every check passed: nothing above changed the model
            self._schedule_epochs, self._schedule_done = remaining, 0
        self._round_weights(None)  # low precision: the weights live in the format from the start
        bar = None
        if progress:
            # Epoch lines come from end_epoch, once the epoch's loss is known.
            bar = progress_bar(words_per_epoch * epochs, progress, unit="word", desc=type(self).__name__.lower(),
                               epoch_offset=self._schedule_done, epochs=self._schedule_epochs)
        try:
            for epoch in range(1, epochs + 1):
                if index is not None:
                    loss = self._train_file_epoch(kernel, encode, source, index, job_words, bar)
                elif self._on_device():
                    loss = self._train_epoch_device(
                        kernel, encode, self._jobs(source, words_per_epoch, encoded, job_words), encoded, bar)
                else:
                    loss = self._train_epoch(kernel, encode, source, words_per_epoch, encoded, bar)
                self._schedule_done += 1
                self.epochs_trained += 1
                self.loss_history.append(loss)
                self._wv = None
                if bar is not None:
                    bar.end_epoch(epoch, loss=loss)
                for callback in callbacks:
                    callback(self, self.epochs_trained, loss)
        finally:
            self._wv = None
            if bar is not None:
                bar.close()
        return self

    def _counted(self, corpus_file) -> _FileIndex:
        """The counts of ``corpus_file``: those of build_vocab's pass when it read this file and
        the file has not changed since, else a pass of its own (no vocabulary counter)."""
        if self._file_index is not None:
            path, index = self._file_index
            if path == corpus_file.path.resolve() and index.identity == corpus_file.identity():
                return index
        return corpus_file.scan()

    def _device_blocks(self) -> int:
        """Thread blocks of one launch on the model's device, read from the device once."""
        if self._blocks is None:
            from ..kernels.word2vec import cupy_impl

            self._blocks = cupy_impl.default_blocks(getattr(self.syn0.device, "id", None))
        return self._blocks

    def _training_kernel(self, largest_job: int):
        """The compiled training loop over this model's weights, its scratch checked for the
        largest job now rather than in a worker halfway through an epoch."""
        if self._on_device():
            from ..kernels.word2vec import cupy_impl

            kernel = cupy_impl.HogwildKernel(self.syn0, self.syn1neg, self.syn1, self._tables, sg=bool(self.sg),
                                             window=self.window, negative=self.negative,
                                             shrink_windows=self.shrink_windows, blocks=self._device_blocks())
        else:
            private_rows = self.private_rows
            if private_rows is None:
                private_rows = kernel_ops.private_rows_for(self.workers, self.vector_size, self.syn0.itemsize)
            kernel = kernel_ops.TrainingKernel(self.syn0, self.syn1neg, self.syn1, self._tables, sg=bool(self.sg),
                                               window=self.window, negative=self.negative,
                                               shrink_windows=self.shrink_windows, private_rows=private_rows)
        kernel.check_scratch(largest_job)
        return kernel

    def _round_weights(self, job_stream):
        """Pure low precision: syn0, syn1neg and syn1 rounded to the format in place (stochastic
        rounding from streams derived from the job's ``job_stream``; None: to nearest)."""
        if self._precision.mode != "low":
            return
        stochastic = job_stream is not None and self.rounding == "stochastic"
        for index, weights in enumerate((self.syn0, self.syn1neg, self.syn1)):
            if weights.size:
                weights[...] = self._precision.round(weights, combine_seeds(job_stream ^ (index + 1)) if stochastic else None)

    def _alpha_at(self, words_done, words_per_epoch):
        progress = (self._schedule_done + words_done / words_per_epoch) / self._schedule_epochs
        return max(self.min_alpha, self.alpha - (self.alpha - self.min_alpha) * progress)

    def _batches(self, corpus, encoded, job_words):
        """(sentences or (tokens, sentence_ends), raw words) per job: the ids kept from an earlier
        epoch when ``encoded`` holds them all, else the sentences, which a worker encodes."""
        if encoded is not None and encoded.complete:
            for number in range(len(encoded.jobs)):
                tokens, ends, n_raw = encoded.jobs[number]
                yield (tokens, ends), n_raw
            return
        yield from _group_into_jobs(corpus, job_words)

    def _jobs(self, corpus, words_per_epoch, encoded=None, job_words=None):
        """(number, payload, raw words, alpha_start, alpha_end, seed) per job: the learning rate
        at the job's first and last word, and its random stream."""
        done, epoch = 0, self.epochs_trained
        batches = self._batches(corpus, encoded, self.batch_words if job_words is None else job_words)
        for number, (payload, n_raw) in enumerate(batches):
            yield (number, payload, n_raw, self._alpha_at(done, words_per_epoch),
                   self._alpha_at(done + n_raw, words_per_epoch), job_seed(self.seed, epoch, number))
            done += n_raw

    # The jobs of a corpus file's range r > 0 are numbered (r << _RANGE_SHIFT) + j, so their random
    # streams differ from range 0's, whose jobs are numbered 0, 1, ... as those of a list.
    _RANGE_SHIFT = 40

    def _range_jobs(self, corpus_file, part: _FileRange, job_words: int):
        """The jobs of one byte range of a corpus file, as :meth:`_jobs` makes them, the learning
        rate decaying over the range's words (so each worker's range runs the whole epoch's
        schedule); RuntimeError once read if the range no longer holds the words counted."""
        done, epoch = 0, self.epochs_trained
        for j, (batch, n_raw) in enumerate(corpus_file.batches(part, job_words)):
            number = (part.number << self._RANGE_SHIFT) + j
            yield (number, batch, n_raw, self._alpha_at(done, part.words), self._alpha_at(done + n_raw, part.words),
                   job_seed(self.seed, epoch, number))
            done += n_raw
        if done != part.words:
            raise RuntimeError(f"corpus_file {corpus_file.name} changed while training: bytes {part.start}.."
                               f"{part.end} held {part.words} words when counted and {done} now; this epoch is not "
                               "counted and the weights are partly trained on it: train again")

    def _encode(self, batch, encode):
        """Ids (int32, out-of-vocabulary words removed) and sentence ends (int64) of a batch;
        ``encode`` is the word2vec_encode op for token lists."""
        if self._remap is not None:
            n = self._remap.shape[0]
            parts = [self._as_ids(sentence, n) for sentence in batch]
            ids = self._remap[np.concatenate(parts)] if parts else np.zeros(0, np.int32)
            lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
            known = ids >= 0
            if not known.all():
                sentence_of = np.repeat(np.arange(len(parts)), lengths)
                lengths = np.bincount(sentence_of[known], minlength=len(parts)).astype(np.int64)
                ids = ids[known]
            return np.ascontiguousarray(ids, dtype=np.int32), np.cumsum(lengths, dtype=np.int64)
        for sentence in batch:
            if isinstance(sentence, (str, bytes)):
                raise TypeError("each sentence must be a list of tokens, got a str; split it first")
        return encode(batch, self.vocabulary.word_to_id)

    def _account(self, job, loss, bar):
        """A trained job's loss, checked (FloatingPointError naming the epoch and the job when it
        is not finite) and shown on the progress bar."""
        number, _, n_raw, alpha_start, _, _ = job
        if not math.isfinite(loss):
            which = f"job {number}" if number >> self._RANGE_SHIFT == 0 else \
                f"job {number & ((1 << self._RANGE_SHIFT) - 1)} of the file's range {number >> self._RANGE_SHIFT}"
            raise FloatingPointError(
                f"word2vec training diverged: the loss became {loss} in epoch {self.epochs_trained + 1} "
                f"(epoch {self._schedule_done + 1}/{self._schedule_epochs} of this schedule), {which} at alpha "
                f"{alpha_start:.6g}; the weights hold inf/NaN now: lower alpha and train again")
        if bar is not None:
            bar.set_postfix(epoch=f"{self._schedule_done + 1}/{self._schedule_epochs}", alpha=f"{alpha_start:.5f}")
            bar.update(n_raw)
        return loss

    def _train_epoch(self, kernel, encode, corpus, words_per_epoch, encoded, bar):
        """One epoch: this thread reads and encodes the sentences into jobs, ``workers`` threads
        train them (Hogwild when there are several); returns the epoch's loss."""
        total_loss = 0.0

        todo: queue.Queue = queue.Queue(maxsize=2 * self.workers)
        done: queue.Queue = queue.Queue()
        stop = threading.Event()

        def work():
            # Each worker encodes its own job (under the GIL, like gensim's workers), then trains
            # it without the GIL; this thread only groups sentences, so it rarely holds the GIL.
            while True:
                job = todo.get()
                if job is None:
                    return
                if stop.is_set():
                    continue
                number, payload, n_raw, alpha_start, alpha_end, seed = job
                try:
                    if isinstance(payload, list):
                        payload = self._encode(payload, encode)
                        if encoded is not None:
                            encoded.jobs[number] = (*payload, n_raw)
                    loss, _ = kernel(*payload, alpha_start, alpha_end, seed)
                    self._round_weights(seed)
                    done.put((job, loss, None))
                except BaseException as exc:  # handed to this thread, which raises it
                    stop.set()
                    done.put((job, None, exc))

        threads = [threading.Thread(target=work, name=f"word2vec-{i}", daemon=True) for i in range(self.workers)]
        started = []  # all workers start before any job is sent; those started are stopped on every path
        sent = received = 0

        def collect(block):
            nonlocal received, total_loss
            while received < sent:
                try:
                    job, loss, exc = done.get(block=block)
                except queue.Empty:
                    return
                received += 1
                if exc is not None:
                    raise exc
                total_loss += self._account(job, loss, bar)
                block = False

        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            for job in self._jobs(corpus, words_per_epoch, encoded):
                while True:
                    try:
                        todo.put(job, timeout=0.05)
                        break
                    except queue.Full:
                        collect(block=False)
                sent += 1
                collect(block=False)
            while received < sent:
                collect(block=True)
            if encoded is not None:
                encoded.complete = True
        except BaseException:
            stop.set()
            raise
        finally:
            for _ in started:
                while True:
                    try:
                        todo.put(None, timeout=0.05)
                        break
                    except queue.Full:  # stopped workers skip what is left; make room for the sentinel
                        try:
                            todo.get_nowait()
                        except queue.Empty:
                            pass
            for thread in started:
                thread.join()
        return total_loss

    def _train_file_epoch(self, kernel, encode, corpus_file, index, job_words, bar):
        """One epoch over a corpus file: each worker thread reads, encodes and trains its own
        byte range (Hogwild when there are several; on a device, this thread reads the whole
        file and launches each job); returns the epoch's loss."""
        if corpus_file.identity() != index.identity:
            raise RuntimeError(f"corpus_file {corpus_file.name} changed since it was counted (its size or "
                               f"modification time differs); epoch {self._schedule_done + 1}/{self._schedule_epochs} "
                               "was not trained: train again to count it anew")
        if self._on_device():
            whole = corpus_file.ranges(index, 1)[0]
            return self._train_epoch_device(kernel, encode, self._range_jobs(corpus_file, whole, job_words), None,
                                            bar)
        total_loss = 0.0
        done: queue.Queue = queue.Queue()
        stop = threading.Event()

        def work(part):
            try:
                for job in self._range_jobs(corpus_file, part, job_words):
                    if stop.is_set():
                        return
                    _, batch, _, alpha_start, alpha_end, seed = job
                    # Read and encoded under the GIL (one job at a time), trained without it.
                    loss, _ = kernel(*self._encode(batch, encode), alpha_start, alpha_end, seed)
                    self._round_weights(seed)
                    done.put((job, loss, None))
                done.put((None, None, None))
            except BaseException as exc:  # handed to the calling thread, which raises it
                stop.set()
                done.put((None, None, exc))

        threads = [threading.Thread(target=work, args=(part,), name=f"word2vec-file-{part.number}", daemon=True)
                   for part in corpus_file.ranges(index, self.workers)]
        started = []
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            finished = 0
            while finished < len(threads):
                job, loss, exc = done.get()
                if exc is not None:
                    raise exc
                if job is None:
                    finished += 1
                else:
                    total_loss += self._account(job, loss, bar)
        finally:
            stop.set()  # on an error the other workers stop after their current job
            for thread in started:
                thread.join()
        return total_loss

    # Launches in flight before their losses are read (one transfer for all of them): the host
    # prepares the next jobs while the device trains.
    _LAUNCHES_IN_FLIGHT = 8

    def _train_epoch_device(self, kernel, encode, jobs, encoded, bar):
        """One epoch on the device: this thread encodes each job (or reuses its ids, already on
        the device, from an earlier epoch) and launches it; returns the epoch's loss."""
        total_loss = 0.0
        in_flight = []

        def collect():
            nonlocal total_loss
            for (job, _), loss in zip(in_flight, kernel.losses([launched for _, launched in in_flight])):
                total_loss += self._account(job, loss, bar)
            in_flight.clear()

        for job in jobs:
            number, payload, n_raw, alpha_start, alpha_end, seed = job
            if isinstance(payload, list):
                payload = self._encode(payload, encode)
            payload = kernel.upload(*payload)
            if encoded is not None and not encoded.complete:
                encoded.jobs[number] = (*payload, n_raw)
            in_flight.append((job, kernel.launch(*payload, alpha_start, alpha_end, seed)))
            self._round_weights(seed)
            if len(in_flight) >= self._LAUNCHES_IN_FLIGHT:
                collect()
        collect()
        if encoded is not None:
            encoded.complete = True
        return total_loss

    # ----- results -----------------------------------------------------------------------------

    @property
    def wv(self) -> WordVectors:
        """The input vectors as :class:`fastnlp.WordVectors` (a snapshot, rebuilt after training)."""
        if self.vocabulary is None:
            raise RuntimeError("the model has no vocabulary yet: build_vocab/train first")
        if self._wv is None:
            self._wv = self._vectors_snapshot()
        return self._wv

    def _vectors_snapshot(self) -> WordVectors:
        return WordVectors(np.array(fdevice.host(self.syn0)), self.vocabulary.id_to_word)

    def __repr__(self):
        size = "no vocabulary" if self.vocabulary is None else f"{len(self.vocabulary)} words"
        where = "" if self._device == fdevice.CPU else f", device={self._device!r}"
        return (f"Word2Vec({size}, sg={self.sg}, vector_size={self.vector_size}, window={self.window}, "
                f"negative={self.negative}, hs={self.hs}, epochs_trained={self.epochs_trained}{where})")

    # ----- saving ------------------------------------------------------------------------------

    _SETTINGS = ("sg", "vector_size", "window", "negative", "hs", "sample", "min_count", "alpha", "min_alpha",
                 "epochs", "workers", "seed", "max_vocab_size", "ns_exponent", "shrink_windows", "batch_words",
                 "progress", "drop_unseen", "precision", "rounding", "encoding", "private_rows")

    def save(self, path):
        """Write the whole model to one ``.npz`` (weights, vocabulary with counts, settings and
        training progress; no pickle), atomically: readers see the old file or the new.
        ``fastnlp.load(path)`` or ``Word2Vec.load(path)`` reads it back, ready to train on.

        Weights on a device are written from host copies, so the file loads anywhere. Neither
        the corpus (``sentences``, ``corpus_file``: data, not settings, as in gensim; a path
        saved would point at a file that may have changed or moved) nor the device is kept:
        ``load(path, device=...)`` chooses where the weights go."""
        if self.vocabulary is None:
            raise RuntimeError("nothing to save: the model has no vocabulary yet")
        state = self._saved_state()
        arrays = {"syn0": self.syn0, "syn1neg": self.syn1neg, "syn1": self.syn1, "counts": self.vocabulary.counts}
        if self._remap is not None:
            arrays["remap"] = self._remap
            state["input_words"] = list(self.input_vocabulary.id_to_word)
        settings = {name: getattr(self, name) for name in self._SETTINGS}
        return write_file(path, self, arrays, kind="model", settings=settings, state=state)

    _to_file = save

    @classmethod
    def load(cls, path, device=None):
        """A model written by :meth:`save`, ready to train on (``train`` resumes its schedule),
        its weights on ``device`` (None: ``fastnlp.set_device``'s choice, else the host)."""
        name = cls.__name__
        header, arrays = read_file(path, f"a {name} file written by {name}.save")
        if header.get("class") != class_name(cls):
            raise ValueError(f"{path} holds a {header.get('class') or header.get('kind')}, not a {name} model")
        return cls._from_file(header, arrays, path, device=device)

    @classmethod
    def _from_file(cls, header, arrays, path, device=None):
        if header["version"] == 0:  # the model's own format before the library had one
            meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
            if meta.get("format") != _LEGACY_FORMAT or meta.get("version") != _LEGACY_FORMAT_VERSION:
                raise ValueError(f"{path}: unknown format {meta.get('format')!r} version {meta.get('version')!r}")
            if "input_meta" in arrays:
                meta["input_words"] = json.loads(arrays.pop("input_meta").tobytes().decode("utf-8"))["words"]
            meta["training"] = meta.pop("state")
        else:
            meta = dict(header["state"], settings=header["settings"])
        settings = meta["settings"]
        input_vocabulary = None
        if "remap" in arrays:
            input_vocabulary = Vocabulary(meta["input_words"])
        model = cls(vocabulary=input_vocabulary, device=device, **settings)
        model.vocabulary = Vocabulary(meta["words"], counts=arrays["counts"])
        V, D = len(model.vocabulary), model.vector_size
        expected = {"syn0": (V, D), "syn1neg": (V if model.negative else 0, D),
                    "syn1": (max(V - 1, 0) if model.hs else 0, D)}
        for key, shape in expected.items():
            if arrays[key].shape != shape or arrays[key].dtype != np.float32:
                raise ValueError(f"{path}: {key} has shape {arrays[key].shape} dtype {arrays[key].dtype}, "
                                 f"expected {shape} float32")
            setattr(model, key, np.ascontiguousarray(arrays[key]))
        model._remap = arrays.get("remap")
        counts = model.vocabulary.counts
        model._tables = kernel_ops.Tables.build(
            counts, sample=model.sample, negative=model.negative, ns_exponent=model.ns_exponent,
            huffman=huffman_tree(counts) if model.hs else None)
        model._restore_training(meta["training"])
        model._place_weights()
        return model

    def _saved_state(self) -> dict:
        """The vocabulary's words and the training progress, as ``save`` writes them."""
        return {"words": list(self.vocabulary.id_to_word),
                "training": {"epochs_trained": self.epochs_trained, "schedule_epochs": self._schedule_epochs,
                             "schedule_done": self._schedule_done, "loss_history": self.loss_history,
                             "corpus_count": self.corpus_count, "corpus_total_words": self.corpus_total_words}}

    def _restore_training(self, training: dict) -> None:
        """The training progress of a saved file (``_saved_state``'s "training")."""
        self.epochs_trained = int(training["epochs_trained"])
        self._schedule_epochs = int(training["schedule_epochs"])
        self._schedule_done = int(training["schedule_done"])
        self.loss_history = [float(x) for x in training["loss_history"]]
        self.corpus_count = training.get("corpus_count")  # absent from files of earlier versions
        self.corpus_total_words = training.get("corpus_total_words")

