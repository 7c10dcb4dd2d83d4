# cython: language_level=3, boundscheck=False, wraparound=False
"""float32 rows rounded to bfloat16 or float16 (to nearest, ties to even: NumPy's and
ml_dtypes' bits), for autocast's operands (kernels/gemm/_autocast.py).

Not an op: the conversion every 16-bit product does to its float32 operands. oneDNN's reorder
converts a large matrix fastest, but each call costs ~5 us of set-up, and a recurrent step's
operand is small (20 x 650): this call is one typed loop over fastnlp/half.h's row conversions
(AVX512-BF16's vcvtneps2bf16 and F16C / AVX-512 vcvtps2ph where the CPU has them).
"""
from libc.stdint cimport uint16_t

cdef extern from "fastnlp/half.h":
    void fastnlp_narrow_bf16_fast(const float* src, uint16_t* dst, Py_ssize_t n) nogil
    void fastnlp_narrow_f16(const float* src, uint16_t* dst, Py_ssize_t n) nogil


def narrow_rows(const float[:, :] src, uint16_t[:, ::1] dst, bint bf16):
    """``dst[i, j] = round(src[i, j])``: ``src`` a float32 matrix whose rows are contiguous,
    ``dst`` the uint16 view of a C-contiguous bfloat16 (``bf16``) or float16 matrix of its shape."""
    cdef Py_ssize_t i, rows = src.shape[0], cols = src.shape[1]
    if dst.shape[0] != rows or dst.shape[1] != cols:
        raise ValueError(f"narrow_rows: dst of shape {(dst.shape[0], dst.shape[1])} for src of shape {(rows, cols)}")
    if cols > 1 and src.strides[1] != sizeof(float):
        raise ValueError("narrow_rows: the rows of src must be contiguous")
    if rows == 0 or cols == 0:
        return
    with nogil:
        for i in range(rows):
            _narrow_row(&src[i, 0], &dst[i, 0], cols, bf16)


cdef inline void _narrow_row(const float* src, uint16_t* dst, Py_ssize_t n, bint bf16) noexcept nogil:
    if bf16:
        fastnlp_narrow_bf16_fast(src, dst, n)
    else:
        fastnlp_narrow_f16(src, dst, n)


def narrow_rows_summing(const float[:, ::1] src, uint16_t[:, ::1] dst, float[::1] sums, bint bf16):
    """:func:`narrow_rows` of a C-contiguous ``src``, and ``sums`` set to its column sums
    (float32, from 0 adding the rows in order) in the same pass over ``src``."""
    cdef Py_ssize_t i, j, rows = src.shape[0], cols = src.shape[1]
    if dst.shape[0] != rows or dst.shape[1] != cols or sums.shape[0] != cols:
        raise ValueError(f"narrow_rows_summing: dst of shape {(dst.shape[0], dst.shape[1])} and sums of "
                         f"{sums.shape[0]} for src of shape {(rows, cols)}")
    with nogil:
        for j in range(cols):
            sums[j] = 0
        for i in range(rows):
            _narrow_row(&src[i, 0], &dst[i, 0], cols, bf16)
            for j in range(cols):
                sums[j] += src[i, j]
