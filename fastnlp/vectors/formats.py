"""File formats of word vectors: word2vec text and binary (as gensim reads them) and .npz."""
from __future__ import annotations

import codecs
import os
import stat
import struct
import zipfile

import numpy as np

from ..serialization import atomic_write, read_file, write_file

# What the binary reader skips between rows: ASCII whitespace only, since the bytes of a UTF-8
# word (such as those of U+00A0) must never be mistaken for a separator.
_ASCII_WHITESPACE = b" \t\n\r\v\f"
# The bytes of numbers written as text ("-1.5e-3", "nan", "Infinity") and their separators.
_TEXT_NUMBER_BYTES = b"0123456789+-.eEnNaAiIfFtTyY" + _ASCII_WHITESPACE
_READ_BUFFER = 1 << 20


def _parse_header(line, path):
    fields = line.split()
    try:
        n_words, dim = (int(x) for x in fields)
    except ValueError:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; expected 'n_words dim'") from None
    if n_words < 0 or dim < 1:
        raise ValueError(f"{path}: malformed word2vec header {line[:80]!r}; need n_words >= 0 and dim >= 1")
    return n_words, dim


def _check_header_fits(f, header, n_words, dim, binary, path):
    """ValueError when the rest of ``f`` is too short to hold the rows the header announces, before
    an ``n_words x dim`` matrix is allocated for them (a damaged header is a MemoryError otherwise).

    The shortest text row is a 1-byte word and ``dim`` 1-byte values, each after a separator, with
    a newline but on the last row; the shortest binary row is a 1-byte word, a space and ``dim``
    float32 values."""
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):
        return  # a pipe, say, has no size to check against
    body_bytes = info.st_size - f.tell()
    if binary:
        max_rows = body_bytes // (2 + 4 * dim)
    else:
        max_rows = (body_bytes + 1) // (2 + 2 * dim)
    if n_words > max_rows:
        raise ValueError(f"{path}:1: the header {header.strip()[:80]!r} announces {n_words} rows of {dim} values, "
                         f"but the {body_bytes} bytes after it have room for at most {max_rows} "
                         "(a wrong header, or a truncated file?)")


def _decode_word(raw, unicode_errors, where):
    try:
        return raw.decode("utf-8", unicode_errors)
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: the word {raw[:50]!r} is not valid UTF-8 ({err.reason} at its byte {err.start}); "
                         "pass unicode_errors='replace' (or 'ignore') to load it anyway") from None


