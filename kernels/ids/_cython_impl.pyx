# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython version of the id-range check: one pass without the GIL (contract in __init__.py)."""
from libc.stdint cimport int64_t


def id_range(const int64_t[::1] ids):
    """(min, max) of a non-empty int64 array in one pass."""
    cdef int64_t low = ids[0], high = ids[0], v
    cdef Py_ssize_t i
    with nogil:
        for i in range(1, ids.shape[0]):
            v = ids[i]
            if v < low:
                low = v
            elif v > high:
                high = v
    return int(low), int(high)
