"""Document vectors and text classifiers built on the book's layers.

Two public pieces:

* :func:`doc_vectors` turns documents into fixed-size vectors from word vectors: the plain mean,
  an IDF-weighted mean (:func:`fit_idf`), or SIF (smooth inverse frequency, Arora et al. 2017,
  :func:`fit_sif`). What is fitted (IDF, word frequencies, the common component) is fitted on
  training documents only and passed in for held-out ones, so cross-validation folds never leak.
* :class:`TextClassifier`, a scikit-learn style estimator (``get_params``/``set_params``, ``fit``,
  ``predict``, ``predict_proba``, ``score``, ``classes_``) so ``sklearn.base.clone``,
  ``cross_val_score`` and ``GridSearchCV`` work on it, without scikit-learn being required. It
  trains with the library's layers and optimizers: logistic regression or an MLP on document
  vectors, or, end to end, an embedding with an LSTM, a bidirectional LSTM or a small Transformer
  encoder, then ``Affine`` and ``SoftmaxWithLoss``.

Documents are raw strings, tokenised as the book's ``preprocess`` does (lower-case, ``.`` split
off, split on whitespace; :func:`fastnlp.datasets.polarity.tokenize`), or token lists, used as
they are.
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
import time
from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from .datasets.polarity import tokenize
from .layers import Affine, Dropout, ReLU, SoftmaxWithLoss, TimeEmbedding, TimeLSTM
from .layers.transformer import LayerNorm, PositionalEncoding, TransformerEncoderBlock
from .optim import Adam, clip_grads
from .vectors import WordVectors

__all__ = ["SIF", "TextClassifier", "doc_vectors", "fit_idf", "fit_sif", "NotFittedError"]

METHODS = ("mean", "tfidf", "sif")
ENCODERS = ("mean", "tfidf", "sif", "lstm", "bilstm", "transformer")
LEARNED = ("lstm", "bilstm", "transformer")
PAD, UNK = "<pad>", "<unk>"


class NotFittedError(ValueError, AttributeError):
    """``predict`` (or another method that needs a fitted model) before ``fit``; the same bases
    as scikit-learn's ``NotFittedError``."""


# ---- documents ------------------------------------------------------------------------------

def as_token_lists(docs, what: str = "docs") -> list[list[str]]:
    """``docs`` as a list of token lists: strings are tokenised (book's ``preprocess`` rules),
    token lists are kept as they are (their tokens must be str)."""
    if isinstance(docs, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of documents (strings or token lists), got a single "
                        f"{type(docs).__name__}; wrap it in a list")
    try:
        items = list(docs)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of documents, got {type(docs).__name__}") from None
    out = []
    for i, doc in enumerate(items):
        if isinstance(doc, str):
            out.append(tokenize(doc))
            continue
        if isinstance(doc, (str, bytes)) or not hasattr(doc, "__iter__"):
            raise TypeError(f"{what}[{i}] must be a string or a list of str tokens, got {type(doc).__name__}")
        tokens = [t for t in doc]
        for t in tokens:
            if not isinstance(t, str):
                raise TypeError(f"{what}[{i}] holds a token of type {type(t).__name__} ({t!r}); tokens must be str")
        out.append(tokens)
    return out


def _word_vectors(vectors) -> WordVectors:
    """A WordVectors from a WordVectors, a Word2Vec (its ``wv``), or a path to a fastnlp file
    (``fastnlp.load``) or a word2vec text/binary file."""
    if isinstance(vectors, WordVectors):
        return vectors
    if hasattr(vectors, "wv") and isinstance(vectors.wv, WordVectors):
        return vectors.wv
    if isinstance(vectors, (str, os.PathLike)):
        path = os.fspath(vectors)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no word-vector file at {path}")
        from .serialization import load
        try:
            loaded = load(path)
        except Exception:  # not a fastnlp file: try the word2vec formats
            return WordVectors.load_word2vec_format(path)
        return _word_vectors(loaded)
    raise TypeError(f"vectors must be a fastnlp.WordVectors, a Word2Vec or a path to vectors, "
                    f"got {type(vectors).__name__}")


# ---- IDF and SIF ----------------------------------------------------------------------------

def fit_idf(docs, smooth: bool = True) -> dict[str, float]:
    """IDF of every word of ``docs`` (fit it on training documents only).

    ``smooth=True`` (scikit-learn's default): ``ln((1 + N) / (1 + df)) + 1``; else
    ``ln(N / df) + 1``; N documents, df the number of documents holding the word."""
    docs = as_token_lists(docs)
    if not docs:
        raise ValueError("fit_idf needs at least one document")
    df = Counter()
    for doc in docs:
        df.update(set(doc))
    n = len(docs)
    if smooth:
        return {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}
    return {w: math.log(n / c) + 1.0 for w, c in df.items()}


class SIF(NamedTuple):
    """What SIF fits on training documents: ``weights`` (word -> a / (a + p(w))) and
    ``component`` (k, D), the common direction(s) removed from every document vector."""
    weights: dict
    component: np.ndarray


def sif_weights_from_counts(word_counts, a: float = 1e-3) -> dict[str, float]:
    """``a / (a + p(w))`` with ``p(w) = count / total`` for a mapping word -> count."""
    if not isinstance(word_counts, Mapping):
        raise TypeError(f"word_counts must be a mapping word -> count, got {type(word_counts).__name__}")
    _check_a(a)
    total = float(sum(word_counts.values()))
    if total <= 0:
        raise ValueError("word_counts sum to zero")
    return {w: a / (a + c / total) for w, c in word_counts.items()}


