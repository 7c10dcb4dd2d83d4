"""Dot-product attention over encoder states (book ch. 8): the weights and the weighted sum.

For each batch item n the encoder states ``hs[n]`` (T, H) are scored against each query
``h[n, q]`` (H,); the weights are a softmax over the T states and the context is their
weighted sum:

    a[n, q, t] = softmax_t(h[n, q] . hs[n, t])          attention_weights   (the book's AttentionWeight)
    c[n, q]    = sum_t a[n, q, t] hs[n, t]               weighted_sum        (the book's WeightSum)

The contract of the backend-level ops (every file in this folder implements it). hs (N, T, H),
h and dc (N, Q, H), a and da (N, Q, T): C-contiguous, one storage dtype (float32, float64,
float16 or ml_dtypes' bfloat16), T >= 1; every other extent may be 0. Each op returns new
arrays of that dtype and changes no input.

    attention_weights(hs, h) -> a
    attention_weights_backward(hs, h, a, da) -> (dhs, dh)   gradients through the softmax
    weighted_sum(hs, a) -> c
    weighted_sum_backward(hs, a, dc) -> (dhs, da)
    attention_context(hs, h) -> (a, c)                      both forward ops in one pass
    attention_context_backward(hs, h, a, dc) -> (dhs, dh)   both backward ops, dhs summed

Q is the number of queries per item: 1 for one decoder step (the book's layers), the whole
decoder length when every step's query is known at once (TimeAttention in training). The fused
pair reads each hs[n] once per pass while it sits in cache; the compiled loops are measured
against the book's broadcast-and-sum code, NumPy's batched matmul and torch.bmm by
bench/test_bench_attention.py.

float16 / bfloat16 storage: inputs, outputs and gradients are stored in the 16-bit format and
everything is computed in float32. Each input is converted up (exactly), scores, weights,
products and sums are float32 from there on (the weights that weigh hs in the fused forward,
and the scores' gradient ``da`` inside the fused backward, are never rounded), and each output
is rounded once to the storage format (to nearest, ties to even) when it is written. The
reference does the float32 computation on float32 copies and rounds its results once.

The public wrappers below also take a single query per item, h (N, H) and a (N, T), and then
return a (N, T), c (N, H), dh (N, H) as the book's layers do. They check shapes, dtypes and the
device once and hand the kernels only what the contract allows.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..validate import BFLOAT16, FLOAT_DTYPES, HALF_DTYPES, check_same_device

FLOATS = FLOAT_DTYPES
FLOAT16 = np.dtype(np.float16)
STORAGE = FLOATS + HALF_DTYPES  # the dtypes the ops take
# Sums of H (or T, or Q) products in another order than BLAS's, then exp: the error is a few ulp
# of the sum of |terms|, not of the result, hence the absolute part. Measured over 300 examples
# per op and backend (below; gradients of size ~16 at H = 256): at most 5.2e-6 beyond the
# relative part in float32, 2.5e-15 in float64.
# float16 / bfloat16: every backend computes in float32 from the same inputs (widened exactly),
# so before rounding its results are within the float32 tolerance of the reference's; rounding
# each once to the storage format can then put the two on neighbouring values: one ulp more,
# 2^-10 (float16) or 2^-7 (bfloat16) of the result. Nothing else is rounded in between. (The
# float32 atol also covers float16's subnormal spacing, 2^-24.)
_F32_ATOL, _F32_RTOL = 3e-5, 1e-4
_TOLERANCE = {np.dtype(np.float32): (_F32_ATOL, _F32_RTOL), np.dtype(np.float64): (3e-14, 1e-10),
              FLOAT16: (_F32_ATOL, _F32_RTOL + 2.0**-10), BFLOAT16: (_F32_ATOL, _F32_RTOL + 2.0**-7)}
# CuPy (13) has no bfloat16 dtype: a device array cannot hold one, so no CuPy call can carry it.
_CUPY_NO_BF16 = ("CuPy arrays cannot hold ml_dtypes.bfloat16; attention_half.cu has the __nv_bfloat16 "
                 "kernels, run on uint16 views by cupy_impl.run_bits (tested under the CUDA emulation)")


def attention_weights(hs, h):
    """Attention weights ``softmax_t(h[n, q] . hs[n, t])``.

    ``hs`` (N, T, H) encoder states, T >= 1; ``h`` (N, H) one query per item, or (N, Q, H).
    Returns ``a`` (N, T), or (N, Q, T): each row sums to 1.
    """
    hs = _states(hs, "attention_weights")
    h3, single = _queries(h, hs, "h", "attention_weights")
    a = registry.kernel("attention_weights", hs)(hs, h3)
    return a[:, 0] if single else a


def attention_weights_backward(hs, h, a, da):
    """Gradients ``(dhs, dh)`` of ``attention_weights(hs, h)`` given ``da`` at its output ``a``.

    ``a`` is what the forward returned; ``da`` has its shape. ``dh`` has the shape of ``h``.
    """
    hs = _states(hs, "attention_weights_backward")
    h3, single = _queries(h, hs, "h", "attention_weights_backward")
    Q = h3.shape[1]
    a3 = _weights(a, hs, Q, single, "a", "attention_weights_backward")
    da3 = _weights(da, hs, Q, single, "da", "attention_weights_backward")
    dhs, dh = registry.kernel("attention_weights_backward", hs)(hs, h3, a3, da3)
    return dhs, dh[:, 0] if single else dh


def weighted_sum(hs, a):
    """Context vectors ``sum_t a[n, q, t] hs[n, t]``: ``a`` (N, T) gives (N, H); (N, Q, T) gives (N, Q, H)."""
    hs = _states(hs, "weighted_sum")
    single = _is_single(a, "a", "weighted_sum")
    a3 = _weights(a, hs, None, single, "a", "weighted_sum")
    c = registry.kernel("weighted_sum", hs)(hs, a3)
    return c[:, 0] if single else c


def weighted_sum_backward(hs, a, dc):
    """Gradients ``(dhs, da)`` of ``weighted_sum(hs, a)`` given ``dc`` at its output (shape of c)."""
    hs = _states(hs, "weighted_sum_backward")
    single = _is_single(a, "a", "weighted_sum_backward")
    a3 = _weights(a, hs, None, single, "a", "weighted_sum_backward")
    dc3, _ = _queries(dc, hs, "dc", "weighted_sum_backward", expect_single=single, expect_q=a3.shape[1])
    dhs, da = registry.kernel("weighted_sum_backward", hs)(hs, a3, dc3)
    return dhs, da[:, 0] if single else da


def attention_context(hs, h):
    """``(a, c)``: ``attention_weights(hs, h)`` and ``weighted_sum(hs, a)`` in one pass."""
    hs = _states(hs, "attention_context")
    h3, single = _queries(h, hs, "h", "attention_context")
    a, c = registry.kernel("attention_context", hs)(hs, h3)
    return (a[:, 0], c[:, 0]) if single else (a, c)


def attention_context_backward(hs, h, a, dc):
    """``(dhs, dh)`` of ``attention_context``: both paths into ``hs`` summed; ``a`` is the
    forward's weights, ``dc`` the gradient at its context vectors."""
    hs = _states(hs, "attention_context_backward")
    h3, single = _queries(h, hs, "h", "attention_context_backward")
    Q = h3.shape[1]
    a3 = _weights(a, hs, Q, single, "a", "attention_context_backward")
    dc3, _ = _queries(dc, hs, "dc", "attention_context_backward", expect_single=single, expect_q=Q)
    dhs, dh = registry.kernel("attention_context_backward", hs)(hs, h3, a3, dc3)
    return dhs, dh[:, 0] if single else dh


