"""The fused pair for one decoder step (Q = 1) on every compiled backend: the shapes that take
attention_ops.h's AVX-512 loops (float32, H a multiple of 16) and those that do not, aligned and
misaligned inputs, and both directions of the walk over the batch items (each call flips it)."""
import numpy as np
import pytest

import fastnlp
from fastnlp import kernels
from fastnlp.kernels.attention import reference
from fastnlp.kernels.memory import aligned_copy

SHAPES = [(1, 1, 16), (5, 7, 80), (17, 29, 256), (3, 5, 320), (2, 3, 512), (4, 29, 17), (3, 4, 33), (0, 3, 16)]


def _misaligned(x, elements):
    """A copy of ``x`` whose data starts ``elements`` past a 64-byte boundary."""
    buffer = aligned_copy(np.zeros(x.size + elements, x.dtype))
    out = buffer[elements:].reshape(x.shape)
    out[...] = x
    return out


@pytest.mark.parametrize("backend", ["cython", "numba"])
@pytest.mark.parametrize("N, T, H", SHAPES)
@pytest.mark.parametrize("offset", [0, 1, 4])
def test_one_query_pair_matches_the_reference_in_both_walks(backend, N, T, H, offset):
    reason = fastnlp.available_backends()[backend]
    if reason is not None:
        pytest.skip(f"{backend}: {reason}")
    rng = np.random.default_rng(N * 1000 + T * 10 + H)
    hs = _misaligned(rng.standard_normal((N, T, H)).astype(np.float32), offset)
    h = (rng.standard_normal((N, H)) / np.sqrt(max(H, 1))).astype(np.float32)
    dc = rng.standard_normal((N, H)).astype(np.float32)
    a_want, c_want = reference.attention_context(hs, h[:, None])
    dhs_want, dh_want = reference.attention_context_backward(hs, h[:, None], a_want, dc[:, None])
    with fastnlp.use_backend(backend):
        runs = []
        for _ in range(2):
            runs.append((*kernels.attention_context(hs, h), *kernels.attention_context_backward(hs, h, a_want[:, 0], dc)))
            kernels.attention_context(hs, h)  # one call more: the second pair walks each op the other way
    for got, want in zip(runs[0], (a_want[:, 0], c_want[:, 0], dhs_want, dh_want[:, 0])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=3e-5)
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)
