"""float16 / bfloat16 conversions for the Numba kernels that LLVM turns into vector code.

kernels/_numba_common.py converts one element at a time with branches (a loop for float16
subnormals), which LLVM cannot vectorise: a float16 scatter-add built on it ran 7x slower than
the float32 one. Here a float16 conversion is LLVM's own ``fpext half`` / ``fptrunc`` (Numba
has no float16 type on the CPU, but its compiler has), which on a CPU with F16C (x86) or on
aarch64 becomes the conversion instruction, vectorised in a loop like any float operation;
and the float32 bit casts are LLVM bitcasts, so the bfloat16 rounding is integer arithmetic
on uint32 lanes with selects, no branch (``f32_sum_to_bf16``, for sums of widened values,
without the NaN select: three vector operations fewer; ``add_round_bf16_block``, 32 of those
sums as vector IR). Results are bit for bit those of the references (round to nearest, ties to
even; NaN stays NaN, quiet, as every arithmetic result is).

Where Numba compiles for another CPU than the F16C one at hand (``NUMBA_CPU_NAME``, a CPU
without F16C), LLVM would call a conversion routine it may not find, so float16 falls back to
_numba_common's element-wise functions (correct, slow).

``bf16`` arguments are a loop invariant: LLVM compiles a loop for each value (unswitching),
so a kernel may pass the storage format down without splitting its own loops.

Also here: whole-array conversions for the kernels that run their float32 loops on converted
copies (``to_float32``, ``round_into``, ``rounded``), and ``prefetch_row``, LLVM's prefetch,
which the float16 / bfloat16 scatter-add needs (its conversions keep the out-of-order core
from reaching the next row's loads).
"""
import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._numba_common import f16_to_f32_bits, f32_bits_to_f16

_U1, _U16 = np.uint32(1), np.uint32(16)


@intrinsic
def bits_to_f32(typingctx, bits):
    """The float32 whose bit pattern is the uint32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def f32_to_bits(typingctx, value):
    """The bit pattern (uint32) of the float32 ``value``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@intrinsic
