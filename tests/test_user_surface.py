"""What a newcomer meets (issue 14): gensim's names on WordVectors, word2vec files read without
being told their format, one meaning of eval_interval, RnnlmTrainer.plot, sampled text,
progress reports fit for terminals and log files, Word2Vec.train's explicit epochs, exact
counts between the counting stages and one SVD default."""
import io
import re

import numpy as np
import pytest

import fastnlp
from fastnlp import optim
from fastnlp import lm as lm_module
from fastnlp import svd as svd_module
from fastnlp.models import Rnnlm
from fastnlp.vectors import formats as formats_module


@pytest.fixture(scope="module")
def vectors_and_words():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    return rng.standard_normal((300, 16)).astype(np.float32), words


@pytest.fixture(scope="module")
def wv(vectors_and_words):
    return fastnlp.WordVectors(*vectors_and_words)


@pytest.fixture(scope="module")
def kv(vectors_and_words):
    gensim_models = pytest.importorskip("gensim.models")
    vectors, words = vectors_and_words
    keyed = gensim_models.KeyedVectors(vectors.shape[1])
    keyed.add_vectors(words, vectors)
    return keyed


# ----- 1. WordVectors speaks gensim -----------------------------------------------------------------

GENSIM_QUERIES = [
    dict(positive="w5"),
    dict(positive=["w1", "w2"], negative=["w3"]),
    dict(negative=["w4"]),
    dict(positive=[("w1", 2.0), "w3"], negative=[("w8", -0.5)]),
    dict(positive=["w10", "w11", "w12"], negative=["w13", "w14"]),
]


@pytest.mark.parametrize("query", GENSIM_QUERIES, ids=lambda q: repr(q)[:40])
def test_most_similar_ranks_exactly_as_gensim(wv, kv, query):
    ours, theirs = wv.most_similar(**query, topn=25), kv.most_similar(**query, topn=25)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


def test_vectors_in_the_lists_count_as_given_like_gensim(wv, kv, vectors_and_words):
    """gensim adds raw vectors unnormalised (and words as unit vectors); so do we."""
    vectors, _ = vectors_and_words
    query = dict(positive=[vectors[7] * 5, "w9"], negative=[vectors[3]])
    assert [w for w, _ in wv.most_similar(**query, topn=25)] == [w for w, _ in kv.most_similar(**query, topn=25)]


def test_topn_none_returns_every_similarity_like_gensim(wv, kv):
    ours = wv.most_similar("w1", topn=None)
    assert isinstance(ours, np.ndarray) and ours.shape == (len(wv),)
    np.testing.assert_allclose(ours, kv.most_similar("w1", topn=None), atol=1e-6)
    np.testing.assert_array_equal(wv.most_similar("w1", top=None), ours)  # the alias means the same
    assert wv.most_similar(wv.vectors[:3], topn=None).shape == (3, len(wv))


def test_restrict_vocab_like_gensim(wv, kv):
    ours = wv.most_similar(positive=["w250"], negative=["w3"], topn=10, restrict_vocab=100)
    assert [w for w, _ in ours] == [w for w, _ in kv.most_similar(positive=["w250"], negative=["w3"], topn=10,
                                                                  restrict_vocab=100)]
    assert all(int(w[1:]) < 100 for w, _ in ours)


def test_doesnt_match_like_gensim(wv, kv):
    for words in (["w1", "w2", "w3", "w4"], ["w10", "w20", "w30"], [f"w{i}" for i in range(0, 300, 17)]):
        assert wv.doesnt_match(words) == kv.doesnt_match(words)


def test_doesnt_match_finds_the_odd_word_out():
    vectors = np.array([[1, 0.1], [1, -0.1], [0.9, 0], [-0.2, 1]], dtype=np.float32)
    wv = fastnlp.WordVectors(vectors, ["cat", "dog", "cow", "car"])
    assert wv.doesnt_match(["cat", "dog", "car", "cow"]) == "car"
    with pytest.raises(KeyError, match="'bus'"):
        wv.doesnt_match(["cat", "bus"])
    with pytest.raises(TypeError, match="list of words"):
        wv.doesnt_match("cat")
    with pytest.raises(ValueError, match="at least one word"):
        wv.doesnt_match([])


