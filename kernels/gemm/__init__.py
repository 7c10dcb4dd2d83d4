"""Matrix products: one contract, run on the fastest matrix library of the machine at hand.

The recurrent, attention and softmax layers spend most of their time here, and the libraries
differ by CPU: NumPy's OpenBLAS, Intel's MKL and oneDNN (optional, ``pip install
"fastnlp[accel]"``), fastnlp's own bf16 product on AMX tiles (the Cython backend, where the CPU has
them), cuBLAS through CuPy on a GPU. None is fastest everywhere, so the choice is
measured: a short calibration at the models' shapes (``calibration.py``), cached per CPU,
library versions and thread count, picks an implementation per *shape class*; ``FASTNLP_BACKEND``
/ ``use_backend`` still force one.

The contract of the backend-level op (every implementation in this folder follows it):

    gemm(a, b, out, trans_a, trans_b, accumulate)
        a (M, K), or (K, M) stored when ``trans_a``; b (K, N), or (N, K) when ``trans_b``; or
        all three batched, (B, ., .), one product per batch item. ``out`` (M, N) / (B, M, N)
        is written: out = op(a) @ op(b), or ``out += op(a) @ op(b)`` with ``accumulate``.
        The last two axes of a and b are C-contiguous (the row stride of a single-row matrix
        may be anything); a batch stride may be anything, 0 too (a 2-D operand shared by the
        batch). ``out`` is C-contiguous and overlaps neither.
        a and b share one dtype: float32, float64, bfloat16 (``ml_dtypes``) or float16; out is
        float64 for float64 inputs and float32 otherwise (16-bit products accumulate in float32:
        a product of two bfloat16 or float16 values is exact in float32).
        M, N, K and B are never 0 (the wrapper handles empty products). Returns None.

The layers call :func:`gemm`, which validates once, turns transposed views into the trans
flags instead of copying, and accepts bfloat16 / float16 outputs for those inputs (rounded
once, at the end).
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..memory import aligned_empty
from ..validate import check_same_device

try:
    from ml_dtypes import bfloat16 as _bfloat16

    BFLOAT16 = np.dtype(_bfloat16)
except ImportError:  # ml_dtypes is a dependency; a broken install still multiplies float32/64
    BFLOAT16 = None

FLOAT32, FLOAT64, FLOAT16 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)
INPUT_DTYPES = (FLOAT32, FLOAT64) + ((BFLOAT16,) if BFLOAT16 is not None else ()) + (FLOAT16,)
HALF_INPUTS = tuple(d for d in INPUT_DTYPES if d.itemsize == 2)  # stored in 16 bits, summed in float32

# Shape classes the calibration measures separately. Products at or below SMALL_MACS
# multiply-adds are dominated by call overhead; a side of at most STEP_ROWS rows is one time
# step of a recurrent model (20 x 650 x 2600), where libraries' blocking differs most. Large
# products are told apart by which operand is read transposed, where libraries' kernels differ
# too: the weight gradients x.T @ dA ('large_ta') and the input gradients dA @ W.T ('large_tb').
# In float32 on the AMX Xeon oneDNN led the plain 700 x 650 x 2600 product (153 against 151
# GFLOP/s) but ran the weight gradient 650 x 700 x 2600 at 83 against MKL's 139. A product with
# the vocabulary on its output or inner side (WIDE_SIDE and more: the softmax layer's x @ W.T and
# dout @ W) is 'wide': there, in bf16, the AMX tiles led MKL (1,042 against 857 GFLOP/s at
# 700 x 650 x 10,000) where MKL led them at the LSTM's 700 x 650 x 2600.
SMALL_MACS = 1 << 20
STEP_ROWS = 64
WIDE_SIDE = 8192
SHAPE_CLASSES = ("small", "step", "large", "large_ta", "large_tb", "wide", "batched")

# On a GPU the product is cuBLAS's (cupy.matmul): no .cu source of this family's own.
CUDA_LIBRARY = "cuBLAS"
# Backends without a gemm of their own, and why: this loop would only call a BLAS library.
ABSENT = {
    "numba": "matrix products run on a BLAS library (numpy, mkl, onednn), not a Numba loop",
}
# The Cython gemm is fastnlp's own bf16 product on AMX tiles (_cython_impl.pyx, amx_gemm.h);
# the other dtypes have no tile instruction on these CPUs and run on a BLAS library.
_CYTHON_BF16_ONLY = "the Cython gemm is the bf16 product on AMX tiles; {} runs on a BLAS library"


def gemm(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False, out_dtype=None):
    """``op(a) @ op(b)`` on the fastest matrix library here, where ``op(x)`` is ``x.T`` when
    the matching ``trans_`` flag is set (``x.swapaxes(-1, -2)`` for batches).

    ``a`` and ``b`` are matrices or stacks of them (leading axes broadcast as in
    ``np.matmul``: a 2-D operand is shared by the whole batch), with one dtype: float32,
    float64, bfloat16 or float16. Transposed views (``x.T``, ``swapaxes(-1, -2)``) cost nothing: they
    become the flags. ``out`` receives the product (a new array when None); ``accumulate=True``
    adds it instead (``dW += x.T @ dout`` is ``gemm(x, dout, dW, trans_a=True,
    accumulate=True)``). The result dtype is float64 for float64 inputs and float32 for the
    others, or ``out_dtype`` / ``out``'s dtype where that is the 16-bit input dtype: products
    then accumulate in float32 and round once.
    """
    state = _autocast.active()  # one context variable read when autocast is off
    cached_b = None
    if state is not None:  # float32 operands become bf16 / fp16 (see _autocast.py)
        a, b, trans_a, trans_b, cached_b = _autocast.cast_operands(state, a, b, trans_a, trans_b)
    # The layers' common case, checked in a few attribute reads: a recurrent step's product
    # takes ~10 us, and the general path below would add a third to it.
    if (type(out) is np.ndarray and type(a) is np.ndarray and type(b) is np.ndarray and out_dtype is None
            and a.ndim == 2 and b.ndim == 2 and out.ndim == 2 and (trans_a is False or trans_a is True)
            and (trans_b is False or trans_b is True) and (accumulate is False or accumulate is True)):
        dtype = a.dtype
        if (dtype is b.dtype and (dtype is out.dtype and (dtype is FLOAT32 or dtype is FLOAT64)
                                  or (dtype is BFLOAT16 or dtype is FLOAT16) and out.dtype is FLOAT32)
                and a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous
                and out.flags.writeable):
            M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
            K_b, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
            if (K == K_b and out.shape == (M, N) and M and N and K
                    and not np.may_share_memory(out, a) and not np.may_share_memory(out, b)):
                variant = variant_of(dtype, None, M, N, K, trans_a, trans_b)
                if state is not None and dtype is BFLOAT16 and _autocast.special_product(
                        cached_b, a, b, out, trans_a, trans_b, accumulate, M, N, K):
                    return out
                registry.kernel("gemm", None, variant)(a, b, out, trans_a, trans_b, accumulate)
                return out
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        a, b = _check_arrays(a, b, out)
    if a.dtype != b.dtype or a.dtype not in INPUT_DTYPES:
        _refuse_dtypes(a, b)
    trans_a, trans_b, accumulate = _flag(trans_a, "trans_a"), _flag(trans_b, "trans_b"), _flag(accumulate, "accumulate")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"gemm multiplies matrices or stacks of them, got a {a.shape} and b {b.shape}")
    a, trans_a = _as_row_major(a, trans_a)
    b, trans_b = _as_row_major(b, trans_b)
    M, K = (a.shape[-1], a.shape[-2]) if trans_a else a.shape[-2:]
    K_b, N = (b.shape[-1], b.shape[-2]) if trans_b else b.shape[-2:]
    if K != K_b:
        raise ValueError(f"gemm: op(a) is {M} x {K} but op(b) is {K_b} x {N} (trans_a={trans_a}, "
                         f"trans_b={trans_b}); inner sizes must match")
    compute = FLOAT64 if a.dtype == FLOAT64 else FLOAT32
    lead = () if a.ndim == 2 and b.ndim == 2 else _batch_shape(a, b)
    batch = None  # set below when the product runs as a stack
    shape = lead + (M, N)
    out, result_dtype = _check_out(out, out_dtype, shape, compute, a.dtype, accumulate, a)
    if out.size == 0:
        return out
    xp = np if type(out) is np.ndarray else dispatch.array_module(out)
    target = out if result_dtype == compute else (out.astype(compute) if accumulate else xp.empty(shape, compute))
    if K == 0:
        if not accumulate:
            target[...] = 0
    else:
        if xp.may_share_memory(target, a):
            a = a.copy()
        if xp.may_share_memory(target, b):
            b = b.copy()
        rows, product = M, target
        if lead and b.ndim == 2 and not trans_a and a.flags.c_contiguous and a.shape[:-2] == lead:
            # A contiguous stack times one shared matrix is a single product of B*M rows.
            a, product, rows = a.reshape(-1, K), target.reshape(-1, N), a.size // K
        elif lead:
            batch = int(np.prod(lead))
            a, b, product = _stacked(a, lead, xp), _stacked(b, lead, xp), target.reshape(batch, M, N)
        kernel = registry.kernel("gemm", a, variant=variant_of(a.dtype, batch, rows, N, K, trans_a, trans_b))
        kernel(a, b, product, trans_a, trans_b, accumulate)
    if target is not out:
        out[...] = target.astype(result_dtype)
    return out


def repeated_product(b, rows: int, *, trans_b=False):
    """``step(a, out, accumulate=False)`` computing ``out (+)= a @ op(b)``, for a loop that
    multiplies many ``rows``-row matrices by one right operand that does not change while it
    runs: a recurrent layer's ``h @ Wh`` at every time step, ``dA @ Wh.T`` going back.

    ``b`` is prepared once, the way the library that runs these products does them best. MKL
    keeps it in its packed layout (``cblas_?gemm_pack``), so no step packs the weight again:
    BetterRnnlm's 20 x 650 x 2600 step took 560 us against 800 on one thread of the AMX Xeon,
    its transposed 20 x 2600 x 650 600 against 833 (and no transposed copy), the packing about
    one step's time; in bfloat16 (float32 out) MKL's packed AMX product ran twice its plain
    one. Elsewhere a transposed ``b`` is copied to row-major once: at a step's few rows a
    transposed operand runs on slower BLAS paths (OpenBLAS ~1.6x at 20 x 2600 x 650).
    Inside :func:`autocast` the bf16 weight cache packs it (see _autocast.py).

    ``b`` must not change while ``step`` is in use. A step whose ``a`` and ``out`` are not
    C-contiguous (rows, K) and (rows, N) arrays of ``b``'s dtype goes through :func:`gemm`,
    which checks them.
    """
    if not (hasattr(b, "dtype") and hasattr(b, "shape")):
        raise TypeError(f"repeated_product: b must be an array, got {type(b).__name__}")
    if len(b.shape) != 2:
        raise ValueError(f"repeated_product: b must be a matrix, got shape {tuple(b.shape)}")
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"repeated_product: rows must be a positive integer, got {rows!r}")
    rows = int(rows)
    trans_b = _flag(trans_b, "trans_b")
    state = _autocast.active()
    if state is None and type(b) is np.ndarray and b.dtype in (FLOAT32, FLOAT64, BFLOAT16):
        step = _packed_step(b, rows, trans_b)
        if step is not None:
            return step
    if state is not None and type(b) is np.ndarray:
        step = _autocast.packed_step(state, b, rows, trans_b)
        if step is not None:
            return step
    if trans_b and not (state is not None and b.dtype == FLOAT32 and _autocast.packs_cached_weights(state)):
        xp = np if type(b) is np.ndarray else dispatch.array_module(b)
        b, trans_b = xp.ascontiguousarray(b.T), False

    def step(a, out, accumulate=False):
        return gemm(a, b, out, trans_b=trans_b, accumulate=accumulate)

    return step


def _packed_step(b, rows, trans_b):
    """repeated_product's step on MKL's packed operand, or None where the products of this
    shape do not run on MKL here (calibrated or chosen) or MKL cannot pack ``b``'s dtype."""
    b, trans_b = _as_row_major(b, trans_b)
    K, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if not (K and N) or rows * max(K, N, b.size) >= _MKL_INT_LIMIT:
        return None
    variant = variant_of(b.dtype, None, rows, N, K, False, trans_b)
    if registry.backend_for("gemm", b, variant) != "mkl":
        return None
    try:
        from . import mkl_impl
    except (ImportError, OSError):
        return None
    if not mkl_impl.can_pack(b.dtype):
        return None
    packed = mkl_impl.pack_b(b, trans_b, rows)
    compute = mkl_impl.gemm_packed_b
    if getattr(registry.kernel("gemm", b, variant), "single_threaded_of", None) is not None:
        from . import _libraries

        compute = _libraries.single_threaded("mkl", compute) or compute  # as calibrated for the class
    dtype, ldb = b.dtype, b.shape[1]
    out_dtype = FLOAT64 if dtype == FLOAT64 else FLOAT32  # bfloat16 products sum into float32

    def step(a, out, accumulate=False):
        if (type(a) is np.ndarray and type(out) is np.ndarray and a.dtype is dtype and out.dtype is out_dtype
                and a.shape == (rows, K) and out.shape == (rows, N) and a.flags.c_contiguous
                and out.flags.c_contiguous and out.flags.writeable and (accumulate is True or accumulate is False)
                and not np.may_share_memory(out, a)):
            compute(a, packed, ldb, out, accumulate)
            return out
        return gemm(a, b, out, trans_b=trans_b, accumulate=accumulate)

    return step


