"""cooccurrence and ppmi: every backend equals the NumPy reference; the book's results."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

import fastnlp
from fastnlp.count import create_co_matrix, ppmi_dense
from fastnlp.kernels import cooccurrence, ppmi
from fastnlp.kernels import harness

BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(why is not None, reason=f"{name}: {why}"))
            for name, why in fastnlp.available_backends().items()
            if name not in fastnlp.kernels.dispatch.LIBRARY_BACKENDS]  # matrix libraries do not count

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from book_loops import book_create_co_matrix  # noqa: E402  the book's loop: the truth for uniform counts

BOOK_CORPUS = np.array([0, 1, 2, 3, 4, 1, 5, 6])  # "you say goodbye and i say hello ."
BOOK_C = np.array([[0, 1, 0, 0, 0, 0, 0],
                   [1, 0, 1, 0, 1, 1, 0],
                   [0, 1, 0, 1, 0, 0, 0],
                   [0, 0, 1, 0, 1, 0, 0],
                   [0, 1, 0, 1, 0, 0, 0],
                   [0, 1, 0, 0, 0, 0, 1],
                   [0, 0, 0, 0, 0, 1, 0]])
# The book prints these (ch. 2, ppmi of the example above, 3 significant digits).
BOOK_PPMI_ROW0 = [0.0, 1.807, 0.0, 0.0, 0.0, 0.0, 0.0]
BOOK_PPMI_ROW1 = [1.807, 0.0, 0.807, 0.0, 0.807, 0.807, 0.0]


def book_ppmi(C, eps=1e-8):
    """The book's ppmi loop (S products in float so large counts cannot overflow int32)."""
    M = np.zeros_like(C, dtype=np.float32)
    N = np.sum(C)
    S = np.sum(C, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(C.shape[0]):
            for j in range(C.shape[1]):
                pmi = np.log2(C[i, j] * N / (float(S[j]) * float(S[i])) + eps)
                M[i, j] = max(0, pmi)
    return M


def _tolerance(op, backend):
    """The op's declared tolerance (the one rule the generated tests use too)."""
    return fastnlp.kernels.registry.spec(op).tolerance_for(np.float64, backend)


@st.composite
def corpora(draw):
    vocab = draw(st.integers(1, 30))
    n = draw(st.sampled_from([1, 2, 3, 10, 57, 400]))
    corpus = draw(hnp.arrays(np.int64, n, elements=st.integers(0, vocab - 1)))
    corpus = corpus.astype(draw(st.sampled_from([np.int32, np.int64, np.uint16])))
    window = draw(st.sampled_from([1, 2, 3, 5, 12]))
    weighting = draw(st.sampled_from(["uniform", "harmonic"]))
    boundary = draw(st.one_of(st.none(), st.integers(0, vocab - 1)))
    return corpus, vocab, window, weighting, boundary


def test_book_example_exactly(cpu_backend):
    C = cooccurrence(BOOK_CORPUS, 7, window=1)
    assert isinstance(C, sparse.csr_matrix) and C.dtype == np.float32 and C.has_sorted_indices
    np.testing.assert_array_equal(C.toarray(), BOOK_C)
    np.testing.assert_array_equal(create_co_matrix(BOOK_CORPUS, 7), BOOK_C)
    M = ppmi(C)
    np.testing.assert_allclose(M.toarray()[0], BOOK_PPMI_ROW0, atol=1e-3)
    np.testing.assert_allclose(M.toarray()[1], BOOK_PPMI_ROW1, atol=1e-3)
    np.testing.assert_allclose(M.toarray(), book_ppmi(BOOK_C), rtol=1e-6)
    np.testing.assert_allclose(ppmi_dense(BOOK_C), book_ppmi(BOOK_C), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None)
@given(problem=corpora())
def test_cooccurrence_equals_reference(backend, problem):
    corpus, vocab, window, weighting, boundary = problem
    kwargs = dict(weighting=weighting, boundary_id=boundary, dtype=np.float64)
    with fastnlp.use_backend("numpy"):
        expected = cooccurrence(corpus, vocab, window, **kwargs)
    with fastnlp.use_backend(backend):
        result = harness.to_host(cooccurrence(harness.to_backend(corpus, backend), vocab, window, **kwargs))
    result.sort_indices()
    harness.validate_result(result.indptr, expected.indptr, 0, 0, "indptr")
    harness.validate_result(result.indices, expected.indices, 0, 0, "indices")
    harness.validate_result(result.data, expected.data, *_tolerance("cooccurrence", backend), "counts")
    if weighting == "uniform" and boundary is None:
        np.testing.assert_array_equal(result.toarray(), book_create_co_matrix(corpus, vocab, window))


@settings(max_examples=40, deadline=None)
@given(problem=corpora(), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_chunked_stream_equals_whole_array(problem, cuts):
    corpus, vocab, window, weighting, boundary = problem
    whole = cooccurrence(corpus, vocab, window, weighting=weighting, boundary_id=boundary)
    chunks = np.split(corpus, sorted(c for c in cuts if c <= len(corpus)))
    chunked = cooccurrence(iter(chunks), vocab, window, weighting=weighting, boundary_id=boundary)
    np.testing.assert_array_equal(chunked.indices, whole.indices)
    np.testing.assert_array_equal(chunked.indptr, whole.indptr)
    np.testing.assert_allclose(chunked.data, whole.data, rtol=1e-6)


def test_memory_mapped_chunks(tmp_path):
    corpus = np.random.default_rng(0).integers(0, 50, 10_000).astype(np.int32)
    np.save(tmp_path / "ids.npy", corpus)
    mapped = np.load(tmp_path / "ids.npy", mmap_mode="r")
    chunks = (mapped[i:i + 999] for i in range(0, len(mapped), 999))
    assert (cooccurrence(chunks, 50, 3) != cooccurrence(corpus, 50, 3)).nnz == 0


def test_a_list_of_ids_is_one_corpus_and_a_list_of_arrays_is_chunks():
    ids = [0, 1, 2, 3, 4, 1, 5, 6]
    np.testing.assert_array_equal(cooccurrence(ids, 7).toarray(), BOOK_C)
    np.testing.assert_array_equal(cooccurrence([np.array(ids[:3]), np.array(ids[3:])], 7).toarray(), BOOK_C)


def test_boundaries_stop_pairs_but_keep_the_boundary_in_its_sentence():
    eos = 9
    C = cooccurrence(np.array([1, 2, eos, 3, 4]), 10, window=2, boundary_id=eos).toarray()
    assert C[2, 3] == 0 and C[eos, 3] == 0 and C[2, 4] == 0  # nothing across <eos>
    assert C[1, 2] == 1 and C[2, eos] == 1 and C[1, eos] == 1 and C[3, 4] == 1


def test_harmonic_weights_by_distance():
    C = cooccurrence(np.array([0, 1, 2]), 3, window=2, weighting="harmonic").toarray()
    assert C[0, 1] == 1 and C[0, 2] == 0.5 and C[2, 0] == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(problem=corpora(), alpha=st.sampled_from([None, 0.75, 1.0]))
def test_ppmi_equals_reference_and_dense(backend, problem, alpha):
    corpus, vocab, window, weighting, boundary = problem
    C = cooccurrence(corpus, vocab, window, weighting=weighting, boundary_id=boundary)
    if C.nnz == 0:
        return
    with fastnlp.use_backend("numpy"):
        expected = ppmi(C, alpha=alpha, dtype=np.float64)
    with fastnlp.use_backend(backend):
        result = harness.to_host(ppmi(harness.to_backend(C, backend), alpha=alpha, dtype=np.float64))
    harness.validate_result(result.toarray(), expected.toarray(), *_tolerance("ppmi_values", backend), "ppmi")
    if alpha is None:
        np.testing.assert_allclose(expected.toarray(), ppmi_dense(C.toarray()), rtol=1e-6, atol=1e-7)


def test_ppmi_smoothing_raises_rare_context_pmi_less():
    C = cooccurrence(np.random.default_rng(1).zipf(1.5, 3000) % 40, 40, 2)
    plain, smooth = ppmi(C), ppmi(C, alpha=0.75)
    assert plain.shape == smooth.shape and (smooth.toarray() >= 0).all()
    assert not np.allclose(plain.toarray(), smooth.toarray())


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(window=0), ValueError, "window must be positive"),
    (dict(window=300), ValueError, "at most 255"),
    (dict(weighting="cosine"), ValueError, "weighting must be"),
    (dict(boundary_id=12), IndexError, "boundary_id 12 is out of range"),
    (dict(window=1.5), TypeError, "window must be an integer"),
])
def test_bad_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        cooccurrence(np.array([0, 1, 2]), 10, **kwargs)


