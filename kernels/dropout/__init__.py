"""Inverted dropout's forward pass in one sweep: draw, mask, scale and multiply.

NumPy's version (``rng.random(shape) < keep``, a cast, a scale, a product) makes four passes
and a float per draw from a sequential generator: 1.6-1.9 ms for BetterRnnlm's 700 x 650
activations on the Xeon, three times a step. Here each element's draw is the counter-based
splitmix64 of kernels/include/fastnlp/rng.h, so any block of elements can be drawn on its own
(row blocks run on the BLAS threads) and every backend draws the same bits. The contract of the
backend-level op (every file in this folder implements it)::

    dropout_forward(x, out, mask, keep_below, scale, seed, first)
        x, out, mask: C-contiguous arrays of one shape and dtype (float32 or float64); out and
        mask overlap nothing. keep_below in [0, 2**32], scale a Python float, seed and first
        uint64. For each flat index i: draw = splitmix64(seed, first + i); the element is kept
        when (draw >> 32) < keep_below; mask[i] = scale (rounded to the dtype) if kept else 0,
        out[i] = x[i] * mask[i] (one rounding; a dropped inf or NaN gives NaN, as NumPy's
        x * mask). Returns None.

The backward is ``dout * mask``, a NumPy product. Exact: every backend gives the reference's
bits (the draw is integer arithmetic, the rest one multiplication).
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..threads import parallel_rows
from ..validate import FLOAT_DTYPES, HALF_DTYPES, output_for

KEEP_BITS = 32  # a draw keeps its top 32 bits: keep probabilities resolve to 2**-32


def keep_threshold(keep: float) -> int:
    """``keep_below`` for a keep probability in (0, 1]: round(keep * 2**32)."""
    return int(round(float(keep) * (1 << KEEP_BITS)))


def dropout_forward(x, keep: float, seed: int, out=None, mask=None):
    """``(out, mask)``: ``x`` with each element kept with probability ``keep`` and scaled by
    ``1 / keep``, else 0, and the mask (``1 / keep`` or 0, x's dtype) for the backward
    (``dout * mask``). The draws are splitmix64 of ``seed`` (a uint64) and the element's flat
    index: the same seed gives the same mask on every backend and thread count."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"dropout_forward: x must be an array, got {type(x).__name__}")
    registry.spec("dropout_forward").check_dtype(x.dtype, "x")
    keep = float(keep)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"dropout_forward: keep must be in (0, 1], got {keep}")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"dropout_forward: seed must be a uint64, got {seed}")
    xp = np if type(x) is np.ndarray else dispatch.array_module(x)
    x = xp.asarray(x, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    out = _output(out, x, "out", xp)
    mask = _output(mask, x, "mask", xp)
    if xp.may_share_memory(out, mask):
        raise ValueError("dropout_forward: out and mask overlap; give separate arrays")
    if x.size == 0:
        return out, mask
    kernel = registry.kernel("dropout_forward", x)
    keep_below, scale = keep_threshold(keep), 1.0 / keep
    if xp is np:  # counter-based draws: any block of elements on any thread, the same bits
        flat_x, flat_out, flat_mask = x.reshape(-1), out.reshape(-1), mask.reshape(-1)
        parallel_rows(lambda a, b: kernel(flat_x[a:b], flat_out[a:b], flat_mask[a:b], keep_below, scale, seed, a),
                      x.size, x.size)
    else:
        kernel(x, out, mask, keep_below, scale, seed, 0)
    return out, mask


def apply_dropout(x, keep: float, seed: int):
    """``(out, mask)`` for a floating-point ``x`` of any dtype, what the Dropout layers run:
    ``dropout_forward`` for float32 / float64, and for 16-bit activations the same draws
    through :func:`dropout_mask` and NumPy's product."""
    if x.dtype == np.float32 or x.dtype == np.float64:
        return dropout_forward(x, keep, seed)
    mask = dropout_mask(x.shape, keep, seed, x.dtype, dispatch.array_module(x))
    return x * mask, mask


def dropout_mask(shape, keep: float, seed: int, dtype, xp=np):
    """The mask alone (``1 / keep`` or 0 per element, ``dtype``) that ``dropout_forward`` would
    draw for an array of ``shape`` and this seed: for variational masks shared across steps,
    and for 16-bit activations (drawn in float32, the scale rounded to the dtype)."""
    work = np.dtype(dtype) if np.dtype(dtype) in FLOAT_DTYPES else np.dtype(np.float32)
    _, mask = dropout_forward(xp.ones(shape, dtype=work), keep, seed)
    return mask if work == np.dtype(dtype) else mask.astype(dtype)


def _output(array, x, name, xp):
    return output_for(array, "dropout_forward", name, x.shape, x, xp)


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _examples(dtype=None):
    """Activations of several shapes with extreme values (inf, NaN, subnormals, signed zeros),
    keep probabilities from always to almost never, any seed and any first index."""
    from hypothesis import strategies as st

    @st.composite
    def problem(draw):
        chosen = np.dtype(dtype) if dtype is not None else np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
        shape = draw(st.sampled_from([(0,), (1,), (7,), (16,), (33,), (3, 50), (2, 3, 17)]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        info = np.finfo(chosen)
        x = (rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 1e3]))).astype(chosen)
        if draw(st.booleans()) and x.size:
            specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.max, info.smallest_subnormal], chosen)
            picked = rng.random(shape) < 0.3
            x[picked] = rng.choice(specials, int(picked.sum()))
        keep = draw(st.sampled_from([1.0, 0.5, 0.9, 0.35, 2.0**-32, 1e-6]))
        seed = draw(st.integers(0, 2**64 - 1))
        first = draw(st.sampled_from([0, 1, 12345, 2**40 + 3]))
        garbage = lambda: rng.standard_normal(shape).astype(chosen)  # noqa: E731  outputs start dirty
        return (np.ascontiguousarray(x), garbage(), garbage(), keep_threshold(keep), 1.0 / keep, seed, first)

    return problem()


def _benchmark():
    """BetterRnnlm's activations between layers: 20 sequences x 35 steps x 650, dropout 0.5."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 35, 650)).astype(np.float32)
    return x, np.empty_like(x), np.empty_like(x), keep_threshold(0.5), 2.0, 12345, 0


_HALF = "the recurrent layers keep float32 activations; 16-bit inputs go through NumPy"
registry.register(registry.OpSpec(
    name="dropout_forward", family="dropout", doc="inverted dropout: counter-based draws, mask and scaled x in one pass",
    dtypes=FLOAT_DTYPES, deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={d: (0, 0) for d in FLOAT_DTYPES}, declines={d: _HALF for d in HALF_DTYPES},
    examples=_examples, benchmark_args=_benchmark, writes=(1, 2), dtype_of=lambda args: args[0].dtype))
