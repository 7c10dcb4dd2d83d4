"""The Penn Treebank (Mikolov's split) as the book reads it, with token ids cached on disk.

Each newline becomes ``<eos>`` and the vocabulary always comes from the training split (ids in
order of first appearance, 10,000 types), so all three splits share one set of ids.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..serialization import atomic_write
from ..text import Vocabulary
from ._files import cache_home, find_or_fetch, is_writable_folder, sha256_of

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"val": "valid"}  # the book's loader accepts 'val' too
EOS = "<eos>"
UNK = "<unk>"
# Bump when the tokenisation or the cache layout changes, so old caches are never read.
_CACHE_FORMAT = 2


def load_ptb(split: str = "train", data_dir=None, verify: bool = True):
    """Return ``(corpus, word_to_id, id_to_word)`` for ``split`` ('train', 'valid' or 'test').

    ``corpus`` is an int32 array of ids; the two dicts are the training vocabulary, shared by
    all splits. Files come from ``data_dir`` / ``$FASTNLP_DATA`` / the user cache (downloaded
    when missing); see ``fastnlp.datasets._files.find_or_fetch``. Every call checks the text
    files against their known sha256 (a few milliseconds) and raises ``ChecksumError`` for a
    corrupt or truncated copy; ``verify=False`` reads a deliberately changed corpus.
    """
    split = _check_split(split)
    train_path = find_or_fetch("ptb/ptb.train.txt", data_dir, verify=verify)
    vocab, train_ids = _training_vocabulary(train_path, want_ids=split == "train")
    if split == "train":
        corpus = train_ids
    else:
        split_path = find_or_fetch(f"ptb/ptb.{split}.txt", data_dir, verify=verify)
        corpus = _split_ids(split, split_path, train_path, vocab)
    word_to_id, id_to_word = vocab.to_dicts()
    return corpus, word_to_id, id_to_word


def load_ptb_vocabulary(data_dir=None, verify: bool = True) -> Vocabulary:
    """The training vocabulary as a ``Vocabulary`` with training counts; PTB's own ``<unk>``
    word is its unk token. ``verify`` as in ``load_ptb``."""
    train_path = find_or_fetch("ptb/ptb.train.txt", data_dir, verify=verify)
    vocab, train_ids = _training_vocabulary(train_path, want_ids=True)
    return Vocabulary(vocab.id_to_word, counts=np.bincount(train_ids, minlength=len(vocab)),
                      unk_token=UNK if UNK in vocab else None)


def _check_split(split) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    return split


def _read_tokens(path: Path) -> list[str]:
    # The book's tokenisation, token for token: newline -> '<eos>', then whitespace split.
    # PTB lines start and end with a space, so '<eos>' always stands alone.
    with open(path, encoding="utf-8") as f:
        return f.read().replace("\n", EOS).strip().split()


# ---- token-id cache ---------------------------------------------------------------------


def _source_key(*paths: Path) -> str:
    """Changes whenever any source file's content does.

    Keyed by content, not by size and modification time: an edit that keeps both (a restored
    timestamp, a same-length change) must still rebuild the ids. Hashing PTB's 5 MB takes ~6 ms.
    """
    parts = [f"format={_CACHE_FORMAT}"]
    parts.extend(sha256_of(path) for path in paths)
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def _cache_folder(text_path: Path) -> Path:
    folder = text_path.parent
    if is_writable_folder(folder):
        return folder
    # One subfolder per read-only source folder, so two data folders never evict each other.
    tag = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:12]
    return cache_home() / "token-cache" / tag


def _read_cached_vocabulary(path: Path) -> Vocabulary | None:
    try:
        words = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if words[-1] != "":  # a complete file ends with a newline
        return None
    try:
        return Vocabulary(words[:-1]) if len(words) > 1 else None
    except ValueError:
        return None


def _read_cached_ids(path: Path, vocab_size: int) -> np.ndarray | None:
    try:
        ids = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    # Anything odd means a damaged or foreign file: rebuild rather than trust it.
    if ids.ndim != 1 or ids.dtype != np.int32 or (ids.size and (ids.min() < 0 or ids.max() >= vocab_size)):
        return None
    return ids


def _write_cache(path: Path, write, stale_pattern: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the user-cache folder is ours to create
        atomic_write(path, write)
    except OSError as err:
        # A cache is an optimisation: failing to write one must not fail the load.
        log.warning("could not cache PTB token ids at %s (%s: %s); they will be recomputed next time",
                    path, type(err).__name__, err)
        return
    for old in path.parent.glob(stale_pattern):
        if old != path:
            old.unlink(missing_ok=True)


def _training_vocabulary(train_path: Path, want_ids: bool):
    """``(vocab, train_ids or None)``, from the cache when it matches the text file."""
    key = _source_key(train_path)
    folder = _cache_folder(train_path)
    vocab_file = folder / f"ptb.vocab.{key}.txt"
    ids_file = folder / f"ptb.train.{key}.ids.npy"
    vocab = _read_cached_vocabulary(vocab_file)
    if vocab is not None:
        if not want_ids:
            return vocab, None
        ids = _read_cached_ids(ids_file, len(vocab))
        if ids is not None:
            return vocab, ids
    vocab, ids = Vocabulary.build_encoded(_read_tokens(train_path))
    text = "".join(word + "\n" for word in vocab.id_to_word).encode("utf-8")
    _write_cache(vocab_file, lambda f: f.write(text), "ptb.vocab.*.txt")
    _write_cache(ids_file, lambda f: np.save(f, ids), "ptb.train.*.ids.npy")
    return vocab, ids


def _split_ids(split: str, path: Path, train_path: Path, vocab: Vocabulary) -> np.ndarray:
    # The ids depend on the training vocabulary too, so both files are in the key.
    key = _source_key(path, train_path)
    ids_file = _cache_folder(path) / f"ptb.{split}.{key}.ids.npy"
    ids = _read_cached_ids(ids_file, len(vocab))
    if ids is not None:
        return ids
    try:
        ids = vocab.encode(_read_tokens(path))
    except KeyError as err:
        raise ValueError(f"{path}: {err.args[0]} (not in the training vocabulary)") from None
    _write_cache(ids_file, lambda f: np.save(f, ids), f"ptb.{split}.*.ids.npy")
    return ids
