"""Arrays whose data starts on a 64-byte boundary (a cache line, one AVX-512 vector).

NumPy takes large arrays from malloc, which returns addresses 16 bytes past a 64-byte boundary
about half the time, and then every row a kernel streams with 64-byte vector loads or stores
crosses cache lines. At the date task's attention size (N 128, T 29, H 256, float32) that costs the
fused forward 60 -> 77 us and the backward 92 -> 113 us (the same C loops, aligned against
misaligned buffers). So the outputs of the compiled ops, and the layer outputs that feed them
(TimeLSTM's states), are allocated here; CuPy arrays are aligned by CuPy's allocator already.

Large blocks are also reused. A training step makes the same large arrays every iteration (the
softmax's 700 x 10,000 exponentials, the LSTM's gates), and malloc hands a request of a size it
has just freed back to the kernel and maps it again (glibc's mmap threshold), so every iteration
page-faulted its 28 MB afresh: with the transparent huge pages NumPy asks for, BetterRnnlm's
``exp_row_sums`` took 15-28 ms on a new buffer against 5 ms on one it had written before. A
block of POOL_MIN_BYTES to POOL_MAX_BYTES that no array uses any more (its reference count says
so) is handed out again for a request of the same size; at most POOL_MAX_FREE_BYTES stay held
while unused, and :func:`release_cached_blocks` lets them go.
"""
from __future__ import annotations

import math
import operator
import sys
import threading

import numpy as np

ALIGNMENT = 64
POOL_MIN_BYTES = 1 << 20  # smaller requests stay with malloc, which reuses freed memory below its mmap threshold
POOL_MAX_BYTES = 1 << 26  # larger blocks stay with malloc: their page faults are small beside their use
POOL_MAX_FREE_BYTES = 1 << 27  # unused blocks held for reuse, at most (BetterRnnlm leaves ~90 MB)
POOL_MAX_BLOCKS = 96  # blocks tracked (in use or not; a BetterRnnlm step holds ~50); the oldest is let go first


def aligned_empty(shape, dtype=np.float32, xp=np):
    """``xp.empty(shape, dtype)`` (C order) whose data starts on a 64-byte boundary."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    return _aligned_in(shape, dtype, _empty_block)


def _empty_block(nbytes):
    """An uninitialised uint8 block: the pool's for the sizes it keeps (the array inside it is
    ALIGNMENT bytes smaller), else NumPy's."""
    if POOL_MIN_BYTES <= nbytes - ALIGNMENT <= POOL_MAX_BYTES:
        return _pooled_block(nbytes)
    return np.empty(nbytes, dtype=np.uint8)


def _zeroed_block(nbytes):
    """A zeroed uint8 block of its own (calloc: pages are zeroed as they are touched)."""
    return np.zeros(nbytes, dtype=np.uint8)


def _aligned_in(shape, dtype, block):
    """An array of ``shape`` and ``dtype`` starting on a 64-byte boundary inside the uint8 array
    ``block(nbytes)`` returns (ALIGNMENT bytes more than the array needs)."""
    dtype = np.dtype(dtype)
    shape = (operator.index(shape),) if np.isscalar(shape) else tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    array = block(nbytes + ALIGNMENT)
    start = -array.__array_interface__["data"][0] % ALIGNMENT  # ~1 us; .ctypes builds an object
    return array[start:start + nbytes].view(dtype).reshape(shape)


_pool: list = []  # uint8 blocks handed out by aligned_empty, oldest first
_pool_lock = threading.Lock()


def _references(block) -> int:
    return sys.getrefcount(block)


def _is_free(i) -> bool:
    """Whether no array uses ``_pool[i]``: every array made from a block, views included, holds
    a reference to the block itself (NumPy points them there), so its count reads no more than
    that of a block only the pool holds."""
    return _references(_pool[i]) <= _FREE_REFERENCES


def _free_references():
    """What _is_free reads for a block only the pool holds, read through _is_free's own path,
    or -1 (nothing ever counts as free: no reuse) unless a view of the block is seen to keep it
    in use on this interpreter and dropping the view frees it."""
    global _FREE_REFERENCES
    _pool.append(np.empty(64, np.uint8))
    try:
        _FREE_REFERENCES = _references(_pool[0])  # as _is_free reads it
        view = _pool[0][8:16]
        held = not _is_free(0)
        del view
        if held and _is_free(0):
            return _FREE_REFERENCES
        return -1
    finally:
        _pool.clear()