def test_gensim_vocabulary_names(wv, vectors_and_words):
    vectors, words = vectors_and_words
    assert list(wv.index_to_key) == words and wv.index_to_key[7] == "w7"
    assert wv.key_to_index["w7"] == 7 and dict(wv.key_to_index) == dict(wv.word_to_id)
    with pytest.raises(TypeError):
        wv.key_to_index["new"] = 1  # read-only: the words and rows must stay in step
    np.testing.assert_array_equal(wv.get_vector("w7"), vectors[7])
    np.testing.assert_allclose(wv.get_vector("w7", norm=True), vectors[7] / np.linalg.norm(vectors[7]), rtol=1e-6)
    assert wv.has_index_for("w7") and not wv.has_index_for("zebra")
    assert wv.get_index("w7") == 7 and wv.get_index("zebra", default=-1) == -1
    for call in (lambda: wv.get_vector("zebra"), lambda: wv.get_index("zebra")):
        with pytest.raises(KeyError, match="'zebra'"):
            call()


def test_todays_call_forms_keep_working(wv):
    by_word = wv.most_similar("w9", top=5)
    assert len(by_word) == 5 and "w9" not in {w for w, _ in by_word}
    assert wv.most_similar("w9", topn=5) == by_word == wv.most_similar(positive="w9", top=5)
    assert wv.most_similar(wv["w9"], top=1)[0][0] == "w9"  # a vector excludes nothing
    dropped = by_word[0][0]
    assert wv.most_similar("w9", top=4, exclude=[dropped]) == by_word[1:]


def test_top_and_topn_disagreeing_is_a_type_error(wv):
    with pytest.raises(TypeError, match="top is an alias of topn"):
        wv.most_similar("w1", top=3, topn=4)
    assert wv.most_similar("w1", top=3, topn=3) == wv.most_similar("w1", topn=3)
    with pytest.raises(TypeError, match="pass the count as topn= or top="):
        wv.most_similar("w1", 5)  # the old positional top is now gensim's negative


def test_inputs_are_never_returned_and_unknown_words_are_named(wv):
    got = {w for w, _ in wv.most_similar(positive=["w1", "w2"], negative=["w3"], topn=len(wv))}
    assert not got & {"w1", "w2", "w3"} and len(got) == len(wv) - 3
    with pytest.raises(KeyError, match="'zebra'"):
        wv.most_similar(positive=["w1"], negative=["zebra"])
    with pytest.raises(ValueError, match="needs a query"):
        wv.most_similar()


def test_batch_of_queries_is_one_matrix_product(wv, monkeypatch):
    queries = wv.vectors[[3, 40, 77]] * np.array([[1.0], [7.0], [0.5]], dtype=np.float32)
    singles = [wv.most_similar(q, top=10) for q in queries]
    import fastnlp.kernels as kernels

    calls = []
    real = kernels.topk
    monkeypatch.setattr(kernels, "topk", lambda scores, k: calls.append(scores.shape) or real(scores, k))
    batch = wv.most_similar(queries, top=10)
    assert calls == [(3, len(wv))]  # all three ranked from one score matrix
    assert [[w for w, _ in r] for r in batch] == [[w for w, _ in r] for r in singles]
    with pytest.raises(TypeError, match="negative= cannot be combined"):
        wv.most_similar(queries, negative=["w1"])


# ----- 2. word2vec files: the format is detected, limit reads the first rows ------------------------

@pytest.fixture
def small_wv():
    rng = np.random.default_rng(4)
    words = ["the", "café", "日本", "naïve", "</s>", "x\u00e9y", "z"]
    return fastnlp.WordVectors(rng.standard_normal((len(words), 100)).astype(np.float32), words)


@pytest.mark.parametrize("binary", [True, False])
def test_the_format_is_detected_when_not_given(small_wv, tmp_path, binary):
    path = small_wv.save_word2vec_format(tmp_path / "v.w2v", binary=binary)
    loaded = fastnlp.WordVectors.load_word2vec_format(path)
    assert loaded.words == small_wv.words
    np.testing.assert_allclose(loaded.vectors, small_wv.vectors, rtol=1e-6)


def test_the_wrong_explicit_format_says_which_one_it_looks_like(small_wv, tmp_path):
    binary = small_wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    with pytest.raises(ValueError, match=r"expected a word and 100 values.*looks like the binary word2vec format: "
                                         r"pass binary=True"):
        fastnlp.WordVectors.load_word2vec_format(binary, binary=False)
    text = small_wv.save_word2vec_format(tmp_path / "v.txt", binary=False)
    with pytest.raises(ValueError, match="looks like the text word2vec format: pass binary=False"):
        fastnlp.WordVectors.load_word2vec_format(text, binary=True)