_MKL_INT_LIMIT = 2**31  # MKL_INT is 32-bit (LP64): larger problems are not packed


from . import _autocast  # noqa: E402
from ._autocast import autocast, autocast_dtype, clear_autocast_cache, column_sums_and_cast  # noqa: E402, F401


def variant_of(dtype, batch, M: int, N: int, K: int, trans_a=False, trans_b=False) -> str:
    """The calibration's class of a product, e.g. 'float32/step' (see SHAPE_CLASSES)."""
    # Names looked up, not formatted: dtype.name alone costs more than a small product's dispatch.
    return _VARIANT_NAMES[dtype, shape_class(batch, M, N, K, trans_a, trans_b)]


def variant_name(dtype_name: str, shape_class_name: str) -> str:
    return f"{dtype_name}/{shape_class_name}"


_VARIANT_NAMES = {(dtype, c): variant_name(dtype.name, c) for dtype in INPUT_DTYPES for c in SHAPE_CLASSES}


def shape_class(batch, M: int, N: int, K: int, trans_a=False, trans_b=False) -> str:
    """The calibration's class of a product: 'batched', 'small', 'step', 'wide' (N or K of
    WIDE_SIDE or more), or 'large' ('large_ta' with the left operand read transposed, 'large_tb'
    with only the right one)."""
    if batch is not None:
        return "batched"
    if M * N * K <= SMALL_MACS:
        return "small"
    if min(M, N) <= STEP_ROWS:
        return "step"
    if N >= WIDE_SIDE or K >= WIDE_SIDE:
        return "wide"
    return "large_ta" if trans_a else "large_tb" if trans_b else "large"


