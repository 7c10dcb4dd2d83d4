"""Corpora in text files, streamed: tokens, a vocabulary and token ids without holding the corpus.

One tokenisation everywhere, the PTB loader's (``fastnlp.datasets.ptb``): a file is read as text
with universal newlines (``\\r\\n`` and ``\\r`` end a line too), every line is split on
whitespace (``str.split``) and, unless ``eos`` is None, followed by the ``eos`` token. A last
line without a newline still ends with ``eos``; an empty file has no lines. On PTB this gives
the loader's ids exactly.

Files are read in blocks of ``BLOCK_BYTES`` and decoded incrementally, so memory does not grow
with a file (a file of one long line included). Errors name the file: ``FileNotFoundError`` /
``PermissionError`` (an ``OSError``) when it cannot be opened, ``CorpusDecodeError`` (a
``UnicodeError``, so a ``ValueError``) with the byte offset when it is not in ``encoding``.

Words missing from the vocabulary are left out of the ids (word2vec's rule, the same as
``Vocabulary.build_encoded`` without an unk token), or become ``unknown`` when an id is given;
``count_files`` passes the vocabulary's unk id when it has one.
"""
from __future__ import annotations

import codecs
import errno
import os
import re
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

import numpy as np

from .text import Vocabulary

__all__ = ["EOS_TOKEN", "CorpusDecodeError", "iter_file_tokens", "vocabulary_from_files", "file_id_chunks",
           "file_tail_ids", "count_files", "corpus_paths"]

EOS_TOKEN = "<eos>"  # the PTB loader's end-of-line token, the default ``eos``
# 1 MiB of bytes per read: about 200k tokens of English, ~15 MB of Python strings at a time.
BLOCK_BYTES = 1 << 20
_CUT_AFTER = ("\n", " ", "\t")  # a block may end after any of these without splitting a token
_FIRST_SPACE = re.compile(r"\s")  # the whitespace str.split splits on
# Encodings in which a byte offset inside the file can be decoded from (file_tail_ids): UTF-8
# after skipping continuation bytes, and the one-byte code pages.
_SEEKABLE_ENCODINGS = re.compile(r"^(utf-8|ascii|latin-1|iso8859-\d+|cp125\d|cp437|cp850|koi8-[ru])$")


class CorpusDecodeError(UnicodeError):
    """A corpus file holds bytes that are not text in the given encoding.

    ``path``, ``offset`` (of the first bad byte in the file) and ``encoding`` say where."""

    def __init__(self, path, offset: int, encoding: str, reason: str):
        self.path, self.offset, self.encoding, self.reason = str(path), offset, encoding, reason
        super().__init__(f"{path}: the bytes at offset {offset} are not valid {encoding} ({reason}); "
                         f"pass encoding= with the file's encoding (e.g. encoding='latin-1')")

    def __reduce__(self):  # picklable, so it crosses process boundaries (Dask workers) intact
        return type(self), (self.path, self.offset, self.encoding, self.reason)


# ----- reading ---------------------------------------------------------------------------------