def test_a_binary_row_that_looks_like_text_is_still_read(tmp_path):
    """Float bytes that happen to be ASCII digits and spaces fool the first-row test; the text
    reader then fails and the binary reader, tried next, succeeds."""
    row0 = np.frombuffer(b"1 2 3 4 ", dtype="<f4")
    row1 = np.array([0.5, -2.0], dtype="<f4")
    path = tmp_path / "freak.bin"
    path.write_bytes(b"2 2\na " + row0.tobytes() + b"\nb " + row1.tobytes() + b"\n")
    assert formats_module._looks_binary(path.read_bytes()[4:], 2) is False
    loaded = fastnlp.WordVectors.load_word2vec_format(path)
    np.testing.assert_array_equal(loaded.vectors, [row0, row1])
    with pytest.raises(ValueError, match="expected a word and 2 values"):
        fastnlp.WordVectors.load_word2vec_format(path, binary=False)


@pytest.mark.parametrize("binary", [True, False])
def test_limit_reads_the_first_rows_like_gensim(small_wv, tmp_path, binary):
    path = small_wv.save_word2vec_format(tmp_path / "v.w2v", binary=binary)
    first = fastnlp.WordVectors.load_word2vec_format(path, binary=binary, limit=3)
    assert first.words == small_wv.words[:3]
    np.testing.assert_allclose(first.vectors, small_wv.vectors[:3], rtol=1e-6)
    assert fastnlp.WordVectors.load_word2vec_format(path, limit=100).words == small_wv.words
    assert len(fastnlp.WordVectors.load_word2vec_format(path, limit=0)) == 0
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=3)
    assert list(kv.index_to_key) == list(first.words)


def test_limit_leaves_the_rest_of_the_file_unread(small_wv, tmp_path):
    path = small_wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    path.write_bytes(path.read_bytes()[:-300])  # the last rows are cut off
    with pytest.raises(ValueError, match="truncated"):
        fastnlp.WordVectors.load_word2vec_format(path)
    assert fastnlp.WordVectors.load_word2vec_format(path, limit=4).words == small_wv.words[:4]


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_limit_must_be_a_count(small_wv, tmp_path, bad):
    path = small_wv.save_word2vec_format(tmp_path / "v.txt")
    with pytest.raises(ValueError, match="limit must be a non-negative integer"):
        fastnlp.WordVectors.load_word2vec_format(path, limit=bad)


def test_binary_rows_larger_than_the_read_buffer(tmp_path, monkeypatch):
    """The binary reader keeps only what it has not parsed yet: a tiny buffer forces it to
    refill and drop parsed bytes mid-row, again and again."""
    rng = np.random.default_rng(5)
    words = [f"word{i}" for i in range(40)]
    wv = fastnlp.WordVectors(rng.standard_normal((40, 9)).astype(np.float32), words)
    path = wv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    monkeypatch.setattr(formats_module, "_READ_BUFFER", 16)
    for limit in (None, 17):
        loaded = fastnlp.WordVectors.load_word2vec_format(path, limit=limit)
        n = 40 if limit is None else limit
        assert loaded.words == tuple(words[:n])
        np.testing.assert_array_equal(loaded.vectors, wv.vectors[:n])


# ----- 3. eval_perplexity asks the model what it accepts ----------------------------------------------

class CountingLm:
    """A language model whose forward counts its calls (each one advances its state)."""

    vocab_size = 5

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def reset_state(self):
        pass

    def forward(self, xs, ts):
        self.calls += 1
        if self.calls == self.fail_at:
            raise TypeError("a bug inside forward")
        return 1.0


class CountingLmWithFlag(CountingLm):
    def forward(self, xs, ts, train_flg=True):
        assert train_flg is False
        return super().forward(xs, ts)


@pytest.mark.parametrize("model_class", [CountingLm, CountingLmWithFlag])
def test_a_type_error_inside_forward_propagates_after_one_call(model_class):
    corpus = np.arange(60) % 5
    model = model_class(fail_at=2)
    with pytest.raises(TypeError, match="a bug inside forward"):
        fastnlp.eval_perplexity(model, corpus, batch_size=2, time_size=5)
    assert model.calls == 2  # not retried without train_flg: the state advanced once per batch


@pytest.mark.parametrize("model_class", [CountingLm, CountingLmWithFlag])
def test_forward_is_called_once_per_batch(model_class):
    model = model_class()
    assert fastnlp.eval_perplexity(model, np.arange(61) % 5, batch_size=2, time_size=5) == pytest.approx(np.e)
    assert model.calls == 6
    assert lm_module._TAKES_TRAIN_FLG[model_class] is (model_class is CountingLmWithFlag)  # asked once per class