def _check_arrays(a, b, out):
    for name, value in (("a", a), ("b", b)):
        if not (hasattr(value, "dtype") and hasattr(value, "shape")):
            raise TypeError(f"gemm: {name} must be an array, got {type(value).__name__}")
    check_same_device(a, b, *(() if out is None else (out,)))
    return a, b


def _refuse_dtypes(a, b):
    names = ", ".join(str(d) for d in INPUT_DTYPES)
    if a.dtype != b.dtype:
        raise TypeError(f"gemm: a is {a.dtype} but b is {b.dtype}; both must have one dtype ({names})")
    raise TypeError(f"gemm takes {names} inputs, got {a.dtype}"
                    + ("" if BFLOAT16 is not None else " (bfloat16 needs ml_dtypes: pip install ml_dtypes)"))


def _flag(value, name):
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"gemm: {name} must be True or False, got {value!r}")


def _as_row_major(x, trans):
    """``x`` with C-contiguous last two axes: a transposed view flips the flag instead of being
    copied; anything else is copied once."""
    item = x.itemsize
    rows_contiguous = x.strides[-1] == item and (x.strides[-2] == x.shape[-1] * item or x.shape[-2] <= 1)
    if rows_contiguous:
        return x, trans
    cols_contiguous = x.strides[-2] == item and (x.strides[-1] == x.shape[-2] * item or x.shape[-1] <= 1)
    if cols_contiguous:
        return x.swapaxes(-1, -2), not trans
    xp = np if type(x) is np.ndarray else dispatch.array_module(x)
    return xp.ascontiguousarray(x), trans


