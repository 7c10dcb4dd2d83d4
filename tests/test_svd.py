"""Truncated SVD: randomized and ARPACK agree with a dense SVD, sparse inputs stay sparse, bad input raises."""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from fastnlp.svd import truncated_svd, word_vectors_from_svd

METHODS = ["randomized", "arpack"]


def sparse_orthogonal(n, rng, block=4):
    """A sparse orthogonal n x n matrix: random orthogonal blocks on the diagonal, rows permuted."""
    blocks = [np.linalg.qr(rng.standard_normal((block, block)))[0] for _ in range(n // block)]
    Q = sp.block_diag(blocks, format="csr")
    return Q[rng.permutation(n)]


@pytest.fixture(scope="module")
def known_spectrum():
    """A 400 x 300 sparse matrix whose singular values are exactly ``s`` (geometric decay)."""
    rng = np.random.default_rng(0)
    s = 10.0 * 0.97 ** np.arange(300)
    D = sp.diags(s, shape=(400, 300))
    M = (sparse_orthogonal(400, rng) @ D @ sparse_orthogonal(300, rng)).tocsr()
    assert M.nnz < 0.05 * M.shape[0] * M.shape[1]
    return M, s


@pytest.fixture(scope="module")
def slow_spectrum():
    """Random sparse matrix: a Marchenko-Pastur-like, slowly decaying spectrum (the hard case)."""
    M = sp.random(1000, 800, density=0.02, random_state=np.random.default_rng(1), format="csr")
    return M, np.linalg.svd(M.toarray(), compute_uv=False)


@pytest.mark.parametrize("method", METHODS)
def test_known_spectrum_top_k(known_spectrum, method):
    M, s = known_spectrum
    k = 20
    U, S, Vt = truncated_svd(M, k, method=method)
    assert U.shape == (400, k) and S.shape == (k,) and Vt.shape == (k, 300)
    assert np.all(np.diff(S) <= 0), "singular values must be descending"
    np.testing.assert_allclose(S, s[:k], rtol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_slowly_decaying_spectrum_within_one_percent(slow_spectrum, method):
    M, s = slow_spectrum
    k = 50
    _, S, _ = truncated_svd(M, k, method=method)
    np.testing.assert_allclose(S, s[:k], rtol=1e-2)


def test_more_power_iterations_help_on_slow_spectrum(slow_spectrum):
    M, s = slow_spectrum
    k = 50
    errors = [abs(truncated_svd(M, k, method="randomized", n_iter=n)[1][-1] / s[k - 1] - 1) for n in (1, 5, 20)]
    assert errors[0] > errors[1] > errors[2]


def test_dense_input_matches_numpy():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((80, 60))
    U_ref, s_ref, Vt_ref = np.linalg.svd(A, full_matrices=False)
    for method in METHODS:
        U, S, Vt = truncated_svd(A, 10, method=method)
        np.testing.assert_allclose(S, s_ref[:10], rtol=1e-2)
        np.testing.assert_allclose(U.T @ U, np.eye(10), atol=1e-10)
        np.testing.assert_allclose(Vt @ Vt.T, np.eye(10), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_reconstruction_of_low_rank_matrix(method):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((200, 8)) @ rng.standard_normal((8, 150))
    U, S, Vt = truncated_svd(sp.csr_matrix(A), 8, method=method)
    np.testing.assert_allclose(U * S @ Vt, A, atol=1e-8)


def test_reconstruction_error_close_to_optimal(slow_spectrum):
    M, s = slow_spectrum
    k = 30
    U, S, Vt = truncated_svd(M, k)
    error = np.linalg.norm(M.toarray() - U * S @ Vt)
    optimal = np.sqrt(np.sum(s[k:] ** 2))  # Eckart-Young
    assert optimal <= error <= optimal * 1.01


def test_signs_are_deterministic_and_agree_across_methods(known_spectrum):
    M, _ = known_spectrum
    U1, S1, Vt1 = truncated_svd(M, 10, method="randomized")
    U2, S2, Vt2 = truncated_svd(M, 10, method="arpack")
    U3, _, _ = truncated_svd(M, 10, method="randomized", seed=0)
    np.testing.assert_array_equal(U1, U3)
    # The 3% gap between neighbouring values bounds how well the vectors are resolved.
    np.testing.assert_allclose(U1, U2, atol=1e-4)
    np.testing.assert_allclose(Vt1, Vt2, atol=1e-4)
    largest = U1[np.argmax(np.abs(U1), axis=0), np.arange(10)]
    assert np.all(largest > 0)


@pytest.mark.parametrize("method", METHODS)
def test_huge_sparse_matrix_is_never_densified(method):
    n = 20000  # dense float64 would be 3.2 GB
    rng = np.random.default_rng(4)
    rows, cols = rng.integers(0, n, 30000), rng.integers(0, n, 30000)
    M = sp.csr_matrix((rng.random(30000), (rows, cols)), shape=(n, n))
    tracemalloc.start()
    try:
        U, S, Vt = truncated_svd(M, 5, method=method)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert U.shape == (n, 5) and Vt.shape == (5, n)
    assert peak < 100e6, f"peak memory {peak / 1e6:.0f} MB suggests a dense copy"


def test_float32_input_keeps_float32_and_dtype_overrides(known_spectrum):
    M, s = known_spectrum
    M32 = M.astype(np.float32)
    U, S, Vt = truncated_svd(M32, 10)
    assert U.dtype == S.dtype == Vt.dtype == np.float32
    np.testing.assert_allclose(S, s[:10], rtol=1e-4)
    U, S, Vt = truncated_svd(M32, 10, dtype=np.float64)
    assert U.dtype == S.dtype == Vt.dtype == np.float64
    assert truncated_svd(M.astype(np.int64), 3)[1].dtype == np.float64


def test_other_sparse_formats_accepted(known_spectrum):
    M, s = known_spectrum
    for converted in (M.tocoo(), M.tocsc(), sp.csr_array(M)):
        np.testing.assert_allclose(truncated_svd(converted, 5)[1], s[:5], rtol=1e-6)


@pytest.mark.parametrize("k", [0, -1, 300, 301, 2.5])
def test_bad_k_raises_naming_k_and_shape(known_spectrum, k):
    M, _ = known_spectrum
    with pytest.raises(ValueError, match=r"k") as info:
        truncated_svd(M, k)
    if isinstance(k, int):
        assert "(400, 300)" in str(info.value)


def test_unknown_method_raises(known_spectrum):
    with pytest.raises(ValueError, match="method"):
        truncated_svd(known_spectrum[0], 5, method="lanczos")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    A = np.ones((10, 8))
    A[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        truncated_svd(A, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        truncated_svd(sp.csr_matrix(A), 2)


def test_bad_shapes_and_options_raise():
    with pytest.raises(ValueError, match="2-D"):
        truncated_svd(np.ones(5), 1)
    with pytest.raises(ValueError, match="n_iter"):
        truncated_svd(np.eye(5), 2, n_iter=-1)
    with pytest.raises(ValueError, match="oversamples"):
        truncated_svd(np.eye(5), 2, oversamples=-1)
    with pytest.raises(ValueError, match="dtype"):
        truncated_svd(np.eye(5), 2, dtype=np.float16)


def test_word_vectors_from_svd_powers():
    rng = np.random.default_rng(5)
    U, S = rng.standard_normal((6, 3)), np.array([4.0, 2.0, 1.0])
    np.testing.assert_array_equal(word_vectors_from_svd(U, S, power=0), U)
    np.testing.assert_allclose(word_vectors_from_svd(U, S, power=0.5), U * np.sqrt(S))
    np.testing.assert_allclose(word_vectors_from_svd(U, S), U * S)
    assert word_vectors_from_svd(U.astype(np.float32), S.astype(np.float32), 0.5).dtype == np.float32
    with pytest.raises(ValueError, match="do not match"):
        word_vectors_from_svd(U, S[:2])