def corpus_paths(paths) -> list[Path]:
    """``paths`` (one str / PathLike, or an iterable of them) as a non-empty list of Paths."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, bytes):
        raise TypeError("corpus paths must be str or os.PathLike, got bytes")
    try:
        paths = list(paths)
    except TypeError:
        raise TypeError(f"corpus paths must be a path or a list of paths, got {type(paths).__name__}") from None
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"corpus paths must be str or os.PathLike, got {type(path).__name__}: {path!r}")
    if not paths:
        raise ValueError("no corpus files given")
    return [Path(path) for path in paths]


def check_readable(paths) -> list[Path]:
    """Open every file once, so a missing or unreadable one fails before hours of counting."""
    paths = corpus_paths(paths)
    for path in paths:
        with _open(path):
            pass
    return paths


def _open(path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "corpus file not found", str(path)) from None
    except IsADirectoryError:
        raise IsADirectoryError(errno.EISDIR, "corpus file is a folder", str(path)) from None
    except PermissionError:
        raise PermissionError(errno.EACCES, "cannot read corpus file (permission denied)", str(path)) from None
    except OSError as err:
        raise OSError(err.errno, f"cannot read corpus file ({err.strerror})", str(path)) from None


def check_encoding(encoding) -> str:
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str, got {type(encoding).__name__}")
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None


def check_eos(eos):
    if eos is None:
        return None
    if not isinstance(eos, str) or not eos or eos.split() != [eos]:
        raise ValueError(f"eos must be a non-empty token without whitespace, or None; got {eos!r}")
    return eos


def _decode(decoder, data: bytes, final: bool, path, consumed: int, encoding: str) -> str:
    """``decoder.decode`` naming the file and the offset of a bad byte in it (``consumed``:
    bytes fed before ``data``; the decoder may still hold a few of them)."""
    held = len(decoder.getstate()[0])
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as err:
        raise CorpusDecodeError(path, consumed - held + err.start, encoding, err.reason) from None


def _read_file(path, encoding, start=0):
    """The decoded text of ``path`` from byte ``start`` in pieces that each end after a whitespace
    character (so no token is cut), newlines made universal; then a final ``None``-free piece."""
    encoding = check_encoding(encoding)
    decoder = codecs.getincrementaldecoder(encoding)()
    carry = ""
    with _open(path) as f:
        consumed = start
        if start:
            f.seek(start)
        while True:
            try:
                data = f.read(BLOCK_BYTES)
            except OSError as err:
                raise OSError(err.errno, f"cannot read corpus file ({err.strerror})", str(path)) from None
            final = not data
            text = carry + _decode(decoder, data, final, path, consumed, encoding)
            consumed += len(data)
            if final:
                if text:
                    yield _universal_newlines(text)
                return
            # Keep the text after the last cut point for the next block: it may be part of a
            # token, or a '\r' whose '\n' comes next.
            cut = max(text.rfind(c) for c in _CUT_AFTER) + 1
            carry = text[cut:]
            if cut:
                yield _universal_newlines(text[:cut])


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _block_tokens(paths, encoding, eos) -> Iterator[list]:
    """Lists of tokens of the files as one stream, a block at a time (the fast path: one
    ``replace`` and one ``split`` per block instead of a loop over lines)."""
    eos = check_eos(eos)
    newline = "\n" if eos is None else f" {eos} "
    for path in paths:
        open_line = False  # text after the last newline: a last line without one
        for text in _read_file(path, encoding):
            last_newline = text.rfind("\n")
            open_line = last_newline < len(text) - 1 if last_newline >= 0 else open_line or bool(text)
            tokens = text.replace("\n", newline).split() if eos is not None else text.split()
            if tokens:
                yield tokens
        if open_line and eos is not None:
            yield [eos]


def iter_file_tokens(path, encoding: str = "utf-8", eos: str | None = "<eos>") -> Iterator[list]:
    """The tokens of ``path``, one list per line: ``line.split()`` plus ``eos`` (when not None),
    the PTB loader's tokenisation (see the module docstring)."""
    eos = check_eos(eos)
    tail = [eos] if eos is not None else []
    words: list = []
    open_line = False
    for text in _read_file(path, encoding):
        lines = text.split("\n")
        for line in lines[:-1]:
            words.extend(line.split())
            yield words + tail
            words = []
        words.extend(lines[-1].split())
        open_line = bool(lines[-1]) if len(lines) > 1 else open_line or bool(lines[-1])
    if open_line:
        yield words + tail


# ----- vocabulary and ids ----------------------------------------------------------------------

def vocabulary_from_files(paths, min_count: int = 1, max_size: int | None = None, encoding: str = "utf-8",
                          eos: str | None = "<eos>") -> Vocabulary:
    """The vocabulary of the files (one pass), with counts, ids in order of first appearance.

    First appearance is the book's and the PTB loader's order, so ``count_vectors(paths)`` equals
    ``count_vectors(ids, words)`` of the in-memory corpus (PTB's ``load_ptb`` included). Words
    seen fewer than ``min_count`` times are dropped; ``max_size`` keeps the most frequent (ties:
    first appearance), as ``Vocabulary.build``. ``counts`` are the counts in the files of the
    kept words. No unk token: dropped words are left out when the files are encoded.
    """
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer))
                                 or max_size < 1):
        raise ValueError(f"max_size must be a positive integer or None, got {max_size!r}")
    paths = check_readable(paths)
    from .kernels import registry

    # The index_words op numbers new words as they come (a dict keeps the order of first
    # appearance) and gives each token's index; the counts are bincounts of those, taken when
    # enough indices have piled up that a bincount over the whole vocabulary costs nothing extra.
    index_words = registry.kernel("index_words")
    index: dict = {}
    seen = np.zeros(0, dtype=np.int64)
    pending, n_pending = [], 0
    for tokens in _block_tokens(paths, encoding, eos):
        pending.append(index_words(tokens, index))
        n_pending += len(tokens)
        if n_pending >= len(index) // 4:
            seen = _add_counts(seen, pending, len(index))
            pending, n_pending = [], 0
    seen = _add_counts(seen, pending, len(index))
    if not index:
        raise ValueError(f"empty corpus: no words in {_names(paths)}")
    words = list(index)
    candidates = np.flatnonzero(seen >= min_count)
    if candidates.size == 0:
        raise ValueError(f"no word of {_names(paths)} occurs min_count={min_count} times "
                         f"(the most frequent occurs {int(seen.max())} times)")
    if max_size is not None and candidates.size > max_size:
        by_frequency = candidates[np.argsort(-seen[candidates], kind="stable")]
        candidates = np.sort(by_frequency[:max_size])
    return Vocabulary([words[i] for i in candidates], counts=seen[candidates])


