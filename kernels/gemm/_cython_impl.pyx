# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""fastnlp's own bfloat16 matrix product on AMX tiles (amx_gemm.h; contract in __init__.py).

On the AMX Xeon at 1 thread the tiles' own loop runs 1,150-1,580 GFLOP/s; with both operands
repacked at each call the product is level with MKL 2026.2 timed back to back (900-1,130), and
ahead where a training step makes it, operands cold and the vocabulary on the wide side (1,042
against 857 at 700 x 650 x 10,000): the calibration decides per shape class. Only bfloat16: float32/float64 have no tile
instruction, and AMX-FP16 is not on the CPUs this project meets, so the registry sends other
dtypes to the libraries (OpSpec.lacks_dtype). Where the CPU lacks AMX-BF16, the kernel refuses
the tile data, or FASTNLP_MAX_ISA caps the instruction sets, ``gemm`` is absent and
``UNAVAILABLE`` says why.

Threads: as many as NumPy's BLAS (kernels/threads.py), each packing and multiplying its own
range of B's column tiles after A is packed; the packed copies are kept per thread between calls
(a fresh 13 MB buffer costs its page faults, 1.5 ms at 700 x 650 x 10,000).
"""
import threading

import numpy as np
from ml_dtypes import bfloat16

from libc.stdint cimport int64_t, uint16_t, uintptr_t

from .. import cpu
from ..threads import run_row_blocks

cdef extern from "amx_gemm.h" nogil:
    int fastnlp_amx_request()
    int64_t fastnlp_amx_tiles(int64_t n, int64_t size)
    void fastnlp_amx_pack_a(const uint16_t *a, int64_t lda, int trans, int64_t M, int64_t K, uint16_t *Ap,
                            int64_t mt0, int64_t mt1)
    void fastnlp_amx_pack_b(const uint16_t *b, int64_t ldb, int trans, int64_t K, int64_t N, uint16_t *Bp,
                            int64_t nt0, int64_t nt1)
    void fastnlp_amx_compute(const uint16_t *Ap, const uint16_t *Bp, float *C, int64_t ldc, int64_t M, int64_t N,
                             int64_t K, int64_t nt0, int64_t nt1, int accumulate)

_REASONS = {
    1: "built without AMX support (needs GCC 11 or later on x86-64 Linux)",
    2: "this CPU has no AMX-BF16 tiles",
    3: "the Linux kernel did not grant this process the AMX tile data (needs Linux 5.16 or later)",
}


def _unavailable():
    cap = cpu.isa_cap()
    if cap is not None:
        return f"{cpu.ISA_CAP_VARIABLE}={cap} hides AMX"
    return _REASONS.get(fastnlp_amx_request())


UNAVAILABLE = _unavailable()
_TILE = 512  # bf16 values in a tile
_BFLOAT16 = np.dtype(bfloat16)
_buffers = threading.local()


def _packed(name, size):
    """This thread's buffer of at least ``size`` uint16 values, 64-byte aligned."""
    held = getattr(_buffers, name, None)
    if held is None or held.size < size:
        raw = np.empty(size + 32, np.uint16)
        offset = (-raw.ctypes.data % 64) // 2
        held = raw[offset:offset + size]
        setattr(_buffers, name, held)
    return held


cdef int64_t _row_stride(x):
    """A stored matrix's row stride in values (the contract lets a single row's be anything)."""
    return x.strides[0] // 2 if x.shape[0] > 1 else x.shape[1]


cdef void _pack_a(a, bint trans, int64_t M, int64_t K, packed, int64_t mt0, int64_t mt1):
    cdef uintptr_t source = a.ctypes.data, target = packed.ctypes.data
    cdef int64_t lda = _row_stride(a)
    with nogil:
        fastnlp_amx_pack_a(<const uint16_t *>source, lda, trans, M, K, <uint16_t *>target, mt0, mt1)


cdef void _pack_b_and_multiply(b, bint trans, int64_t K, int64_t N, packed_a, packed_b, out, int64_t M,
                               int64_t nt0, int64_t nt1, bint accumulate):
    cdef uintptr_t source = b.ctypes.data, a_tiles = packed_a.ctypes.data, b_tiles = packed_b.ctypes.data
    cdef uintptr_t c = out.ctypes.data
    cdef int64_t ldb = _row_stride(b)
    cdef int64_t ldc = out.shape[1]
    with nogil:
        fastnlp_amx_pack_b(<const uint16_t *>source, ldb, trans, K, N, <uint16_t *>b_tiles, nt0, nt1)
        fastnlp_amx_compute(<const uint16_t *>a_tiles, <const uint16_t *>b_tiles, <float *>c, ldc, M, N, K,
                            nt0, nt1, accumulate)


def _product(a, b, out, bint trans_a, bint trans_b, bint accumulate):
    cdef int64_t M = out.shape[0], N = out.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int64_t MT = fastnlp_amx_tiles(M, 16), KT = fastnlp_amx_tiles(K, 32), NT = fastnlp_amx_tiles(N, 16)
    packed_a = _packed("a", MT * KT * _TILE)
    packed_b = _packed("b", NT * KT * _TILE)
    _pack_a(a, trans_a, M, K, packed_a, 0, MT)
    pairs = (NT + 1) // 2  # threads take whole 2-tile panels of columns

    def columns(begin, end):
        _pack_b_and_multiply(b, trans_b, K, N, packed_a, packed_b, out, M, 2 * begin, min(2 * end, NT), accumulate)

    if pairs > 1 and M * N * K >= (1 << 22):
        run_row_blocks(columns, pairs)
    else:
        columns(0, pairs)


def gemm(a, b, out, trans_a, trans_b, accumulate):
    if UNAVAILABLE is not None:  # the registry never sends a product here then
        raise RuntimeError(f"the AMX product cannot run: {UNAVAILABLE}")
    if a.dtype != _BFLOAT16 or b.dtype != _BFLOAT16 or out.dtype != np.float32:
        raise TypeError(f"the AMX product takes bfloat16 operands and a float32 out, got {a.dtype}, {b.dtype} "
                        f"and {out.dtype}; other dtypes run on a BLAS library")
    a, b = a.view(np.uint16), b.view(np.uint16)
    if out.ndim == 2:
        _product(a, b, out, trans_a, trans_b, accumulate)
        return
    for i in range(out.shape[0]):  # a batch stride of 0 (a shared operand) indexes the same matrix
        _product(a[i], b[i], out[i], trans_a, trans_b, accumulate)