# ----- validation ----------------------------------------------------------------------------

def _array(x, name, who):
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{who}: {name} must be an array, got {type(x).__name__}")
    return x


def _states(hs, who):
    _array(hs, "hs", who)
    registry.spec(who).check_dtype(hs.dtype, "hs")  # TypeError naming the op and the dtypes it takes
    if hs.ndim != 3:
        raise ValueError(f"{who}: hs must be (N, T, H) encoder states, got shape {tuple(hs.shape)}")
    if hs.shape[1] == 0:
        raise ValueError(f"{who}: hs has no time steps (shape {tuple(hs.shape)}); attention needs T >= 1")
    return dispatch.array_module(hs).ascontiguousarray(hs)


def _same_dtype(x, hs, name, who):
    check_same_device(hs, x)
    if x.dtype != hs.dtype:
        raise TypeError(f"{who}: {name} has dtype {x.dtype} but hs has {hs.dtype}; pass one float dtype")


def _is_single(x, name, who):
    _array(x, name, who)
    if x.ndim not in (2, 3):
        raise ValueError(f"{who}: {name} must be 2-D (N, T) or 3-D (N, Q, T), got shape {tuple(x.shape)}")
    return x.ndim == 2


def _queries(h, hs, name, who, expect_single=None, expect_q=None):
    """``h`` as (N, Q, H) C-contiguous, and whether it came as (N, H)."""
    _array(h, name, who)
    _same_dtype(h, hs, name, who)
    N, _, H = hs.shape
    if h.ndim not in (2, 3) or h.shape[0] != N or h.shape[-1] != H:
        raise ValueError(f"{who}: {name} of shape {tuple(h.shape)} does not fit hs of shape {tuple(hs.shape)}: "
                         f"it must be ({N}, {H}) or ({N}, Q, {H})")
    single = h.ndim == 2
    h3 = h[:, None, :] if single else h
    if expect_single is not None and (single != expect_single or h3.shape[1] != expect_q):
        want = f"({N}, {H})" if expect_single else f"({N}, {expect_q}, {H})"
        raise ValueError(f"{who}: {name} has shape {tuple(h.shape)}, the weights need {want}")
    return dispatch.array_module(hs).ascontiguousarray(h3), single