def _add_counts(counts, pending_ids, vocab_size):
    """``counts`` grown to ``vocab_size`` plus the counts of the ids in ``pending_ids``."""
    grown = np.zeros(vocab_size, dtype=np.int64)
    grown[:counts.size] = counts
    if pending_ids:
        ids = np.concatenate(pending_ids)
        grown += np.bincount(ids, minlength=vocab_size)
    return grown


def _names(paths) -> str:
    names = [str(path) for path in paths]
    return names[0] if len(names) == 1 else f"{len(names)} files ({names[0]}, ...)"


def _encoder(word_to_id, unknown):
    """tokens -> int64 ids: the compiled ``word2vec_encode`` op (C-level dict look-ups, unknown
    words left out) or, with an ``unknown`` id, one ``dict.get`` per token."""
    if not isinstance(word_to_id, dict):
        raise TypeError(f"word_to_id must be a dict of word -> id, got {type(word_to_id).__name__}")
    if unknown is None:
        from .kernels import registry

        encode = registry.kernel("word2vec_encode")
        return lambda tokens: encode([tokens], word_to_id)[0].astype(np.int64)
    unknown = int(unknown)
    get = word_to_id.get
    return lambda tokens: np.fromiter(map(get, tokens, repeat(unknown)), dtype=np.int64, count=len(tokens))


def _id_blocks(paths, word_to_id, encoding, eos, unknown) -> Iterator[np.ndarray]:
    encode = _encoder(word_to_id, unknown)
    for tokens in _block_tokens(paths, encoding, eos):
        ids = encode(tokens)
        if ids.size:
            yield ids


def _rechunk(blocks, chunk_tokens) -> Iterator[np.ndarray]:
    """Arrays of exactly ``chunk_tokens`` ids (the last one shorter) from arrays of any size."""
    pending, size = [], 0
    for ids in blocks:
        pending.append(ids)
        size += ids.size
        if size < chunk_tokens:
            continue
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        full = (joined.size // chunk_tokens) * chunk_tokens
        for start in range(0, full, chunk_tokens):
            yield joined[start:start + chunk_tokens]
        pending = [joined[full:]] if full < joined.size else []
        size = joined.size - full
    if size:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _check_chunk_tokens(chunk_tokens) -> int:
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, (int, np.integer)) or chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    return int(chunk_tokens)


def file_id_chunks(path, word_to_id, chunk_tokens: int, encoding: str = "utf-8", eos: str | None = "<eos>",
                   unknown: int | None = None) -> Iterator[np.ndarray]:
    """The ids of ``path`` (or of several paths as one stream) as int64 arrays of
    ``chunk_tokens`` ids each, the last one shorter. Words missing from ``word_to_id`` are left
    out, or become ``unknown`` when it is an id. A file with no words gives no chunk."""
    chunk_tokens = _check_chunk_tokens(chunk_tokens)
    paths = check_readable(path)
    return _rechunk(_id_blocks(paths, word_to_id, encoding, eos, unknown), chunk_tokens)


