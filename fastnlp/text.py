"""Turning text into word ids: the book's ``preprocess`` and a reusable ``Vocabulary``."""
from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

ORDERS = ("appearance", "frequency")


def preprocess(text: str):
    """The book's preprocessing: lower-case, split ``.`` off words, split on whitespace.

    Returns ``(corpus, word_to_id, id_to_word)``: an int32 array of ids and the two dicts, ids
    given in order of first appearance.
    """
    if not isinstance(text, str):
        raise TypeError(f"preprocess expects a str, got {type(text).__name__}")
    words = text.lower().replace(".", " .").split()
    if not words:
        raise ValueError("empty corpus: the text has no words")
    vocab, corpus = Vocabulary.build_encoded(words)
    word_to_id, id_to_word = vocab.to_dicts()
    return corpus, word_to_id, id_to_word


def _token_list(tokens) -> list:
    # A bare string would otherwise be taken letter by letter, silently.
    if isinstance(tokens, (str, bytes)):
        raise TypeError("expected a sequence of tokens, got a single string; split it first (e.g. text.split())")
    return tokens if isinstance(tokens, list) else list(tokens)


class Vocabulary:
    """A two-way map between words and ids ``0..len-1``, with per-id counts.

    ``unk_token``: when set, words not in the vocabulary encode to it; when ``None``, looking up
    an unknown word raises ``KeyError`` naming the word.
    """

    def __init__(self, words: Iterable[str], counts=None, unk_token: str | None = None):
        self.id_to_word: list[str] = list(words)
        self.word_to_id: dict[str, int] = {w: i for i, w in enumerate(self.id_to_word)}
        if len(self.word_to_id) != len(self.id_to_word):
            # The dict kept the last id of a repeated word; the first word whose id differs is it.
            dup = next(w for i, w in enumerate(self.id_to_word) if self.word_to_id[w] != i)
            raise ValueError(f"word {dup!r} appears twice in the vocabulary")
        n = len(self.id_to_word)
        if counts is None:
            self.counts = np.zeros(n, dtype=np.int64)
        else:
            self.counts = np.asarray(counts, dtype=np.int64).copy()
            if self.counts.shape != (n,):
                raise ValueError(f"counts has shape {self.counts.shape}, expected ({n},)")
        if unk_token is not None and unk_token not in self.word_to_id:
            raise ValueError(f"unk_token {unk_token!r} is not one of the words")
        self.unk_token = unk_token

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, max_size: int | None = None,
              unk_token: str | None = None, specials: Sequence[str] = (), order: str = "appearance"):
        """A vocabulary of ``tokens``; see ``build_encoded`` for the options."""
        return cls.build_encoded(tokens, min_count=min_count, max_size=max_size, unk_token=unk_token,
                                 specials=specials, order=order)[0]

    @classmethod
    def build_encoded(cls, tokens: Iterable[str], min_count: int = 1, max_size: int | None = None,
                      unk_token: str | None = None, specials: Sequence[str] = (), order: str = "appearance"):
        """Build a vocabulary from ``tokens`` and encode them in the same pass: ``(vocab, ids)``.

        - ``specials`` (and ``unk_token`` if not among them) always get ids ``0..k-1`` first, in
          the order given, whether or not they occur.
        - Other words seen fewer than ``min_count`` times are dropped; ``max_size`` caps the
          total size, keeping the most frequent words (ties: first appearance).
        - ``order="appearance"`` (the book's) numbers the kept words by first appearance,
          ``order="frequency"`` by descending count, ties by first appearance.

        Dropped words become ``unk_token`` in ``ids``; without an unk token they are left out
        of ``ids``. ``vocab.counts`` is the count of each id in ``ids``.
        """
        tokens = _token_list(tokens)
        if isinstance(min_count, bool) or operator.index(min_count) < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        reserved = list(dict.fromkeys(specials))
        if len(reserved) != len(specials):
            raise ValueError(f"specials has repeated tokens: {list(specials)}")
        if unk_token is not None and unk_token not in reserved:
            reserved.append(unk_token)
        if max_size is not None and operator.index(max_size) < len(reserved):
            raise ValueError(f"max_size={max_size} leaves no room for the {len(reserved)} reserved tokens {reserved}")

        # One Python pass numbers each distinct token by first appearance; everything after
        # works on arrays of those provisional ids.
        seen: dict[str, int] = {}
        first_ids = np.fromiter((seen.setdefault(t, len(seen)) for t in tokens), dtype=np.int64, count=len(tokens))
        seen_words = list(seen)
        seen_counts = np.bincount(first_ids, minlength=len(seen_words))

        reserved_set = set(reserved)
        is_reserved = np.array([w in reserved_set for w in seen_words], dtype=bool)
        candidates = np.flatnonzero(~is_reserved & (seen_counts >= min_count))
        # Stable sort on -count keeps first appearance for ties.
        by_frequency = candidates[np.argsort(-seen_counts[candidates], kind="stable")]
        if max_size is not None:
            by_frequency = by_frequency[: max_size - len(reserved)]
        kept = by_frequency if order == "frequency" else np.sort(by_frequency)

        words = reserved + [seen_words[i] for i in kept]
        missing_id = -1 if unk_token is None else reserved.index(unk_token)
        remap = np.full(len(seen_words), missing_id, dtype=np.int32)
        remap[kept] = np.arange(len(reserved), len(words), dtype=np.int32)
        for rid, word in enumerate(reserved):
            if word in seen:
                remap[seen[word]] = rid
        ids = remap[first_ids]
        if unk_token is None:
            ids = ids[ids >= 0]
        counts = np.bincount(ids, minlength=len(words)).astype(np.int64)
        return cls(words, counts=counts, unk_token=unk_token), ids

    @classmethod
    def from_mapping(cls, word_to_id: Mapping[str, int], corpus=None, unk_token: str | None = None):
        """Wrap the book's ``word_to_id`` dict (ids must be exactly ``0..n-1``).

        With ``corpus`` (an array of ids) the counts are taken from it, else they are zero.
        """
        n = len(word_to_id)
        words: list = [None] * n
        for word, wid in word_to_id.items():
            wid = operator.index(wid)
            if not 0 <= wid < n or words[wid] is not None:
                raise ValueError(f"ids must be 0..{n - 1} with no repeats; {word!r} has id {wid}")
            words[wid] = word
        counts = None
        if corpus is not None:
            corpus = np.asarray(corpus)
            if corpus.size and (corpus.min() < 0 or corpus.max() >= n):
                raise ValueError(f"corpus holds ids outside 0..{n - 1}")
            counts = np.bincount(corpus.ravel().astype(np.int64), minlength=n)
        return cls(words, counts=counts, unk_token=unk_token)

    def to_dicts(self):
        """The book's pair ``(word_to_id, id_to_word)``, both plain dicts (fresh copies)."""
        return dict(self.word_to_id), dict(enumerate(self.id_to_word))

    # ---- lookups ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.id_to_word)

    def __contains__(self, word) -> bool:
        return word in self.word_to_id

    def __iter__(self):
        return iter(self.id_to_word)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, unk_token={self.unk_token!r})"

    @property
    def unk_id(self) -> int | None:
        return None if self.unk_token is None else self.word_to_id[self.unk_token]

    def id(self, word: str) -> int:
        """The id of ``word``; unknown words give the unk id, or ``KeyError`` without one."""
        wid = self.word_to_id.get(word)
        if wid is not None:
            return wid
        if self.unk_token is None:
            raise KeyError(f"unknown word {word!r}")
        return self.word_to_id[self.unk_token]

    def word(self, wid) -> str:
        """The word with id ``wid``; ``IndexError`` naming the id when out of range."""
        wid = operator.index(wid)
        # Negative ids are errors here, not Python's count-from-the-end.
        if not 0 <= wid < len(self.id_to_word):
            raise IndexError(f"id {wid} is out of range for a vocabulary of {len(self)} words")
        return self.id_to_word[wid]

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Ids of ``tokens`` as an int32 array (unknown words: see ``unk_token``)."""
        tokens = _token_list(tokens)
        lookup = self.word_to_id
        if self.unk_token is not None:
            unk = lookup[self.unk_token]
            return np.fromiter((lookup.get(t, unk) for t in tokens), dtype=np.int32, count=len(tokens))
        try:
            return np.fromiter((lookup[t] for t in tokens), dtype=np.int32, count=len(tokens))
        except KeyError as err:
            raise KeyError(f"unknown word {err.args[0]!r}") from None

    def decode(self, ids) -> list[str]:
        """Words of ``ids`` (any 1-D integer sequence or array)."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return []
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"decode expects a 1-D sequence of integer ids, got shape {arr.shape} dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self.id_to_word))
        if bad.any():
            wid = int(arr[np.argmax(bad)])
            raise IndexError(f"id {wid} is out of range for a vocabulary of {len(self)} words")
        words = self.id_to_word
        return [words[i] for i in arr.tolist()]