def _fpext_f16(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


@intrinsic
def _fptrunc_f16(typingctx, value):
    def codegen(context, builder, signature, args):  # fptrunc rounds to nearest, ties to even
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
    return types.uint16(types.float32), codegen


def _hardware_f16() -> bool:
    """Whether LLVM lowers half conversions to instructions for the CPU Numba compiles for."""
    if numba.config.CPU_NAME not in (None, "host"):
        return False
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return True
    if machine not in ("x86_64", "amd64"):
        return False
    import llvmlite.binding as llvm

    return "+f16c" in llvm.get_host_cpu_features().flatten().split(",")


HARDWARE_F16 = _hardware_f16()

if HARDWARE_F16:
    @numba.njit(cache=True, nogil=True, inline="always")
    def f16_to_f32(h):
        """float32 of the float16 bit pattern ``h`` (uint16)."""
        return _fpext_f16(np.uint16(h))

    @numba.njit(cache=True, nogil=True, inline="always")
    def f32_to_f16(x):
        """float16 bit pattern (uint16) of the float32 ``x``, to nearest, ties to even."""
        return _fptrunc_f16(np.float32(x))
else:
    @numba.njit(cache=True, nogil=True, inline="always")
    def f16_to_f32(h):
        """float32 of the float16 bit pattern ``h`` (uint16)."""
        return bits_to_f32(np.uint32(f16_to_f32_bits(h)))

    @numba.njit(cache=True, nogil=True, inline="always")
    def f32_to_f16(x):
        """float16 bit pattern (uint16) of the float32 ``x``, to nearest, ties to even."""
        return f32_bits_to_f16(f32_to_bits(np.float32(x)))


@numba.njit(cache=True, nogil=True, inline="always")
def bf16_to_f32(h):
    """float32 of the bfloat16 bit pattern ``h``: its top half."""
    return bits_to_f32(np.uint32(np.uint32(h) << _U16))


@numba.njit(cache=True, nogil=True, inline="always")
def f32_to_bf16(x):
    """bfloat16 bit pattern of the float32 ``x``, to nearest, ties to even; NaN stays a quiet NaN.
    Every step is cast back to uint32: Numba would widen uint32 sums to uint64 lanes."""
    x = np.float32(x)
    u = f32_to_bits(x)
    high = np.uint32(u >> _U16)
    rounded = np.uint32(np.uint32(u + np.uint32(0x7FFF)) + np.uint32(high & _U1)) >> _U16
    return np.uint16(np.uint32(high | np.uint32(0x40)) if x != x else np.uint32(rounded))


@numba.njit(cache=True, nogil=True, inline="always")
def f32_sum_to_bf16(x):
    """f32_to_bf16 without the NaN select, for a float32 ``x`` whose NaNs have zero low 16 bits:
    any sum of widened bfloat16 values (an arithmetic NaN is an operand's NaN, quieted, or the
    default NaN, so it has those bits too). Adding 0x7FFF + 1 cannot carry out of such a NaN's
    low half, so the rounding leaves it as it is: the same bits as f32_to_bf16 with five vector
    operations (shift, and, two adds, shift) instead of eight. The bfloat16 scatter-add's row
    pass is bound by them (this and the argsort it no longer does made it 1.2-1.5x faster)."""
    u = f32_to_bits(np.float32(x))
    return np.uint16(np.uint32(np.uint32(u + np.uint32(0x7FFF)) + np.uint32(np.uint32(u >> _U16) & _U1)) >> _U16)


@numba.njit(cache=True, nogil=True, inline="always")
def f32_sum_to_half(x, bf16):
    """f32_to_half for sums of widened 16-bit values (see f32_sum_to_bf16): bfloat16 when ``bf16``."""
    return f32_sum_to_bf16(x) if bf16 else f32_to_f16(x)


@numba.njit(cache=True, nogil=True, inline="always")
def half_to_f32(h, bf16):
    """float32 of the 16-bit pattern ``h``: bfloat16 when ``bf16``, else float16."""
    return bf16_to_f32(h) if bf16 else f16_to_f32(h)


@numba.njit(cache=True, nogil=True, inline="always")
def f32_to_half(x, bf16):
    """The float32 ``x`` rounded to bfloat16 (``bf16``) or float16, as a uint16 bit pattern."""
    return f32_to_bf16(x) if bf16 else f32_to_f16(x)


BF16_BLOCK = 32  # the values add_round_bf16_block handles per call


@intrinsic
def add_round_bf16_block(typingctx, dst, dst_start, src, src_start, out, out_start):
    """out[o:o+32] = f32_sum_to_bf16(float32(dst[d:d+32]) + float32(src[s:s+32])) for 1-D uint16
    arrays of bfloat16 patterns, written as vector IR on pairs of values: the 32 values load as
    16 uint32 lanes, the even ones (low halves) widen by a shift and the odd ones (high halves)
    by a mask, each half is rounded by the integer code, and the pairs go back in place. Written
    value by value, LLVM widens and narrows with shuffles, which this pass is bound by: this way
    the bfloat16 scatter-add runs 1.1x faster. Generic LLVM vector operations, so any CPU."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        words, floats = ir.VectorType(i32, BF16_BLOCK // 2), ir.VectorType(ir.FloatType(), BF16_BLOCK // 2)

        def splat(value):
            return ir.Constant(words, [ir.Constant(i32, value)] * (BF16_BLOCK // 2))

        def block(k):  # the 32 values of array argument k from the index after it, as uint32 pairs
            data = context.make_array(signature.args[k])(context, builder, args[k]).data
            return builder.bitcast(builder.gep(data, [args[k + 1]]), words.as_pointer())

        def add(a, b):
            return builder.bitcast(builder.fadd(builder.bitcast(a, floats), builder.bitcast(b, floats)), words)

        def rounded(bits):  # f32_sum_to_bf16's rounding, left in the high half
            lowest_kept = builder.and_(builder.lshr(bits, splat(16)), splat(1))
            return builder.add(builder.add(bits, splat(0x7FFF)), lowest_kept)

        pairs, others = builder.load(block(0), align=2), builder.load(block(2), align=2)
        high = splat(0xFFFF0000)
        even = add(builder.shl(pairs, splat(16)), builder.shl(others, splat(16)))
        odd = add(builder.and_(pairs, high), builder.and_(others, high))
        result = builder.or_(builder.and_(rounded(odd), high), builder.lshr(rounded(even), splat(16)))
        builder.store(result, block(4), align=2)
        return context.get_dummy_value()
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint16 for a in (dst, src, out)):
        return None
    return types.none(dst, types.intp, src, types.intp, out, types.intp), codegen


@intrinsic
def _prefetch_for_write(typingctx, array, offset):
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        signature = ir.FunctionType(ir.VoidType(), [address.type] + [i32] * 3)
        prefetch = cgutils.get_or_insert_function(builder.module, signature, "llvm.prefetch.p0")
        builder.call(prefetch, [address, i32(1), i32(3), i32(1)])  # write, keep in all caches, data
        return context.get_dummy_value()
    return types.none(array, types.intp), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def prefetch_row(matrix, row):
    """Ask the memory system for row ``row`` of the C-contiguous 2-D ``matrix`` (which a loop
    will update) before the loop reaches it: one prefetch per 64-byte line. The float16 /
    bfloat16 row loops convert every element, which keeps the out-of-order core from reaching
    the next row's loads by itself."""
    width = matrix.shape[1]
    step = max(1, 64 // matrix.itemsize)
    for j in range(0, width, step):
        _prefetch_for_write(matrix, row * width + j)


@numba.njit(cache=True, nogil=True)
def widen_array(bits, out, bf16):
    """out[j] = float32 of the 16-bit patterns bits[j] (1-D, same length)."""
    for j in range(bits.shape[0]):
        out[j] = half_to_f32(bits[j], bf16)


@numba.njit(cache=True, nogil=True)
def narrow_array(values, out, bf16):
    """out[j] = float32 values[j] rounded to the 16-bit format (1-D, same length)."""
    for j in range(values.shape[0]):
        out[j] = f32_to_half(values[j], bf16)


def to_float32(x):
    """A float32 copy of the float16 / bfloat16 array ``x`` (any shape), converted by the loop above."""
    wide = np.empty(x.shape, np.float32)
    widen_array(np.ascontiguousarray(x).reshape(-1).view(np.uint16), wide.reshape(-1), x.dtype.name == "bfloat16")
    return wide


def round_into(values, x):
    """x[...] = the float32 array ``values`` rounded once to the dtype of the C-contiguous float16 /
    bfloat16 array ``x`` of the same size."""
    narrow_array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), x.reshape(-1).view(np.uint16),
                 x.dtype.name == "bfloat16")


def rounded(values, dtype):
    """A new array of the float16 / bfloat16 ``dtype``: the float32 ``values`` rounded once."""
    out = np.empty(values.shape, dtype)
    round_into(values, out)
    return out