# ----- 4. eval_interval=None: once per epoch, in both trainers --------------------------------------

class MeanModel:
    def __init__(self):
        self.params, self.grads = [np.zeros(1)], [np.zeros(1)]

    def forward(self, x, t):
        return float(np.mean(x))

    def backward(self, dout=1):
        return None


def test_eval_interval_none_is_once_per_epoch_in_trainer():
    trainer = fastnlp.Trainer(MeanModel(), optim.SGD(), seed=0)
    history = trainer.fit(np.arange(40.0), np.arange(40.0), max_epoch=3, batch_size=10, eval_interval=None,
                          progress=False)
    assert len(history) == 3 and trainer.eval_interval == 4
    assert history == [pytest.approx(19.5)] * 3


def test_eval_interval_none_is_once_per_epoch_in_rnnlm_trainer():
    corpus = np.arange(241) % 7
    trainer = fastnlp.RnnlmTrainer(Rnnlm(7, 4, 4, seed=0), optim.SGD(lr=0.1))
    history = trainer.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=4, time_size=5, eval_interval=None,
                          progress=False)
    assert len(history) == 3 and trainer.eval_interval == 12  # 240 // (4 * 5) iterations an epoch
    with_interval = fastnlp.RnnlmTrainer(Rnnlm(7, 4, 4, seed=0), optim.SGD(lr=0.1))
    with_interval.fit(corpus[:-1], corpus[1:], max_epoch=3, batch_size=4, time_size=5, eval_interval=12,
                      progress=False)
    np.testing.assert_allclose(with_interval.ppl_list, history)


# ----- 5. RnnlmTrainer.plot ------------------------------------------------------------------------

def test_rnnlm_trainer_plots_perplexity_against_iterations(tmp_path):
    pytest.importorskip("matplotlib")
    corpus = np.arange(241) % 7
    trainer = fastnlp.RnnlmTrainer(Rnnlm(7, 4, 4, seed=0), optim.SGD(lr=0.1))
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=4, time_size=5, eval_interval=3, progress=False)
    fig = trainer.plot()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "iterations (x3)" and ax.get_ylabel() == "perplexity" and ax.get_title()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), trainer.ppl_list)
    assert not list(tmp_path.iterdir())  # path=None draws without writing
    fig = trainer.plot(tmp_path / "ppl.png", ylim=(0, 50))
    assert (tmp_path / "ppl.png").read_bytes().startswith(b"\x89PNG") and fig.axes[0].get_ylim() == (0, 50)
    with pytest.raises(ValueError, match="not an image format"):
        trainer.plot(tmp_path / "ppl.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppl.png"]


# ----- 6. generate_text samples, as the book does -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_lm():
    words = ["you", "say", "goodbye", "and", "i", "hello", "<eos>"]
    return Rnnlm(len(words), 4, 4, seed=0), {w: i for i, w in enumerate(words)}, dict(enumerate(words))


def test_generate_text_samples_by_default_and_follows_the_seed(tiny_lm):
    model, word_to_id, id_to_word = tiny_lm
    texts = {fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=20, seed=s) for s in range(4)}
    assert len(texts) > 1  # greedy decoding ignored the seed and said the same every time
    again = fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=20, seed=2)
    assert again == fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=20, seed=2)
    ids = model.generate([0], 20, sampling="sample", seed=2)
    assert again == " ".join(id_to_word[i] for i in ids).replace(" <eos>", ".\n")


def test_generate_text_keeps_greedy_and_passes_temperature_and_top_k(tiny_lm):
    model, word_to_id, id_to_word = tiny_lm
    greedy = fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=15, sampling="greedy")
    assert greedy == " ".join(id_to_word[i] for i in model.generate([0], 15, sampling="greedy")).replace(" <eos>", ".\n")
    # top_k=1 keeps only the most probable word: sampling it is greedy decoding, whatever the seed.
    for seed in range(3):
        assert fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=15, top_k=1, seed=seed) == greedy
    hot = fastnlp.generate_text(model, "you", word_to_id, id_to_word, length=15, temperature=5.0, top_k=3, seed=0)
    ids = model.generate([0], 15, sampling="sample", temperature=5.0, top_k=3, seed=0)
    assert hot == " ".join(id_to_word[i] for i in ids).replace(" <eos>", ".\n")
    with pytest.raises(ValueError, match="temperature"):
        fastnlp.generate_text(model, "you", word_to_id, id_to_word, temperature=0)


