"""kernels/_numba_half.py's bfloat16 block passes (add_round_bf16_block, and add_round_bf16_part
for a row's last values) in both versions, vcvtne2ps2bf16 (as built on a CPU with AVX512-BF16)
and the integer rounding, and the Numba scatter-add's bfloat16 pass built on them: bit for bit
against ml_dtypes. The cases are the ones the conversion instruction gets wrong by itself (it
flushes a float32 subnormal sum to +0 or -0, here alone in a block of normal sums), random
patterns with subnormals, inf and NaN, every count 0 to 32 of the masked part (up to the last
byte before an unmapped page), and row widths around the 32-value block."""
import ctypes
import mmap
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="the Numba backend's helpers need numba")

from fastnlp.kernels import _numba_half  # noqa: E402
from fastnlp.kernels.embedding import numba_impl, reference  # noqa: E402
from fastnlp.kernels.validate import BFLOAT16  # noqa: E402

BLOCK = _numba_half.BF16_BLOCK
SENTINEL = 0x1234


def _runner(block, part):
    @numba.njit
    def run(dst, src, out, starts, counts, src_shift):
        for k in range(starts.shape[0]):
            start = starts[k]
            if counts[k] == BLOCK:
                block(dst, start, src, start + src_shift, out, start)
            else:
                part(dst, start, src, start + src_shift, out, start, counts[k])
    return run


VERSIONS = {
    "as built": _runner(_numba_half.add_round_bf16_block, _numba_half.add_round_bf16_part),
    "integer": _runner(
        _numba_half._add_round_bf16_intrinsic(False, False, "integer_bf16_block", "the integer rounding's block"),
        _numba_half._add_round_bf16_intrinsic(False, True, "integer_bf16_part", "the integer rounding's part")),
}

# (dst, src) bfloat16 pairs whose float32 sum is subnormal: vcvtne2ps2bf16 gives +-0 for each.
LONE_SUBNORMAL_SUMS = [(0x8001, 0x0000), (0x0001, 0x8000), (0x0081, 0x8080), (0x8081, 0x0080), (0x807F, 0x8000),
                       (0x0040, 0x0003)]


def _patterns(rng, n):
    """dst, src: normal values, with one subnormal sum in about every other block, and random
    patterns (a third of them tiny, so sums round to and from subnormals) in the last quarter."""
    sign = rng.integers(0, 2, (2, n), dtype=np.uint16) << 15
    dst, src = rng.integers(0x3C00, 0x4300, (2, n), dtype=np.uint16) | sign
    for position in rng.choice(n - 1, n // (2 * BLOCK), replace=False):
        dst[position], src[position + 1] = LONE_SUBNORMAL_SUMS[position % len(LONE_SUBNORMAL_SUMS)]
    tail = slice(3 * n // 4, n)
    dst[tail], src[tail] = rng.integers(0, 2**16, (2, n - 3 * n // 4), dtype=np.uint16)
    dst[tail][::3] &= 0x80FF
    src[tail][1::3] &= 0x80FF
    dst[-9:-5], src[-8:-4] = [0x7F80, 0x7FC1, 0x7F81, 0x3F80], [0xFF80, 0x3F80, 0xFFC0, 0x3B80]  # inf - inf, NaNs
    return dst, src


def _bfloat16_sums(dst, src):
    with np.errstate(invalid="ignore", over="ignore"):
        total = dst.view(BFLOAT16).astype(np.float32) + src.view(BFLOAT16).astype(np.float32)
    return total.astype(BFLOAT16).view(np.uint16)


def _assert_same_bits(got, expected):
    nan = 0x7F80
    both_nan = ((got & 0x7FFF) > nan) & ((expected & 0x7FFF) > nan)
    mismatch = (got != expected) & ~both_nan
    assert not mismatch.any(), f"{mismatch.sum()} mismatches, first at {np.flatnonzero(mismatch)[:5]}"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_blocks_and_parts_round_like_ml_dtypes(version):
    rng = np.random.default_rng(21)
    n = 8192
    dst, src = _patterns(rng, n)
    counts = np.concatenate([np.full(160, BLOCK), np.arange(BLOCK + 1)]).astype(np.int64)
    starts = np.cumsum(np.concatenate([[3], counts[:-1] + 7])).astype(np.int64)  # odd offsets, gaps between
    assert starts[-1] + BLOCK + 1 < n and (starts[160:] + counts[160:] > 3 * n // 4).any()
    out = np.full(n, SENTINEL, np.uint16)
    VERSIONS[version](dst, src, out, starts, counts, 1)
    expected = _bfloat16_sums(dst[:-1], src[1:])
    covered = np.zeros(n, bool)
    for start, count in zip(starts, counts):
        covered[start:start + count] = True
    _assert_same_bits(out[:-1][covered[:-1]], expected[covered[:-1]])
    assert (out[~covered] == SENTINEL).all()


def _page_before_a_hole():
    """A one-page uint16 array whose next page is unmapped for reading (mprotect), or None."""
    if not sys.platform.startswith("linux"):
        return None
    page = mmap.PAGESIZE
    buffer = mmap.mmap(-1, 2 * page)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    if ctypes.CDLL(None).mprotect(ctypes.c_void_p(address + page), ctypes.c_size_t(page), 0) != 0:  # PROT_NONE
        return None
    return np.frombuffer(buffer, np.uint16, count=page // 2)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_part_reads_and_writes_nothing_past_its_count(version):
    """Every count 0 to 32 ending at the last value before an inaccessible page: a masked load
    or store that touched the page would crash the process."""
    dst, src = _page_before_a_hole(), _page_before_a_hole()
    if dst is None or src is None:
        pytest.skip("needs Linux's mprotect to place an inaccessible page after the array")
    n = dst.size
    values, others = _patterns(np.random.default_rng(22), n)
    for count in range(BLOCK + 1):
        dst[:], src[:] = values, others
        start = np.array([n - count], np.int64)
        VERSIONS[version](dst, src, dst, start, np.array([count], np.int64), 0)
        _assert_same_bits(dst[n - count:], _bfloat16_sums(values[n - count:], others[n - count:]))
        assert (dst[:n - count] == values[:n - count]).all()


@pytest.mark.parametrize("width", [1, 7, 31, 32, 33, 64, 95, 650])
def test_numba_scatter_add_bfloat16_rows_are_the_references_bits(width):
    """The kernel behind scatter_add on bfloat16 (the ids of the last row included, duplicates
    summed in float32 and rounded once), against kernels/embedding/reference.py."""
    rng = np.random.default_rng(width)
    vocab, n = 40, 90
    idx = rng.integers(0, vocab, n)
    idx[[0, 17]] = vocab - 1
    dW_bits = _patterns(rng, vocab * width + 16)[0][:vocab * width].reshape(vocab, width)
    rows_bits = _patterns(rng, n * width + 16)[1][:n * width].reshape(n, width)
    ids, first, occurrences = np.unique(idx, return_index=True, return_counts=True)
    for k, (row, i) in enumerate(zip(ids[occurrences == 1], first[occurrences == 1])):  # a lone subnormal sum
        dW_bits[row, k % width], rows_bits[i, k % width] = LONE_SUBNORMAL_SUMS[k % len(LONE_SUBNORMAL_SUMS)]
    dW, rows = dW_bits.view(BFLOAT16), rows_bits.view(BFLOAT16)
    expected, got = dW.copy(), dW.copy()
    reference.scatter_add(expected, idx, rows)
    numba_impl.scatter_add(got, idx, rows)
    _assert_same_bits(got.view(np.uint16).reshape(-1), expected.view(np.uint16).reshape(-1))
