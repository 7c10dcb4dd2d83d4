"""Mixed precision for the matrix products, as PyTorch's CPU autocast does them.

    from fastnlp.kernels.gemm import autocast, autocast_dtype, clear_autocast_cache

    with autocast("bf16"):          # every float32 gemm: bf16 operands, float32 sums, float32 out
        loss = model.forward(x, t)
        model.backward()
    optimizer.update(...)           # outside the block: nothing cached survives it

Inside ``autocast("bf16")`` each :func:`~fastnlp.kernels.gemm.gemm` call whose operands are
float32 (one or both; a bfloat16 one stays as it is) rounds them to bfloat16 (to nearest even),
multiplies with float32 accumulation and writes float32: a new float32 array, or ``out``
(float32) written or, with ``accumulate=True``, added to. The layers need no change: their
forward products, per-step products and weight gradients (``dW += x.T @ dout``) all run this
way, as PyTorch's autocast runs ``matmul`` and its backward. The result equals gemm of the
bf16-rounded operands (the op's bf16 contract: float32 sums of exact products). float64
operands are left alone (float64 in, float64 out, as PyTorch's autocast leaves double), so are
CuPy (device) arrays: autocast is for host products. ``autocast(None)`` turns it off inside a
block; blocks nest; the setting is a ``contextvars`` variable, so it belongs to the thread or
asyncio task that entered the block (a new thread starts without it).

"fp16" (IEEE half, ``np.float16``) is accepted as well: operands round to float16 and the
product accumulates in float32 (MKL's ``cblas_gemm_f16f16f32``, or float32 arithmetic on the
exactly widened values where MKL is absent). float16 overflows above 65504 and loses small
gradients: training in it needs loss scaling, which is the caller's business.

The cache of converted weights
------------------------------
Converting a 650 x 2600 float32 weight costs as much memory traffic as one recurrent step's
product (20 x 650 x 2600), and the recurrent layers multiply the same weight at each of 35
steps. So the 16-bit copy of an operand is kept and reused while all of this holds:

* it is the same array object (looked up by ``id``, confirmed by a weak reference to the
  object, its shape and strides; a dead object's entry is dropped when it dies, so neither a
  recycled ``id`` nor an activation that is gone can match, and copies do not outlive their
  arrays);
* the cache is the one of the current outermost ``autocast`` block of that dtype: a new block
  starts empty, leaving the block drops it (PyTorch's rule);
* :func:`clear_autocast_cache` has not been called since: it invalidates every cached copy in
  every thread (a global generation number) and frees the current ones. The trainer calls it
  after each optimizer update;
* a fixed sample of the operand's float32 values (``GUARD_SAMPLES`` positions spread over it,
  first and last included) is bitwise what it was when the copy was made: a tripwire, checked
  on every reuse (about 2 us), that catches any in-place change touching the sample, which
  dense updates (SGD, momentum, Adam, weight decay; a refilled activation buffer) always do.

The rule, then: **an array that a product in a block has read must not change in place inside
that block unless clear_autocast_cache() follows** (in the normal layer path each training step
is its own block, or the trainer clears after the update, so this holds by construction). A
change that misses every sampled position (a few elements edited by hand) is not seen before
the next clear or block. Only 2-D operands of at least ``CACHE_MIN_SIZE`` elements are kept
(smaller ones convert in less time than a lookup saves); ``autocast(..., cache=False)`` keeps
none.
"""
from __future__ import annotations

import contextlib
import contextvars
import weakref

import numpy as np

from ..memory import aligned_empty

FLOAT32 = np.dtype(np.float32)
FLOAT16 = np.dtype(np.float16)
try:
    from ml_dtypes import bfloat16 as _bfloat16

    BFLOAT16 = np.dtype(_bfloat16)
except ImportError:
    BFLOAT16 = None

_NAMES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16"}
SUPPORTED = ("bf16", "fp16")

CACHE_MIN_SIZE = 1 << 14  # elements: below this a conversion costs about what a lookup does
GUARD_SAMPLES = 32
# Below this many elements ml_dtypes / NumPy convert faster than a oneDNN reorder's call.
_REORDER_MIN_SIZE = 2048


class _State:
    """What a block set: the 16-bit dtype (None: autocast off) and the caches by dtype, shared
    with the blocks nested in it."""

    __slots__ = ("low", "caches")

    def __init__(self, low, caches):
        self.low, self.caches = low, caches


_current: contextvars.ContextVar = contextvars.ContextVar("fastnlp_gemm_autocast", default=None)
_generation = 0  # bumped by clear_autocast_cache(): entries of older generations are never used