def _batch_shape(a, b) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    except ValueError:
        raise ValueError(f"gemm: the batch axes of a {a.shape} and b {b.shape} do not broadcast") from None


def _stacked(x, lead, xp):
    """``x`` as one (B, rows, cols) stack over the batch axes ``lead``: a view where the axes
    allow (a shared matrix gets batch stride 0), else a copy."""
    return xp.broadcast_to(x, lead + x.shape[-2:]).reshape((-1,) + x.shape[-2:])


def _check_out(out, out_dtype, shape, compute, input_dtype, accumulate, like):
    allowed = (compute,) + ((input_dtype,) if input_dtype in HALF_INPUTS else ())
    if out_dtype is not None:
        out_dtype = np.dtype(out_dtype)
        if out_dtype not in allowed:
            raise TypeError(f"gemm: out_dtype {out_dtype} is not available for {input_dtype} inputs; "
                            f"choose {' or '.join(str(d) for d in allowed)}")
    if out is None:
        if accumulate:
            raise ValueError("gemm: accumulate=True adds into out, so out must be given")
        xp = np if type(like) is np.ndarray else dispatch.array_module(like)  # on the inputs' device
        # 64-byte aligned: MKL's AMX bf16 product of 700x650x10000 took 18 ms into an aligned
        # output and 26-29 ms into one 16 bytes off (malloc's large blocks), float32 about even
        return aligned_empty(shape, out_dtype or compute, xp), out_dtype or compute
    if not (hasattr(out, "dtype") and hasattr(out, "shape")):
        raise TypeError(f"gemm: out must be an array, got {type(out).__name__}")
    if out_dtype is not None and out.dtype != out_dtype:
        raise TypeError(f"gemm: out is {out.dtype} but out_dtype is {out_dtype}")
    if out.dtype not in allowed:
        raise TypeError(f"gemm: out must be {' or '.join(str(d) for d in allowed)} for {input_dtype} inputs, "
                        f"got {out.dtype}")
    if tuple(out.shape) != shape:
        raise ValueError(f"gemm: out has shape {tuple(out.shape)}, the product is {shape}")
    if not out.flags.c_contiguous:
        raise ValueError("gemm: out must be C-contiguous")
    if type(out) is np.ndarray and not out.flags.writeable:
        raise ValueError("gemm: out is read-only")
    return out, out.dtype