def _checked_values(vectors, dtype, words, path, line_numbers):
    """``vectors`` cast to ``dtype``; a ValueError naming the row (its line in a text file) and the
    word when a value is NaN or inf, or is beyond the range of a floating ``dtype`` (where the cast
    would make it inf, and the constructor would only say "NaN or inf")."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = vectors.astype(dtype, copy=False)
    bad_source = ~np.isfinite(vectors).all(axis=1)
    bad_cast = ~np.isfinite(cast).all(axis=1) if cast.dtype.kind == "f" else bad_source
    bad = bad_source | bad_cast
    if not bad.any():
        return cast
    row = int(np.argmax(bad))
    where = f"{path}:{line_numbers[row]}" if line_numbers is not None else f"{path}: row {row}"
    if bad_source[row]:
        value = vectors[row][~np.isfinite(vectors[row])][0]
        raise ValueError(f"{where}: word {words[row]!r} has the value {value}; vectors must be finite")
    value = vectors[row][~np.isfinite(cast[row])][0]
    raise ValueError(f"{where}: word {words[row]!r} has the value {value:g}, beyond the {cast.dtype} range "
                     f"(magnitude up to {np.finfo(cast.dtype).max:.4g}); pass a wider dtype (such as "
                     "np.float64) to load it")


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
            with np.errstate(over="ignore"):
                rows = self._vectors.astype("<f4", copy=False)
            # The vectors are finite (checked on construction), so inf here means float64 values
            # beyond the float32 range that the binary format stores: the file could not be read back.
            overflow = ~np.isfinite(rows).all(axis=1)
            if overflow.any():
                first, others = int(np.argmax(overflow)), int(overflow.sum()) - 1
                also = f" (and {others} other words)" if others else ""
                raise ValueError(f"word {self._words[first]!r}{also} has values beyond the float32 range of "
                                 "the binary format; save as text (binary=False) or rescale the vectors "
                                 "(nothing was written)")

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
    def load_word2vec_format(cls, path, binary=None, limit=None, dtype=np.float32, unicode_errors="strict"):
        """Read the word2vec text or binary format (see ``save_word2vec_format``).

        ``binary``: None (the default) tells the two apart from the first row, whose values are
        ASCII numbers in a text file and raw float32 bytes in a binary one; True or False
        insists on one (a file that fails to parse as the format asked for, but looks like the
        other, says so). ``limit=n`` reads only the first n rows (as gensim's ``limit``: the
        most frequent words in files sorted by frequency) and leaves the rest of the file unread.

        Tolerates trailing spaces, ``\\r\\n`` line ends and a missing final newline; raises
        ValueError naming the line (or word) for a malformed header, a header announcing more
        rows than the file could hold, a row with the wrong number of values, a word that is not
        UTF-8, a value that is NaN, inf or beyond the range of ``dtype``, a truncated file or a
        word count that disagrees with the header. ``unicode_errors`` is the ``bytes.decode``
        error handler for the words (as in gensim): "replace" or "ignore" load words that are
        not UTF-8."""
        try:
            codecs.lookup_error(unicode_errors)
        except (LookupError, TypeError):
            raise ValueError(f"unknown unicode_errors {unicode_errors!r}; expected 'strict', 'replace' "
                             "or 'ignore'") from None
        if binary is not None and not isinstance(binary, (bool, np.bool_)):
            raise TypeError(f"binary must be True, False or None (detect), got {binary!r}")
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
                raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
            limit = int(limit)
        with open(path, "rb", buffering=_READ_BUFFER) as f:
            header = f.readline().decode("utf-8", errors="replace")
            n_words, dim = _parse_header(header, path)
            looks_binary = _looks_binary(f.peek(_READ_BUFFER), dim)
            regular_file = stat.S_ISREG(os.fstat(f.fileno()).st_mode)
            is_binary = looks_binary if binary is None else bool(binary)
            n_rows = n_words if limit is None else min(n_words, limit)
            body = f.tell()
            try:
                words, vectors, line_numbers = _read_rows(f, header, n_rows, dim, is_binary, path, unicode_errors,
                                                          whole=n_rows == n_words)
            except ValueError as exc:
                if binary is None and regular_file:
                    # The guess from the first row was wrong only if the other format reads cleanly.
                    f.seek(body)
                    try:
                        words, vectors, line_numbers = _read_rows(f, header, n_rows, dim, not is_binary, path,
                                                                  unicode_errors, whole=n_rows == n_words)
                    except ValueError:
                        raise exc from None
                elif binary is not None and looks_binary != is_binary:
                    other = "binary" if looks_binary else "text"
                    raise ValueError(f"{exc}. The file looks like the {other} word2vec format: pass "
                                     f"binary={looks_binary} (or leave binary out to detect the format)") from None
                else:
                    raise
        return cls(_checked_values(vectors, dtype, words, path, line_numbers), words)

    # ----- npz: the library's one file format ---------------------------------------------------
    def save(self, path):
        """Save vectors and words to ``path`` as ``.npz`` (plain arrays, no pickle), atomically;
        ``fastnlp.load(path)`` or ``WordVectors.load(path)`` reads it back.

        The words are stored as their UTF-8 bytes end to end (``word_bytes``, uint8) with
        ``word_offsets`` (int64, n_words + 1): a NumPy string array would drop trailing NULs."""
        encoded = [word.encode("utf-8", "surrogatepass") for word in self._words]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        word_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays = {"vectors": self._vectors, "word_bytes": word_bytes, "word_offsets": offsets}
        state = {} if self.unk_token is None else {"unk_token": self.unk_token}
        return write_file(path, self, arrays, kind="vectors", state=state)

    _to_file = save

    @classmethod
    def load(cls, path, mmap=False):
        """Load what ``save`` wrote (the vectors keep their saved dtype); files from versions
        before the one format (and those that stored a ``words`` string array) load too.

        ``mmap=True`` maps the vector matrix read-only from the file instead of reading it
        (``vectors`` is then a ``np.memmap``; the OS pages rows in as searches touch them, and
        several processes share them): the words are read, the matrix is not, nor scanned for
        NaN/inf. ``save`` stores the matrix uncompressed, which this needs; a compressed or
        otherwise unmappable file raises ValueError saying why. Exact search on mapped vectors
        normalises them block by block and never copies the whole matrix (``unit_vectors``,
        asked for explicitly, would)."""
        if mmap:
            header, arrays = _read_file_mapping_vectors(path)
        else:
            header, arrays = read_file(path, "a saved WordVectors file")
        if header.get("kind") != "vectors":
            raise ValueError(f"{path} holds a {header.get('kind')} ({header.get('class')}), not word vectors")
        return cls._from_file(header, arrays, path)

    @classmethod
    def _from_file(cls, header, arrays, path):
        if "vectors" in arrays and {"word_bytes", "word_offsets"} <= set(arrays):
            words = _decode_words(arrays["word_bytes"], arrays["word_offsets"], path)
        elif "vectors" in arrays and "words" in arrays:
            words = arrays["words"].tolist()
        else:
            missing = sorted({"vectors", "word_bytes", "word_offsets"} - set(arrays))
            raise ValueError(f"{path} is not a saved WordVectors file: missing {missing}")
        return cls(arrays["vectors"], words, unk_token=header.get("state", {}).get("unk_token"))


def _decode_words(word_bytes, offsets, path):
    if word_bytes.dtype != np.uint8 or word_bytes.ndim != 1 or offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise ValueError(f"{path}: word_bytes must be 1-D uint8 and word_offsets 1-D integers")
    bounds = offsets.tolist()
    if not bounds or bounds[0] != 0 or bounds[-1] != word_bytes.size or any(b > e for b, e in zip(bounds, bounds[1:])):
        raise ValueError(f"{path}: word_offsets do not split the {word_bytes.size} word bytes (damaged file)")
    raw = word_bytes.tobytes()
    try:
        return [raw[b:e].decode("utf-8", "surrogatepass") for b, e in zip(bounds, bounds[1:])]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: a word is not valid UTF-8 ({err})") from None


def _read_rows(f, header, n_rows, dim, binary, path, unicode_errors, whole):
    """(words, vectors, line numbers or None) of the rows after the header."""
    _check_header_fits(f, header, n_rows, dim, binary, path)
    if binary:
        return (*_read_binary_rows(f, n_rows, dim, path, unicode_errors, whole), None)
    return _read_text_rows(f, n_rows, dim, path, unicode_errors, whole)


def _looks_binary(head, dim):
    """Whether the bytes at the start of the first row (``head``) are of the binary format: in a
    text file the rest of the first line after the word is ASCII numbers and spaces; in a binary
    one it is raw float32 bytes, which fall outside that set (but by a freak, which the reader
    catches: see ``load_word2vec_format``)."""
    head = bytes(head).lstrip(_ASCII_WHITESPACE)
    space = head.find(b" ")
    if space < 0:
        return False  # no row to tell from: the text reader's messages are the plainer ones
    rest = head[space + 1:space + 1 + 4 * dim]
    newline = rest.find(b"\n")
    rest = rest if newline < 0 else rest[:newline]
    return not rest.strip(_ASCII_WHITESPACE) or bool(rest.translate(None, _TEXT_NUMBER_BYTES))


def _read_text_rows(f, n_words, dim, path, unicode_errors, whole=True):
    """(words, float64 vectors, the line number of each row): the first ``n_words`` rows, and
    with ``whole`` a check that no row follows them."""
    words, vectors, line_numbers = [], np.empty((n_words, dim), dtype=np.float64), []
    line_no = 1
    for line_no, line in enumerate(f, 2):
        fields = line.split()  # bytes.split: ASCII whitespace only, so UTF-8 words stay whole
        if not fields:
            continue
        if len(words) == n_words:
            if not whole:
                break
            raise ValueError(f"{path}:{line_no}: more rows than the {n_words} the header announces")
        if len(fields) != dim + 1:
            raise ValueError(f"{path}:{line_no}: expected a word and {dim} values, got {len(fields) - 1} values")
        try:
            vectors[len(words)] = np.array(fields[1:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: values are not all numbers") from None
        words.append(_decode_word(fields[0], unicode_errors, f"{path}:{line_no}"))
        line_numbers.append(line_no)
    if len(words) != n_words:
        raise ValueError(f"{path}: the header announces {n_words} rows but the file has {len(words)}")
    return words, vectors, line_numbers


def _read_binary_rows(f, n_words, dim, path, unicode_errors, whole=True):
    """(words, float32 vectors) of the first ``n_words`` rows, read as far as they need (so a
    ``limit`` leaves the rest of a large file unread); with ``whole``, a check that nothing but
    whitespace follows them."""
    words, vectors = [], np.empty((n_words, dim), dtype=np.float32)
    row_bytes = 4 * dim
    data, pos, eof = bytearray(), 0, False

    def ensure(end):
        """Read on until ``data`` holds ``end`` bytes or the file ends; False if it ended first."""
        nonlocal data, pos, eof
        while len(data) < end and not eof:
            if pos > _READ_BUFFER:  # drop the rows already parsed
                del data[:pos]
                end -= pos
                pos = 0
                continue
            more = f.read(max(end - len(data), _READ_BUFFER))
            eof = not more
            data += more
        return len(data) >= end

    for i in range(n_words):
        # Writers end each row with b"\n" but some omit it; skip whatever whitespace is there.
        while ensure(pos + 1) and data[pos] in _ASCII_WHITESPACE:
            pos += 1
        space = data.find(b" ", pos)
        while space < 0 and not eof:
            ensure(len(data) + 1)
            space = data.find(b" ", pos)
        if space < 0:
            raise ValueError(f"{path}: truncated: word {i} of {n_words} is missing its ' ' separator")
        start = space - pos  # ensure() may drop the parsed bytes before pos: keep offsets relative
        complete = ensure(space + 1 + row_bytes)
        space = pos + start
        if not complete:
            raise ValueError(f"{path}: truncated: word {i} ({bytes(data[pos:space][:50])!r}) has fewer than "
                             f"{dim} values")
        words.append(_decode_word(bytes(data[pos:space]), unicode_errors, f"{path}: row {i}"))
        vectors[i] = np.frombuffer(bytes(data[space + 1:space + 1 + row_bytes]), dtype="<f4")
        pos = space + 1 + row_bytes
    if whole:
        data += f.read()
        if bytes(data[pos:]).strip(_ASCII_WHITESPACE):
            raise ValueError(f"{path}: data after the {n_words} rows the header announces "
                             f"(wrong dim {dim} in the header?)")
    return words, vectors


# ----- memory-mapped loading -----------------------------------------------------------------
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (30 bytes)
_VECTORS_MEMBER = "vectors.npy"


def _read_file_mapping_vectors(path):
    """``read_file``'s ``(header, arrays)`` with ``arrays["vectors"]`` a read-only np.memmap of
    the stored .npy data: the other members are read, ``vectors.npy`` is located in the zip
    (its local header gives where its bytes start), checked to be stored uncompressed, and its
    .npy header parsed for dtype, shape and order."""

    from ..serialization import FORMAT_NAME, HEADER_KEY, parse_header

    what = "a saved WordVectors file"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not {what}: {err}") from None
    with archive:
        names = archive.namelist()
        if _VECTORS_MEMBER not in names:
            raise ValueError(f"{path} is not a saved WordVectors file: it has no vectors to map")
        arrays = {}
        for name in names:
            if name == _VECTORS_MEMBER or not name.endswith(".npy"):
                continue
            try:
                with archive.open(name) as member:
                    arrays[name[:-4]] = np.lib.format.read_array(member, allow_pickle=False)
            except (ValueError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"{path} is damaged: {err}") from None
        info = archive.getinfo(_VECTORS_MEMBER)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: cannot memory-map the vectors: they are stored compressed "
                         f"(zip method {info.compress_type}, e.g. np.savez_compressed); load with mmap=False, "
                         "or save again with WordVectors.save, which stores them uncompressed")
    if info.flag_bits & 0x1:
        raise ValueError(f"{path}: cannot memory-map the vectors: they are encrypted")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        raw = f.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size:
            raise ValueError(f"{path} is damaged: truncated zip member header of {_VECTORS_MEMBER}")
        fields = _LOCAL_HEADER.unpack(raw)
        if fields[0] != b"PK\x03\x04":
            raise ValueError(f"{path} is damaged: no zip member header where {_VECTORS_MEMBER} should start")
        data_start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
        f.seek(data_start)
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported for mapping")
        except ValueError as err:
            raise ValueError(f"{path}: cannot memory-map the vectors: {err}") from None
        offset = f.tell()
    if dtype.hasobject or dtype.kind not in "iuf" or len(shape) != 2:
        raise ValueError(f"{path}: cannot memory-map the vectors: a {dtype} array of shape {shape} is not a "
                         "2-D matrix of numbers")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes > data_start + info.file_size:
        raise ValueError(f"{path} is damaged: the vectors' .npy header announces {nbytes} bytes but the member "
                         f"holds {info.file_size - (offset - data_start)}")
    if nbytes == 0:
        arrays["vectors"] = np.zeros(shape, dtype)
    else:
        arrays["vectors"] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                                      order="F" if fortran else "C")
    raw_header = arrays.pop(HEADER_KEY, None)
    if raw_header is None:  # a file from before the one format
        return {"format": FORMAT_NAME, "version": 0, "kind": "vectors"}, arrays
    return parse_header(raw_header, path), arrays
