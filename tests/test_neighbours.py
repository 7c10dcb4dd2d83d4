"""Nearest neighbours (issue 17): exact search through kernels.gemm + kernels.topk, the topk
contract at its edges, and the optional approximate indexes (faiss, the ``ann`` extra)."""
import numpy as np
import pytest

import fastnlp
from fastnlp import WordVectors
from fastnlp.kernels import registry
from fastnlp.vectors import ranking


def _wv(n=3000, dim=24, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return WordVectors(rng.standard_normal((n, dim)).astype(dtype), [f"w{i}" for i in range(n)])


def _brute(wv, query, top, skip=()):
    unit = wv.vectors.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    q = np.asarray(query, np.float64) / np.linalg.norm(query)
    scores = unit @ q
    scores[list(skip)] = -np.inf
    order = np.argsort(-scores, kind="stable")[:top]
    return [wv.words[i] for i in order]


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_topk_contract_ties_nan_inf(backend):
    impl = registry.implementations("topk")[backend]
    if isinstance(impl, str):
        pytest.skip(impl)
    scores = np.array([[1, 3, 3, np.nan, -np.inf, 3, 0.0, -0.0, np.inf, np.nan] + [2.0] * 20], np.float32)
    values, ids = impl(scores, 30)
    assert ids[0].tolist()[:5] == [8, 1, 2, 5, 10]  # inf, then the 3s by index, then the 2s
    assert ids[0].tolist()[-5:] == [6, 7, 4, 3, 9]  # 0.0 / -0.0 tie by index, -inf, NaNs last
    assert np.isnan(values[0, -2:]).all() and values[0, -3] == -np.inf
    np.testing.assert_array_equal(impl(scores, 3)[1], [[8, 1, 2]])


def test_topk_wrapper_checks_its_arguments():
    with pytest.raises(ValueError, match="between 1 and the 4"):
        fastnlp.kernels.topk(np.zeros((2, 4), np.float32), 5)
    with pytest.raises(TypeError, match="int32"):
        fastnlp.kernels.topk(np.zeros((2, 4), np.int32), 1)
    with pytest.raises(ValueError, match="2-D"):
        fastnlp.kernels.topk(np.zeros(4, np.float32), 1)
    values, ids = fastnlp.kernels.topk(np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)), 2)
    assert ids.tolist() == [[3, 2]] * 3 and ids.dtype == np.int64