def _check_a(a):
    if isinstance(a, bool) or not isinstance(a, numbers.Real) or not (a > 0 and math.isfinite(a)):
        raise ValueError(f"the SIF parameter a must be a positive number, got {a!r}")


def fit_sif(vectors, docs, a: float = 1e-3, word_counts=None, n_components: int = 1) -> SIF:
    """Fit SIF on training ``docs``: word weights ``a / (a + p(w))`` (``p`` from ``word_counts``,
    a mapping word -> count, or counted in ``docs``) and the first ``n_components`` principal
    directions (right singular vectors, uncentred, as Arora et al.'s code) of the weighted
    averages of ``docs``. Pass both to :func:`doc_vectors` for any documents."""
    docs = as_token_lists(docs)
    if not docs:
        raise ValueError("fit_sif needs at least one document")
    if word_counts is None:
        word_counts = Counter(t for doc in docs for t in doc)
    weights = sif_weights_from_counts(word_counts, a)
    X = _weighted_average(_word_vectors(vectors), docs, "sif", weights)
    k = int(n_components)
    if k < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    return SIF(weights, vt[:k].copy())


def _lookup_weights(table, wv: WordVectors, name, missing):
    """Per-row weights (len(wv),) from a dict word -> weight (words not in it: ``missing(table)``)
    or an array aligned with the rows of ``wv``."""
    if isinstance(table, Mapping):
        default = missing(table)
        return np.array([table.get(w, default) for w in wv.words], dtype=np.float64)
    arr = np.asarray(table, dtype=np.float64)
    if arr.shape != (len(wv),):
        raise ValueError(f"{name} as an array must have one weight per word of the vectors, shape ({len(wv)},), "
                         f"got {arr.shape}")
    return arr


def _weighted_average(wv: WordVectors, docs, method, table):
    """(N, D) float64: per document, ``sum w(t) v(t) / norm`` over its tokens found in ``wv``;
    norm is the weight sum (mean, tfidf) or the number of such tokens (sif); 0 without any."""
    import scipy.sparse as sp

    lookup = wv.word_to_id
    indptr = [0]
    cols: list[int] = []
    for doc in docs:
        cols.extend(i for i in (lookup.get(t) for t in doc) if i is not None)
        indptr.append(len(cols))
    cols_arr = np.asarray(cols, dtype=np.int64)
    if method == "mean":
        data = np.ones(len(cols_arr))
    elif method == "tfidf":
        data = _lookup_weights(table, wv, "idf", lambda t: max(t.values(), default=1.0))[cols_arr]
    else:
        data = _lookup_weights(table, wv, "sif_weights", lambda t: 1.0)[cols_arr]
    n = len(docs)
    S = sp.csr_matrix((data, cols_arr, np.asarray(indptr)), shape=(n, len(wv)))
    X = np.asarray(S @ wv.vectors.astype(np.float64))
    if method == "sif":
        norm = np.diff(np.asarray(indptr)).astype(np.float64)
    else:
        norm = np.asarray(S.sum(axis=1)).ravel()
    nz = norm > 0
    X[nz] /= norm[nz, None]
    X[~nz] = 0.0
    return X


