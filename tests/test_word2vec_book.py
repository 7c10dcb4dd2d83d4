"""The book's word2vec (chapters 3 and 4): contexts, one-hot, the simple softmax models on the
book's small example, CBOW and skip-gram with negative sampling, trained by the Trainer."""
import numpy as np
import pytest

import fastnlp
from fastnlp import optim
from fastnlp.models import CBOW, SimpleCBOW, SimpleSkipGram, SkipGram

TEXT = "You say goodbye and I say hello."


# ----- contexts and one-hot -------------------------------------------------------------------

def test_create_contexts_target_is_the_books():
    corpus, _, _ = fastnlp.preprocess(TEXT)  # [0 1 2 3 4 1 5 6]
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=1)
    assert contexts.tolist() == [[0, 2], [1, 3], [2, 4], [3, 1], [4, 5], [1, 6]]
    assert target.tolist() == [1, 2, 3, 4, 1, 5]
    assert contexts.dtype == target.dtype == corpus.dtype
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    assert contexts.tolist() == [[0, 1, 3, 4], [1, 2, 4, 1], [2, 3, 1, 5], [3, 4, 5, 6]]
    assert target.tolist() == [2, 3, 4, 1]
    assert contexts.flags.c_contiguous


@pytest.mark.parametrize("corpus, window, error, match", [
    (np.array([], np.int32), 1, ValueError, "empty corpus"),
    (np.array([0, 1], np.int32), 1, ValueError, "at least 3 words"),
    (np.arange(10), 5, ValueError, "at least 11 words"),
    (np.arange(10), 0, ValueError, "at least 1"),
    (np.arange(10), 1.5, TypeError, "integer"),
    (np.arange(10.0), 1, TypeError, "integer word ids"),
    (np.arange(10).reshape(2, 5), 1, ValueError, "1-D"),
])
def test_create_contexts_target_refuses_bad_input(corpus, window, error, match):
    with pytest.raises(error, match=match):
        fastnlp.create_contexts_target(corpus, window)


def test_convert_one_hot_is_the_books():
    corpus, word_to_id, _ = fastnlp.preprocess(TEXT)
    contexts, target = fastnlp.create_contexts_target(corpus)
    V = len(word_to_id)
    t = fastnlp.convert_one_hot(target, V)
    c = fastnlp.convert_one_hot(contexts, V)
    assert t.shape == (6, V) and c.shape == (6, 2, V) and t.dtype == c.dtype == np.int32
    np.testing.assert_array_equal(t.argmax(-1), target)
    np.testing.assert_array_equal(c.argmax(-1), contexts)
    assert t.sum() == 6 and c.sum() == 12
    with pytest.raises(ValueError, match="empty corpus"):
        fastnlp.convert_one_hot(np.array([], np.int32), V)
    with pytest.raises(IndexError, match="word id 7 is out of range for vocab_size 7"):
        fastnlp.convert_one_hot(np.array([7]), V)
    with pytest.raises(ValueError, match="vocab_size"):
        fastnlp.convert_one_hot(target, 0)


# ----- chapter 3: the simple softmax models ---------------------------------------------------

def _book_example():
    corpus, word_to_id, id_to_word = fastnlp.preprocess(TEXT)
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=1)
    V = len(word_to_id)
    return contexts, target, fastnlp.convert_one_hot(contexts, V), fastnlp.convert_one_hot(target, V), word_to_id


def test_simple_cbow_learns_the_books_small_example():
    contexts, target, c1, t1, word_to_id = _book_example()
    model = SimpleCBOW(len(word_to_id), 5, seed=0)
    assert model.params[0] is model.params[1] is model.word_vecs  # W_in shared, as in the book
    history = fastnlp.Trainer(model, optim.Adam(), seed=0).fit(c1, t1, max_epoch=1000, batch_size=3,
                                                                progress=False, eval_interval=None)
    assert history[0] > 1.9 and history[-1] < 0.7
    # The right target is among the two most probable for every context ((say, and) -> goodbye
    # and (and, say) -> i have the same mean context: nothing can put both first).
    W_in, W_out = model.word_vecs, model.out_layer.params[0]
    scores = (W_in[contexts[:, 0]] + W_in[contexts[:, 1]]) / 2 @ W_out
    top2 = np.argsort(-scores, axis=1)[:, :2]
    assert all(t in top for t, top in zip(target, top2))
    # Words in the same place ("say goodbye" / "say hello") get similar vectors.
    unit = W_in / np.linalg.norm(W_in, axis=1, keepdims=True)
    assert unit[word_to_id["goodbye"]] @ unit[word_to_id["hello"]] > 0.7


