"""NumPy reference of the negative-sampling ops: the contract of __init__.py written as code.

Inputs arrive validated (see __init__.py): ids in range, C-contiguous, matching dtypes. The
float operations run in the order the contract fixes (16-lane dot products, sums in order of k,
scatter in order of (n, k)), so the compiled backends can match these results bit for bit.
float16 / bfloat16 storage: the float32 ops on the touched rows converted up (on_touched_rows).
"""
import numpy as np

from ..validate import HALF_DTYPES

LANES = 16
ALIAS_ATTEMPTS = 7
DRAWS_PER_SLOT = np.uint64(8)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
LOW32 = np.uint64(0xFFFFFFFF)
TWO_TO_MINUS_53 = 2.0 ** -53


def lane_dot(x, y):
    """x . y over the last axis: rounded products summed into LANES partial sums (j % LANES) in
    order of j, then the partial sums added pairwise (0+1, 2+3, ...; then pairs of those)."""
    products = x * y
    width = products.shape[-1]
    padded = -(-width // LANES) * LANES
    if padded != width:  # a zero product leaves a partial sum unchanged
        pad = [(0, 0)] * (products.ndim - 1) + [(0, padded - width)]
        products = np.pad(products, pad)
    blocks = products.reshape(products.shape[:-1] + (padded // LANES, LANES))
    lanes = blocks[..., 0, :]
    for b in range(1, blocks.shape[-2]):
        lanes = lanes + blocks[..., b, :]
    while lanes.shape[-1] > 1:
        lanes = lanes[..., 0::2] + lanes[..., 1::2]
    return lanes[..., 0]


def _to_float32(x):
    return x.astype(np.float32)


def _rounded(values, dtype):
    return values.astype(dtype)


def on_touched_rows(op32, W, idx, h, dout=None, dW=None, *, to_float32=_to_float32, rounded=_rounded, xp=np):
    """The float16 / bfloat16 ops (the contract in __init__.py) run by a backend's float32 op
    ``op32`` (gather_dot or gather_dot_backward): the rows of W (and dW) that idx touches, h and
    dout converted up to float32 (``to_float32``, the backend's conversion), idx renumbered to
    the touched rows; each float32 result rounded once to the storage dtype (``rounded``), dW's
    touched rows written back. The float32 op's order of operations is kept, so every backend
    gives the same bits. Returns gather_dot's out or the backward's dh."""
    touched, where = xp.unique(idx.reshape(-1), return_inverse=True)
    where = xp.ascontiguousarray(where.reshape(idx.shape), dtype=np.int64)
    W32, h32 = to_float32(W[touched]), to_float32(h)
    if dW is None:
        return rounded(op32(W32, where, h32), W.dtype)
    dW32 = to_float32(dW[touched])
    dh32 = op32(W32, where, h32, to_float32(dout), dW32)
    dW[touched] = rounded(dW32, dW.dtype)
    return rounded(dh32, W.dtype)


def gather_dot(W, idx, h):
    if W.dtype in HALF_DTYPES:
        return on_touched_rows(gather_dot, W, idx, h)
    return lane_dot(W[idx], h[:, None, :])


def gather_dot_backward(W, idx, h, dout, dW):
    if W.dtype in HALF_DTYPES:
        return on_touched_rows(gather_dot_backward, W, idx, h, dout, dW)
    dh = np.zeros(h.shape, dtype=W.dtype)
    for k in range(idx.shape[1]):
        dh += dout[:, k, None] * W[idx[:, k]]
    rows = (dout[:, :, None] * h[:, None, :]).reshape(-1, W.shape[1])
    np.add.at(dW, idx.reshape(-1), rows)  # applied in order of (n, k)
    return dh


def draw(seed, counters):
    """splitmix64 at positions ``counters`` (uint64 array) of the stream ``seed`` (np.uint64)."""
    with np.errstate(over="ignore"):
        z = seed + (counters + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def alias_pick(alias_prob, alias_index, d):
    """The word each draw picks from the alias table: column from the high 32 bits, the
    column's own word or its alias from the low 32."""
    column = ((d >> np.uint64(32)) * np.uint64(alias_prob.shape[0])) >> np.uint64(32)
    column = column.astype(np.int64)
    keep = (d & LOW32) < alias_prob[column].astype(np.uint64)
    return np.where(keep, column, alias_index[column])


def excluding_target(cumulative, target, d):
    """Inverse-CDF draws from the table's integer masses with each target's mass left out."""
    low, high = cumulative[target], cumulative[target + 1]
    skip = high - low
    rest = cumulative[-1] - skip
    x = ((d >> np.uint64(11)).astype(np.float64) * TWO_TO_MINUS_53) * rest.astype(np.float64)
    r = np.minimum(x.astype(np.int64), rest - 1)
    r = np.where(r >= low, r + skip, r)
    return np.searchsorted(cumulative, r, side="right") - 1


def sample_negatives(alias_prob, alias_index, cumulative, target, sample_size, seed, counter):
    n_slots = target.shape[0] * sample_size
    slots = np.uint64(counter) + np.arange(n_slots, dtype=np.uint64)
    targets = np.repeat(target, sample_size)
    out = np.empty(n_slots, dtype=np.int64)
    pending = np.arange(n_slots)
    for attempt in range(ALIAS_ATTEMPTS):
        if pending.size == 0:
            break
        picked = alias_pick(alias_prob, alias_index, draw(seed, slots[pending] * DRAWS_PER_SLOT + np.uint64(attempt)))
        hit = picked == targets[pending]
        out[pending[~hit]] = picked[~hit]
        pending = pending[hit]
    if pending.size:
        d = draw(seed, slots[pending] * DRAWS_PER_SLOT + np.uint64(ALIAS_ATTEMPTS))
        out[pending] = excluding_target(cumulative, targets[pending], d)
    return out.reshape(target.shape[0], sample_size)