# ----- 7. progress reports ---------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _fit_spiral(progress, max_epoch=3):
    x, t = fastnlp.datasets.load_spiral()
    trainer = fastnlp.Trainer(fastnlp.TwoLayerNet(2, 10, 3, seed=0), optim.SGD(lr=1.0), seed=0)
    return trainer.fit(x, t, max_epoch=max_epoch, batch_size=30, eval_interval=5, progress=progress)


def test_progress_in_a_log_is_one_plain_line_per_epoch_and_a_summary():
    log = io.StringIO()
    history = _fit_spiral(log)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 4, lines
    for epoch, line in enumerate(lines[:3], 1):
        assert re.match(rf"Trainer epoch {epoch}/3: {10 * epoch}/30 it, [\d.]+s, [\d.k]+ it/s", line), line
    assert "ETA" in lines[0] and "ETA" not in lines[2]  # nothing left after the last epoch
    assert re.fullmatch(r"Trainer: 30 it in [\d.]+s, [\d.k]+ it/s, loss [\d.]+", lines[3]), lines[3]
    assert f"loss {history[-1]:.4g}" in lines[3]


def test_progress_on_a_terminal_draws_a_bar_and_leaves_a_summary():
    terminal = FakeTerminal()
    _fit_spiral(terminal)
    out = terminal.getvalue()
    assert "\r" in out and "it/s" in out  # tqdm's bar, with its throughput
    assert re.search(r"Trainer: 30 it in [\d.]+s, [\d.k]+ it/s, loss [\d.]+\n$", out), out[-200:]


def test_progress_false_is_silent(capsys):
    _fit_spiral(False, max_epoch=1)
    assert capsys.readouterr() == ("", "")


def test_progress_true_reports_on_stderr(capsys):
    _fit_spiral(True, max_epoch=1)
    captured = capsys.readouterr()
    assert captured.out == "" and "Trainer: 10 it in" in captured.err


def test_rnnlm_trainer_and_word2vec_report_per_epoch_in_a_log():
    corpus = np.arange(241) % 7
    log = io.StringIO()
    trainer = fastnlp.RnnlmTrainer(Rnnlm(7, 4, 4, seed=0), optim.SGD(lr=0.1))
    trainer.fit(corpus[:-1], corpus[1:], max_epoch=2, batch_size=4, time_size=5, eval_interval=None, progress=log)
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["RnnlmTrainer epoch 1/2", "RnnlmTrainer epoch 2/2",
                                                      "RnnlmTrainer"]
    assert f"ppl {trainer.ppl_list[-1]:.4g}" in lines[-1]

    log = io.StringIO()
    sentences = [[f"w{(i * 7 + j) % 30}" for j in range(12)] for i in range(60)]
    model = fastnlp.Word2Vec(vector_size=8, min_count=1, epochs=3, progress=False)
    model.build_vocab(sentences)
    model.train(sentences, stop_after=2, progress=log)
    model.train(sentences, progress=log)  # the schedule's last epoch: numbered 3/3
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["word2vec epoch 1/3", "word2vec epoch 2/3", "word2vec",
                                                      "word2vec epoch 3/3", "word2vec"]
    assert all("word/s" in line for line in lines) and "alpha" in lines[0]
    # Each epoch's line carries that epoch's loss, known only once the epoch is over.
    assert [f"loss {loss:.4g}" in line for loss, line in zip(model.loss_history, [lines[0], lines[1], lines[3]])] \
        == [True] * 3
    assert lines[-1].startswith("word2vec: 720 word in") and "loss" in lines[-1]


def test_progress_rejects_what_is_not_a_stream():
    with pytest.raises(TypeError, match="progress must be True, False or a text stream"):
        _fit_spiral("yes", max_epoch=1)


# ----- 8. Word2Vec.train: an explicit epochs count for a new schedule ---------------------------------

@pytest.fixture
def sentences():
    rng = np.random.default_rng(0)
    return [[f"w{k}" for k in rng.integers(0, 40, 10)] for _ in range(80)]


def test_a_new_schedule_needs_explicit_epochs_like_gensim(sentences):
    model = fastnlp.Word2Vec(sentences, vector_size=8, min_count=1, epochs=2, progress=False)
    with pytest.raises(ValueError, match="You must specify an explicit epochs count"):
        model.train(sentences)  # used to run model.epochs more epochs unasked
    assert model.epochs_trained == 2
    model.train(sentences, epochs=1)
    assert model.epochs_trained == 3


