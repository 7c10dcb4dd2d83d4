"""The id-range check: the one pass over ids that guards every unchecked loop.

Every op family indexes rows by ids without bounds checks; ``validate.check_ids`` (beside this
folder) runs this op first, on whichever backend is active. The contract (every file in this
folder implements it)::

    id_range(ids) -> (min, max)     of a non-empty (N,) int64 array, as Python ints.
"""
from __future__ import annotations

import numpy as np

from .. import registry

# The GPU version is two CuPy reductions (ids.min(), ids.max()): no kernel source of its own.
CUDA_LIBRARY = "CuPy reductions"


def _id_range_examples():
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    return st.tuples(hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-2**63, 2**63 - 1)))


def _id_range_benchmark():
    """The check before CBOW's scatter-add: 100 x 10 context ids of a 10,000-word vocabulary."""
    return (np.random.default_rng(0).integers(0, 10000, 100 * 10).astype(np.int64),)


registry.register(registry.OpSpec(
    name="id_range", family="ids", doc="(min, max) of non-empty int64 ids",
    dtypes=(np.dtype(np.int64),), deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={np.dtype(np.int64): (0, 0)},
    examples=_id_range_examples, benchmark_args=_id_range_benchmark, dtype_of=lambda args: args[0].dtype))