def test_blocked_exact_search_equals_one_topk_over_all_scores(monkeypatch):
    """Blocks of rows and of queries (made tiny here) give the answer of one top-k over the
    whole score matrix, ties to the lower id included (duplicated vectors tie exactly)."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    vectors = base[rng.integers(0, 50, 700)]  # every vector many times: exact ties across blocks
    wv = WordVectors(vectors, [f"w{i}" for i in range(700)])
    queries = rng.standard_normal((37, 8)).astype(np.float32)
    monkeypatch.setattr(ranking, "ROW_BLOCK", 64)
    monkeypatch.setattr(ranking, "QUERY_BLOCK", 5)
    got = wv.most_similar(queries, top=25, exclude=["w3", "w400"])
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = (unit_q @ wv.unit_vectors.T).astype(np.float32)
    for row, result in zip(scores, got):
        row = row.copy()
        row[[3, 400]] = -np.inf
        ids = np.argsort(-row, kind="stable")[:25]
        assert [w for w, _ in result] == [wv.words[i] for i in ids]


def test_exact_search_runs_gemm_and_topk_not_argpartition(monkeypatch):
    """A batch is ranked by kernels.gemm + kernels.topk, once per block, never by a full sort."""
    wv = _wv()
    calls = {"gemm": 0, "topk": 0}
    import fastnlp.kernels as kernels

    real_gemm, real_topk = kernels.gemm, kernels.topk
    monkeypatch.setattr(kernels, "gemm", lambda *a, **k: calls.__setitem__("gemm", calls["gemm"] + 1) or real_gemm(*a, **k))
    monkeypatch.setattr(kernels, "topk", lambda *a, **k: calls.__setitem__("topk", calls["topk"] + 1) or real_topk(*a, **k))
    monkeypatch.setattr(np, "argpartition", lambda *a, **k: pytest.fail("argpartition called"))
    monkeypatch.setattr(np, "argsort", lambda *a, **k: pytest.fail("argsort called"))
    queries = wv.vectors[[3, 40, 77]] * np.array([[1.0], [7.0], [0.5]], dtype=np.float32)
    batch = wv.most_similar(queries, top=10)
    assert calls["gemm"] == 1 and calls["topk"] == 1  # 3000 words: one block
    monkeypatch.undo()
    for q, result in zip(queries, batch):
        assert [w for w, _ in result] == _brute(wv, q, 10)


def test_word_queries_exclude_inputs_and_name_unknown_words():
    wv = _wv()
    got = wv.most_similar("w5", top=10)
    assert [w for w, _ in got] == _brute(wv, wv["w5"], 10, skip=[5])
    with pytest.raises(KeyError, match="'zebra'"):
        wv.most_similar("zebra")


def test_float16_vectors_are_searched_in_float32():
    wv32 = _wv(dtype=np.float32)
    wv16 = WordVectors(wv32.vectors.astype(np.float16), wv32.words)
    got = wv16.most_similar("w7", top=5)
    expected = _brute(wv16, wv16["w7"].astype(np.float64), 5, skip=[7])
    assert [w for w, _ in got] == expected
    assert isinstance(got[0][1], float)
    batch = wv16.most_similar(wv32.vectors[:4], top=3)
    assert [r[0][0] for r in batch] == ["w0", "w1", "w2", "w3"]
    assert wv16.most_similar("w7", topn=None).dtype == np.float16


# ----- approximate indexes ------------------------------------------------------------------

def _clustered(n=4000, dim=16, seed=1):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    vectors = centres[rng.integers(0, 40, n)] + 0.3 * rng.standard_normal((n, dim))
    return WordVectors(vectors.astype(np.float32), [f"w{i}" for i in range(n)])


def test_build_index_without_faiss_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match=r'pip install "fastnlp\[ann\]"'):
        _wv(n=100).build_index("hnsw")
    with pytest.raises(ValueError, match="unknown index method"):
        _wv(n=100).build_index("lsh")
    assert _wv(n=100).build_index("exact").index_method == "exact"


@pytest.mark.parametrize("method, params", [("hnsw", {"M": 16, "ef_search": 128}), ("ivf", {"nlist": 32, "nprobe": 8}),
                                            ("ivf", {"nlist": 32, "nprobe": 8, "quantizer": "hnsw"})])
def test_approximate_index_finds_the_exact_neighbours(method, params):
    pytest.importorskip("faiss")
    wv = _clustered()
    queries = wv.vectors[:50] + 0.05
    exact = wv.most_similar(queries, top=10)
    assert wv.build_index(method, **params) is wv and wv.index_method == method
    approx = wv.most_similar(queries, top=10)
    recall = np.mean([len({w for w, _ in a} & {w for w, _ in e}) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9
    # a word query: the word itself and exclude= are never returned; unknown words are named
    got = wv.most_similar("w11", top=10, exclude=["w12"])
    assert len(got) == 10 and not {"w11", "w12"} & {w for w, _ in got}
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    with pytest.raises(KeyError, match="'zebra'"):
        wv.most_similar("zebra")
    single = wv.most_similar(queries[0], top=10)
    assert [w for w, _ in single] == [w for w, _ in approx[0]]
    np.testing.assert_allclose([x for _, x in single], [x for _, x in approx[0]], rtol=1e-5)
    assert wv.most_similar(positive=["w1", "w2"], negative=["w3"], top=5)
    with pytest.raises(TypeError, match="unknown parameters"):
        wv.build_index(method, bogus=1)
    wv.build_index("exact")
    assert wv.index_method == "exact" and wv.most_similar(queries, top=10) == exact
    with pytest.raises(ValueError, match="no approximate index"):
        wv.set_index_params(nprobe=3)


def test_ivf_probes_chosen_by_exact_search_match_faiss_own_quantizer():
    """quantizer="flat": the lists to probe come from fastnlp's exact search over the centroids
    (one gemm for the batch); faiss, choosing them itself, scans the same lists."""
    pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    wv = _clustered()
    wv.build_index("ivf", nlist=64, nprobe=5)
    index = wv._index
    assert index.centroids.shape == (64, 16)
    queries = np.ascontiguousarray(wv.unit_vectors[100:160] + 0.01, dtype=np.float32)
    ours_ids, ours_scores = index.candidates(queries, 10)
    faiss_scores, faiss_ids = index.index.search(queries, 10)
    np.testing.assert_array_equal(ours_ids, faiss_ids)
    np.testing.assert_allclose(ours_scores, faiss_scores, rtol=1e-6)
    wv.set_index_params(nprobe=64)  # every list: the exact answer
    exact = WordVectors(wv.vectors, wv.words).most_similar(queries, top=10)
    assert [[w for w, _ in r] for r in wv.most_similar(queries, top=10)] == [[w for w, _ in r] for r in exact]


@pytest.mark.parametrize("method, params, error, match", [
    ("ivf", {"quantizer": "lsh"}, ValueError, "quantizer must be one of 'flat', 'hnsw', got 'lsh'"),
    ("ivf", {"nlist": 0}, ValueError, "nlist must be a positive integer"),
    ("ivf", {"nlist": 600}, ValueError, "nlist must be between 1 and the 500 words"),
    ("ivf", {"nprobe": 2.5}, ValueError, "nprobe must be a positive integer"),
    ("ivf", {"seed": -1}, ValueError, "seed must be a non-negative integer"),
    ("ivf", {"train_size": 0}, ValueError, "train_size must be a positive integer"),
    ("hnsw", {"M": 0}, ValueError, "M must be a positive integer"),
    ("hnsw", {"ef_search": True}, ValueError, "ef_search must be a positive integer"),
    ("hnsw", {"nprobe": 4}, TypeError, r"unknown parameters \['nprobe'\]; it takes M, ef_construction, ef_search"),
])
def test_build_index_names_bad_parameters_and_keeps_exact_search(method, params, error, match):
    pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    wv = _clustered(n=500)
    wv.build_index("ivf", nlist=4)
    with pytest.raises(error, match=match):
        wv.build_index(method, **params)
    assert wv.index_method == "exact"  # a failed build leaves exact search, not the previous index


def test_set_index_params_takes_only_the_method_search_effort():
    pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    wv = _clustered(n=500)
    wv.build_index("hnsw", M=8, ef_construction=20)
    with pytest.raises(TypeError, match=r"hnsw index takes ef_search=, got \['nprobe'\]"):
        wv.set_index_params(nprobe=3)
    with pytest.raises(ValueError, match="ef_search must be a positive integer, got 0"):
        wv.set_index_params(ef_search=0)
    assert wv.set_index_params(ef_search=5) is wv
    assert len(wv.most_similar("w3", top=20)) == 20  # more than ef_search: widened for the call