def _weights(a, hs, Q, single, name, who):
    """``a`` as (N, Q, T) C-contiguous; Q None: any number of queries."""
    _array(a, name, who)
    _same_dtype(a, hs, name, who)
    N, T, _ = hs.shape
    if single:
        ok, want = a.ndim == 2 and tuple(a.shape) == (N, T), f"({N}, {T})"
    else:
        want = f"({N}, {'Q' if Q is None else Q}, {T})"
        ok = a.ndim == 3 and a.shape[0] == N and a.shape[2] == T and (Q is None or a.shape[1] == Q)
    if not ok:
        raise ValueError(f"{who}: {name} has shape {tuple(a.shape)}; for hs of shape {tuple(hs.shape)} "
                         f"it must be {want}")
    a3 = a[:, None, :] if single else a
    return dispatch.array_module(hs).ascontiguousarray(a3)


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _random_problem(draw, kind, dtype=None):
    """Arguments of one op, of storage dtype ``dtype`` (any of STORAGE when None): values drawn in
    float64 and rounded to the dtype, so each is one the dtype holds. Queries are scaled so that
    scores have a spread of about ``scale`` (0.1: nearly uniform weights; 4: sharply peaked), as
    trained attention gives."""
    from hypothesis import strategies as st

    from . import reference

    dtype = np.dtype(dtype) if dtype is not None else np.dtype(draw(st.sampled_from(STORAGE)))
    N = draw(st.sampled_from([0, 1, 2, 5, 17]))
    T = draw(st.sampled_from([1, 2, 7, 29]))
    Q = draw(st.sampled_from([0, 1, 2, 4, 5, 10]))
    H = draw(st.sampled_from([0, 1, 3, 16, 17, 33, 256]))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hs = rng.standard_normal((N, T, H)).astype(dtype)
    h = (rng.standard_normal((N, Q, H)) * (scale / np.sqrt(max(H, 1)))).astype(dtype)
    if kind == "forward":
        return hs, h
    a = reference.attention_weights(hs, h)
    if kind == "weights":
        return hs, a
    gradient = lambda shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    if kind == "weights_backward":
        return hs, h, a, gradient(a.shape)
    if kind == "sum_backward":
        return hs, a, gradient(h.shape)
    return hs, h, a, gradient(h.shape)  # the fused backward


def _examples(kind):
    def strategy(dtype=None):
        from hypothesis import strategies as st

        return st.composite(lambda draw: _random_problem(draw, kind, dtype))()

    return strategy


def _benchmark(kind):
    """One decoder step of the date task (ch. 8, bench/test_bench_attention.py): N 128 items,
    T 29 encoder states, H 256, Q 1 query per item, float32."""
    def build():
        from . import reference

        N, T, H, Q = 128, 29, 256, 1
        rng = np.random.default_rng(0)
        hs = rng.standard_normal((N, T, H)).astype(np.float32)
        h = (rng.standard_normal((N, Q, H)) / np.sqrt(H)).astype(np.float32)
        if kind == "forward":
            return hs, h
        a = reference.attention_weights(hs, h)
        if kind == "weights":
            return hs, a
        gradient = lambda shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
        if kind == "weights_backward":
            return hs, h, a, gradient(a.shape)
        if kind == "sum_backward":
            return hs, a, gradient(h.shape)
        return hs, h, a, gradient(h.shape)  # the fused backward

    return build


# Which backend runs each op is measured per machine (kernels/calibration.py): Numba and Cython
# trade places within noise on these loops (bench/README.md), and NumPy's BLAS catches up at Q 10.
# Every backend sums in a fixed order (attention.cu, attention_half.cu: no atomics), so all are
# deterministic.
_COMMON = dict(family="attention", dtypes=STORAGE, deterministic=registry.EVERY_BACKEND, exact=False,
               tolerance=_TOLERANCE, lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
               dtype_of=lambda args: args[0].dtype)
for _name, _doc, _kind in (
        ("attention_weights", "a = softmax_t(h . hs_t) per item and query", "forward"),
        ("attention_weights_backward", "(dhs, dh) through the softmax from da", "weights_backward"),
        ("weighted_sum", "c = sum_t a_t hs_t per item and query", "weights"),
        ("weighted_sum_backward", "(dhs, da) from dc", "sum_backward"),
        ("attention_context", "(a, c): weights and weighted sum in one pass", "forward"),
        ("attention_context_backward", "(dhs, dh) of the fused forward from dc", "context_backward")):
    registry.register(registry.OpSpec(name=_name, doc=_doc, examples=_examples(_kind),
                                      benchmark_args=_benchmark(_kind), **_COMMON))
del _name, _doc, _kind
