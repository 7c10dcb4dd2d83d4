"""The checks every public op runs before handing arrays to a kernel.

Compiled kernels skip bounds checks, so they are reached only through these checks: ids are
integers inside ``[0, upper)`` and float arrays have a supported dtype and the expected shape.
Making what a kernel writes through C-contiguous, and copying inputs that overlap its output,
is each op's wrapper's job (it knows which argument is written).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from . import dispatch
from . import ids as _ids  # noqa: F401  registers id_range, the op check_ids runs

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
# Storage-only formats: kernels that take them convert up and accumulate in float32.
HALF_DTYPES = (np.dtype(np.float16), BFLOAT16)
STORAGE_DTYPES = FLOAT_DTYPES + HALF_DTYPES


def is_float_dtype(dtype) -> bool:
    """True for NumPy's floats and ml_dtypes' bfloat16 (whose dtype kind is 'V', not 'f')."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == BFLOAT16


def dtype_names(dtypes) -> str:
    """'float32, float64, float16, bfloat16': how an error lists the dtypes an op takes."""
    return ", ".join(np.dtype(d).name for d in dtypes)


def as_id_array(ids, like=None):
    """``ids`` as an array on ``like``'s device: lists and tuples of ints are accepted wherever
    id arrays are (an empty list is an empty int64 array, not float64)."""
    if hasattr(ids, "dtype") and hasattr(ids, "shape"):
        return ids
    xp = dispatch.array_module(like) if like is not None else np
    if isinstance(ids, (list, tuple)) and len(ids) == 0:
        return xp.empty(0, dtype=np.int64)
    if isinstance(ids, (list, tuple, int, np.integer)) and not isinstance(ids, bool):
        try:
            array = np.asarray(ids)
        except ValueError:
            array = np.empty(0, dtype=object)
        if array.dtype == object:
            raise TypeError("ids must be integers in a rectangular list; got a ragged or mixed list")
        return xp.asarray(array)
    raise TypeError(f"ids must be an integer array or a list of ints, got {type(ids).__name__}")


def check_ids(ids, upper: int, what: str = "id"):
    """Return ``ids`` as a flat C-contiguous int64 array after checking dtype and range (the
    range with the active backend's id_range kernel, the guard of every unchecked loop)."""
    from . import registry

    xp = np if type(ids) is np.ndarray else dispatch.array_module(ids)
    ids = xp.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{what}s must be an integer array, got dtype {ids.dtype}")
    flat = xp.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
    if ids.dtype == np.uint64 and flat.size and bool((ids.reshape(-1) > np.iinfo(np.int64).max).any()):
        raise IndexError(f"{what} {int(ids.max())} is out of range for {upper} rows; {what}s must lie in [0, {upper})")
    if flat.size:
        low, high = registry.kernel("id_range", flat)(flat)
        if low < 0:
            raise IndexError(f"{what} {low} is negative; {what}s must lie in [0, {upper})")
        if high >= upper:
            raise IndexError(f"{what} {high} is out of range for {upper} rows; {what}s must lie in [0, {upper})")
    return flat


def check_float_matrix(array, name: str, op: str | None = None):
    """A 2-D float array (raises TypeError / ValueError otherwise): float32/float64, or with
    ``op`` any storage dtype that op's spec takes (``OpSpec.check_dtype``: the TypeError names
    the op, the dtypes it takes and why it declines this one)."""
    if not hasattr(array, "dtype") or not hasattr(array, "ndim"):
        raise TypeError(f"{name} must be an array, got {type(array).__name__}")
    if op is not None:
        from . import registry

        registry.spec(op).check_dtype(array.dtype, name)
    elif array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, width), got shape {tuple(array.shape)}")
    return array


def check_same_device(*arrays) -> None:
    """Host and device arrays are never mixed (plain Python values count as host)."""
    if all(type(a) is np.ndarray for a in arrays):
        return
    on_device = [dispatch.is_device_array(a) for a in arrays if hasattr(a, "shape")]
    if any(on_device) and not all(on_device):
        raise TypeError("arrays live on different devices (numpy, cupy); move them to one first")


def cast_exactly(array, dtype, what: str = "array"):
    """``array`` as ``dtype``, refusing a cast that would change values without a word.

    NumPy's ``astype`` wraps integers (1000 -> -24 as int8), truncates fractions, turns finite
    floats into inf, NaN into an arbitrary integer and drops imaginary parts. Here each of those
    raises: ``OverflowError`` for values outside ``dtype``'s range, ``ValueError`` for NaN/inf
    or fractions going to an integer type and for complex values with an imaginary part going
    to a real type. Rounding a float to a narrower float (float64 -> float16) is allowed: that
    is what a float target means.
    """
    xp = np if type(array) is np.ndarray else dispatch.array_module(array)
    array = xp.asarray(array)
    target = np.dtype(dtype)
    source = array.dtype
    if target == source:
        return array
    if array.size == 0:
        return xp.empty(array.shape, dtype=target)
    if source.kind == "c" and target.kind != "c":
        if bool(xp.any(array.imag != 0)):
            raise ValueError(f"{what} has complex values; casting to {target} would drop their imaginary parts")
        array, source = array.real, array.real.dtype
    if target.kind == "b":
        if not bool(xp.all((array == 0) | (array == 1))):
            raise ValueError(f"{what} has values other than 0 and 1, which {target} cannot hold")
        return array.astype(target)
    if target.kind in "iu":
        info = np.iinfo(target)
        if source.kind == "f":
            if not bool(xp.all(xp.isfinite(array))):
                raise ValueError(f"{what} has NaN or inf values, which {target} cannot hold")
            if not bool(xp.all(array == xp.floor(array))):
                raise ValueError(f"{what} has fractional values; casting to {target} would truncate them "
                                 "(use a float dtype)")
        low, high = array.min(), array.max()
        # Compared as Python ints: exact for every integer kind and every finite float.
        if int(low) < info.min or int(high) > info.max:
            raise OverflowError(f"{what} has values in [{low}, {high}], beyond the {target} range "
                                f"[{info.min}, {info.max}]")
        return array.astype(target)
    # A float or complex target: rounding is what it means, turning finite values into inf is not.
    with np.errstate(over="ignore"):
        cast = array.astype(target)
    finite_source = xp.isfinite(array) if source.kind in "fc" else True  # integers are always finite
    if bool(xp.any(xp.isinf(cast) & finite_source)):
        raise OverflowError(f"{what} has values beyond the {target} range (largest "
                            f"{np.finfo(target).max:g}); they would become inf")
    return cast


def output_for(array, op: str, name: str, shape, x, xp):
    """An op's output argument: a new aligned array of ``x``'s dtype and ``shape`` when None,
    else ``array`` checked (that dtype and shape, C-contiguous, writeable, apart from ``x``):
    ValueError naming the op and the argument otherwise."""
    from .memory import aligned_empty

    shape = tuple(shape)
    if array is None:
        return aligned_empty(shape, x.dtype, xp)  # the kernels store whole 64-byte vectors
    if not hasattr(array, "dtype") or tuple(array.shape) != shape or array.dtype != x.dtype:
        raise ValueError(f"{op}: {name} must be a {x.dtype} array of shape {shape}, got "
                         f"{getattr(array, 'dtype', type(array).__name__)} of shape {tuple(getattr(array, 'shape', ()))}")
    if not array.flags.c_contiguous or (type(array) is np.ndarray and not array.flags.writeable):
        raise ValueError(f"{op}: {name} must be C-contiguous and writeable")
    if xp.may_share_memory(array, x):
        raise ValueError(f"{op}: {name} overlaps x; give it a buffer of its own")
    return array