def doc_vectors(vectors, docs, method: str = "mean", idf=None, *, sif_weights=None, sif_component=None,
                sif_a: float = 1e-3):
    """Document vectors (N, D), float64, from word vectors.

    ``vectors``: a :class:`fastnlp.WordVectors` (or a Word2Vec, or a path to vectors);
    ``docs``: raw strings (tokenised as the book's ``preprocess``) or token lists. Only tokens found
    in ``vectors`` count (each occurrence once); a document with none of them gets the zero vector.

    - ``"mean"``: the mean of its words' vectors.
    - ``"tfidf"``: the IDF-weighted mean ``sum idf(w) v(w) / sum idf(w)``. ``idf`` is a dict word ->
      weight (:func:`fit_idf` on the training documents; words missing from it get its largest
      weight, that of the rarest training word) or an array with one weight per row of ``vectors``.
      ``idf=None`` fits it on ``docs`` themselves (fine for unsupervised use; for held-out documents
      pass the one fitted on the training documents).
    - ``"sif"``: ``sum a / (a + p(w)) v(w) / n`` (n known tokens), then the projection on the common
      component(s) removed: ``x - (x u^T) u``. ``sif_weights`` (dict word -> weight, words missing
      from it weigh 1, i.e. p = 0; or an array per row) and ``sif_component`` ((k, D) or (D,)) come
      from :func:`fit_sif` on training documents; when None they are fitted on ``docs`` (word
      frequencies counted in ``docs`` with ``sif_a``, the first principal component of the result).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    wv = _word_vectors(vectors)
    docs = as_token_lists(docs)
    if method == "mean":
        return _weighted_average(wv, docs, "mean", None)
    if method == "tfidf":
        if idf is None:
            if not docs:
                return np.zeros((0, wv.vector_size))
            idf = fit_idf(docs)
        return _weighted_average(wv, docs, "tfidf", idf)
    if sif_weights is None:
        _check_a(sif_a)
        counts = Counter(t for doc in docs for t in doc)
        sif_weights = sif_weights_from_counts(counts, sif_a) if counts else {}
    X = _weighted_average(wv, docs, "sif", sif_weights)
    if sif_component is None:
        if X.shape[0] == 0:
            return X
        sif_component = np.linalg.svd(X, full_matrices=False)[2][:1]
    u = np.atleast_2d(np.asarray(sif_component, dtype=np.float64))
    if u.shape[1] != wv.vector_size:
        raise ValueError(f"sif_component has {u.shape[1]} columns, the vectors {wv.vector_size}")
    return X - (X @ u.T) @ u


# ---- network pieces (the book's contract: params, grads, forward, backward) -----------------

def _take_rows(h, idx):
    """h (N, T, H) at time index idx (N,) -> (N, H)."""
    return h[np.arange(h.shape[0]), idx]


def _put_rows(shape, idx, d, dtype):
    out = np.zeros(shape, dtype=dtype)
    out[np.arange(shape[0]), idx] = d
    return out


class _Pool:
    """Pooling of hidden states (N, T, H) with a mask (N, T): 'last' real step, 'mean' over real
    steps, 'attention' (a learned query vector, softmax over real steps)."""

    def __init__(self, kind, H, rng, dtype):
        self.kind = kind
        self.params, self.grads = [], []
        if kind == "attention":
            v = (rng.standard_normal(H) / math.sqrt(H)).astype(dtype)
            self.params, self.grads = [v], [np.zeros_like(v)]

    def forward(self, hs, mask, lengths):
        self.shape, self.mask, self.lengths = hs.shape, mask, lengths
        if self.kind == "last":
            return _take_rows(hs, lengths - 1)
        if self.kind == "mean":
            m = mask.astype(hs.dtype) / lengths[:, None].astype(hs.dtype)
            self.m = m
            return np.einsum("nt,nth->nh", m, hs)
        (v,) = self.params
        s = hs @ v
        s = np.where(mask, s, -np.inf)
        s -= s.max(axis=1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=1, keepdims=True)
        self.hs, self.a = hs, a.astype(hs.dtype)
        return np.einsum("nt,nth->nh", self.a, hs)

    def backward(self, dout):
        if self.kind == "last":
            return _put_rows(self.shape, self.lengths - 1, dout, dout.dtype)
        if self.kind == "mean":
            return self.m[:, :, None] * dout[:, None, :]
        (v,) = self.params
        hs, a = self.hs, self.a
        da = np.einsum("nth,nh->nt", hs, dout)
        ds = a * (da - (a * da).sum(axis=1, keepdims=True))
        self.grads[0][...] = np.einsum("nt,nth->h", ds, hs)
        return a[:, :, None] * dout[:, None, :] + ds[:, :, None] * v


class _Head:
    """[Dropout] -> [Affine -> ReLU -> Dropout] -> Affine: the classifier on a (N, D) input."""

    def __init__(self, D, C, hidden, dropout, rng, dtype):
        self.layers = [Dropout(dropout, seed=int(rng.integers(2**31)))] if dropout > 0 else []
        if hidden:
            W1 = (rng.standard_normal((D, hidden)) * math.sqrt(2.0 / D)).astype(dtype)
            self.layers += [Affine(W1, np.zeros(hidden, dtype)), ReLU()]
            if dropout > 0:
                self.layers.append(Dropout(dropout, seed=int(rng.integers(2**31))))
            D = hidden
        W = (rng.standard_normal((D, C)) * math.sqrt(1.0 / D)).astype(dtype)
        self.layers.append(Affine(W, np.zeros(C, dtype)))
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self.decayed = [layer.params[0] for layer in self.layers if isinstance(layer, Affine)]

    def train(self, mode):
        for layer in self.layers:
            layer.train(mode)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


class _Net:
    """An encoder of padded id batches (or precomputed features) and the head. ``forward(batch)``
    gives class scores; ``backward(dscores)`` fills the grads of ``params``."""

    def __init__(self, kind, head, embedding=None, trainable_embedding=False, encoder=None, pool=None,
                 token_weights=None, projection=None, dropout=0.0, rng=None, dtype=np.float32):
        self.kind, self.head, self.embedding, self.encoder, self.pool = kind, head, embedding, encoder, pool
        self.token_weights, self.projection = token_weights, projection
        self.emb_dropout = None
        if dropout > 0 and kind in LEARNED:
            self.emb_dropout = Dropout(dropout, seed=int(rng.integers(2**31)))
        self.params, self.grads, self.decayed = [], [], list(head.decayed)
        if embedding is not None and trainable_embedding:
            self.params += embedding.params
            self.grads += embedding.grads
        self.train_embedding = bool(trainable_embedding)
        for part in (encoder or []):
            self.params += part.params
            self.grads += part.grads
            self.decayed += [p for p in part.params if p.ndim == 2]
        if pool is not None:
            self.params += pool.params
            self.grads += pool.grads
        self.params += head.params
        self.grads += head.grads

    def train(self, mode):
        self.head.train(mode)
        if self.emb_dropout is not None:
            self.emb_dropout.train(mode)

    # batch: ("features", X) or ("ids", ids, lengths)
    def forward(self, batch):
        if self.kind == "features":
            return self.head.forward(batch[0])
        ids, lengths = batch
        N, T = ids.shape
        mask = np.arange(T)[None, :] < lengths[:, None]
        self.mask, self.lengths = mask, lengths
        xs = self.embedding.forward(ids)
        if self.kind == "bag":
            w = self.token_weights[ids] * mask
            if self.projection is None:  # mean / tfidf: normalised by the weight sum
                norm = w.sum(axis=1)
            else:  # sif: by the number of tokens
                norm = lengths.astype(w.dtype)
            norm = np.where(norm > 0, norm, 1)
            self.w = (w / norm[:, None]).astype(xs.dtype)
            h = np.einsum("nt,ntd->nd", self.w, xs)
            if self.projection is not None:
                h = h - (h @ self.projection.T) @ self.projection
            return self.head.forward(h)
        if self.emb_dropout is not None:
            xs = self.emb_dropout.forward(xs)
        if self.kind == "lstm":
            hs = self.encoder[0].forward(xs)
            pooled = self.pool.forward(hs, mask, lengths)
        elif self.kind == "bilstm":
            rev = np.where(mask, lengths[:, None] - 1 - np.arange(T)[None, :], np.arange(T)[None, :])
            self.rev = rev
            rows = np.arange(N)[:, None]
            hf = self.encoder[0].forward(xs)
            hb = self.encoder[1].forward(xs[rows, rev])[rows, rev]
            self.H = hf.shape[2]
            if self.pool.kind == "last":
                pooled = np.concatenate([_take_rows(hf, lengths - 1), hb[:, 0]], axis=1)
                self.hshape = hf.shape
            else:
                pooled = self.pool.forward(np.concatenate([hf, hb], axis=2), mask, lengths)
        else:  # transformer
            pe, *blocks, norm = self.encoder
            h = pe.forward(xs)
            attn_mask = mask[:, None, None, :]
            for block in blocks:
                h = block.forward(h, attn_mask)
            h = norm.forward(h)
            pooled = self.pool.forward(h, mask, lengths)
        return self.head.forward(pooled)

    def backward(self, dscores):
        dpooled = self.head.backward(dscores)
        if self.kind == "features":
            return
        if self.kind == "bag":
            if self.projection is not None:
                dpooled = dpooled - (dpooled @ self.projection.T) @ self.projection
            if self.train_embedding:
                self.embedding.backward(self.w[:, :, None] * dpooled[:, None, :])
            return
        if self.kind == "lstm":
            dxs = self.encoder[0].backward(self.pool.backward(dpooled))
        elif self.kind == "bilstm":
            H, rev = self.H, self.rev
            N = rev.shape[0]
            rows = np.arange(N)[:, None]
            if self.pool.kind == "last":
                dhf = _put_rows(self.hshape, self.lengths - 1, dpooled[:, :H], dpooled.dtype)
                dhb = np.zeros(self.hshape, dtype=dpooled.dtype)
                dhb[:, 0] = dpooled[:, H:]
            else:
                dh = self.pool.backward(dpooled)
                dhf, dhb = dh[:, :, :H], dh[:, :, H:]
            dxs = self.encoder[0].backward(np.ascontiguousarray(dhf))
            dxs_b = self.encoder[1].backward(np.ascontiguousarray(dhb[rows, rev]))
            dxs = dxs + dxs_b[rows, rev]
        else:
            pe, *blocks, norm = self.encoder
            dh = norm.backward(self.pool.backward(dpooled))
            for block in reversed(blocks):
                dh = block.backward(dh)
            dxs = pe.backward(dh)
        if self.train_embedding:
            if self.emb_dropout is not None:
                dxs = self.emb_dropout.backward(dxs)
            self.embedding.backward(dxs)


# ---- the estimator --------------------------------------------------------------------------

_WORD2VEC_DEFAULTS = dict(sg=1, window=5, negative=5, sample=1e-3, min_count=1, epochs=20, alpha=0.025)


class TextClassifier:
    """A text classifier with scikit-learn's estimator conventions (works with ``clone``,
    ``cross_val_score``, ``GridSearchCV``; scikit-learn itself is not needed).

    ``fit(texts, labels)``: texts are raw strings (tokenised as the book's ``preprocess``) or token
    lists; labels any hashable values (``classes_`` holds them, sorted when they sort). Then
    ``predict``, ``predict_proba`` (columns in ``classes_`` order), ``score`` (accuracy).

    Encoders (``encoder=``):

    - ``"mean"``, ``"tfidf"``, ``"sif"``: document vectors (:func:`doc_vectors`; IDF, SIF weights and
      component fitted on the training texts), standardised, then logistic regression
      (``hidden=0``) or an MLP with one ReLU layer of ``hidden`` units. With ``fine_tune=True`` the
      same weighted average is taken inside the network over an embedding initialised from the
      vectors and trained end to end (SIF: the component fitted at the start is kept).
      ``vectors=None`` trains word vectors on the training texts with the fused
      :class:`fastnlp.Word2Vec`: skip-gram, ``embed_dim`` dimensions, window 5, 5 negatives,
      ``sample=1e-3``, ``min_count=1``, 20 epochs, one thread, ``seed`` (override with
      ``word2vec={...}``, keyword arguments of Word2Vec). ``ngrams=2`` (or more; only with
      ``fine_tune=True``) adds the documents' word n-grams as extra tokens with their own trained
      embeddings (fastText's bag of n-grams; they have no pre-trained vectors, so they start random).
    - ``"lstm"``, ``"bilstm"``, ``"transformer"``: trained end to end: ``TimeEmbedding`` ->
      ``TimeLSTM`` / two TimeLSTMs (forward and, per document, backward) / ``n_layers``
      ``TransformerEncoderBlock``s (``n_heads`` heads, sinusoidal positions, padding masked, final
      LayerNorm) -> pooling (``pooling=``: ``"last"`` real token, the default for the LSTMs; for the
      BiLSTM the forward state at the last token and the backward state at the first; ``"mean"``
      over real tokens, the default for the Transformer; ``"attention"``, a learned query) ->
      dropout -> [MLP] -> ``Affine`` -> ``SoftmaxWithLoss``. Padding never reaches a result: pooling
      reads real steps only and attention masks padded keys. The vocabulary is built on the
      training texts (``min_count``; rarer and unseen words map to ``<unk>``); documents are cut to
      ``max_len`` tokens. ``vectors=None`` starts from random embeddings of ``embed_dim``
      dimensions (always trained); with vectors the embedding starts from them: ``fine_tune=False``
      keeps it frozen (the vectors' own vocabulary, unknown words a zero ``<unk>``),
      ``fine_tune=True`` trains it (training words with ``min_count``, or found in the vectors;
      those not in the vectors start random).

    Training: Adam (``lr``; None: 0.01 on document vectors, 0.002 end to end; lazy rows for the
    embedding), mini-batches of ``batch_size`` (documents of similar length batched together),
    L2 ``weight_decay`` on the weight matrices, gradient norm clipped at 5, at most ``epochs``
    epochs. ``validation_fraction`` of the training texts (stratified) is held out: training stops
    after ``patience`` epochs without a lower validation loss and the parameters of the best epoch
    are kept (``validation_fraction=0``: all ``epochs`` on all texts). ``seed`` makes everything
    repeatable (initialisation, splits, batches, dropout, word2vec).

    Speed: the recurrent and attention layers make many small matrix products; on a machine whose
    cores are busy, limit BLAS to one thread (``threadpoolctl.threadpool_limits(1)`` or
    ``MKL_NUM_THREADS=1``), which can be orders of magnitude faster than oversubscribed threads.
    Padding: documents in a batch are padded to the longest; the recurrent layers have no masks,
    so the LSTM's state is read at each document's last real token (the backward LSTM of the
    BiLSTM reads each document reversed on its own, not the padded row reversed).

    Fitted attributes: ``classes_``, ``vectors_`` (the WordVectors used, averaging encoders),
    ``vocabulary_`` (learned encoders and fine-tuning), ``idf_``/``sif_`` (when used),
    ``history_`` (per epoch: train loss, validation loss and accuracy, seconds), ``n_epochs_``,
    ``best_epoch_``.
    """

    _estimator_type = "classifier"  # scikit-learn < 1.6 reads this; newer ones __sklearn_tags__

    def __init__(self, encoder="mean", vectors=None, *, hidden=0, fine_tune=False, pooling=None, embed_dim=100,
                 hidden_size=100, n_heads=4, n_layers=1, min_count=2, max_len=100, dropout=0.3, epochs=30,
                 batch_size=32, lr=None, weight_decay=1e-4, validation_fraction=0.1, patience=3, sif_a=1e-3,
                 word2vec=None, ngrams=1, seed=0, verbose=False):
        self.encoder = encoder
        self.vectors = vectors
        self.hidden = hidden
        self.fine_tune = fine_tune
        self.pooling = pooling
        self.embed_dim = embed_dim
        self.hidden_size = hidden_size
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.min_count = min_count
        self.max_len = max_len
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.sif_a = sif_a
        self.word2vec = word2vec
        self.ngrams = ngrams
        self.seed = seed
        self.verbose = verbose

    # ---- scikit-learn's estimator protocol --------------------------------------------------

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """The constructor arguments, as given."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor arguments (checked when ``fit`` runs); returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for TextClassifier; valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(two_d_array=False, string=True),
                    non_deterministic=False)

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name)
            try:
                same = value is default or bool(value == default)
            except Exception:
                same = False
            if not same:
                changed.append(f"{name}={value!r}" if not isinstance(value, WordVectors) else f"{name}={value}")
        return f"TextClassifier({', '.join(changed)})"

    # ---- checks -----------------------------------------------------------------------------

    def _check_settings(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; expected one of {', '.join(ENCODERS)}")
        for name in ("embed_dim", "hidden_size", "n_heads", "n_layers", "min_count", "epochs", "batch_size",
                     "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_len is not None and (isinstance(self.max_len, bool)
                                         or not isinstance(self.max_len, numbers.Integral) or self.max_len < 1):
            raise ValueError(f"max_len must be a positive integer or None, got {self.max_len!r}")
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, numbers.Integral) or self.hidden < 0:
            raise ValueError(f"hidden must be an integer >= 0 (0: logistic regression), got {self.hidden!r}")
        if not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.validation_fraction, numbers.Real) or not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if not isinstance(self.weight_decay, numbers.Real) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.lr is not None and (not isinstance(self.lr, numbers.Real) or not self.lr > 0):
            raise ValueError(f"lr must be a positive number or None, got {self.lr!r}")
        _check_a(self.sif_a)
        pools = ("last", "mean", "attention")
        if self.pooling is not None and self.pooling not in pools:
            raise ValueError(f"pooling must be one of {pools} or None, got {self.pooling!r}")
        if self.encoder == "transformer" and self.pooling == "last":
            raise ValueError("pooling='last' does not apply to the transformer encoder; use 'mean' or 'attention'")
        if isinstance(self.ngrams, bool) or not isinstance(self.ngrams, numbers.Integral) or self.ngrams < 1:
            raise ValueError(f"ngrams must be a positive integer, got {self.ngrams!r}")
        if self.ngrams > 1 and not (self.encoder in METHODS and self.fine_tune):
            raise ValueError("ngrams > 1 applies only to the averaging encoders with fine_tune=True (word n-grams "
                             "get their own trained embeddings, as in fastText)")
        if self.word2vec is not None and not isinstance(self.word2vec, Mapping):
            raise TypeError(f"word2vec must be a dict of Word2Vec arguments or None, "
                            f"got {type(self.word2vec).__name__}")

    @staticmethod
    def _labels(labels, n):
        if isinstance(labels, (str, bytes)):
            raise TypeError("labels must be a sequence with one label per text, got a single string")
        try:
            labels = list(labels)
        except TypeError:
            raise TypeError(f"labels must be a sequence, got {type(labels).__name__}") from None
        if len(labels) != n:
            raise ValueError(f"{n} texts but {len(labels)} labels; they must match one to one")
        for y in labels:
            try:
                hash(y)
            except TypeError:
                raise TypeError(f"labels must be hashable, got {type(y).__name__}") from None
        return labels

    def _check_fitted(self):
        if not hasattr(self, "net_"):
            raise NotFittedError("this TextClassifier is not fitted yet; call fit(texts, labels) first")

    # ---- fit ----------------------------------------------------------------------------------

    def fit(self, texts, labels):
        """Train on ``texts`` and ``labels``; returns self."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a fit that fails leaves no half-fitted model behind
        self._check_settings()
        docs = as_token_lists(texts, "texts")
        if not docs:
            raise ValueError("texts is empty: nothing to fit")
        labels = self._labels(labels, len(docs))
        classes = list(dict.fromkeys(labels))
        try:
            classes = sorted(classes)
        except TypeError:
            pass  # unorderable labels keep their order of first appearance
        if len(classes) < 2:
            raise ValueError(f"need texts of at least 2 classes, got only {classes[0]!r}")
        if len({type(c) for c in classes}) == 1 and isinstance(classes[0], (numbers.Number, str, np.generic)):
            self.classes_ = np.asarray(classes)
        else:  # mixed or other types: an object array keeps every value as it is
            self.classes_ = np.empty(len(classes), dtype=object)
            self.classes_[:] = classes
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in labels], dtype=np.int64)

        rng = np.random.default_rng(self.seed)
        dtype = np.float32
        start = time.perf_counter()
        self._build(docs, y, len(classes), rng, dtype)
        self._train(y, rng)
        self.fit_time_ = time.perf_counter() - start
        return self

    def _resolve_vectors(self, docs, rng):
        if self.vectors is not None:
            return _word_vectors(self.vectors)
        from .models.word2vec import Word2Vec

        settings = dict(_WORD2VEC_DEFAULTS, vector_size=self.embed_dim, workers=1, seed=int(self.seed) % (2**31),
                        progress=False)
        settings.update(self.word2vec or {})
        return Word2Vec(docs, **settings).wv

    def _build(self, docs, y, C, rng, dtype):
        enc = self.encoder
        self.idf_ = self.sif_ = None
        self.vocabulary_ = None
        if enc in METHODS and not self.fine_tune:
            wv = self._resolve_vectors(docs, rng)
            self.vectors_ = wv
            if enc == "tfidf":
                self.idf_ = fit_idf(docs)
            elif enc == "sif":
                self.sif_ = fit_sif(wv, docs, a=self.sif_a)
            X = self._features(docs)
            self._mu = X.mean(axis=0)
            sd = X.std(axis=0)
            self._sd = np.where(sd > 1e-12, sd, 1.0)
            self._X = ((X - self._mu) / self._sd).astype(dtype)
            head = _Head(X.shape[1], C, self.hidden, self.dropout, rng, dtype)
            self.net_ = _Net("features", head, rng=rng)
            return
        # networks over padded ids
        wv = None
        if enc in METHODS or self.vectors is not None:
            wv = self._resolve_vectors(docs, rng)
            self.vectors_ = wv
        docs = self._with_ngrams(docs)
        counts = Counter(t for doc in docs for t in doc)
        trainable = True
        if wv is None:
            words = [w for w, c in counts.items() if c >= self.min_count]
            D = self.embed_dim
        elif not self.fine_tune:
            words = [w for w in wv.words if w not in (PAD, UNK)]
            D, trainable = wv.vector_size, False
        else:
            words = [w for w, c in counts.items() if c >= self.min_count or w in wv]
            D = wv.vector_size
        vocab = [PAD, UNK] + sorted(words, key=lambda w: (-counts.get(w, 0), w))
        self.vocabulary_ = vocab
        self._word_to_id = {w: i for i, w in enumerate(vocab)}
        if wv is None or (trainable and enc in LEARNED):
            scale = 1.0 / math.sqrt(D) if enc == "transformer" else 0.1
            E = (rng.standard_normal((len(vocab), D)) * scale).astype(dtype)
        else:
            E = (rng.standard_normal((len(vocab), D)) * 0.1).astype(dtype)
        if wv is not None:
            ids = [i for i, w in enumerate(vocab) if w in wv]  # (n-grams hold a space: never in wv)
            if ids:
                E[ids] = np.asarray(wv.vectors, dtype=dtype)[[wv.word_to_id[vocab[i]] for i in ids]]
            if not trainable:
                E[[i for i, w in enumerate(vocab) if w not in wv]] = 0.0
        E[0] = 0.0
        embedding = TimeEmbedding(E)
        self._seqs = self._encode(docs)
        if enc in METHODS:  # fine-tuned bag of embeddings
            tw = np.ones(len(vocab), dtype=dtype)
            tw[0] = 0.0
            if enc == "tfidf":
                self.idf_ = fit_idf(docs)
                default = max(self.idf_.values())
                tw[1:] = [self.idf_.get(w, default) for w in vocab[1:]]
            elif enc == "sif":
                weights = sif_weights_from_counts(counts, self.sif_a)
                tw[1:] = [weights.get(w, 1.0) for w in vocab[1:]]
            tw[1] = 0.0  # only an empty document holds <unk> here: it averages to zero
            head = _Head(D, C, self.hidden, self.dropout, rng, dtype)
            net = self.net_ = _Net("bag", head, embedding, True, token_weights=tw, rng=rng)
            if enc == "sif":
                net.projection = None
                X = np.concatenate([self._pooled(net, b) for b in self._batches(np.arange(len(docs)), None)])
                u = np.linalg.svd(X.astype(np.float64), full_matrices=False)[2][:1].astype(dtype)
                net.projection = u
                self.sif_ = SIF(weights, u)
            self.net_ = net
            return
        H = self.hidden_size
        pool = self.pooling or ("mean" if enc == "transformer" else "last")
        if enc == "lstm":
            parts = [self._lstm(D, H, rng, dtype)]
            out = H
        elif enc == "bilstm":
            parts = [self._lstm(D, H, rng, dtype), self._lstm(D, H, rng, dtype)]
            out = 2 * H
        else:
            if D % self.n_heads:
                raise ValueError(f"the transformer needs embed_dim (or the vectors' size) {D} divisible by "
                                 f"n_heads={self.n_heads}")
            blocks = [TransformerEncoderBlock.random(D, self.n_heads, 2 * D, rng, dtype) for _ in range(self.n_layers)]
            parts = [PositionalEncoding(D, scale=math.sqrt(D)), *blocks, LayerNorm.ones(D, dtype)]
            out = D
        pool_layer = _Pool(pool, out, rng, dtype)
        head = _Head(out, C, self.hidden, self.dropout, rng, dtype)
        self.net_ = _Net(enc, head, embedding, trainable, encoder=parts, pool=pool_layer, dropout=self.dropout,
                         rng=rng)

    @staticmethod
    def _lstm(D, H, rng, dtype):
        Wx = (rng.standard_normal((D, 4 * H)) / math.sqrt(D)).astype(dtype)
        Wh = (rng.standard_normal((H, 4 * H)) / math.sqrt(H)).astype(dtype)
        b = np.zeros(4 * H, dtype=dtype)
        b[:H] = 1.0  # forget gate (blocks [f, g, i, o]) open at the start
        return TimeLSTM(Wx, Wh, b)

    def _with_ngrams(self, docs):
        """Documents with their word n-grams (2..ngrams, words joined by a space) appended."""
        if self.ngrams <= 1:
            return docs
        return [doc + [" ".join(doc[i:i + n]) for n in range(2, self.ngrams + 1) for i in range(len(doc) - n + 1)]
                for doc in docs]

    def _encode(self, docs):
        lookup, unk = self._word_to_id, 1
        limit = self.max_len if self.encoder in LEARNED else None
        seqs = []
        for doc in docs:
            ids = [lookup.get(t, unk) for t in (doc[:limit] if limit else doc)]
            if self.encoder in METHODS:  # averages count known words only
                ids = [i for i in ids if i != unk]
            seqs.append(np.asarray(ids if ids else [unk], dtype=np.int32))
        return seqs

    def _features(self, docs):
        wv = self.vectors_
        if self.encoder == "mean":
            return doc_vectors(wv, docs, "mean")
        if self.encoder == "tfidf":
            return doc_vectors(wv, docs, "tfidf", self.idf_)
        return doc_vectors(wv, docs, "sif", sif_weights=self.sif_.weights, sif_component=self.sif_.component)

    # ---- batches and training ------------------------------------------------------------------

    def _batches(self, idx, rng, seqs=None, X=None):
        """Batches over the rows ``idx``: shuffled (rng) or in order (None); for id sequences,
        documents of similar length go together."""
        bs = self.batch_size if rng is not None else max(self.batch_size, 256)
        if self.net_.kind == "features":
            X = self._X if X is None else X
            order = rng.permutation(idx) if rng is not None else idx
            for s in range(0, len(order), bs):
                rows = order[s:s + bs]
                yield rows, (X[rows],)
            return
        seqs = self._seqs if seqs is None else seqs
        lengths = np.array([len(seqs[i]) for i in idx])
        if rng is None:
            order = idx[np.argsort(lengths, kind="stable")]
            groups = [order[s:s + bs] for s in range(0, len(order), bs)]
        else:
            perm = rng.permutation(len(idx))
            chunk = bs * 50
            groups = []
            for s in range(0, len(perm), chunk):
                part = perm[s:s + chunk]
                part = part[np.argsort(lengths[part], kind="stable")]
                groups += [idx[part[k:k + bs]] for k in range(0, len(part), bs)]
            groups = [groups[i] for i in rng.permutation(len(groups))]
        for rows in groups:
            L = np.array([len(seqs[i]) for i in rows])
            ids = np.zeros((len(rows), L.max()), dtype=np.int32)
            for r, i in enumerate(rows):
                ids[r, :L[r]] = seqs[i]
            yield rows, (ids, L)

    def _pooled(self, net, batch):
        rows, b = batch
        head, net.head = net.head, _Identity()
        try:
            return net.forward(b)
        finally:
            net.head = head

    def _split(self, y, rng):
        n = len(y)
        if not self.validation_fraction:
            return np.arange(n), None
        val = []
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            k = int(round(self.validation_fraction * len(members)))
            if len(members) >= 2:
                val += list(members[:max(k, 1)])
        if not val or len(val) >= n:
            return np.arange(n), None
        val = np.sort(np.asarray(val))
        train = np.setdiff1d(np.arange(n), val)
        return train, val

    def _evaluate(self, idx, y):
        loss_layer = SoftmaxWithLoss()
        self.net_.train(False)
        total, correct = 0.0, 0
        for rows, b in self._batches(idx, None):
            scores = self.net_.forward(b)
            total += float(loss_layer.forward(scores, y[rows])) * len(rows)
            correct += int((scores.argmax(axis=1) == y[rows]).sum())
        return total / len(idx), correct / len(idx)

    def _train(self, y, rng):
        net = self.net_
        train_idx, val_idx = self._split(y, rng)
        lr = self.lr if self.lr is not None else (0.01 if net.kind == "features" else 0.002)
        optimizer = Adam(lr=lr, lazy=True)
        loss_layer = SoftmaxWithLoss()
        wd = float(self.weight_decay)
        decayed = {id(p) for p in net.decayed}
        best, best_params, bad = math.inf, None, 0
        self.history_ = []
        self.best_epoch_ = None
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            t0 = time.perf_counter()
            net.train(True)
            total, seen = 0.0, 0
            for rows, b in self._batches(train_idx, rng):
                scores = net.forward(b)
                loss = loss_layer.forward(scores, y[rows])
                net.backward(loss_layer.backward())
                if wd:
                    for p, g in zip(net.params, net.grads):
                        if id(p) in decayed:
                            g += wd * p
                clip_grads(net.grads, 5.0)
                optimizer.update(net.params, net.grads)
                total += float(loss) * len(rows)
                seen += len(rows)
            record = {"epoch": epoch, "train_loss": total / seen}
            if val_idx is not None:
                record["val_loss"], record["val_accuracy"] = self._evaluate(val_idx, y)
            record["seconds"] = time.perf_counter() - t0
            self.history_.append(record)
            if self.verbose:
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                      flush=True)
            if val_idx is None:
                continue
            if record["val_loss"] < best - 1e-4:
                best, bad, self.best_epoch_ = record["val_loss"], 0, epoch
                best_params = [p.copy() for p in net.params]
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_params is not None:
            for p, saved in zip(net.params, best_params):
                p[...] = saved
        if self.best_epoch_ is None:
            self.best_epoch_ = epoch
        self.n_epochs_ = epoch
        net.train(False)
        # what only training needs
        self._X = self._seqs = None

    # ---- prediction -----------------------------------------------------------------------------

    def _scores(self, texts):
        self._check_fitted()
        docs = as_token_lists(texts, "texts")
        n = len(docs)
        if n == 0:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        net = self.net_
        net.train(False)
        out = np.empty((n, len(self.classes_)), dtype=np.float64)
        if net.kind == "features":
            X = ((self._features(docs) - self._mu) / self._sd).astype(np.float32)
            batches = self._batches(np.arange(n), None, X=X)
        else:
            batches = self._batches(np.arange(n), None, seqs=self._encode(self._with_ngrams(docs)))
        for rows, b in batches:
            out[rows] = net.forward(b)
        return out

    def decision_function(self, texts):
        """Class scores (N, n_classes), before the softmax."""
        return self._scores(texts)

    def predict_proba(self, texts):
        """Class probabilities (N, n_classes), columns in ``classes_`` order."""
        s = self._scores(texts)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, texts):
        """The most probable class of each text (values of ``classes_``)."""
        scores = self._scores(texts)
        return self.classes_[scores.argmax(axis=1)]

    def score(self, texts, labels, sample_weight=None):
        """Accuracy on ``texts`` against ``labels`` (weighted by ``sample_weight`` if given)."""
        pred = self.predict(texts)
        labels = self._labels(labels, len(pred))
        hits = np.array([p == t for p, t in zip(pred.tolist(), labels)], dtype=np.float64)
        if len(hits) == 0:
            raise ValueError("score needs at least one text")
        if sample_weight is None:
            return float(hits.mean())
        w = np.asarray(sample_weight, dtype=np.float64)
        return float((hits * w).sum() / w.sum())


class _Identity:
    def forward(self, x):
        return x
