"""scatter_add and embedding_gather: every backend equals the NumPy reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnlp
from fastnlp.kernels import embedding_gather, scatter_add
from kernel_harness import assert_matches_reference, backend_params, run_on

FLOATS = st.sampled_from([np.float32, np.float64])


@st.composite
def scatter_problems(draw):
    dtype = draw(FLOATS)
    vocab = draw(st.integers(1, 40))
    width = draw(st.sampled_from([1, 2, 3, 7, 16, 33, 300]))
    idx_shape = draw(st.sampled_from([(0,), (1,), (5,), (60,), (0, 4), (3, 4), (7, 9)]))
    # Small vocabularies make duplicate ids the common case.
    idx = draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(0, vocab - 1)))
    idx = idx.astype(draw(st.sampled_from([np.int32, np.int64, np.uint16])))
    scale = draw(st.sampled_from([1.0, 1e-30, 1e30]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dout = (rng.standard_normal(idx_shape + (width,)) * scale).astype(dtype)
    dW = (rng.standard_normal((vocab, width))).astype(dtype)
    return dW, idx, dout


@pytest.mark.parametrize("backend", backend_params())
@settings(max_examples=60, deadline=None)
@given(problem=scatter_problems())
def test_scatter_add_equals_reference(backend, problem):
    dW, idx, dout = problem
    expected = dW.copy()
    with fastnlp.use_backend("numpy"):
        scatter_add(expected, idx, dout)
    result = run_on(backend, scatter_add, dW.copy(), idx, dout)
    assert_matches_reference(result, expected, backend, dW.dtype)


@pytest.mark.parametrize("backend", backend_params())
@settings(max_examples=40, deadline=None)
@given(problem=scatter_problems())
def test_embedding_gather_equals_reference(backend, problem):
    W, idx, _ = problem
    result = run_on(backend, embedding_gather, W, idx)
    assert result.shape == idx.shape + (W.shape[1],)
    np.testing.assert_array_equal(result, W[idx.astype(np.int64)])


def test_scatter_add_returns_dW_and_sums_duplicates(cpu_backend):
    dW = np.zeros((3, 2), np.float32)
    out = scatter_add(dW, np.array([2, 0, 2, 2]), np.ones((4, 2), np.float32))
    assert out is dW
    np.testing.assert_array_equal(dW, [[1, 1], [0, 0], [3, 3]])


def test_scatter_add_into_non_contiguous_dW(cpu_backend):
    base = np.zeros((4, 6), np.float64)
    view = base[:, ::2]
    scatter_add(view, np.array([[1, 3], [1, 0]]), np.ones((2, 2, 3)))
    np.testing.assert_array_equal(base[:, ::2], [[1] * 3, [2] * 3, [0] * 3, [1] * 3])
    np.testing.assert_array_equal(base[:, 1::2], 0)


def test_dout_of_another_float_dtype_is_cast(cpu_backend):
    dW = np.zeros((2, 2), np.float32)
    scatter_add(dW, np.array([1]), np.full((1, 2), 0.5, np.float64))
    assert dW.dtype == np.float32 and dW[1, 0] == 0.5


# Bad input: a clear exception that names the problem, and dW untouched.

@pytest.mark.parametrize("bad_id, message", [(10, "id 10 is out of range for 10 rows"),
                                             (-1, "id -1 is negative")])
def test_out_of_range_ids_raise_index_error_naming_the_id(cpu_backend, bad_id, message):
    dW = np.zeros((10, 3), np.float32)
    with pytest.raises(IndexError, match=message):
        scatter_add(dW, np.array([1, bad_id, 2]), np.ones((3, 3), np.float32))
    assert not dW.any()
    with pytest.raises(IndexError, match=message):
        embedding_gather(dW, np.array([[bad_id]]))


def test_huge_id_does_not_crash(cpu_backend):
    with pytest.raises(IndexError, match="out of range"):
        scatter_add(np.zeros((4, 2)), np.array([2**62]), np.ones((1, 2)))


def test_float_ids_raise_type_error(cpu_backend):
    with pytest.raises(TypeError, match="ids must be an integer array, got dtype float64"):
        scatter_add(np.zeros((4, 2)), np.array([1.0, 2.0]), np.ones((2, 2)))
    with pytest.raises(TypeError, match="integer"):
        embedding_gather(np.zeros((4, 2)), np.array([True]))


def test_shape_mismatch_raises_value_error(cpu_backend):
    with pytest.raises(ValueError, match=r"dout has shape \(3, 2\) but idx shape \(3,\) and dW width 4"):
        scatter_add(np.zeros((5, 4)), np.array([0, 1, 2]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="must be 2-D"):
        scatter_add(np.zeros(5), np.array([0]), np.ones((1,)))


def test_unsupported_weight_dtype_raises(cpu_backend):
    with pytest.raises(TypeError, match="float32 or float64, got dtype int64"):
        scatter_add(np.zeros((3, 2), np.int64), np.array([0]), np.ones((1, 2)))
    with pytest.raises(TypeError, match="dout must be a float array"):
        scatter_add(np.zeros((3, 2)), np.array([0]), np.ones((1, 2), np.int32))


def test_read_only_dW_is_refused(cpu_backend):
    dW = np.zeros((3, 2))
    dW.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        scatter_add(dW, np.array([0]), np.ones((1, 2)))


@pytest.mark.parametrize("backend", backend_params())
@settings(max_examples=60, deadline=None)
@given(ids=hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-2**63, 2**63 - 1)))
def test_id_range_equals_min_max(backend, ids):
    """The range check that guards every unchecked kernel, including int64 extremes."""
    from fastnlp.kernels import dispatch
    from kernel_harness import to_backend

    with fastnlp.use_backend(backend):
        module = dispatch.backend_module(to_backend(ids, backend))
        assert module.id_range(to_backend(ids, backend)) == (int(ids.min()), int(ids.max()))