def _resolve(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = _NAMES.get(dtype.strip().lower())
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        name = name if name in ("bfloat16", "float16") else None
    if name is None:
        raise ValueError(f"autocast: unsupported dtype {dtype!r}; supported: 'bf16' (bfloat16), "
                         f"'fp16' (float16), or None to turn autocast off")
    if name == "bfloat16":
        if BFLOAT16 is None:
            raise ValueError("autocast('bf16') needs ml_dtypes (pip install ml_dtypes)")
        return BFLOAT16
    return FLOAT16


@contextlib.contextmanager
def autocast(dtype="bf16", *, cache: bool = True):
    """Run every float32 matrix product inside the block with ``dtype`` operands ("bf16" or
    "fp16"; None: off) and float32 accumulation and results. ``cache=False`` converts every
    operand at every call (see the module's notes on the cache)."""
    low = _resolve(dtype)
    parent = _current.get()
    caches = parent.caches if parent is not None else {}
    owned = None
    if low is not None:
        if not cache:
            caches = dict(caches)
            caches[low] = None
        elif caches.get(low) is None:  # the outermost block of this dtype owns a new cache
            caches = dict(caches)
            caches[low] = owned = _Cache()
    token = _current.set(_State(low, caches))
    try:
        yield
    finally:
        _current.reset(token)
        if owned is not None:  # its copies go now, not whenever the garbage collector runs
            for entry in owned.entries.values():
                _release(entry)
            owned.entries.clear()


def autocast_dtype():
    """The 16-bit dtype products are autocast to here (``ml_dtypes.bfloat16`` or ``np.float16``
    as a NumPy dtype), or None outside autocast."""
    state = _current.get()
    return None if state is None else state.low


def clear_autocast_cache() -> None:
    """Forget every cached 16-bit copy of an operand, in every thread; call it after changing
    weights in place (the optimizer's update) inside an autocast block."""
    global _generation
    _generation += 1
    state = _current.get()
    if state is not None:
        for cache in state.caches.values():
            if cache is not None:
                for entry in cache.entries.values():
                    _release(entry)
                cache.entries.clear()


def cache_info() -> dict:
    """``{dtype name: number of cached copies}`` of the current block (for tests and profiling)."""
    state = _current.get()
    if state is None:
        return {}
    return {low.name: len(cache.entries) for low, cache in state.caches.items() if cache is not None}


# --- what gemm calls -------------------------------------------------------------------------

def active():
    """The current state when autocast is on, else None (one context variable read)."""
    state = _current.get()
    return state if state is not None and state.low is not None else None


def cast_operands(state, a, b, trans_a, trans_b):
    """``(a, b, trans_a, trans_b, entry)`` with float32 host operands converted to the block's
    dtype (their row-major layout, transposed views becoming the flags), ``entry`` the cache
    entry of ``b`` when it was cached (for :func:`packed_product`); anything else unchanged."""
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        return a, b, trans_a, trans_b, None
    low = state.low
    da, db = a.dtype, b.dtype
    if not ((da is FLOAT32 or da == low) and (db is FLOAT32 or db == low)) or (da == low and db == low):
        return a, b, trans_a, trans_b, None  # float64, other dtypes, already 16-bit: as they are
    if (trans_a is not True and trans_a is not False) or (trans_b is not True and trans_b is not False):
        return a, b, trans_a, trans_b, None  # gemm's checks name the problem
    if a.ndim < 2 or b.ndim < 2:
        return a, b, trans_a, trans_b, None
    cache = state.caches.get(low)
    if da is FLOAT32:
        a, trans_a, _ = _operand(a, trans_a, low, cache)
    entry = None
    if db is FLOAT32:
        b, trans_b, entry = _operand(b, trans_b, low, cache)
    return a, b, trans_a, trans_b, entry


class _Cache:
    __slots__ = ("entries", "__weakref__")

    def __init__(self):
        self.entries = {}


class _Entry:
    __slots__ = ("ref", "shape", "strides", "low", "flip", "positions", "sample", "generation", "packed")


def _release(entry) -> None:
    """Drop a cache entry's copies now. An entry and the weakref whose callback names it form a
    reference cycle, which only the cyclic garbage collector frees, and it seldom runs in a
    training loop: without this, every weight's stale bf16 copy and packed form stayed alive
    (BetterRnnlm in bf16-mixed grew by ~50 MB a step)."""
    if entry is not None:
        entry.low = entry.packed = None


def _operand(x, trans, low, cache):
    if x.ndim != 2:
        return _convert_stack(x, trans, low) + (None,)
    keep = cache is not None and x.size >= CACHE_MIN_SIZE
    if keep:
        entry = cache.entries.get(id(x))
        if entry is not None:
            if (entry.ref() is x and entry.generation == _generation and x.shape == entry.shape
                    and x.strides == entry.strides and _sample(x, entry.positions) == entry.sample):
                return entry.low, trans ^ entry.flip, entry
            _release(cache.entries.pop(id(x), None))
    from . import _as_row_major

    rows, flipped = _as_row_major(x, trans)
    converted = _convert(rows, low)
    if keep and (rows is x or flipped != trans):  # x itself or its transpose, not a copy
        return converted, flipped, _remember(cache, x, converted, flipped != trans)
    return converted, flipped, None


def _remember(cache, x, converted, flip):
    """A new cache entry: ``converted`` is x's 16-bit copy (of its transpose when ``flip``)."""
    _release(cache.entries.pop(id(x), None))
    entry = _Entry()
    # The callback holds the cache weakly and the entry by id: no reference cycle through
    # the weakref, so a dropped cache frees its copies at once (refcounting, not the GC).
    owner, key, entry_id = weakref.ref(cache), id(x), id(entry)

    def forget(_, owner=owner, key=key, entry_id=entry_id):
        live = owner()
        if live is not None and id(live.entries.get(key)) == entry_id:
            _release(live.entries.pop(key))

    entry.ref = weakref.ref(x, forget)
    entry.shape, entry.strides, entry.low = x.shape, x.strides, converted
    entry.flip = flip
    entry.positions = _positions(x.size)
    entry.sample = _sample(x, entry.positions)
    entry.generation = _generation
    entry.packed = None
    cache.entries[key] = entry
    return entry


def column_sums_and_cast(x):
    """Inside a block with a cache: ``x.sum(axis=0)`` of the float32 matrix ``x`` (C-contiguous,
    at least CACHE_MIN_SIZE elements), its 16-bit copy made in the same pass and kept in the
    cache for the products that read ``x`` next. None where that does not apply (autocast off,
    no cache, another dtype or layout, the compiled loop not built): the caller sums as usual.
    For a gradient that feeds a bias and two products (TimeAffine's backward: 700 x 10,000 at
    one thread, 4.3 ms for oneDNN's conversion and the column sums, 3.2 ms in one pass)."""
    state = active()
    if state is None or type(x) is not np.ndarray or x.dtype is not FLOAT32 or x.ndim != 2:
        return None
    cache = state.caches.get(state.low)
    if cache is None or x.size < CACHE_MIN_SIZE or not x.flags.c_contiguous or _narrow() is None:
        return None
    from .._half_convert import narrow_rows_summing
    from ..threads import column_sums

    converted = aligned_empty(x.shape, state.low)
    bits, bf16 = converted.view(np.uint16), state.low == BFLOAT16
    # threads.column_sums' fixed row blocks (the same result whatever the thread count), each
    # block's rows rounded into the copy as they are summed
    sums = column_sums(x, lambda begin, end, out: narrow_rows_summing(x[begin:end], bits[begin:end], out, bf16))
    _remember(cache, x, converted, False)
    return sums


def _positions(size):
    count = min(GUARD_SAMPLES, size)
    # spread over the array, not evenly spaced (a strided update would dodge a regular grid)
    positions = (np.arange(count, dtype=np.int64) * 2654435761) % size
    positions[0], positions[-1] = 0, size - 1
    return positions


def _sample(x, positions):
    return x.ravel(order="K").take(positions).tobytes()  # 'K': a view for C- and F-contiguous x


def _convert(x, low):
    """A C-contiguous ``low`` copy of the float32 matrix ``x`` (rows contiguous)."""
    out = aligned_empty(x.shape, low)  # AMX products read aligned operands faster (see gemm's _check_out)
    _convert_into(x, out)
    return out


def _convert_into(x, out):
    """``out[...] = x`` rounded to nearest even: the compiled row loop below _NARROW_MAX_SIZE
    elements, oneDNN's reorder above (it splits large matrices over the threads), NumPy /
    ml_dtypes where neither is there."""
    if x.size < _NARROW_MAX_SIZE and x.flags.c_contiguous:
        narrow = _narrow()
        if narrow is not None:
            narrow(x, out.view(np.uint16), out.dtype == BFLOAT16)
            return
    if x.size >= _REORDER_MIN_SIZE and x.flags.c_contiguous:
        reorder = _reorder()
        if reorder is not None:
            reorder(x, out)
            return
    np.copyto(out, x, casting="unsafe")  # ml_dtypes' / NumPy's round to nearest even


# Below this many elements the compiled loop of kernels/_half_convert.pyx beats oneDNN's reorder
# (one thread, AMX Xeon: 20 x 650 in 1.6 against 5.5 us, 20 x 2600 4.1 against 7.5, 700 x 650
# 75 against 85); above, the reorder's threads win.
_NARROW_MAX_SIZE = 1 << 17


def _narrow():
    """kernels._half_convert.narrow_rows, or None when the extension was not built or the user
    chose the NumPy backend (the references only)."""
    function = _reorder_state.get("narrow", False)
    if function is False:
        try:
            from .._half_convert import narrow_rows as function
        except ImportError:
            function = None
        _reorder_state["narrow"] = function
    if function is None:
        return None
    from .. import dispatch

    return None if dispatch.chosen_backend() == "numpy" else function


def _convert_stack(x, trans, low):
    """A stack (..., rows, cols): a shared matrix broadcast over the batch is converted once."""
    from . import _as_row_major

    x, trans = _as_row_major(x, trans)
    lead = x.ndim - 2
    if all(s == 0 for s in x.strides[:lead]):
        return np.broadcast_to(_convert(x[(0,) * lead], low), x.shape), trans
    x = np.ascontiguousarray(x)
    return _convert(x.reshape(-1, x.shape[-1]), low).reshape(x.shape), trans


_reorder_state = {}


def _reorder():
    """oneDNN's conversion (about 10x ml_dtypes' speed), unless oneDNN is missing or the user
    chose the NumPy backend (no optional library then)."""
    from .. import dispatch

    if dispatch.chosen_backend() == "numpy":
        return None
    function = _reorder_state.get("function", False)
    if function is False:
        try:
            from . import onednn_impl

            function = onednn_impl.convert if onednn_impl.HAS_REORDER else None
        except (ImportError, OSError):
            function = None
        _reorder_state["function"] = function
    return function


_packing = {}


def _bf16_packing():
    """mkl_impl where MKL packs bf16 weights and runs the per-step bf16 products here (chosen by
    the user, or calibrated fastest for them), else None. Where MKL has no bf16 instructions to
    use (an AMD CPU, on which it dispatches to its AVX2 path, or an ISA cap) its packed product
    is emulated: at the AVX2 cap on the AMX Xeon the step ran 55 GFLOP/s there against 89 on
    oneDNN's AVX512-BF16 path, so the calibration's choice decides."""
    mkl = _packing.get("mkl", False)
    if mkl is False:
        try:
            from . import mkl_impl

            mkl = mkl_impl if mkl_impl.HAS_BF16_PACK else None
        except (ImportError, OSError):
            mkl = None
        _packing["mkl"] = mkl
    if mkl is None:
        return None
    from .. import registry

    return mkl if registry.backend_for("gemm", variant=_BF16_STEP, dtype=BFLOAT16) == "mkl" else None


def packs_cached_weights(state) -> bool:
    """Whether per-step products on a cached weight run pre-packed under ``state`` (bf16 on MKL):
    a transposed weight is then packed as it is, with no transposed copy."""
    return state.low == BFLOAT16 and state.caches.get(state.low) is not None and _bf16_packing() is not None


def packed_product(entry, a, b, out, trans_a, trans_b, accumulate, M):
    """Run ``out (+)= op(a) @ op(b)`` on MKL with ``b`` pre-packed, ``b`` being the cached bf16
    weight of ``entry`` (as cast_operands returned them); False (nothing done) when that cannot
    be. For the per-step products (few rows, the same weight at every step): twice the speed of
    a product that packs the weight at every call."""
    if entry.low is not b or b.dtype != BFLOAT16:
        return False
    mkl = _bf16_packing()
    if mkl is None:
        return False
    mkl.gemm_bf16_packed_b(a, trans_a, _packed_weight(mkl, entry, trans_b, M), b.shape[1], out, accumulate)
    return True


def _packed_weight(mkl, entry, trans_b, rows):
    """The cached bf16 weight of ``entry`` packed by MKL for products of ``rows`` rows (packed
    once per entry, transposition and row count)."""
    packs = entry.packed
    if packs is None:
        packs = entry.packed = {}
    packed = packs.get((trans_b, rows))
    if packed is None:
        packed = packs[trans_b, rows] = mkl.pack_bf16_b(entry.low, trans_b, rows)
    return packed


def packed_step(state, b, rows, trans_b):
    """repeated_product's step inside a bf16 block whose weights MKL packs: ``step(a, out,
    accumulate=False)`` for ``out (+)= bf16(a) @ bf16(op(b))``, or None where that does not
    apply (no packing here, ``b`` too small to cache). ``b``'s bf16 copy comes from the block's
    cache and is packed once; each step rounds ``a`` into one preallocated bf16 buffer and calls
    MKL's packed product directly. Through gemm, a step of BetterRnnlm (20 rows) allocated a
    new buffer for ``a`` and went through the op's checks: 50-60 us a step on top of the
    product in training, 140 steps an iteration."""
    if not packs_cached_weights(state) or b.dtype is not FLOAT32 or b.ndim != 2:
        return None
    low, flipped, entry = _operand(b, trans_b, state.low, state.caches.get(state.low))
    if entry is None:
        return None
    mkl = _bf16_packing()
    packed = _packed_weight(mkl, entry, flipped, rows)
    K, N = (low.shape[1], low.shape[0]) if flipped else low.shape
    a_low = aligned_empty((rows, K), state.low)
    compute, ldb = mkl.gemm_bf16_packed_b, low.shape[1]

    def step(a, out, accumulate=False):
        if not (type(a) is np.ndarray and type(out) is np.ndarray and a.dtype is FLOAT32
                and out.dtype is FLOAT32 and a.shape == (rows, K) and out.shape == (rows, N)
                and a.flags.c_contiguous and out.flags.c_contiguous and out.flags.writeable
                and (accumulate is True or accumulate is False) and not np.may_share_memory(out, a)):
            from . import gemm

            return gemm(a, b, out, trans_b=trans_b, accumulate=accumulate)  # checks and names the problem
        _convert_into(a, a_low)
        compute(a_low, False, packed, ldb, out, accumulate)
        return out

    return step


# A weight gradient with many more rows than columns, dW.T = dout.T @ x (the tied softmax
# weight: 10000 x 700 x 650): MKL's bf16 product with a transposed left operand ran 210 GFLOP/s
# at 1 thread on the AMX Xeon, oneDNN's matmul primitive 564 (its call API 200; a transposing
# conversion instead costs 8.8 ms, more than it saves). Other transposed shapes (650 x 700 x
# 2600) are faster on the calibrated library, so only this class moves. With a later MKL (2026.2)
# the same product repeated back to back ran 950-990 on MKL against 630-680 on the primitive,
# yet in BetterRnnlm's training the layer's backward took 30 ms with the primitive and 34-38 on
# MKL, and round robin with cold caches the two were level: a calibration class timed in
# isolation would pick MKL, so this stays a rule. It applies only where the calibration ranks
# oneDNN's bf16 products ahead of NumPy's widened float32 ones: with AMX hidden (AVX512-BF16
# alone) the primitive ran 106 GFLOP/s against NumPy's 150.
_TALL_TN_RATIO = 4
_TALL_TN_MIN_ROWS = 4096


def special_product(cached_b, a, b, out, trans_a, trans_b, accumulate, M, N, K):
    """The autocast products that run better than on the calibrated library (2-D, bf16, fast
    path already checked): per-step products on a cached weight (pre-packed on MKL) and tall
    transposed weight gradients (oneDNN's matmul primitive). False when neither applies."""
    if cached_b is not None and M <= _STEP_ROWS:
        return packed_product(cached_b, a, b, out, trans_a, trans_b, accumulate, M)
    if trans_a and not trans_b and M >= _TALL_TN_MIN_ROWS and M >= _TALL_TN_RATIO * N:
        from .. import dispatch

        if dispatch.chosen_backend() in ("numpy", "mkl"):
            return False
        try:
            from . import onednn_impl
        except (ImportError, OSError):
            return False
        if not onednn_impl.HAS_PRIMITIVE or onednn_impl.BF16_NATIVE_REASON is not None:
            return False
        from .. import registry

        ranked = registry.spec("gemm").preference_for(_BF16_TRANSPOSED)
        if "onednn" not in ranked or registry.REFERENCE in ranked[:ranked.index("onednn")]:
            return False
        onednn_impl.gemm_primitive(a, b, out, trans_a, trans_b, accumulate)
        return True
    return False


_STEP_ROWS = 64  # gemm's STEP_ROWS: one time step of a recurrent model
_BF16_STEP = "bfloat16/step"  # the calibration's class of those products
_BF16_TRANSPOSED = "bfloat16/large_ta"  # the class of the other weight gradients