def test_bad_corpora_raise(cpu_backend):
    with pytest.raises(ValueError, match="empty corpus"):
        cooccurrence(np.array([], np.int32), 10)
    with pytest.raises(ValueError, match="empty corpus"):
        cooccurrence(iter([]), 10)
    with pytest.raises(IndexError, match="token id 10 is out of range for 10 rows"):
        cooccurrence(np.array([0, 10]), 10)
    with pytest.raises(IndexError, match="token id -3 is negative"):
        cooccurrence(np.array([0, -3]), 10)
    with pytest.raises(TypeError, match="token ids must be an integer array"):
        cooccurrence(np.array([0.0, 1.0]), 10)
    with pytest.raises(ValueError, match="1-D"):
        cooccurrence(np.zeros((2, 2), np.int32), 10)


def test_ppmi_bad_input():
    with pytest.raises(TypeError, match="scipy.sparse"):
        ppmi(np.eye(3))
    with pytest.raises(ValueError, match="square"):
        ppmi(sparse.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="all zeros"):
        ppmi(sparse.csr_matrix((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        ppmi(sparse.csr_matrix(-np.eye(3)))
    with pytest.raises(ValueError, match="alpha"):
        ppmi(sparse.csr_matrix(np.eye(3)), alpha=2)


def test_ppmi_leaves_its_input_untouched():
    C = cooccurrence(np.array([0, 1, 1]), 2, 1)
    before = (C.data.copy(), C.indices.copy(), C.indptr.copy())
    ppmi(C)  # the diagonal entry becomes 0 and is dropped from the result, not from C
    for a, b in zip(before, (C.data, C.indices, C.indptr)):
        np.testing.assert_array_equal(a, b)
