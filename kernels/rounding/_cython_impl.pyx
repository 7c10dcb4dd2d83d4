# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython loop of round_to_format (inputs validated, see __init__.py): fastnlp/rounding.h per element,
without the GIL."""
import numpy as np
from libc.stdint cimport uint64_t


cdef extern from "fastnlp/rounding.h" nogil:
    double fastnlp_round_one(double v, uint64_t i, int man_bits, int emin, double max_finite, int subnormals,
                             int overflow, int stochastic, uint64_t seed)


def round_to_format(x, int man_bits, int emin, double max_finite, bint subnormals, int overflow, bint stochastic,
                    seed):
    out = np.empty_like(x)
    cdef uint64_t s = <uint64_t>int(seed)
    cdef Py_ssize_t i, n = x.size
    cdef const float[::1] x32
    cdef float[::1] out32
    cdef const double[::1] x64
    cdef double[::1] out64
    if n == 0:
        return out
    if x.dtype == np.float32:
        x32, out32 = x.ravel(), out.ravel()
        with nogil:
            for i in range(n):
                out32[i] = <float>fastnlp_round_one(x32[i], i, man_bits, emin, max_finite, subnormals, overflow,
                                                    stochastic, s)
    else:
        x64, out64 = x.ravel(), out.ravel()
        with nogil:
            for i in range(n):
                out64[i] = fastnlp_round_one(x64[i], i, man_bits, emin, max_finite, subnormals, overflow,
                                             stochastic, s)
    return out
