"""Nearest neighbours (issue 17): exact search through kernels.gemm + kernels.topk, the topk
contract at its edges, and the optional approximate indexes (faiss, the ``ann`` extra)."""
import numpy as np
import pytest

import fastnlp
from fastnlp import WordVectors
from fastnlp.kernels import registry
from fastnlp.vectors import indexes, ranking


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


def _faiss_ivf_of(index):
    """faiss's IndexIVFFlat holding the same centroids and the same lists as our ``index``."""
    faiss = pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    from faiss.contrib.ivf_tools import add_preassigned

    quantizer = faiss.IndexFlatIP(index.centroids.shape[1])
    quantizer.add(index.centroids)
    reference = faiss.IndexIVFFlat(quantizer, index.centroids.shape[1], index.nlist, faiss.METRIC_INNER_PRODUCT)
    reference.is_trained = True
    lists = np.repeat(np.arange(index.nlist), np.diff(index.offsets))
    add_preassigned(reference, index.vectors, lists, index.ids)
    return reference, quantizer


def test_list_major_ivf_scan_finds_what_faiss_scans_in_the_same_lists(monkeypatch):
    """Our lists hold every word once, in the list faiss's quantizer assigns it to; for the
    same probes, the list-major scan (one batch, one query at a time, two threads) returns
    faiss's search_preassigned candidates: the same words (ties aside) and the same scores."""
    pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    wv = _clustered()
    wv.build_index("ivf", nlist=64, nprobe=5)
    index = wv._index
    assert index.centroids.shape == (64, 16) and index.vectors.shape == (4000, 16)
    assert sorted(index.ids.tolist()) == list(range(4000)) and index.offsets[-1] == 4000
    np.testing.assert_array_equal(index.vectors, wv.unit_vectors[index.ids])
    reference, quantizer = _faiss_ivf_of(index)
    assigned = quantizer.search(index.vectors, 1)[1][:, 0]
    np.testing.assert_array_equal(assigned, np.repeat(np.arange(64), np.diff(index.offsets)))
    queries = np.ascontiguousarray(wv.unit_vectors[100:160] + 0.01, dtype=np.float32)
    probes = index.probes(queries, 5)
    np.testing.assert_array_equal(probes, quantizer.search(queries, 5)[1])  # the lists faiss would choose
    reference.nprobe = 5
    faiss_scores, faiss_ids = reference.search_preassigned(queries, 10, probes, np.zeros(probes.shape, np.float32))
    ours_ids, ours_scores = index.candidates(queries, 10, threads=1)
    np.testing.assert_allclose(ours_scores, faiss_scores, rtol=1e-6, atol=1e-6)
    clear = np.abs(faiss_scores - faiss_scores[:, -1:]) > 1e-5  # not tied with the 10th: must match
    np.testing.assert_array_equal(np.where(clear, ours_ids, 0), np.where(clear, faiss_ids, 0))
    one_at_a_time = [index.candidates(queries[q:q + 1], 10, threads=1)[0][0] for q in range(3)]
    np.testing.assert_array_equal(one_at_a_time, ours_ids[:3])
    monkeypatch.setattr(indexes, "PARALLEL_MIN_SCORES", 1)  # split this small batch too
    two_ids, two_scores = index.candidates(queries, 10, threads=2)
    np.testing.assert_array_equal(two_ids, ours_ids)
    np.testing.assert_array_equal(two_scores, ours_scores)
    wv.set_index_params(nprobe=64)  # every list: the exact answer
    exact = WordVectors(wv.vectors, wv.words).most_similar(queries, top=10)
    assert [[w for w, _ in r] for r in wv.most_similar(queries, top=10)] == [[w for w, _ in r] for r in exact]


def test_ivf_returns_minus_one_where_the_probed_lists_hold_fewer_than_k():
    pytest.importorskip("faiss", reason="approximate indexes need faiss-cpu (the ann extra)")
    wv = _clustered(n=500)
    wv.build_index("ivf", nlist=20, nprobe=1)
    index = wv._index
    query = np.ascontiguousarray(wv.unit_vectors[:1])
    lst = index.probes(query, 1)[0, 0]
    size = int(index.offsets[lst + 1] - index.offsets[lst])
    ids, scores = index.candidates(query, size + 3)
    assert (ids[0, size:] == -1).all() and np.isneginf(scores[0, size:]).all()
    assert sorted(ids[0, :size].tolist()) == sorted(index.ids[index.offsets[lst]:index.offsets[lst + 1]].tolist())
    assert len(wv.most_similar(wv.vectors[0], top=size + 3)) == size  # the -1 slots are dropped


def test_ivf_scan_of_list_ranges_merges_to_the_whole_scan():
    """Threads scan ranges of lists: the best of each range's k, merged, are the whole scan's."""
    from fastnlp.kernels.ivf import _random_problem, ivf_scan

    args = _random_problem(np.random.default_rng(3), 9, 400, 8, 12, 5, 6, integers=True)
    queries, vectors, ids, offsets, probes, _, _, k = args
    whole_scores, whole_found = ivf_scan(queries, vectors, ids, offsets, probes, 0, 12, k)
    parts = [ivf_scan(queries, vectors, ids, offsets, probes, a, b, k) for a, b in ((0, 4), (4, 4), (4, 12))]
    scores = np.concatenate([p[0] for p in parts], axis=1)
    found = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((found, -scores), axis=1)[:, :k]
    np.testing.assert_array_equal(np.take_along_axis(found, order, axis=1), whole_found)
    np.testing.assert_array_equal(np.take_along_axis(scores, order, axis=1), whole_scores)
    assert (whole_found >= 0).any() and (probes == -1).any()


def test_ivf_scan_names_bad_input():
    from fastnlp.kernels.ivf import _random_problem, ivf_scan

    args = _random_problem(np.random.default_rng(0), 4, 50, 8, 5, 2, 3, integers=False)
    queries, vectors, ids, offsets, probes, first, last, k = args
    assert ivf_scan(*args)[0].shape == (4, 3)
    cases = [
        ((queries.astype(np.float64),) + args[1:], TypeError, "queries has dtype float64"),
        ((queries[:, :4],) + args[1:], ValueError, "queries have 4 dimensions, vectors 8"),
        ((np.where(queries > 1, np.nan, queries),) + args[1:], ValueError, "queries hold NaN or inf"),
        (args[:2] + (ids[:-1],) + args[3:], TypeError, "one per vector"),
        (args[:3] + (offsets[::-1].copy(),) + args[4:], ValueError, "offsets must rise from 0 to the 50 vectors"),
        (args[:4] + (probes + 5,) + args[5:], IndexError, "list id .* is out of range for 5 lists"),
        (args[:4] + (probes - 2,) + args[5:], IndexError, "list id -. is out of range"),
        (args[:4] + (probes[:2],) + args[5:], TypeError, "one row per query"),
        (args[:5] + (3, 2, k), ValueError, "0 <= first_list <= last_list <= 5, got 3:2"),
        (args[:5] + (0, 6, k), ValueError, "got 0:6"),
        (args[:5] + (0, 5.0, k), TypeError, "last_list must be an integer"),
        (args[:7] + (0,), ValueError, "k must be a positive integer"),
    ]
    for bad, error, match in cases:
        with pytest.raises(error, match=match):
            ivf_scan(*bad)


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
