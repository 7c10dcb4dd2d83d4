"""word2vec: the rules fastnlp.Word2Vec shares with gensim, which decide its quality against it.

Two rules that differed from gensim 4 cost CBOW WordSim-353 on PTB (bench/README.md, section
"word2vec: fastnlp.Word2Vec against gensim"): the input vectors start uniform in [-1, 1) / D,
and a score at or beyond +-max_exp trains nothing. The kernels' agreement with the reference
is checked by tests/test_kernels_registry.py; here the rule itself, on every host backend.
"""
import numpy as np
import pytest

from fastnlp import Word2Vec
from fastnlp.kernels import dispatch, registry
from fastnlp.kernels import word2vec as ops


def test_the_initial_input_vectors_are_gensims_for_the_same_seed():
    gensim = pytest.importorskip("gensim", reason="gensim is the library whose initialisation is compared")
    # Every count distinct, so both libraries order the vocabulary the same way.
    sentences = [[f"w{i}"] * (i + 1) for i in range(12)] * 3
    ours = Word2Vec(vector_size=24, min_count=1, seed=5, progress=False).build_vocab(sentences)
    theirs = gensim.models.Word2Vec(vector_size=24, min_count=1, seed=5, workers=1)
    theirs.build_vocab(sentences)
    assert ours.vocabulary.id_to_word == list(theirs.wv.index_to_key)
    assert np.array_equal(ours.syn0, theirs.wv.vectors)
    assert np.abs(ours.syn0).max() > 0.75 / 24  # [-1, 1) / D, not word2vec.c's [-0.5, 0.5) / D


def _host_backends(op):
    found = {name: impl for name, impl in registry.implementations(op).items()
             if name in dispatch.CPU_BACKENDS and not isinstance(impl, str)}
    found["reference"] = getattr(ops.reference, op)
    return found


def _saturated_problem(hs, sign):
    """Two words, one sentence "0 1": every score is sign * 4 * 4 * 25 = +-400, far past max_exp."""
    V, D = 2, 4
    syn0 = np.full((V, D), 4.0, np.float32)
    syn1neg = np.full((V if not hs else 0, D), sign * 25.0, np.float32)
    syn1 = np.full((1 if hs else 0, D), sign * 25.0, np.float32)
    counts = np.array([5, 5])
    huffman = (np.zeros((V, 1), np.int32), np.array([[0], [1]], np.uint8), np.ones(V, np.int32)) if hs else None
    tables = ops.Tables.build(counts, sample=0, negative=0 if hs else 3, huffman=huffman)
    tokens, ends = np.array([0, 1], np.int32), np.array([2], np.int64)
    return (syn0, syn1neg, syn1, tokens, ends, *tables.arrays(), 1, 0 if hs else 3, 0.5, 0.5, 11, False)


@pytest.mark.parametrize("op", ["word2vec_cbow", "word2vec_sg"])
@pytest.mark.parametrize("hs", [False, True], ids=["negative", "hs"])
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["above", "below"])
def test_a_saturated_score_trains_nothing_and_counts_its_loss(op, hs, sign):
    losses = {}
    for backend, function in _host_backends(op).items():
        args = _saturated_problem(hs, sign)
        before = [w.copy() for w in args[:3]]
        losses[backend], trained = function(*args)
        assert trained == 2, backend
        for name, old, new in zip(("syn0", "syn1neg", "syn1"), before, args[:3]):
            assert np.array_equal(old, new), f"{backend}: a saturated score changed {name}"
    # Each term still counts |f| = 400 when its target is scored the wrong way, else 0.
    if hs:  # word 0's one branch has label 1, word 1's label 0: one of the two is wrong either way
        expected = {400.0}
    elif sign < 0:  # both targets (label 1) scored -400; the negatives are right
        expected = {800.0}
    else:  # the targets are right; each negative drawn (up to 3 a word, never the target) costs 400
        expected = {400.0 * k for k in range(1, 7)}
    assert set(losses.values()) <= expected and len(set(losses.values())) == 1, losses
