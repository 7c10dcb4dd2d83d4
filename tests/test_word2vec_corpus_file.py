"""Word2Vec(corpus_file=...) (issue 19): a text file streamed for the vocabulary and read in one
byte range per worker for training, never held as a list of sentences.

The corpus of these tests is the planted-topics corpus of tests/test_word2vec.py, written with
mixed line endings, blank lines, tabs, a line longer than a read block and no final newline, so
that every way a line can end or be cut is read the way ``open()`` reads the text.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp import Vocabulary, Word2Vec
from fastnlp.models import word2vec as w2v_module
from fastnlp.models.word2vec import _CorpusFile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_word2vec import planted_corpus, topic_accuracy  # noqa: E402

FAST = dict(vector_size=16, window=3, min_count=1, sample=0, epochs=3, progress=False, batch_words=300)


def write_corpus(path, sentences):
    """``sentences`` as a text file of every line-ending kind: "\\n", "\\r\\n" and "\\r" in turn,
    tabs and runs of spaces between some tokens, a blank line every 50 sentences, no newline at
    the end. Returns the sentences as ``open(path)`` reads them back (one token list a line)."""
    endings = ["\n", "\r\n", "\r"]
    parts = []
    for i, sentence in enumerate(sentences):
        parts.append(("\t" if i % 7 == 0 else "  " if i % 5 == 0 else " ").join(sentence))
        parts.append(endings[i % 3] if i < len(sentences) - 1 else "")
        if i % 50 == 49:
            parts.append("\n")
    path.write_bytes("".join(parts).encode("utf-8"))
    with open(path, encoding="utf-8") as f:
        return [line.split() for line in f]


@pytest.fixture(scope="module")
def planted():
    sentences, topics = planted_corpus()
    long_line = [w for s in sentences[:150] for w in s]  # 1,200 words: longer than a 4 KiB read block
    return sentences[:600] + [long_line] + sentences[600:], topics


@pytest.fixture
def corpus(planted, tmp_path):
    """(path, the sentences it holds as open() reads them, topics)."""
    path = tmp_path / "corpus.txt"
    return path, write_corpus(path, planted[0]), planted[1]


# ----- the same training as in memory --------------------------------------------------------------

@pytest.mark.parametrize("sg, hs, negative", [(1, 0, 5), (0, 1, 0)])
def test_one_worker_trains_the_vectors_of_the_same_sentences_in_memory_bit_for_bit(corpus, sg, hs, negative):
    path, sentences, _ = corpus
    assert [] in sentences  # the blank lines are sentences of no words, in memory too
    settings = dict(FAST, sg=sg, hs=hs, negative=negative)
    in_memory = Word2Vec(sentences, **settings)
    streamed = Word2Vec(corpus_file=path, **settings)
    assert streamed.vocabulary.id_to_word == in_memory.vocabulary.id_to_word
    np.testing.assert_array_equal(streamed.vocabulary.counts, in_memory.vocabulary.counts)
    assert (streamed.corpus_count, streamed.corpus_total_words) == (in_memory.corpus_count,
                                                                    in_memory.corpus_total_words)
    for name in ("syn0", "syn1neg", "syn1"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(in_memory, name), err_msg=name)
    assert streamed.loss_history == in_memory.loss_history
    # the older sentences=path reads the file the same way
    np.testing.assert_array_equal(Word2Vec(str(path), **settings).syn0, in_memory.syn0)


def test_max_vocab_size_prunes_a_corpus_file_as_it_prunes_the_list(corpus):
    path, sentences, _ = corpus
    settings = dict(FAST, max_vocab_size=10, epochs=1)
    in_memory = Word2Vec(sentences, **settings)
    streamed = Word2Vec(corpus_file=str(path), **settings)
    assert streamed.vocabulary.id_to_word == in_memory.vocabulary.id_to_word
    np.testing.assert_array_equal(streamed.syn0, in_memory.syn0)


def test_fasttext_reads_a_corpus_file_as_its_sentences(corpus):
    path, sentences, _ = corpus
    settings = dict(vector_size=8, window=2, min_count=1, bucket=500, epochs=1, progress=False, batch_words=300)
    in_memory = fastnlp.FastText(sentences, **settings)
    streamed = fastnlp.FastText(corpus_file=path, **settings)
    np.testing.assert_array_equal(streamed.syn0, in_memory.syn0)
    back = fastnlp.FastText.load(streamed.save(path.with_name("ft.npz")))
    np.testing.assert_array_equal(back.syn0, streamed.syn0)


# ----- byte ranges: one per worker, never the whole file ------------------------------------------

def test_ranges_cut_the_file_at_line_starts_and_share_its_words(corpus):
    path, sentences, _ = corpus
    data = path.read_bytes()
    index = _CorpusFile(path, "utf-8").scan()
    assert (index.words, index.sentences) == (sum(map(len, sentences)), len(sentences))
    assert index.longest == max(map(len, sentences))
    for parts in (1, 2, 3, 5):
        ranges = _CorpusFile.ranges(index, parts)
        assert 1 < len(ranges) <= parts or parts == 1 == len(ranges)
        assert ranges[0].start == 0 and ranges[-1].end == len(data)
        assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
        assert all(data[r.start - 1:r.start] == b"\n" for r in ranges[1:])
        assert sum(r.words for r in ranges) == index.words
        assert [r.words for r in ranges] == [len(data[r.start:r.end].decode().split()) for r in ranges]


def test_every_range_draws_from_streams_of_its_own_and_the_first_from_those_of_a_list(corpus):
    path, sentences, _ = corpus
    model = Word2Vec(**FAST).build_vocab(corpus_file=path)
    model._schedule_epochs = 1
    file = _CorpusFile(path, "utf-8")
    first, second = _CorpusFile.ranges(model._file_index[1], 2)
    seeds = [[job[5] for job in model._range_jobs(file, part, 300)] for part in (first, second)]
    listed = [job[5] for job in model._jobs(sentences, model.corpus_total_words, job_words=300)]
    assert seeds[0] == listed[:len(seeds[0])] and not set(seeds[0]) & set(seeds[1])
    alphas = [[job[3] for job in model._range_jobs(file, part, 300)] for part in (first, second)]
    assert alphas[0][0] == alphas[1][0] == model.alpha  # each range runs the epoch's whole schedule


def test_each_worker_reads_its_own_range_in_pieces_of_bounded_size(corpus, monkeypatch):
    path, sentences, topics = corpus
    monkeypatch.setattr(_CorpusFile, "MAX_BLOCK", 4096)
    longest_line = max(len(line) for line in path.read_bytes().split(b"\n"))
    read, pieces = [], []
    original_batches, original_lines = _CorpusFile.batches, _CorpusFile._lines

    def batches(self, part, job_words):
        read.append((part.start, part.end))
        return original_batches(self, part, job_words)

    def lines(self, piece, offset, lines_before=None):
        pieces.append(len(piece))
        return original_lines(self, piece, offset, lines_before)

    monkeypatch.setattr(_CorpusFile, "batches", batches)
    monkeypatch.setattr(_CorpusFile, "_lines", lines)
    model = Word2Vec(corpus_file=path, workers=2, **dict(FAST, epochs=5, alpha=0.05))
    size = path.stat().st_size
    assert len(read) == 2 * 5  # two ranges an epoch
    first_epoch = sorted(read[:2])
    assert first_epoch[0][0] == 0 and first_epoch[0][1] == first_epoch[1][0] and first_epoch[1][1] == size
    assert sorted(read[2:4]) == first_epoch
    assert max(pieces) <= 4096 + longest_line  # a piece is a block, or one line longer than a block
    assert len(model.loss_history) == 5 and model.loss_history[-1] < model.loss_history[0]
    assert topic_accuracy(model, topics) == 1.0  # Hogwild over two ranges learns the topics


def test_build_vocab_then_train_as_gensim_reads_the_file_once_for_its_counts(corpus, monkeypatch):
    path, sentences, _ = corpus
    scans = []
    original = _CorpusFile.scan
    monkeypatch.setattr(_CorpusFile, "scan", lambda self, *a: scans.append(1) or original(self, *a))
    model = Word2Vec(**FAST).build_vocab(corpus_file=path)
    model.train(corpus_file=path, total_examples=model.corpus_count, total_words=model.corpus_total_words)
    assert len(scans) == 1 and model.epochs_trained == 3
    with pytest.raises(ValueError, match="total_words=5, but the corpus holds"):
        model.train(corpus_file=path, total_words=5, epochs=1)
    with open(path, "a", encoding="utf-8") as f:  # a changed file is counted again
        f.write("\nt0w0 t0w1 t0w2\n")
    model.train(corpus_file=path, total_words=model.corpus_total_words + 3, epochs=1)
    assert len(scans) == 2 and model.epochs_trained == 4


def test_save_load_resume_from_a_corpus_file_equals_one_uninterrupted_run(corpus, tmp_path):
    path, _, _ = corpus
    straight = Word2Vec(corpus_file=path, sg=1, **FAST)
    first = Word2Vec(sg=1, **FAST).build_vocab(corpus_file=path)
    first.train(corpus_file=path, stop_after=1)
    saved = first.save(tmp_path / "m.npz")
    header, _ = fastnlp.serialization.read_file(saved)
    assert "corpus_file" not in header["settings"] and header["settings"]["encoding"] == "utf-8"
    resumed = Word2Vec.load(saved).train(corpus_file=path)
    np.testing.assert_array_equal(resumed.syn0, straight.syn0)
    assert resumed.loss_history == straight.loss_history


# ----- encodings ----------------------------------------------------------------------------------------

def test_encoding_reads_other_single_byte_encodings_and_a_utf8_byte_order_mark(tmp_path):
    sentences = [["café", "thé", "crème"], ["crème", "café"]] * 20
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("\n".join(" ".join(s) for s in sentences).encode("latin-1"))
    model = Word2Vec(corpus_file=latin, encoding="latin-1", **FAST)
    assert set(model.vocabulary.id_to_word) == {"café", "thé", "crème"}
    assert Word2Vec.load(model.save(tmp_path / "m.npz")).encoding == "latin-1"
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(" ".join(s) for s in sentences).encode("utf-8"))
    with_bom = Word2Vec(corpus_file=bom, encoding="utf-8-sig", **FAST)
    np.testing.assert_array_equal(with_bom.syn0, Word2Vec(sentences, **FAST).syn0)


# ----- bad input: named, raised before any weight changes ---------------------------------------------

@pytest.fixture
def trained(corpus):
    path, sentences, _ = corpus
    model = Word2Vec(sentences[:200], **dict(FAST, epochs=1))
    return model, model.syn0.copy()


def _unchanged(trained):
    model, before = trained
    np.testing.assert_array_equal(model.syn0, before)
    assert model.epochs_trained == 1 and len(model.loss_history) == 1


def test_a_missing_file_or_a_directory_is_named(trained, tmp_path):
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(FileNotFoundError, match="corpus_file .*nowhere.txt.* does not exist"):
        Word2Vec(corpus_file=missing, **FAST)
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        trained[0].train(corpus_file=missing, epochs=1)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        trained[0].build_vocab(corpus_file=tmp_path)
    _unchanged(trained)


def test_an_unreadable_file_is_named(corpus, trained, monkeypatch):
    path, _, _ = corpus

    def refuse(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(w2v_module, "open", refuse, raising=False)
    with pytest.raises(PermissionError, match="corpus_file .*corpus.txt.* cannot be read"):
        trained[0].train(corpus_file=path, epochs=1)
    _unchanged(trained)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_named(corpus):
    path, _, _ = corpus
    path.chmod(0)
    try:
        with pytest.raises(PermissionError, match="cannot be read"):
            Word2Vec(corpus_file=path, **FAST)
    finally:
        path.chmod(0o644)


def test_a_file_that_is_not_utf8_is_named_with_its_line_and_changes_nothing(trained, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a b\nb c\nthé a\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"corpus_file .*latin1.txt.* is not valid utf-8: line 3, byte 10 .*encoding="):
        trained[0].train(corpus_file=path, epochs=1)
    with pytest.raises(ValueError, match="not valid utf-8"):
        trained[0].build_vocab(corpus_file=path)
    _unchanged(trained)
    assert trained[0].vocabulary is not None and len(trained[0].vocabulary) == 24


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(encoding="no-such-codec"), ValueError, "unknown encoding"),
    (dict(encoding="utf-16"), ValueError, "re-encode the file as UTF-8"),
    (dict(encoding=8), TypeError, "encoding must be a str"),
    (dict(corpus_file=3), TypeError, "corpus_file must be a path"),
    (dict(corpus_file="x.txt", sentences=[["a"]]), TypeError, "not both"),
    (dict(corpus_file="x.txt", vocabulary=Vocabulary(["a"])), TypeError, "corpus_file holds text"),
])
def test_bad_corpus_file_arguments_raise_clear_errors(corpus, kwargs, error, match):
    path, _, _ = corpus
    kwargs = dict(kwargs)
    kwargs["corpus_file"] = path if kwargs.get("corpus_file") == "x.txt" else kwargs.get("corpus_file", path)
    with pytest.raises(error, match=match):
        Word2Vec(**kwargs, **FAST)


def test_an_empty_file_is_an_empty_corpus(tmp_path):
    path = tmp_path / "empty.txt"
    for content in (b"", b"\n\n  \t\r\n"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match="empty corpus: corpus_file .*empty.txt.* holds no words"):
            Word2Vec(corpus_file=path, **FAST)


def test_a_file_changed_between_epochs_stops_training_without_counting_the_epoch(corpus):
    path, _, _ = corpus

    def grow(model, epoch, loss):
        with open(path, "a", encoding="utf-8") as f:
            f.write("\nt0w0 t0w1\n")

    model = Word2Vec(**FAST).build_vocab(corpus_file=path)
    with pytest.raises(RuntimeError, match="changed since it was counted.*epoch 2/3 was not trained"):
        model.train(corpus_file=path, callbacks=[grow])
    assert model.epochs_trained == 1 and len(model.loss_history) == 1


def test_a_range_that_no_longer_holds_its_words_is_not_reported_as_trained(corpus, monkeypatch):
    path, _, _ = corpus
    model = Word2Vec(**dict(FAST, workers=2)).build_vocab(corpus_file=path)
    counted = model._file_index[1].identity
    data = path.read_bytes()

    def shrink(model, epoch, loss):  # the file loses its last lines, and its size and time look unchanged
        path.write_bytes(data[:len(data) * 3 // 4])
        monkeypatch.setattr(_CorpusFile, "identity", lambda self: counted)

    with pytest.raises(RuntimeError, match="changed while training: bytes .* held .* words when counted"):
        model.train(corpus_file=path, callbacks=[shrink])
    assert model.epochs_trained == 1 and len(model.loss_history) == 1