def test_simple_skipgram_learns_the_books_small_example():
    contexts, target, c1, t1, word_to_id = _book_example()
    model = SimpleSkipGram(len(word_to_id), 5, seed=0)
    history = fastnlp.Trainer(model, optim.Adam(), seed=0).fit(c1, t1, max_epoch=1000, batch_size=3,
                                                                progress=False, eval_interval=None)
    assert history[0] > 3.8 and history[-1] < 2.1
    W_in, W_out = model.word_vecs, model.out_layer.params[0]
    for word in np.unique(target):  # the most probable context words are the word's real ones
        real = set(contexts[target == word].ravel().tolist())
        scores = W_in[word] @ W_out
        assert set(np.argsort(-scores)[:len(real)].tolist()) == real


def test_simple_models_check_the_contexts_width():
    _, _, c1, t1, word_to_id = _book_example()
    with pytest.raises(ValueError, match="4 columns"):
        SimpleCBOW(len(word_to_id), 5, window_size=2).forward(c1, t1)


# ----- chapter 4: CBOW and skip-gram with negative sampling -----------------------------------

def _book_negative_sampling(W_in_rows, W_out, h_of, target, negatives):
    """The book's loss written out in float64: per positive column, -log sigma(s+) - sum_i
    log sigma(-s_i), each averaged over the batch; returns (loss, dh, dW_out)."""
    N = target.shape[0]
    ids = np.concatenate([target[..., None], negatives], axis=-1).reshape(N, -1)
    labels = np.zeros(ids.shape)
    labels[:, 0::negatives.shape[-1] + 1] = 1
    score = np.einsum("nkd,nd->nk", W_out[ids], h_of)
    loss = (np.logaddexp(0, score) - score * labels).sum() / N
    dscore = (1 / (1 + np.exp(-score)) - labels) / N
    dh = np.einsum("nk,nkd->nd", dscore, W_out[ids])
    dW_out = np.zeros_like(W_out)
    np.add.at(dW_out, ids.reshape(-1), (dscore[:, :, None] * h_of[:, None, :]).reshape(-1, W_out.shape[1]))
    return loss, dh, dW_out


def _replayed_negatives(model, target):
    sampler = model.ns_loss.sampler
    counter = sampler.counter
    sampler.counter -= target.size * sampler.sample_size
    negatives = sampler.get_negative_sample(target)
    assert sampler.counter == counter
    return negatives