# ---- registration -------------------------------------------------------------------------------

# float32: products of K terms summed in another order (blocking, FMA) than OpenBLAS's: a
# few ulp of the sum of |terms|, which the examples keep near 1 per term. bfloat16 and float16
# inputs are exact in float32, so their products differ from the reference's only by that summation.
_TOLERANCE = {FLOAT32: (2e-5, 2e-5), FLOAT64: (1e-12, 1e-12)}
for _half in HALF_INPUTS:
    _TOLERANCE[_half] = (2e-5, 2e-5)


def gemm_problem(M, K, N, dtype, trans_a=False, trans_b=False, accumulate=False, *, batch=None, shared=None,
                 seed=0):
    """The backend-level arguments ``(a, b, out, trans_a, trans_b, accumulate)`` of one product
    with entries in [-1, 1) (``out`` random too, so accumulation shows): a batch of ``batch``
    products when given, with ``shared`` ("a" or "b") a 2-D operand broadcast over it."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)

    def operand(rows, cols, trans, is_shared):
        shape = (cols, rows) if trans else (rows, cols)
        if batch is not None and not is_shared:
            shape = (batch,) + shape
        x = (rng.random(shape) * 2 - 1).astype(dtype)
        return np.broadcast_to(x, (batch,) + shape) if batch is not None and is_shared else x

    a = operand(M, K, trans_a, shared == "a")
    b = operand(K, N, trans_b, shared == "b")
    out_dtype = FLOAT64 if dtype == FLOAT64 else FLOAT32
    out = (rng.random((M, N) if batch is None else (batch, M, N)) * 2 - 1).astype(out_dtype)
    return a, b, out, trans_a, trans_b, accumulate


def _gemm_examples():
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = draw(st.sampled_from(INPUT_DTYPES))
        batch = draw(st.sampled_from([None, None, 1, 3]))
        shared = draw(st.sampled_from([None, "a", "b"])) if batch else None
        M, K, N = (draw(st.integers(1, 40)) for _ in range(3))
        trans_a, trans_b, accumulate = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
        seed = draw(st.integers(0, 2**32 - 1))
        return gemm_problem(M, K, N, dtype, trans_a, trans_b, accumulate, batch=batch, shared=shared, seed=seed)

    return problems()


def _gemm_benchmark(dtype=FLOAT32):
    # One LSTM step of BetterRnnlm: 20 sequences, h (650) times Wh (650 x 2600). In a 16-bit
    # dtype the operands are, out stays float32 (the contract): harness.benchmark_problem.
    return gemm_problem(20, 650, 2600, dtype, False, False, False)


def _calibrated_preference(variant):
    """The backends fastest first for ``variant`` (e.g. 'float32/step'), measured here once."""
    from . import calibration

    return calibration.preference(variant)


def _adapted(variant, backend, function):
    """The product for ``variant`` on ``backend``: on one thread unless two measured clearly faster."""
    from . import calibration

    return calibration.adapted(variant, backend, function)


registry.register(registry.OpSpec(
    name="gemm", family="gemm",
    doc="out (+)= op(a) @ op(b): 2-D or batched, float32/float64/bfloat16/float16 inputs, float32/64 out",
    dtypes=INPUT_DTYPES, deterministic=False, exact=False, tolerance=_TOLERANCE,
    examples=_gemm_examples, benchmark_args=_gemm_benchmark, writes=(2,),
    dtype_of=lambda args: args[0].dtype,
    preference=("numpy",), absent=ABSENT, calibration=_calibrated_preference, adapt=_adapted,
    lacks_dtype={"cython": {d: _CYTHON_BF16_ONLY.format(d.name) for d in INPUT_DTYPES if d != BFLOAT16}},
))