_FREE_REFERENCES = -1
_FREE_REFERENCES = _free_references()


def _pooled_block(nbytes):
    """A uint8 block of ``nbytes``: an unused one of that size from the pool, else a new one."""
    with _pool_lock:
        for i in range(len(_pool)):
            if _pool[i].nbytes == nbytes and _is_free(i):
                block = _pool.pop(i)
                _pool.append(block)  # most recently used last
                return block
        block = np.empty(nbytes, np.uint8)
        _pool.append(block)
        _trim_pool()
        return block


def _trim_pool():
    """Let go of the oldest blocks beyond POOL_MAX_BLOCKS, and of unused ones beyond POOL_MAX_FREE_BYTES."""
    while len(_pool) > POOL_MAX_BLOCKS:
        del _pool[0]
    _let_go_of_unused(POOL_MAX_FREE_BYTES)


def _let_go_of_unused(keep_bytes: int) -> int:
    """Drop the oldest unused blocks until at most ``keep_bytes`` of them stay; the bytes dropped."""
    free = [i for i in range(len(_pool)) if _is_free(i)]
    held = sum(_pool[i].nbytes for i in free)
    released = 0
    for i in free:  # oldest first
        if held - released <= keep_bytes:
            break
        released += _pool[i].nbytes
        _pool[i] = None
    _pool[:] = [block for block in _pool if block is not None]
    return released


def release_cached_blocks() -> int:
    """Let go of every large block the pool holds that no array uses (their memory returns to
    malloc at once); returns the bytes released."""
    with _pool_lock:
        return _let_go_of_unused(0)


def aligned_empty_like(array):
    """An uninitialised array of ``array``'s shape and dtype (C order), 64-byte aligned."""
    dtype, size = array.dtype, array.size
    if size * dtype.itemsize >= POOL_MIN_BYTES or ALIGNMENT % dtype.itemsize:
        return aligned_empty(array.shape, dtype)
    # One allocation and one slice: the compiled ops call this right after streaming megabytes
    # through the caches, where every NumPy-level step costs ~10 us (the attention pair's
    # outputs: 41-51 us through aligned_empty's general path, 25-32 this way). NumPy's data is
    # aligned to at least the itemsize, so the offset to the next 64-byte boundary is whole elements.
    block = np.empty(size + ALIGNMENT // dtype.itemsize, dtype)
    start = -block.__array_interface__["data"][0] % ALIGNMENT // dtype.itemsize
    return block[start:start + size].reshape(array.shape)


def aligned_zeros_like(array):
    """Zeros of ``array``'s shape and dtype on a 64-byte boundary, in its layout (a transposed
    view gets a transposed block), for what lives as long as a model: parameters and their
    gradients. Never from the pool. AMX products write a gradient 16 bytes past a boundary
    28% slower (bf16, 650 x 700 x 2600 into float32: 2.79 against 2.18 ms), and NumPy's
    large arrays start there about half the time. Other arrays (CuPy's): ``zeros_like``."""
    if type(array) is not np.ndarray:
        from .dispatch import array_module

        return array_module(array).zeros_like(array)
    transposed = array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous
    out = aligned_zeros(array.shape[::-1] if transposed else array.shape, array.dtype)
    return out.T if transposed else out


def aligned_zeros(shape, dtype=np.float32):
    """``np.zeros(shape, dtype)`` (C order) on a 64-byte boundary, never from the pool (see
    :func:`aligned_zeros_like`)."""
    return _aligned_in(shape, dtype, _zeroed_block)


def aligned_array(values):
    """``values`` (a NumPy array) copied into :func:`aligned_zeros`' memory (C order): a
    parameter's initial values."""
    out = aligned_zeros(values.shape, values.dtype)
    out[...] = values
    return out


def memory_signature(a):
    """Where and how an array views memory (host or device): equal signatures mean the same
    elements in the same order."""
    interface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    return interface["data"][0], tuple(a.shape), tuple(a.strides), a.dtype.str


def aligned_copy(array, xp=np):
    """A C-ordered copy of ``array`` (any strides) whose data starts on a 64-byte boundary."""
    out = aligned_empty(array.shape, array.dtype, xp)
    out[...] = array
    return out