def test_cbow_equals_the_books_layer_by_layer_math():
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 30, 500)
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    contexts, target = contexts[:16], target[:16]
    model = CBOW(30, 8, 2, corpus, seed=1, dtype=np.float64)
    W_in, W_out = model.params
    loss = model.forward(contexts, target)
    model.backward()
    negatives = _replayed_negatives(model, target)
    h = sum(W_in[contexts[:, i]] for i in range(4)) / 4  # the book's 2 * window Embedding layers
    want_loss, dh, dW_out = _book_negative_sampling(W_in, W_out, h, target, negatives)
    dW_in = np.zeros_like(W_in)
    for i in range(4):
        np.add.at(dW_in, contexts[:, i], dh / 4)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(model.grads[0], dW_in, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(model.grads[1], dW_out, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(model.grads[0].rows, np.unique(contexts))


def test_skipgram_equals_the_books_layer_by_layer_math():
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, 30, 500)
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    contexts, target = contexts[:16], target[:16]
    model = SkipGram(30, 8, 2, corpus, seed=2, dtype=np.float64)
    W_in, W_out = model.params
    loss = model.forward(contexts, target)
    model.backward()
    negatives = _replayed_negatives(model, contexts)  # one set of negatives per context word
    assert negatives.shape == (16, 4, 5)
    want_loss, dh, dW_out = _book_negative_sampling(W_in, W_out, W_in[target], contexts, negatives)
    dW_in = np.zeros_like(W_in)
    np.add.at(dW_in, target, dh)
    assert loss == pytest.approx(want_loss, rel=1e-12)  # the book's sum over the 4 loss layers
    np.testing.assert_allclose(model.grads[0], dW_in, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(model.grads[1], dW_out, rtol=1e-10, atol=1e-15)


def _planted_corpus(seed=0, groups=4, size=10, sentences=300, length=20):
    """Sentences that each stay inside one group of `size` words: words of a group share
    their contexts, so their vectors should end up together."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, sentences)
    return (group[:, None] * size + rng.integers(0, size, (sentences, length))).reshape(-1), size


@pytest.mark.parametrize("model_class", [CBOW, SkipGram])
def test_negative_sampling_models_find_planted_neighbours(model_class):
    corpus, size = _planted_corpus()
    V = int(corpus.max()) + 1
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    model = model_class(V, 20, 2, corpus, seed=0)
    assert model.word_vecs is model.params[0] and model.word_vecs.dtype == np.float32
    history = fastnlp.Trainer(model, optim.Adam(0.01), seed=0).fit(contexts, target, max_epoch=5, batch_size=100,
                                                                    progress=False, eval_interval=None)
    assert history[-1] < 0.6 * history[0]
    unit = model.word_vecs / np.linalg.norm(model.word_vecs, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -2)
    group = np.arange(V) // size
    neighbours = np.argsort(-similarity, axis=1)[:, :3]
    assert (group[neighbours] == group[:, None]).all()
    same = group[:, None] == group[None, :]
    np.fill_diagonal(same, False)
    assert similarity[same].mean() > similarity[group[:, None] != group[None, :]].mean() + 0.5


def test_cbow_trains_the_same_with_sparse_and_dense_gradients():
    """SGD on row-sparse gradients gives exactly the parameters of the dense update."""
    corpus, _ = _planted_corpus(seed=3, sentences=40)
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=2)
    models = [CBOW(40, 8, 2, corpus, seed=5) for _ in range(2)]
    for step in range(5):
        batch = slice(step * 50, (step + 1) * 50)
        for dense, model in enumerate(models):
            model.forward(contexts[batch], target[batch])
            model.backward()
            grads = [np.array(g) for g in model.grads] if dense else model.grads
            optim.SGD(0.5).update(model.params, grads)
    for a, b in zip(models[0].params, models[1].params):
        np.testing.assert_array_equal(a, b)


def test_models_check_their_input():
    corpus = np.arange(20) % 7
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=1)
    model = CBOW(7, 4, 2, corpus, seed=0)
    with pytest.raises(ValueError, match="4 columns"):
        model.forward(contexts, target)
    with pytest.raises(IndexError, match="out of range"):
        CBOW(7, 4, 1, corpus, seed=0).forward(contexts + 7, target)
    with pytest.raises(ValueError, match="W has 5 rows but the corpus has word id 6"):
        CBOW(5, 4, 1, corpus)


@pytest.mark.slow
def test_cbow_trains_on_a_slice_of_ptb(data_dir):
    """The book's settings (window 5, hidden 100, batch 100, Adam) on the first 200k words of
    PTB train, one epoch (about 2 s); the book's full run is 10 epochs over 930k words."""
    corpus, word_to_id, _ = fastnlp.datasets.load_ptb("train", data_dir=data_dir)
    contexts, target = fastnlp.create_contexts_target(corpus[:200_000], window_size=5)
    model = CBOW(len(word_to_id), 100, 5, corpus, seed=0)
    trainer = fastnlp.Trainer(model, optim.Adam(), seed=0)
    history = trainer.fit(contexts, target, max_epoch=1, batch_size=100, eval_interval=100, progress=False)
    assert history[0] > 4.0  # 6 log 2 = 4.16 at the start
    assert history[-1] < 2.7 and all(np.diff(history[:8]) < 0)
    assert np.isfinite(model.word_vecs).all()
