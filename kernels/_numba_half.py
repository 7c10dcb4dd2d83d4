"""float16 / bfloat16 conversions for the Numba kernels that LLVM turns into vector code.

kernels/_numba_common.py converts one element at a time with branches (a loop for float16
subnormals), which LLVM cannot vectorise: a float16 scatter-add built on it ran 7x slower than
the float32 one. Here a float16 conversion is LLVM's own ``fpext half`` / ``fptrunc`` (Numba
has no float16 type on the CPU, but its compiler has), which on a CPU with F16C (x86) or on
aarch64 becomes the conversion instruction, vectorised in a loop like any float operation;
and the float32 bit casts are LLVM bitcasts, so the bfloat16 rounding is integer arithmetic
on uint32 lanes with selects, no branch (``f32_sum_to_bf16``, for sums of widened values,
without the NaN select: three vector operations fewer). ``add_round_bf16_block`` adds and rounds
32 bfloat16 values as vector IR, by AVX512-BF16's vcvtne2ps2bf16 where the CPU has it
(``HARDWARE_BF16``), else by that integer rounding; ``add_round_bf16_part`` a row's last few.
Results are bit for bit those of the references (round to nearest, ties to even; NaN stays NaN,
quiet, as every arithmetic result is).

Where Numba compiles for another CPU than the F16C one at hand (``NUMBA_CPU_NAME``, a CPU
without F16C), LLVM would call a conversion routine it may not find, so float16 falls back to
_numba_common's element-wise functions (correct, slow).

``bf16`` arguments are a loop invariant: LLVM compiles a loop for each value (unswitching),
so a kernel may pass the storage format down without splitting its own loops.

Also here: whole-array conversions for the kernels that run their float32 loops on converted
copies (``to_float32``, ``round_into``, ``rounded``), and LLVM's prefetch (``prefetch_for_write``,
``prefetch_for_read``, ``prefetch_row``), which the float16 / bfloat16 scatter-add needs (its
conversions keep the out-of-order core from reaching the next row's loads).
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


def _hardware_bf16() -> bool:
    """Whether LLVM can emit AVX512-BF16's vcvtne2ps2bf16 (with AVX512-BW's 16-bit masks) for the
    CPU Numba compiles for: an x86 host CPU that has both, and LLVM 17 or later (before it the
    instruction's intrinsic returned uint16 lanes, not bfloat)."""
    if numba.config.CPU_NAME not in (None, "host") or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten().split(",")
    return llvm.llvm_version_info >= (17,) and "+avx512bf16" in features and "+avx512bw" in features


HARDWARE_BF16 = _hardware_bf16()


class _BFloatType(ir.Type):
    """LLVM's ``bfloat``, which llvmlite's ir module does not name (vcvtne2ps2bf16's result)."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloatType)

    def __hash__(self):
        return hash("bfloat")


def _add_round_bf16_intrinsic(conversion_instruction: bool, masked: bool, name: str, doc: str):
    """The intrinsic ``name`` behind add_round_bf16_block (``masked`` False) and add_round_bf16_part: the
    float32 sums of two blocks of bfloat16 patterns, rounded to bfloat16 by vcvtne2ps2bf16
    (``conversion_instruction``) or by integer code on uint32 pairs."""
    def codegen(context, builder, signature, args):
        i1, i16, i32 = ir.IntType(1), ir.IntType(16), ir.IntType(32)
        n_pairs = BF16_BLOCK // 2
        values, words = ir.VectorType(i16, BF16_BLOCK), ir.VectorType(i32, n_pairs)
        floats = ir.VectorType(ir.FloatType(), n_pairs)

        def splat(value, vector=words):
            return ir.Constant(vector, [ir.Constant(vector.element, value)] * vector.count)

        def address(k):  # array argument k at the index after it, as a block of 32 values
            data = context.make_array(signature.args[k])(context, builder, args[k]).data
            return builder.bitcast(builder.gep(data, [args[k + 1]]), values.as_pointer())

        if masked:  # the first `count` values: masked loads and stores (AVX-512BW's, or LLVM's expansion)
            count = builder.trunc(args[6], i16)
            count = builder.shuffle_vector(builder.insert_element(ir.Constant(values, ir.Undefined), count, i32(0)),
                                           ir.Constant(values, ir.Undefined), splat(0, ir.VectorType(i32, BF16_BLOCK)))
            lanes = builder.icmp_unsigned("<", ir.Constant(values, list(range(BF16_BLOCK))), count)
            module, mask_type, pointer = builder.module, ir.VectorType(i1, BF16_BLOCK), values.as_pointer()
            masked_load = cgutils.get_or_insert_function(
                module, ir.FunctionType(values, [pointer, i32, mask_type, values]), "llvm.masked.load.v32i16.p0")
            masked_store = cgutils.get_or_insert_function(
                module, ir.FunctionType(ir.VoidType(), [values, pointer, i32, mask_type]),
                "llvm.masked.store.v32i16.p0")

            def load(k):
                return builder.call(masked_load, [address(k), i32(2), lanes, ir.Constant(values, None)])

            def store(result):
                builder.call(masked_store, [result, address(4), i32(2), lanes])
        else:
            def load(k):
                return builder.load(address(k), align=2)

            def store(result):
                builder.store(result, address(4), align=2)

        def add(a, b):
            return builder.fadd(builder.bitcast(a, floats), builder.bitcast(b, floats))

        def rounded(total):  # f32_sum_to_bf16's rounding, left in the high half
            bits = builder.bitcast(total, words)
            lowest_kept = builder.and_(builder.lshr(bits, splat(16)), splat(1))
            return builder.add(builder.add(bits, splat(0x7FFF)), lowest_kept)

        def integer_rounding():
            result = builder.or_(builder.and_(rounded(odd), high), builder.lshr(rounded(even), splat(16)))
            return builder.bitcast(result, values)

        # The 32 values as 16 uint32 pairs: the even ones (low halves) widen by a shift, the odd
        # ones (high halves) by a mask, so no widening shuffle.
        pairs, others = builder.bitcast(load(0), words), builder.bitcast(load(2), words)
        high = splat(0xFFFF0000)
        even = add(builder.shl(pairs, splat(16)), builder.shl(others, splat(16)))
        odd = add(builder.and_(pairs, high), builder.and_(others, high))
        if not conversion_instruction:
            store(integer_rounding())
            return context.get_dummy_value()
        # One vcvtne2ps2bf16 rounds both halves (to nearest even; a NaN sum is already quiet, so
        # its bits are integer_rounding's): the even values come out in words 0-15, the odd ones
        # in 16-31, and one vpermw interleaves them. The instruction flushes float32 subnormal
        # sums to +-0, so a +-0 result (vptestnmw) sends the block to the integer rounding.
        convert = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VectorType(_BFloatType(), BF16_BLOCK), [floats, floats]),
            "llvm.x86.avx512bf16.cvtne2ps2bf16.512")
        converted = builder.bitcast(builder.call(convert, [odd, even]), values)
        in_order = ir.Constant(ir.VectorType(i32, BF16_BLOCK), [j // 2 + n_pairs * (j % 2) for j in range(BF16_BLOCK)])
        result = builder.shuffle_vector(converted, ir.Constant(values, ir.Undefined), in_order)
        zero = builder.icmp_unsigned("==", builder.and_(result, splat(0x7FFF, values)), ir.Constant(values, None))
        if masked:
            zero = builder.and_(zero, lanes)  # the lanes left out are zeros
        any_zero = builder.icmp_unsigned("!=", builder.bitcast(zero, ir.IntType(BF16_BLOCK)), ir.IntType(BF16_BLOCK)(0))
        with builder.if_else(any_zero, likely=False) as (subnormal, normal):
            with subnormal:
                store(integer_rounding())
            with normal:
                store(result)
        return context.get_dummy_value()

    def typer(typingctx, dst, src, out):
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint16 for a in (dst, src, out)):
            return None
        return types.none(dst, types.intp, src, types.intp, out, types.intp, *[types.intp] * masked), codegen

    if masked:
        def add_round(typingctx, dst, dst_start, src, src_start, out, out_start, count):
            return typer(typingctx, dst, src, out)
    else:
        def add_round(typingctx, dst, dst_start, src, src_start, out, out_start):
            return typer(typingctx, dst, src, out)
    add_round.__name__ = add_round.__qualname__ = name
    add_round.__doc__ = doc
    return intrinsic(add_round)


add_round_bf16_block = _add_round_bf16_intrinsic(HARDWARE_BF16, False, "add_round_bf16_block", """\
out[o:o+32] = f32_sum_to_bf16(float32(dst[d:d+32]) + float32(src[s:s+32])) for 1-D uint16 arrays of
bfloat16 patterns (``out`` may be ``dst`` at the same offset), written as vector IR: the 32 values
load as 16 uint32 pairs, the even ones widen by a shift and the odd ones by a mask (written value
by value, LLVM widened and narrowed with shuffles, 1.1x slower). With AVX512-BF16 (HARDWARE_BF16)
one vcvtne2ps2bf16 and one vpermw round and interleave the 32 sums: with the check for subnormal
sums, 10 instructions per block instead of the integer rounding's 15 (the scatter-add 1.03-1.1x
faster). Elsewhere the integer rounding, generic LLVM vector operations for any CPU.""")
add_round_bf16_part = _add_round_bf16_intrinsic(HARDWARE_BF16, True, "add_round_bf16_part", """\
add_round_bf16_block on the first ``count`` (0 to 32) values only, by masked loads and stores: a row's
end, with nothing beyond ``count`` read or written.""")


def _prefetch_intrinsic(for_write: bool, name: str, doc: str):
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        signature = ir.FunctionType(ir.VoidType(), [address.type] + [i32] * 3)
        prefetch = cgutils.get_or_insert_function(builder.module, signature, "llvm.prefetch.p0")
        builder.call(prefetch, [address, i32(int(for_write)), i32(3), i32(1)])  # keep in all caches, data
        return context.get_dummy_value()

    def prefetch(typingctx, array, offset):
        return types.none(array, types.intp), codegen
    prefetch.__name__ = prefetch.__qualname__ = name
    prefetch.__doc__ = doc
    return intrinsic(prefetch)


prefetch_for_write = _prefetch_intrinsic(True, "prefetch_for_write", """\
Ask the memory system for the cache line holding element ``offset`` of the flat data of ``array``,
which the loop will write (prefetchw), into every cache level.""")
prefetch_for_read = _prefetch_intrinsic(False, "prefetch_for_read", """\
Ask the memory system for the cache line holding element ``offset`` of the flat data of ``array``,
which the loop will read, into every cache level.""")


@numba.njit(cache=True, nogil=True, inline="always")
def prefetch_row(matrix, row):
    """Ask the memory system for row ``row`` of the C-contiguous 2-D ``matrix`` (which a loop
    will update) before the loop reaches it: one prefetch per 64-byte line. The float16 /
    bfloat16 row loops convert every element, which keeps the out-of-order core from reaching
    the next row's loads by itself."""
    width = matrix.shape[1]
    step = max(1, 64 // matrix.itemsize)
    for j in range(0, width, step):
        prefetch_for_write(matrix, row * width + j)


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