def file_tail_ids(path, word_to_id, n: int, encoding: str = "utf-8", eos: str | None = "<eos>",
                  unknown: int | None = None) -> np.ndarray:
    """The last ``n`` ids of ``path`` (all of them when it has fewer) as int64, the same ids
    ``file_id_chunks`` ends with: the left context a following shard needs.

    Read backwards from the end in growing blocks, so a shard's context costs a few kilobytes,
    not a pass over the file; encodings that cannot be decoded from the middle of a file
    (UTF-16, multi-byte Asian code pages) are read from the start instead.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    paths = check_readable(path)
    if len(paths) != 1:
        raise ValueError(f"file_tail_ids reads one file, got {len(paths)}")
    path = paths[0]
    n = int(n)
    if n == 0:
        return np.zeros(0, np.int64)
    if not _SEEKABLE_ENCODINGS.match(check_encoding(encoding)):
        return _last_ids(_id_blocks([path], word_to_id, encoding, eos, unknown), n)
    size = os.path.getsize(path)
    span = 4096
    while True:
        start = max(size - span, 0)
        if start == 0:
            return _last_ids(_id_blocks([path], word_to_id, encoding, eos, unknown), n)
        ids = _ids_after(path, start, word_to_id, encoding, eos, unknown)
        if ids.size >= n:
            return ids[-n:]
        span *= 4


def _ids_after(path, start, word_to_id, encoding, eos, unknown) -> np.ndarray:
    """The ids of the tokens that begin after the first whitespace at or after byte ``start``:
    a suffix of the file's ids (the token cut by ``start`` is dropped)."""
    with _open(path) as f:
        f.seek(start)
        head = f.read(8)
    if check_encoding(encoding) == "utf-8":  # step over the continuation bytes of a cut character
        skip = next((i for i, byte in enumerate(head) if byte & 0xC0 != 0x80), len(head))
        start += skip
    encode = _encoder(word_to_id, unknown)
    eos = check_eos(eos)
    newline = "\n" if eos is None else f" {eos} "
    parts, first, open_line = [], True, False
    for text in _read_file(path, encoding, start):
        if first:
            first = False
            match = _FIRST_SPACE.search(text)
            if match is None:  # all of it one (cut) token: keep reading
                first = True
                continue
            text = text[match.end():]
        last_newline = text.rfind("\n")
        open_line = last_newline < len(text) - 1 if last_newline >= 0 else open_line or bool(text)
        tokens = text.replace("\n", newline).split() if eos is not None else text.split()
        if tokens:
            parts.append(encode(tokens))
    if open_line and eos is not None:
        parts.append(encode([eos]))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _last_ids(blocks, n) -> np.ndarray:
    kept = np.zeros(0, np.int64)
    for ids in blocks:
        kept = np.concatenate([kept, ids])[-n:]
    return kept


# ----- counting --------------------------------------------------------------------------------

def count_files(paths, vocabulary, window: int = 2, weighting: str = "uniform", boundary_id=None,
                memory_budget=None, encoding: str = "utf-8", eos: str | None = "<eos>", context_ids=None):
    """Co-occurrence counts of the files as one stream: a (V, V) float64 ``scipy.sparse.csr_matrix``,
    equal to ``fastnlp.kernels.cooccurrence`` of the ids of all files in one array (pairs that
    straddle two files are counted) without ever holding them.

    ``vocabulary``: a ``Vocabulary`` (its unk id, when it has one, stands for unknown words; else
    they are left out) or a sequence of words in id order. ``memory_budget`` bounds the counting's
    working memory as in ``cooccurrence``; reading adds about one block of tokens. ``context_ids``:
    ids that precede the first file, counted only as the left side of pairs: with the last
    ``window`` ids before each shard as its context (``file_tail_ids`` of the previous file, and
    of the one before when that is shorter than the window), the counts of consecutive shards
    sum to the counts of all of them.
    """
    from .kernels.cooccurrence import chunk_tokens_for_budget, cooccurrence

    if not isinstance(vocabulary, Vocabulary):
        if isinstance(vocabulary, (str, bytes)):
            raise TypeError("vocabulary must be a Vocabulary or a sequence of words, got a single string")
        vocabulary = Vocabulary(vocabulary)
    paths = check_readable(paths)
    check_encoding(encoding)
    check_eos(eos)
    vocab_size = len(vocabulary)
    chunk_tokens = chunk_tokens_for_budget(memory_budget, vocab_size, window)
    chunks = _rechunk(_id_blocks(paths, vocabulary.word_to_id, encoding, eos, vocabulary.unk_id), chunk_tokens)
    try:
        return cooccurrence(chunks, vocab_size, window, weighting=weighting, boundary_id=boundary_id,
                            dtype=np.float64, memory_budget=memory_budget, context=context_ids)
    except ValueError as err:
        if str(err).startswith("empty corpus"):
            raise ValueError(f"empty corpus: no words of the vocabulary in {_names(paths)}") from None
        raise
