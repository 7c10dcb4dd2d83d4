"""The initialisation of fastText's input rows (``fasttext_uniform_rows``): fastText's and gensim's
distribution, filled in place by position, the same bits on every backend and in any split, and
the model's matrix drawn with it. (The op against its reference on generated inputs is in the
generated tests, tests/test_kernels_registry.py.)"""
import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import dispatch, registry
from fastnlp.kernels._numba_common import combine_seeds
from fastnlp.kernels.fasttext import reference, uniform_rows


def _host_backends():
    """The backends that implement the op and load here (the reference included)."""
    return [b for b, impl in registry.implementations("fasttext_uniform_rows").items()
            if b in dispatch.HOST_BACKENDS and not isinstance(impl, str)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_are_uniform_in_plus_minus_one_over_divisor(dtype):
    rows = np.empty((20_000, 50), dtype)
    uniform_rows(rows, 0, 50, seed=3)
    scaled = rows.astype(np.float64) * 50
    assert scaled.min() >= -1 and scaled.max() < 1
    assert abs(scaled.mean()) < 0.01 and abs(scaled.std() - 1 / np.sqrt(3)) < 0.01
    if dtype is np.float64:  # every value is (u * 2**-23 - 1) / 50 for a 24-bit u
        u = (rows * 50 + 1) * 2**23
        assert np.abs(u - np.round(u)).max() < 1e-6 and len(np.unique(np.round(u))) > 0.95 * u.size  # 2**24 values
    # a histogram of ten bins is flat (each about a tenth of a million values)
    counts, _ = np.histogram(scaled, bins=10, range=(-1, 1))
    assert np.all(np.abs(counts / scaled.size - 0.1) < 0.003), counts
    # neighbouring elements (the two halves of one draw) are uncorrelated
    flat = scaled.reshape(-1)
    assert abs(np.corrcoef(flat[0::2], flat[1::2])[0, 1]) < 0.01


@pytest.mark.parametrize("backend", _host_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slices_in_any_order_equal_the_whole_matrix_on_every_backend(backend, dtype):
    whole = np.empty((41, 7), dtype)  # odd width: slices start and end in the middle of a draw
    reference.fasttext_uniform_rows(whole, 0, 7.0, 2**64 - 1)
    pieces = np.full_like(whole, np.nan)
    with dispatch.use_backend(backend):
        for begin, end in ((30, 41), (0, 1), (1, 2), (2, 17), (17, 30)):
            uniform_rows(pieces[begin:end], begin, 7, 2**64 - 1)
    assert pieces.tobytes() == whole.tobytes()


def test_seeds_and_divisors_give_their_own_values():
    a, b, c = (np.empty((100, 10), np.float32) for _ in range(3))
    uniform_rows(a, 0, 10, seed=1)
    uniform_rows(b, 0, 10, seed=2)
    uniform_rows(c, 0, 5, seed=1)
    assert not np.any(a == b)
    np.testing.assert_allclose(c, 2 * a, rtol=1e-6)


def test_bad_inputs_are_refused_naming_the_problem():
    rows = np.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        uniform_rows(np.zeros((4, 3), np.int32), 0, 3, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        uniform_rows([[0.0]], 0, 3, 1)
    with pytest.raises(ValueError, match="2-D"):
        uniform_rows(np.zeros(4, np.float32), 0, 3, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        uniform_rows(np.zeros((4, 6), np.float32)[:, ::2], 0, 3, 1)
    read_only = rows.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        uniform_rows(read_only, 0, 3, 1)
    with pytest.raises(ValueError, match="first_row"):
        uniform_rows(rows, -1, 3, 1)
    with pytest.raises(ValueError, match="first_row"):
        uniform_rows(rows, 2**62, 3, 1)
    with pytest.raises(TypeError):
        uniform_rows(rows, 1.5, 3, 1)
    for divisor in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="divisor"):
            uniform_rows(rows, 0, divisor, 1)
    for divisor in ("3", None, True):
        with pytest.raises(TypeError, match="divisor"):
            uniform_rows(rows, 0, divisor, 1)
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed"):
            uniform_rows(rows, 0, 3, seed)
    assert not rows.any()  # nothing written by a refused call


def test_model_draws_its_input_rows_with_it_and_zeros_its_outputs():
    sentences = [["walk", "talks", "jumped", "reads"], ["write", "printing", "walk", "reads"]] * 20
    model = fastnlp.FastText(vector_size=12, bucket=500, min_count=1, seed=7, progress=False)
    model.build_vocab(sentences)
    V = len(model.vocabulary)
    expected = np.empty((V + 500, 12), np.float32)
    reference.fasttext_uniform_rows(expected, 0, 12.0, combine_seeds(7))
    assert model.syn0.tobytes() == expected.tobytes()
    assert np.abs(model.syn0).max() <= 1 / 12 and not model.syn1neg.any()
    other = fastnlp.FastText(vector_size=12, bucket=500, min_count=1, seed=8, progress=False).build_vocab(sentences)
    assert not np.any(other.syn0 == model.syn0)
