"""Exponentials and their row sums: the forward half of softmax cross-entropy.

``TimeSoftmaxWithLoss`` turns (N*T, V) scores into ``exp(x)`` and one sum per row, the
softmax's numerator and denominator; with V = 10,000 words that pass over 7 million scores
per step of the book's language models was the largest cost after the matrix products
(NumPy's float32 exp: ~1.9 ns a value on the Xeon, more than the products of Rnnlm's LSTM).
The contract of the backend-level op (every file in this folder implements it)::

    exp_row_sums(x, y, sums)
        x (R, V) C-contiguous float32 or float64, R >= 0, V >= 1; y (R, V) and sums (R,) of
        x's dtype, C-contiguous, overlapping nothing. Writes y = exp(x) element by element
        and sums[r] = y[r, 0] + ... + y[r, V - 1]. Returns None.
        exp follows IEEE: exp(-inf) = 0, exp(+inf) = +inf, NaN stays NaN, results above the
        largest float are +inf and below the smallest subnormal 0.

Exponentials are not correctly rounded by any library, so the backends agree to a few ulp,
not bit for bit: the reference is NumPy's ``np.exp`` and a float64-accumulated sum; the
Cython loop evaluates exp as 2^n * p(r) with n = round(x / ln 2) and a degree-6 polynomial on
|r| <= ln 2 / 2 (1-2 ulp), sixteen values at a time in whatever vector width the CPU has
(softmax_ops.h); Numba calls ``math.exp``; CUDA ``expf``/``exp`` with one block per row.

Rows are independent, so the public wrapper splits a large problem into row blocks run on
as many threads as NumPy's BLAS has (``kernels/threads.py``): the products before and after
this pass run on that many cores too. float16 / bfloat16 scores are declined: the loss needs
float32's range (exp overflows float16 above x = 11).
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..threads import parallel_rows
from ..validate import FLOAT_DTYPES, HALF_DTYPES, output_for


def exp_row_sums(x, out=None, sums=None):
    """``(y, sums)``: ``y = exp(x)`` and the sum of each row of ``y``, for ``x`` of shape
    (R, V) in float32 or float64, in one pass over the scores (see the module's contract).
    ``out`` / ``sums`` receive the results when given (C-contiguous, x's dtype)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"exp_row_sums: x must be 2-D (rows, classes), got shape {tuple(x.shape)}")
    registry.spec("exp_row_sums").check_dtype(x.dtype, "x")
    R, V = x.shape
    if V == 0:
        raise ValueError(f"exp_row_sums: x has no columns (shape {tuple(x.shape)}); a softmax needs classes")
    xp = np if type(x) is np.ndarray else dispatch.array_module(x)
    x = xp.ascontiguousarray(x)
    out = _output(out, (R, V), x, "out", xp)
    sums = _output(sums, (R,), x, "sums", xp)
    if R == 0:
        return out, sums
    kernel = registry.kernel("exp_row_sums", x)
    if xp is np:
        parallel_rows(lambda a, b: kernel(x[a:b], out[a:b], sums[a:b]), R, x.size)
    else:
        kernel(x, out, sums)
    return out, sums


def _output(array, shape, x, name, xp):
    return output_for(array, "exp_row_sums", name, shape, x, xp)


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _examples(dtype=None):
    """Language-model scores, rows shorter and longer than a vector, and the edges of exp:
    overflow (above ~88.7 in float32), subnormal and zero results, infinities and NaN."""
    from hypothesis import strategies as st

    @st.composite
    def problem(draw):
        chosen = np.dtype(dtype) if dtype is not None else np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
        R = draw(st.sampled_from([0, 1, 2, 5]))
        V = draw(st.sampled_from([1, 3, 15, 16, 17, 64, 129]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        scale = draw(st.sampled_from([1.0, 10.0, 60.0]))
        x = (rng.standard_normal((R, V)) * scale).astype(chosen)
        if draw(st.booleans()):
            edges = np.array([np.nan, np.inf, -np.inf, 88.72, 88.73, 89.0, -87.3, -95.0, -103.9, -104.5,
                              709.7, 710.0, -745.1, 0.0, -0.0], np.float64).astype(chosen)
            mask = rng.random((R, V)) < 0.2
            x[mask] = rng.choice(edges, int(mask.sum()))
        y, sums = np.empty_like(x), np.empty(R, chosen)
        return np.ascontiguousarray(x), y, sums

    return problem()


def _benchmark():
    """The book's language models: 20 x 35 positions of V = 10,000 word scores."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((700, 10000)) * 2).astype(np.float32)
    return x, np.empty_like(x), np.empty(700, np.float32)


# exp to a few ulp of NumPy's (1-2 ulp each side); sums of V terms in another order. Results
# below float32's normal range may differ in their last subnormal bits: atol covers them.
_TOLERANCE = {np.dtype(np.float32): (1e-37, 2e-6), np.dtype(np.float64): (1e-300, 1e-13)}
_HALF = ("softmax needs float32's range (exp overflows float16 above x = 11) and the loss layer computes in "
         "float32: cast the scores to float32")
registry.register(registry.OpSpec(
    name="exp_row_sums", family="softmax", doc="y = exp(x) and the sum of each row, in one pass",
    dtypes=FLOAT_DTYPES, deterministic=registry.EVERY_BACKEND, exact=False, tolerance=_TOLERANCE,
    declines={d: _HALF for d in HALF_DTYPES},
    examples=_examples, benchmark_args=_benchmark, writes=(1, 2), dtype_of=lambda args: args[0].dtype))
