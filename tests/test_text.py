from pathlib import Path

import numpy as np
import pytest

from fastnlp.text import Vocabulary, preprocess

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

BOOK_TEXT = "You say goodbye and I say hello."
BOOK_WORD_TO_ID = {"you": 0, "say": 1, "goodbye": 2, "and": 3, "i": 4, "hello": 5, ".": 6}


@pytest.fixture(scope="module")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present")
    return SHARED_DATA


# ---- preprocess ---------------------------------------------------------------------------


def test_preprocess_gives_the_books_result():
    corpus, word_to_id, id_to_word = preprocess(BOOK_TEXT)
    assert corpus.dtype == np.int32
    np.testing.assert_array_equal(corpus, [0, 1, 2, 3, 4, 1, 5, 6])
    assert word_to_id == BOOK_WORD_TO_ID
    assert id_to_word == {i: w for w, i in BOOK_WORD_TO_ID.items()}


def test_preprocess_splits_on_any_whitespace():
    corpus, word_to_id, _ = preprocess("A  b.\n\ta B.")
    assert list(word_to_id) == ["a", "b", "."]
    np.testing.assert_array_equal(corpus, [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_preprocess_rejects_empty_text(text):
    with pytest.raises(ValueError, match="empty corpus"):
        preprocess(text)


def test_preprocess_rejects_non_text():
    with pytest.raises(TypeError):
        preprocess(["you", "say"])


# ---- Vocabulary ---------------------------------------------------------------------------

TOKENS = "b a c a b a d".split()  # counts: a 3, b 2, c 1, d 1


def test_build_matches_preprocess_and_counts_are_aligned():
    words = BOOK_TEXT.lower().replace(".", " .").split()
    vocab, ids = Vocabulary.build_encoded(words)
    assert vocab.word_to_id == BOOK_WORD_TO_ID
    assert vocab.id_to_word == list(BOOK_WORD_TO_ID)
    assert vocab.counts.dtype == np.int64
    np.testing.assert_array_equal(vocab.counts, [1, 2, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(ids, preprocess(BOOK_TEXT)[0])
    np.testing.assert_array_equal(vocab.encode(words), ids)


def test_lookups_and_membership():
    vocab = Vocabulary.build(TOKENS)
    assert len(vocab) == 4 and list(vocab) == ["b", "a", "c", "d"]
    assert "c" in vocab and "z" not in vocab
    assert vocab.id("a") == 1 and vocab.word(1) == "a" and vocab.word(np.int64(3)) == "d"
    assert vocab.unk_token is None and vocab.unk_id is None
    ids = vocab.encode(["d", "b"])
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [3, 0])
    assert vocab.decode(ids) == ["d", "b"]
    assert vocab.decode([]) == []


def test_frequency_order_breaks_ties_by_first_appearance():
    vocab = Vocabulary.build(TOKENS, order="frequency")
    assert vocab.id_to_word == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(vocab.counts, [3, 2, 1, 1])


def test_unknown_word_without_unk_raises_key_error_naming_it():
    vocab = Vocabulary.build(TOKENS)
    with pytest.raises(KeyError, match="unknown word 'zebra'"):
        vocab.id("zebra")
    with pytest.raises(KeyError, match="unknown word 'zebra'"):
        vocab.encode(["a", "zebra", "b"])


def test_out_of_range_ids_raise_index_error_naming_the_id():
    vocab = Vocabulary.build(TOKENS)
    for bad in (4, -1):
        with pytest.raises(IndexError, match=f"id {bad} "):
            vocab.word(bad)
    with pytest.raises(IndexError, match="id 7 "):
        vocab.decode(np.array([0, 7, 1]))
    with pytest.raises(IndexError, match="id -2 "):
        vocab.decode([-2])


def test_min_count_drops_rare_words_and_unk_takes_them():
    vocab, ids = Vocabulary.build_encoded(TOKENS, min_count=2, unk_token="<unk>")
    assert vocab.id_to_word == ["<unk>", "b", "a"]
    assert vocab.unk_id == 0
    np.testing.assert_array_equal(ids, [1, 2, 0, 2, 1, 2, 0])
    # The unk id counts the words it stands for, so counts always match the ids.
    np.testing.assert_array_equal(vocab.counts, np.bincount(ids, minlength=len(vocab)))
    assert vocab.id("c") == 0 and vocab.id("never-seen") == 0
    np.testing.assert_array_equal(vocab.encode(["zebra", "a"]), [0, 2])


def test_min_count_without_unk_leaves_dropped_words_out():
    vocab, ids = Vocabulary.build_encoded(TOKENS, min_count=2)
    assert vocab.id_to_word == ["b", "a"]
    np.testing.assert_array_equal(ids, [0, 1, 1, 0, 1])
    with pytest.raises(KeyError, match="unknown word 'c'"):
        vocab.id("c")


def test_specials_come_first_and_max_size_keeps_the_most_frequent():
    vocab = Vocabulary.build(TOKENS + ["<pad>"], specials=("<pad>", "<eos>"), unk_token="<unk>", max_size=5)
    assert vocab.id_to_word == ["<pad>", "<eos>", "<unk>", "b", "a"]
    np.testing.assert_array_equal(vocab.counts, [1, 0, 2, 2, 3])
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(TOKENS, specials=("<pad>",), unk_token="<unk>", max_size=1)


def test_unk_listed_among_specials_keeps_its_place():
    vocab = Vocabulary.build(TOKENS, specials=("<pad>", "<unk>"), unk_token="<unk>")
    assert vocab.id_to_word[:2] == ["<pad>", "<unk>"] and vocab.unk_id == 1


@pytest.mark.parametrize("kwargs", [{"min_count": 0}, {"order": "alphabetical"}, {"specials": ("x", "x")}])
def test_bad_build_options_raise(kwargs):
    with pytest.raises(ValueError):
        Vocabulary.build(TOKENS, **kwargs)


def test_a_bare_string_is_not_taken_letter_by_letter():
    vocab = Vocabulary.build(TOKENS)
    with pytest.raises(TypeError, match="single string"):
        vocab.encode("a b")
    with pytest.raises(TypeError, match="single string"):
        Vocabulary.build("a b")


def test_from_mapping_wraps_the_books_dicts():
    corpus, word_to_id, id_to_word = preprocess(BOOK_TEXT)
    vocab = Vocabulary.from_mapping(word_to_id, corpus=corpus)
    assert vocab.id_to_word == [id_to_word[i] for i in range(len(id_to_word))]
    assert vocab.counts[word_to_id["say"]] == 2
    np.testing.assert_array_equal(vocab.encode(["say", "."]), [1, 6])
    assert vocab.to_dicts() == (word_to_id, id_to_word)
    assert Vocabulary.from_mapping(word_to_id).counts.sum() == 0  # no corpus, no counts


@pytest.mark.parametrize("mapping", [{"a": 0, "b": 2}, {"a": 1, "b": 1}, {"a": -1}])
def test_from_mapping_rejects_ids_that_are_not_0_to_n(mapping):
    with pytest.raises(ValueError, match="ids must be"):
        Vocabulary.from_mapping(mapping)


def test_constructor_checks_its_inputs():
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="unk_token"):
        Vocabulary(["a"], unk_token="<unk>")
    with pytest.raises(ValueError, match="counts"):
        Vocabulary(["a", "b"], counts=[1])


def test_ptb_sized_vocabulary_round_trips(shared_data):
    with open(shared_data / "ptb" / "ptb.valid.txt", encoding="utf-8") as f:
        words = f.read().split()
    vocab, ids = Vocabulary.build_encoded(words, order="frequency")
    assert vocab.decode(ids) == words
    assert np.all(np.diff(vocab.counts) <= 0)
    assert vocab.counts.sum() == len(words)