def test_a_never_trained_model_and_an_unfinished_schedule_need_no_epochs(sentences, tmp_path):
    model = fastnlp.Word2Vec(vector_size=8, min_count=1, epochs=3, progress=False)
    model.build_vocab(sentences)
    model.train(sentences, stop_after=1)
    model.save(tmp_path / "m.npz")
    resumed = fastnlp.Word2Vec.load(tmp_path / "m.npz")
    resumed.train(sentences)  # the schedule's two remaining epochs
    assert resumed.epochs_trained == 3
    with pytest.raises(ValueError, match="explicit epochs count"):
        resumed.train(sentences)


def test_total_examples_and_total_words_are_checked_against_the_corpus(sentences, tmp_path):
    model = fastnlp.Word2Vec(vector_size=8, min_count=1, epochs=1, progress=False)
    model.build_vocab(sentences)
    assert (model.corpus_count, model.corpus_total_words) == (80, 800)
    model.train(sentences, total_examples=model.corpus_count, total_words=800, epochs=1)
    with pytest.raises(ValueError, match="total_examples=79, but the corpus holds 80 sentences"):
        model.train(sentences, total_examples=79, epochs=1)
    with pytest.raises(ValueError, match="total_words=801, but the corpus holds 800 words"):
        model.train(sentences, total_words=801, epochs=1)
    assert model.epochs_trained == 1  # the refused calls trained nothing
    model.save(tmp_path / "m.npz")
    assert fastnlp.Word2Vec.load(tmp_path / "m.npz").corpus_count == 80


# ----- 9. counts stay exact between co-occurrence and PPMI ------------------------------------------

def test_counts_above_2_24_reach_ppmi_exactly(monkeypatch):
    n = (1 << 23) + 20000  # makes the count of (a, a) 2**25 + 4094, which float32 rounds
    corpus = np.zeros(n, dtype=np.int32)
    corpus[::1000] = 1
    corpus[::7777] = 2
    window = 2
    # The exact counts, independently: every pair at distance 1..window, both ways, in int64.
    expected = np.zeros((3, 3), dtype=np.int64)
    for d in range(1, window + 1):
        pairs = np.bincount(corpus[:-d].astype(np.int64) * 3 + corpus[d:], minlength=9).reshape(3, 3)
        expected += pairs + pairs.T
    assert expected.max() > 1 << 24 and float(np.float32(expected.max())) != expected.max()

    seen = []
    real_ppmi = fastnlp.count.ppmi

    def recording_ppmi(C, **kwargs):
        seen.append(C.copy())
        return real_ppmi(C, **kwargs)

    monkeypatch.setattr(fastnlp.count, "ppmi", recording_ppmi)
    fastnlp.count_vectors(corpus, ["a", "b", "c"], window=window, k=1)
    np.testing.assert_array_equal(seen[0].toarray(), expected)


def test_the_book_co_matrix_counts_exactly():
    corpus = np.zeros((1 << 23) + 3, dtype=np.int32)
    C = fastnlp.count.create_co_matrix(corpus, 1, window_size=2)
    exact = 4 * len(corpus) - 6  # 2**25 + 6: float32 holds only multiples of 4 there
    assert float(np.float32(exact)) != exact
    assert C.dtype == np.int32 and C[0, 0] == exact


# ----- 10. one SVD default ----------------------------------------------------------------------------

def test_one_svd_default_for_the_function_and_the_pipeline(monkeypatch):
    assert svd_module.DEFAULT_SVD_METHOD in svd_module._METHODS
    rng = np.random.default_rng(0)
    M = rng.standard_normal((40, 30))
    U, S, Vt = svd_module.truncated_svd(M, 5)
    U2, S2, _ = svd_module.truncated_svd(M, 5, method=svd_module.DEFAULT_SVD_METHOD)
    np.testing.assert_array_equal(S, S2)
    np.testing.assert_allclose(S, np.linalg.svd(M, compute_uv=False)[:5], rtol=1e-8)
    methods = []
    real = svd_module.truncated_svd
    monkeypatch.setattr(svd_module, "truncated_svd", lambda *a, method, **k: methods.append(method) or
                        real(*a, method=method, **k))
    corpus = np.random.default_rng(1).integers(0, 30, 2000)
    fastnlp.count_vectors(corpus, [f"w{i}" for i in range(30)], k=5)
    assert methods == [svd_module.DEFAULT_SVD_METHOD]
