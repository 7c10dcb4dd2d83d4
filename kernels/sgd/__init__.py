"""The SGD step on a dense parameter: ``p -= lr * g`` in place, in one pass (the gradient
optionally scaled on the way, the clipping of the book's Trainer).

NumPy's ``p -= lr * g`` makes a temporary the size of the parameter (26 MB for BetterRnnlm's
tied 10,000 x 650 embedding, fresh pages every step) and passes over memory three times; the
optimizer's step was 3-4% of a language model's training step for it. The contract of the
backend-level op (every file in this folder implements it)::

    sgd_update(p, g, lr, grad_scale)
        p and g C-contiguous, one shape and dtype (float32 or float64), not overlapping; lr and
        grad_scale Python floats. Writes p[i] = p[i] - round(lr * round(grad_scale * g[i])) for
        every i: each product rounded to p's dtype, then the difference rounded (never a fused
        multiply-add), which is exactly NumPy's ``g *= grad_scale; p -= lr * g`` with both
        scalars cast to p's dtype, without writing g. (grad_scale 1 leaves g exact: the old
        ``p -= lr * g``.) Returns None.

Every backend gives the reference's bits: the C loop is compiled with contraction off
(sgd_ops.h), Numba does not fuse without fastmath, and the CUDA kernel uses __fmul_rn /
__fsub_rn (sgd.cu). Mixed precision keeps float32 master weights, so 16-bit parameters are
declined.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..threads import parallel_rows
from ..validate import FLOAT_DTYPES, HALF_DTYPES


def sgd_update(p, g, lr, grad_scale=1.0):
    """``p -= lr * (grad_scale * g)`` in place for float32 / float64 arrays of one shape (the
    module's contract): one pass, no temporary, ``g`` unchanged, the bits of NumPy's
    ``g *= grad_scale; p -= lr * g``. The clipping rate rides along this pass instead of taking
    one of its own over every gradient (BetterRnnlm: 3 ms of a 380 ms step on one thread)."""
    for name, array in (("p", p), ("g", g)):
        if not hasattr(array, "dtype") or not hasattr(array, "shape"):
            raise TypeError(f"sgd_update: {name} must be an array, got {type(array).__name__}")
    registry.spec("sgd_update").check_dtype(p.dtype, "p")
    if g.dtype != p.dtype or tuple(g.shape) != tuple(p.shape):
        raise ValueError(f"sgd_update: g ({g.dtype}, shape {tuple(g.shape)}) must have p's dtype and shape "
                         f"({p.dtype}, {tuple(p.shape)})")
    if not p.flags.c_contiguous or (type(p) is np.ndarray and not p.flags.writeable):
        raise ValueError("sgd_update: p must be C-contiguous and writeable (it is updated in place)")
    lr, grad_scale = float(lr), float(grad_scale)
    if not np.isfinite(lr):
        raise ValueError(f"sgd_update: lr must be finite, got {lr}")
    if not np.isfinite(grad_scale):
        raise ValueError(f"sgd_update: grad_scale must be finite, got {grad_scale}")
    xp = np if type(p) is np.ndarray else dispatch.array_module(p)
    g = xp.ascontiguousarray(g)
    if xp.may_share_memory(p, g):
        g = g.copy()
    if not p.size:
        return
    kernel = registry.kernel("sgd_update", p)
    if xp is np:  # large parameters split over the BLAS threads: elementwise, so the bits are the same
        flat_p, flat_g = p.reshape(-1), g.reshape(-1)
        parallel_rows(lambda begin, end: kernel(flat_p[begin:end], flat_g[begin:end], lr, grad_scale), p.size,
                      p.size)
    else:
        kernel(p, g, lr, grad_scale)


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _examples(dtype=None):
    """Parameters and gradients of every scale, with zeros, signed zeros and extreme values
    (products that overflow or fall into the subnormals), shapes of 1 to 3 dims."""
    from hypothesis import strategies as st

    @st.composite
    def problem(draw):
        chosen = np.dtype(dtype) if dtype is not None else np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
        shape = draw(st.sampled_from([(1,), (7,), (16,), (17,), (3, 33), (2, 3, 5)]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        info = np.finfo(chosen)
        p = (rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 1e3]))).astype(chosen)
        g = (rng.standard_normal(shape) * draw(st.sampled_from([1e-30, 1.0, 1e30]))).astype(chosen)
        if draw(st.booleans()):
            specials = np.array([0.0, -0.0, info.max, -info.max, info.tiny, info.smallest_subnormal], chosen)
            mask = rng.random(shape) < 0.3
            g[mask] = rng.choice(specials, int(mask.sum()))
        lr = draw(st.sampled_from([1e-3, 0.1, 20.0, 1e10]))
        grad_scale = draw(st.sampled_from([1.0, 1.0, 0.3719, 1e-30, 3.0]))  # a clipping rate; 3: overflow
        return np.ascontiguousarray(p), np.ascontiguousarray(g), lr, grad_scale

    return problem()


def _benchmark():
    """BetterRnnlm's tied embedding (10,000 x 650), the book's SGD learning rate 20."""
    rng = np.random.default_rng(0)
    p = (0.01 * rng.standard_normal((10000, 650))).astype(np.float32)
    return p, (1e-4 * rng.standard_normal((10000, 650))).astype(np.float32), 20.0, 0.37


_HALF = "mixed precision keeps float32 master weights: update the float32 copy"
registry.register(registry.OpSpec(
    name="sgd_update", family="sgd", doc="p -= lr * (grad_scale * g) in place, in one pass (each product rounded)",
    dtypes=FLOAT_DTYPES, deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={d: (0, 0) for d in FLOAT_DTYPES}, declines={d: _HALF for d in HALF_DTYPES},
    examples=_examples, benchmark_args=_benchmark, writes=(0,), dtype_of=lambda args: args[0].dtype))
