"""Document vectors against direct NumPy computations; TextClassifier's estimator contract,
training on small slices of the polarity data, padding, gradients, bad input."""
import math
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastnlp
from fastnlp import TextClassifier, WordVectors, doc_vectors, fit_idf, fit_sif
from fastnlp.classify import SIF, NotFittedError, _Head, _Net, _Pool
from fastnlp.layers import SoftmaxWithLoss, TimeEmbedding
from fastnlp.layers.transformer import LayerNorm, PositionalEncoding, TransformerEncoderBlock

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def one_blas_thread():
    # Small matrix products on a busy machine: more BLAS threads than free cores costs 100x.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def slice_():
    """600 training and 300 test snippets, both classes, shuffled."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    texts, labels = fastnlp.datasets.load_polarity(DATA_DIR)
    idx = np.random.default_rng(0).permutation(len(texts))
    tr, te = idx[:600], idx[600:900]
    return [texts[i] for i in tr], labels[tr], [texts[i] for i in te], labels[te]


WORDS = ["good", "bad", "film", "plot", "great", "dull", "."]


@pytest.fixture
def wv():
    rng = np.random.default_rng(1)
    return WordVectors(rng.standard_normal((len(WORDS), 5)).astype(np.float32), WORDS)


DOCS = [["good", "film", "."], ["bad", "bad", "plot", "unknownword"], ["nothing", "known"], ["great", "film", "good"]]


def _direct(wv, docs, weight, norm):
    out = np.zeros((len(docs), wv.vector_size))
    for i, doc in enumerate(docs):
        known = [t for t in doc if t in wv]
        if not known:
            continue
        s = sum(weight(t) * wv[t].astype(np.float64) for t in known)
        out[i] = s / norm(known)
    return out


# ---- doc_vectors ----------------------------------------------------------------------------

def test_mean_is_the_mean_of_known_words(wv):
    got = doc_vectors(wv, DOCS, "mean")
    want = _direct(wv, DOCS, lambda t: 1.0, len)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got.shape == (4, 5) and (got[2] == 0).all()  # no known word: zero vector


def test_raw_strings_are_tokenised_like_preprocess(wv):
    assert np.array_equal(doc_vectors(wv, ["Good film.", "BAD plot"]), doc_vectors(wv, [["good", "film", "."],
                                                                                        ["bad", "plot"]]))


def test_fit_idf_formula():
    idf = fit_idf(DOCS)
    n = len(DOCS)
    assert idf["film"] == pytest.approx(math.log((1 + n) / (1 + 2)) + 1)
    assert idf["bad"] == pytest.approx(math.log((1 + n) / (1 + 1)) + 1)  # document frequency, not count
    assert fit_idf(DOCS, smooth=False)["film"] == pytest.approx(math.log(n / 2) + 1)


def test_tfidf_weighted_mean(wv):
    train = DOCS[:2] + [["dull", "great", "great"]]
    idf = fit_idf(train)
    got = doc_vectors(wv, DOCS, "tfidf", idf)
    top = max(idf.values())  # words the training documents never saw weigh as the rarest
    w = lambda t: idf.get(t, top)  # noqa: E731
    want = _direct(wv, DOCS, w, lambda known: sum(w(t) for t in known))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # an array aligned with the vectors' rows does the same
    arr = np.array([w(t) for t in wv.words])
    np.testing.assert_allclose(doc_vectors(wv, DOCS, "tfidf", arr), want, rtol=1e-12)
    # idf=None fits on the documents themselves
    np.testing.assert_allclose(doc_vectors(wv, DOCS, "tfidf"), doc_vectors(wv, DOCS, "tfidf", fit_idf(DOCS)))


def test_sif_fitted_on_training_docs_applies_to_others(wv):
    train = [["good", "film", "."], ["bad", "plot", "."], ["great", "great", "dull", "."], ["film", "plot"]]
    a = 1e-2
    sif = fit_sif(wv, train, a=a)
    assert isinstance(sif, SIF) and sif.component.shape == (1, 5)
    counts = {}
    for doc in train:
        for t in doc:
            counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values())
    weight = lambda t: a / (a + counts.get(t, 0) / total)  # noqa: E731
    X_train = _direct(wv, train, weight, len)
    u = np.linalg.svd(X_train, full_matrices=False)[2][:1]
    assert abs(abs(float(u[0] @ sif.component[0])) - 1) < 1e-10  # same direction
    got = doc_vectors(wv, DOCS, "sif", sif_weights=sif.weights, sif_component=sif.component)
    X = _direct(wv, DOCS, weight, len)
    want = X - (X @ u.T) @ u
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.abs(got @ u[0]).max() < 1e-12  # the component is gone
    # defaults: fitted on the documents given
    X = _direct(wv, train, weight, len)
    np.testing.assert_allclose(doc_vectors(wv, train, "sif", sif_a=a), X - (X @ u.T) @ u, atol=1e-12)


def test_doc_vectors_bad_input(wv):
    with pytest.raises(ValueError, match="method"):
        doc_vectors(wv, DOCS, "max")
    with pytest.raises(TypeError, match="single"):
        doc_vectors(wv, "good film")
    with pytest.raises(TypeError, match="token"):
        doc_vectors(wv, [["good", 3]])
    with pytest.raises(ValueError, match="one weight per word"):
        doc_vectors(wv, DOCS, "tfidf", np.ones(3))
    with pytest.raises(TypeError, match="WordVectors"):
        doc_vectors({"good": [1.0]}, DOCS)


# ---- the estimator contract -----------------------------------------------------------------

def test_get_params_set_params_store_as_given(wv):
    clf = TextClassifier("tfidf", vectors=wv, hidden=7, lr=0.5)
    params = clf.get_params()
    assert params["encoder"] == "tfidf" and params["vectors"] is wv and params["hidden"] == 7
    assert params["lr"] == 0.5 and params["seed"] == 0
    assert set(params) == set(TextClassifier().get_params())
    assert clf.set_params(encoder="nonsense", patience=1) is clf  # no checks before fit
    assert clf.encoder == "nonsense"
    with pytest.raises(ValueError, match="invalid parameter"):
        clf.set_params(colour="red")
    assert "encoder='nonsense'" in repr(clf)


def test_bad_input_raises_clearly():
    texts = ["a good film", "a bad film"]
    with pytest.raises(ValueError, match="empty"):
        TextClassifier().fit([], [])
    with pytest.raises(ValueError, match="match"):
        TextClassifier().fit(texts, [1])
    with pytest.raises(ValueError, match="unknown encoder"):
        TextClassifier("cnn").fit(texts, [0, 1])
    with pytest.raises(ValueError, match="2 classes"):
        TextClassifier().fit(texts, ["pos", "pos"])
    with pytest.raises(TypeError, match="single"):
        TextClassifier().fit("a good film", [1])
    with pytest.raises(TypeError, match="hashable"):
        TextClassifier().fit(texts, [[0], [1]])
    with pytest.raises(ValueError, match="hidden"):
        TextClassifier(hidden=-1).fit(texts, [0, 1])
    with pytest.raises(ValueError, match="ngrams"):
        TextClassifier("lstm", ngrams=2).fit(texts, [0, 1])
    with pytest.raises(NotFittedError):
        TextClassifier().predict(texts)


FAST = dict(epochs=2, embed_dim=16, hidden_size=16, batch_size=64, validation_fraction=0.2, patience=1)


@pytest.mark.parametrize("kw", [
    dict(encoder="mean"), dict(encoder="tfidf", hidden=8), dict(encoder="sif"),
    dict(encoder="mean", fine_tune=True, ngrams=2), dict(encoder="sif", fine_tune=True),
    dict(encoder="lstm"), dict(encoder="bilstm", pooling="attention"), dict(encoder="transformer", n_heads=2),
], ids=lambda kw: "-".join(f"{v}" for v in kw.values()))
def test_fit_predict_on_a_slice(slice_, kw):
    X, y, X_te, y_te = slice_
    labels = np.where(y == 1, "pos", "neg")
    clf = TextClassifier(**kw, **FAST, word2vec=dict(epochs=2)).fit(X, labels)
    assert list(clf.classes_) == ["neg", "pos"]
    proba = clf.predict_proba(X_te[:50])
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
    pred = clf.predict(X_te[:50])
    assert set(pred) <= {"neg", "pos"}
    assert np.array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert 0 <= clf.score(X_te[:50], np.where(y_te[:50] == 1, "pos", "neg")) <= 1
    assert 1 <= clf.n_epochs_ <= 2 and len(clf.history_) == clf.n_epochs_
    # raw strings work as well as token lists, and an empty document gets a prediction
    assert clf.predict([" ".join(X_te[0]), ""]).shape == (2,)


def test_deterministic_with_seed(slice_):
    X, y, X_te, _ = slice_
    kw = dict(FAST, encoder="lstm")
    p1 = TextClassifier(**kw, seed=3).fit(X, y).predict_proba(X_te[:40])
    p2 = TextClassifier(**kw, seed=3).fit(X, y).predict_proba(X_te[:40])
    np.testing.assert_array_equal(p1, p2)
    p3 = TextClassifier(**kw, seed=4).fit(X, y).predict_proba(X_te[:40])
    assert not np.array_equal(p1, p3)


@pytest.mark.parametrize("kw", [dict(encoder="lstm"), dict(encoder="bilstm"),
                                dict(encoder="bilstm", pooling="attention"),
                                dict(encoder="transformer", n_heads=2), dict(encoder="mean", fine_tune=True)],
                         ids=lambda kw: "-".join(f"{v}" for v in kw.values()))
def test_padding_never_changes_a_prediction(slice_, kw):
    X, y, X_te, _ = slice_
    clf = TextClassifier(**kw, **dict(FAST, epochs=1), word2vec=dict(epochs=1)).fit(X, y)
    short = X_te[0][:3]
    alone = clf.predict_proba([short])
    with_long = clf.predict_proba([short, X_te[1] * 3])[:1]  # padded to the long one's length
    np.testing.assert_allclose(alone, with_long, rtol=1e-5, atol=1e-6)


def test_vectors_from_a_path_and_frozen(slice_, tmp_path):
    X, y, X_te, _ = slice_
    w2v = fastnlp.Word2Vec(X, vector_size=12, min_count=1, epochs=1, progress=False, seed=1)
    saved = tmp_path / "vec.npz"
    w2v.wv.save(saved)  # the one file format (fastnlp.load reads it)
    text = tmp_path / "vec.txt"
    w2v.wv.save_word2vec_format(text)
    results = []
    for source in (w2v.wv, str(saved), text):
        clf = TextClassifier("mean", vectors=source, **FAST).fit(X, y)
        results.append(clf.predict_proba(X_te[:20]))
    np.testing.assert_allclose(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2], atol=1e-4)  # text format rounds the values
    # frozen vectors under an LSTM stay as they were
    clf = TextClassifier("lstm", vectors=w2v.wv, fine_tune=False, **FAST).fit(X, y)
    E = clf.net_.embedding.params[0]
    row = clf.vocabulary_.index("film")
    np.testing.assert_array_equal(E[row], w2v.wv["film"])
    assert not any(p is E for p in clf.net_.params)


# ---- gradients of the end-to-end networks ---------------------------------------------------

def _tiny_net(kind, pool_kind, rng):
    dt = np.float64
    D, H, C = 4, 3, 2
    emb = TimeEmbedding(rng.standard_normal((9, D)))
    if kind == "lstm":
        parts, out = [TextClassifier._lstm(D, H, rng, dt)], H
    elif kind == "bilstm":
        parts, out = [TextClassifier._lstm(D, H, rng, dt), TextClassifier._lstm(D, H, rng, dt)], 2 * H
    else:
        parts, out = [PositionalEncoding(D), TransformerEncoderBlock.random(D, 2, 8, rng, dt), LayerNorm.ones(D, dt)], D
    pool = _Pool(pool_kind, out, rng, dt)
    head = _Head(out, C, 5, 0.0, rng, dt)
    return _Net(kind, head, emb, True, encoder=parts, pool=pool, dropout=0.0, rng=rng)


@pytest.mark.parametrize("kind,pool_kind", [("lstm", "last"), ("lstm", "attention"), ("bilstm", "last"),
                                            ("bilstm", "mean"), ("bilstm", "attention"), ("transformer", "mean"),
                                            ("transformer", "attention")])
def test_gradients_match_finite_differences(kind, pool_kind):
    rng = np.random.default_rng(0)
    net = _tiny_net(kind, pool_kind, rng)
    ids = np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 1, 2, 0, 0]], dtype=np.int32)
    lengths = np.array([5, 2, 3])
    t = np.array([0, 1, 1])
    loss = SoftmaxWithLoss()

    def f():
        return float(loss.forward(net.forward((ids, lengths)), t))

    f()
    net.backward(loss.backward())
    grads = [np.array(g) for g in net.grads]
    eps = 1e-6
    for p, g in zip(net.params, grads):
        flat = p.reshape(-1)
        for j in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[j]
            flat[j] = old + eps
            up = f()
            flat[j] = old - eps
            down = f()
            flat[j] = old
            assert (up - down) / (2 * eps) == pytest.approx(g.reshape(-1)[j], rel=1e-4, abs=1e-7)


# ---- with scikit-learn ------------------------------------------------------------------------

def test_clone_cross_val_score_and_grid_search(slice_, wv):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y, _, _ = slice_
    clf = TextClassifier("mean", vectors=wv, hidden=3, **FAST)
    assert is_classifier(clf)
    twin = clone(clf)
    assert twin is not clf and type(twin) is TextClassifier
    assert twin.get_params()["hidden"] == 3 and twin.get_params()["epochs"] == 2
    fitted = TextClassifier(**FAST, word2vec=dict(epochs=1)).fit(X[:200], y[:200])
    assert not hasattr(clone(fitted), "classes_")  # clone is unfitted

    X_small, y_small = X[:300], y[:300]
    scores = cross_val_score(TextClassifier(**FAST, word2vec=dict(epochs=1)), X_small, y_small, cv=3)
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    grid = GridSearchCV(TextClassifier(**FAST, word2vec=dict(epochs=1)), {"hidden": [0, 4]}, cv=2).fit(X_small, y_small)
    assert grid.best_params_["hidden"] in (0, 4)
    assert grid.predict(X_small[:5]).shape == (5,)
    assert sklearn.__version__
