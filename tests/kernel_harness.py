"""One harness for every op's equivalence tests: move inputs to a backend, run, compare with
the NumPy reference. CPU backends must match it exactly (same summation order); the GPU
(atomic adds in any order) within ``tol + |ref| * eps``."""
import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import BACKENDS

STATUS = fastnlp.available_backends()


def backend_params():
    """Every backend, the unavailable ones marked skip with the reason they do not load."""
    return [pytest.param(name, marks=pytest.mark.skipif(STATUS[name] is not None, reason=f"{name}: {STATUS[name]}"))
            for name in BACKENDS]


def to_backend(array, backend):
    if backend == "cupy":
        import cupy

        return cupy.asarray(array)
    return array


def to_host(array):
    return array.get() if type(array).__module__.startswith("cupy") else np.asarray(array)


def run_on(backend, op, *args):
    """Run ``op`` on ``backend`` with the given host inputs; return its result on the host."""
    moved = [to_backend(a, backend) if isinstance(a, np.ndarray) else a for a in args]
    with fastnlp.use_backend(backend):
        return to_host(op(*moved))


def assert_matches_reference(result, expected, backend, dtype):
    if backend == "cupy":
        eps = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
        np.testing.assert_allclose(result, expected, rtol=eps, atol=eps)
    else:
        np.testing.assert_array_equal(result, expected)
