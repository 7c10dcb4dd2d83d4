"""Numba kernels of the negative-sampling ops: typed loops compiled on first call (cached on
disk), in the reference's order of float operations (Numba never fuses a multiply and an add).

Inputs arrive validated (see __init__.py), so the loops index without bounds checks. uint64
constants keep the sampler's arithmetic in uint64 (mixing uint64 with int64 would give float64).
float16 / bfloat16: the float32 kernels on the touched rows converted up (reference.on_touched_rows)
with _numba_half's vectorised conversions.
"""
import numba
import numpy as np

from .._numba_common import splitmix64
from .._numba_half import rounded, to_float32
from .reference import on_touched_rows

LANES = 16
ALIAS_ATTEMPTS = 7
_DRAWS_PER_SLOT = np.uint64(8)
_LOW32 = np.uint64(0xFFFFFFFF)
_S11, _S32 = np.uint64(11), np.uint64(32)
_TWO_TO_MINUS_53 = 2.0 ** -53


@numba.njit(cache=True, nogil=True, inline="always")
def _lane_dot(x, y, lanes):
    """x . y in 16 partial sums (j % 16) in order of j, then pairwise; ``lanes`` is scratch."""
    width = x.shape[0]
    for l in range(LANES):
        lanes[l] = 0
    j = 0
    while j + LANES <= width:
        for l in range(LANES):
            lanes[l] += x[j + l] * y[j + l]
        j += LANES
    for l in range(width - j):
        lanes[l] += x[j + l] * y[j + l]
    half = LANES // 2
    while half >= 1:
        for l in range(half):
            lanes[l] = lanes[2 * l] + lanes[2 * l + 1]
        half //= 2
    return lanes[0]


@numba.njit(cache=True, nogil=True)
def _gather_dot(W, idx, h, out):
    lanes = np.empty(LANES, dtype=W.dtype)
    for i in range(idx.shape[0]):
        hi = h[i]
        for c in range(idx.shape[1]):
            out[i, c] = _lane_dot(W[idx[i, c]], hi, lanes)


@numba.njit(cache=True, nogil=True)
def _gather_dot_backward(W, idx, h, dout, dW, dh):
    width = W.shape[1]
    for i in range(idx.shape[0]):
        dhi = dh[i]
        hi = h[i]
        for c in range(idx.shape[1]):
            d = dout[i, c]
            w = W[idx[i, c]]
            for j in range(width):
                dhi[j] += d * w[j]
        for c in range(idx.shape[1]):
            d = dout[i, c]
            g = dW[idx[i, c]]
            for j in range(width):
                g[j] += d * hi[j]


@numba.njit(cache=True, nogil=True, inline="always")
def _excluding(cumulative, target, d):
    vocab = cumulative.shape[0] - 1
    low = cumulative[target]
    skip = cumulative[target + 1] - low
    rest = cumulative[vocab] - skip
    x = (np.float64(d >> _S11) * _TWO_TO_MINUS_53) * np.float64(rest)
    r = np.int64(x)
    if r > rest - 1:
        r = rest - 1
    if r >= low:
        r += skip
    lo, hi = 0, vocab
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if cumulative[mid] <= r:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _sample_negatives(alias_prob, alias_index, cumulative, target, seed, counter, out):
    vocab = np.uint64(alias_prob.shape[0])
    sample_size = out.shape[1]
    for i in range(target.shape[0]):
        t = target[i]
        for s in range(sample_size):
            base = (counter + np.uint64(i * sample_size + s)) * _DRAWS_PER_SLOT
            w = t
            a = 0
            while a < ALIAS_ATTEMPTS and w == t:
                d = splitmix64(seed, base + np.uint64(a))
                column = ((d >> _S32) * vocab) >> _S32
                if (d & _LOW32) < np.uint64(alias_prob[column]):
                    w = np.int64(column)
                else:
                    w = alias_index[column]
                a += 1
            if w == t:
                w = _excluding(cumulative, t, splitmix64(seed, base + np.uint64(ALIAS_ATTEMPTS)))
            out[i, s] = w


def gather_dot(W, idx, h):
    if W.dtype.itemsize == 2:  # float16 / bfloat16 (a cheaper test than dtype equality)
        return on_touched_rows(gather_dot, W, idx, h, to_float32=to_float32, rounded=rounded)
    out = np.empty(idx.shape, dtype=W.dtype)
    _gather_dot(W, idx, h, out)
    return out


def gather_dot_backward(W, idx, h, dout, dW):
    if W.dtype.itemsize == 2:
        return on_touched_rows(gather_dot_backward, W, idx, h, dout, dW, to_float32=to_float32, rounded=rounded)
    dh = np.zeros(h.shape, dtype=W.dtype)
    _gather_dot_backward(W, idx, h, dout, dW, dh)
    return dh


def sample_negatives(alias_prob, alias_index, cumulative, target, sample_size, seed, counter):
    out = np.empty((target.shape[0], sample_size), dtype=np.int64)
    _sample_negatives(alias_prob, alias_index, cumulative, target, np.uint64(seed), np.uint64(counter), out)
    return out
