"""File formats of word vectors: word2vec text and binary (as gensim reads them) and .npz."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..serialization import atomic_write

# What the binary reader skips between rows: ASCII whitespace only, since the bytes of a UTF-8
# word (such as those of U+00A0) must never be mistaken for a separator.
_ASCII_WHITESPACE = b" \t\n\r\v\f"


def _parse_header(line, path):
    fields = line.split()
    try:
        n_words, dim = (int(x) for x in fields)
    except ValueError:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; expected 'n_words dim'") from None
    if n_words < 0 or dim < 1:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; need n_words >= 0 and dim >= 1")
    return n_words, dim


class FormatsMixin:
    """Saving and loading methods of WordVectors."""

    def _check_words_fit_word2vec(self):
        for word in self._words:
            if word.split() != [word]:  # also catches the empty word
                raise ValueError(f"word {word!r} is empty or contains whitespace; the word2vec format "
                                 "separates fields by spaces and cannot hold it")

    def save_word2vec_format(self, path, binary=False):
        """Write the word2vec text (``binary=False``) or binary format, atomically.

        Text: a ``"n_words dim"`` line, then ``word v1 v2 ...`` per line (9 significant digits for
        float32 so values read back exactly, 17 for float64). Binary: the same header line, then
        per word its UTF-8 bytes, a space, ``dim`` little-endian float32 values and a newline."""
        self._check_words_fit_word2vec()
        header = f"{len(self)} {self.vector_size}\n".encode("ascii")

        if binary:
            rows = self._vectors.astype("<f4", copy=False)

            def write(f):
                f.write(header)
                for word, row in zip(self._words, rows):
                    f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            digits = 9 if self._vectors.dtype.itemsize <= 4 else 17
            row_format = " ".join([f"%.{digits}g"] * self.vector_size)

            def write(f):
                f.write(header)
                for word, row in zip(self._words, self._vectors):
                    f.write(f"{word} {row_format % tuple(row.tolist())}\n".encode("utf-8"))

        return atomic_write(path, write)

    @classmethod
    def load_word2vec_format(cls, path, binary=False, dtype=np.float32):
        """Read the word2vec text or binary format (see ``save_word2vec_format``).

        Tolerates trailing spaces, ``\\r\\n`` line ends and a missing final newline; raises
        ValueError naming the line (or word) for a malformed header, a row with the wrong number
        of values, a truncated file or a word count that disagrees with the header."""
        with open(path, "rb") as f:
            header = f.readline().decode("utf-8", errors="replace")
            n_words, dim = _parse_header(header, path)
            if binary:
                words, vectors = _read_binary_rows(f.read(), n_words, dim, path)
            else:
                words, vectors = _read_text_rows(f, n_words, dim, path)
        return cls(vectors.astype(dtype, copy=False), words)

    # ----- npz --------------------------------------------------------------------------------
    def save(self, path):
        """Save vectors and words to ``path`` as ``.npz`` (plain arrays, no pickle), atomically."""
        words = np.array(self._words, dtype=str)
        return atomic_write(path, lambda f: np.savez(f, vectors=self._vectors, words=words))

    @classmethod
    def load(cls, path):
        """Load what ``save`` wrote (the vectors keep their saved dtype)."""
        with np.load(Path(path), allow_pickle=False) as data:
            missing = {"vectors", "words"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a saved WordVectors file: missing {sorted(missing)}")
            return cls(data["vectors"], data["words"].tolist())


def _read_text_rows(f, n_words, dim, path):
    words, vectors = [], np.empty((n_words, dim), dtype=np.float64)
    line_no = 1
    for line_no, line in enumerate(f, 2):
        fields = line.split()  # bytes.split: ASCII whitespace only, so UTF-8 words stay whole
        if not fields:
            continue
        if len(words) == n_words:
            raise ValueError(f"{path}:{line_no}: more rows than the {n_words} the header announces")
        if len(fields) != dim + 1:
            raise ValueError(f"{path}:{line_no}: expected a word and {dim} values, got {len(fields) - 1} values")
        try:
            vectors[len(words)] = np.array(fields[1:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: values are not all numbers") from None
        words.append(fields[0].decode("utf-8"))
    if len(words) != n_words:
        raise ValueError(f"{path}: the header announces {n_words} rows but the file has {len(words)}")
    return words, vectors


def _read_binary_rows(data, n_words, dim, path):
    words, vectors = [], np.empty((n_words, dim), dtype=np.float32)
    row_bytes = 4 * dim
    pos = 0
    for i in range(n_words):
        # Writers end each row with b"\n" but some omit it; skip whatever whitespace is there.
        while pos < len(data) and data[pos] in _ASCII_WHITESPACE:
            pos += 1
        space = data.find(b" ", pos)
        if space < 0:
            raise ValueError(f"{path}: truncated: word {i} of {n_words} is missing its ' ' separator")
        if space + 1 + row_bytes > len(data):
            raise ValueError(f"{path}: truncated: word {i} ({data[pos:space][:50]!r}) has fewer than {dim} values")
        words.append(data[pos:space].decode("utf-8"))
        vectors[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + row_bytes
    if data[pos:].strip(_ASCII_WHITESPACE):
        raise ValueError(f"{path}: data after the {n_words} rows the header announces "
                         f"(wrong dim {dim} in the header?)")
    return words, vectors


