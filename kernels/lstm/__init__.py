"""One LSTM time step, forward and backward, fused: everything but the matrix products.

The gate layout is part of the contract: the pre-activation ``A = x Wx + h_prev Wh + b`` is
(N, 4H) with the book's blocks [f, g, i, o] side by side (``A[:, :H]`` forget gate,
``A[:, H:2H]`` cell candidate, ``A[:, 2H:3H]`` input gate, ``A[:, 3H:]`` output gate), not
interleaved per unit as in chainer. The matrix products stay in BLAS (cuBLAS on a GPU) and are
the caller's: the time loop (fastnlp.layers.TimeLSTM) does the input projection of all steps in
one product, and the weight gradients of all steps in one product each.

The contract of the backend-level ops (every file in this folder implements it):

    lstm_step_forward(A, c_prev, h_next, c_next, tanh_c)
        A (N, 4H) in: pre-activations; out: the activated gates [sigmoid f, tanh g,
        sigmoid i, sigmoid o] (overwritten in place: the pre-activation is not needed again).
        c_prev (N, H) read; h_next, c_next, tanh_c (N, H) written:
        c_next = f * c_prev + g * i, tanh_c = tanh(c_next), h_next = o * tanh_c.
        tanh_c is kept for the backward (tanh costs more than storing it). Returns None.
    lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA, dc_prev)
        dh_next, dc_next (N, H): gradients arriving at h_next and c_next; gates (N, 4H),
        c_prev and tanh_c as the forward left them. Writes dA (N, 4H), the gradient of the
        pre-activations in the same [f, g, i, o] blocks, and dc_prev (N, H). Returns None.
        (dh_prev = dA @ Wh.T, dx = dA @ Wx.T and the weight gradients are BLAS products.)

Every array is C-contiguous with one float dtype and no output overlaps another argument; the
public wrappers below check this once and allocate missing outputs. The compiled float32
kernels use a rational approximation of tanh (a few ulp, vectorisable), so these ops are held
to a tolerance, not to bit equality.

Storage dtypes: float64, float32, float16 and bfloat16 (ml_dtypes). In float16 / bfloat16 the
step is the float32 step on the inputs converted up, and each output (the gates, h_next,
c_next, tanh_c; dA, dc_prev) is rounded once to the storage dtype at the end (to nearest, ties
to even); what the step reads of its own results (the gates, c_next, tanh_c) is the float32
value, before rounding. Every backend does this: the reference with NumPy float32 copies.
"""
from __future__ import annotations

import numpy as np

from .. import dispatch, registry
from ..memory import aligned_empty
from ..validate import BFLOAT16, FLOAT_DTYPES, HALF_DTYPES

STORAGE = FLOAT_DTYPES + HALF_DTYPES  # the dtypes the step's arrays may have
# float32: a few ulp of tanh (the compiled kernels' rational approximation), carried through
# c = f c_prev + g i and the products of the backward. float64: libm's tanh against NumPy's.
# float16 / bfloat16: float32 results within the float32 tolerance, each rounded once; where a
# rounding boundary falls between two backends' float32 values they land one storage ulp apart
# (2^-10 / 2^-7 of the value at most, added to the float32 rtol; atol covers subnormals).
_TOLERANCE = {np.dtype(np.float32): (2e-6, 2e-5), np.dtype(np.float64): (1e-13, 1e-12),
              np.dtype(np.float16): (2.1e-6, 1e-3), BFLOAT16: (2e-6, 8e-3)}


def lstm_step_forward(A, c_prev, h_next=None, c_next=None, tanh_c=None, overwrite_A=False):
    """One LSTM step from the pre-activation ``A`` (N, 4H), gate blocks [f, g, i, o].

    Returns ``(gates, h_next, c_next, tanh_c)``: the activated gates (N, 4H) and three (N, H)
    arrays. Outputs given as arguments are written in place (C-contiguous, writable, the
    dtype of ``A``, overlapping nothing else); missing ones are allocated. ``A`` itself is
    left unchanged unless ``overwrite_A=True``, when the gates are written into it (``A`` must
    then be C-contiguous and writable) and no (N, 4H) copy is made.
    """
    xp, dtype, N, H = _check_gate_matrix(A, "A")
    c_prev = _check_state(c_prev, "c_prev", xp, dtype, N, H)
    if overwrite_A:
        _check_output(A, "A", dtype, (N, 4 * H))
        gates = A
    else:
        gates = xp.array(A, dtype=dtype, order="C", copy=True)
    h_next, c_next, tanh_c = (_output(out, name, xp, dtype, (N, H)) for out, name in
                              ((h_next, "h_next"), (c_next, "c_next"), (tanh_c, "tanh_c")))
    outputs = (("gates", gates), ("h_next", h_next), ("c_next", c_next), ("tanh_c", tanh_c))
    _check_disjoint(xp, outputs, (("c_prev", c_prev),))
    if N and H:
        registry.kernel("lstm_step_forward", gates)(gates, c_prev, h_next, c_next, tanh_c)
    return gates, h_next, c_next, tanh_c


def lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c, dA=None, dc_prev=None):
    """The elementwise backward of one step: returns ``(dA, dc_prev)``.

    ``dh_next`` and ``dc_next`` (N, H) are the gradients arriving at the step's outputs;
    ``gates`` (N, 4H), ``c_prev`` and ``tanh_c`` (N, H) are what ``lstm_step_forward`` used and
    returned. ``dA`` (N, 4H, blocks [f, g, i, o]) and ``dc_prev`` (N, H) are written in place
    when given, else allocated. No input is changed.
    """
    xp, dtype, N, H = _check_gate_matrix(gates, "gates")
    inputs = [("gates", gates)]
    for name, value in (("dh_next", dh_next), ("dc_next", dc_next), ("c_prev", c_prev), ("tanh_c", tanh_c)):
        inputs.append((name, _check_state(value, name, xp, dtype, N, H)))
    values = dict(inputs)
    gates = values["gates"] = xp.ascontiguousarray(gates)
    dA = _output(dA, "dA", xp, dtype, (N, 4 * H))
    dc_prev = _output(dc_prev, "dc_prev", xp, dtype, (N, H))
    _check_disjoint(xp, (("dA", dA), ("dc_prev", dc_prev)), tuple(values.items()))
    if N and H:
        registry.kernel("lstm_step_backward", dA)(values["dh_next"], values["dc_next"], gates,
                                                  values["c_prev"], values["tanh_c"], dA, dc_prev)
    return dA, dc_prev


def sequence_kernels(gates, cs, tanh_cs):
    """``(forward, backward)``: the step kernels of the module's contract, for a time loop that
    owns whole-sequence buffers and passes one step's slices to them.

    ``gates`` (T, N, 4H) (the pre-activations going forward), ``cs`` (T + 1, N, H) and
    ``tanh_cs`` (T, N, H) are checked once here: one dtype, one device, C-contiguous, writable,
    disjoint. The loop keeps its other step arrays (h, dh, dc) of the same dtype, C-contiguous
    and apart from these, and calls ``forward(A[t], cs[t], h_next, cs[t + 1], tanh_cs[t])`` and
    ``backward(dh_next, dc_next, gates[t], cs[t], tanh_cs[t], dA[t], dc_prev)`` with N, H >= 1.
    No per-step check runs: at Rnnlm's size (N 20, H 100) a step's kernel takes 2-3 us and the
    checks of lstm_step_forward/backward about 10.
    """
    if not hasattr(gates, "ndim") or gates.ndim != 3:
        raise ValueError(f"gates must be a (T, N, 4H) array, got {getattr(gates, 'shape', type(gates).__name__)}")
    T, N, four_H = gates.shape
    xp, dtype, _, H = _check_gate_matrix(gates.reshape(T * N, four_H), "gates")
    for name, array, shape in (("gates", gates, (T, N, 4 * H)), ("cs", cs, (T + 1, N, H)),
                               ("tanh_cs", tanh_cs, (T, N, H))):
        if dispatch.array_module(array) is not xp:
            raise TypeError(f"{name} lives on another device than the gates (numpy vs cupy)")
        _check_output(array, name, dtype, shape)
    _check_disjoint(xp, (("gates", gates), ("cs", cs), ("tanh_cs", tanh_cs)), ())
    return registry.kernel("lstm_step_forward", gates), registry.kernel("lstm_step_backward", gates)


def _check_gate_matrix(A, name):
    if not hasattr(A, "dtype") or not hasattr(A, "shape"):
        raise TypeError(f"{name} must be an array, got {type(A).__name__}")
    if A.dtype not in STORAGE:
        raise TypeError(f"{name} must be float64, float32, float16 or bfloat16, got dtype {A.dtype}")
    if A.ndim != 2 or A.shape[1] % 4:
        raise ValueError(f"{name} must be (N, 4H) with gate blocks [f, g, i, o], got shape {tuple(A.shape)}")
    return dispatch.array_module(A), A.dtype, A.shape[0], A.shape[1] // 4


def _check_state(x, name, xp, dtype, N, H):
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if dispatch.array_module(x) is not xp:
        raise TypeError(f"{name} lives on another device than the gates (numpy vs cupy)")
    if tuple(x.shape) != (N, H):
        raise ValueError(f"{name} has shape {tuple(x.shape)}; the gates (N={N}, 4H={4 * H}) need ({N}, {H})")
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the gates have {dtype}")
    return xp.ascontiguousarray(x)


def _check_output(out, name, dtype, shape):
    if tuple(out.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(out.shape)}, expected {shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}, expected {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous: the kernels write through it")
    if not getattr(out.flags, "writeable", True):
        raise ValueError(f"{name} is read-only")


def _output(out, name, xp, dtype, shape):
    if out is None:
        return aligned_empty(shape, dtype, xp)
    if dispatch.array_module(out) is not xp:
        raise TypeError(f"{name} lives on another device than the gates (numpy vs cupy)")
    _check_output(out, name, dtype, shape)
    return out


def _check_disjoint(xp, outputs, inputs):
    """No output may share memory with another output or an input: the kernels read inputs
    while they write, element by element."""
    named = list(outputs)
    for k, (name, out) in enumerate(named):
        for other, value in named[k + 1:] + list(inputs):
            if out.size and value.size and xp.may_share_memory(out, value):
                raise ValueError(f"{name} overlaps {other}; give separate arrays")


# ----- specs: what the generated tests and benchmarks draw -----------------------------------

def _random_step(draw, with_gradients, dtype=None):
    """One step's arguments of storage dtype ``dtype`` (any of STORAGE when None): values drawn
    in float64 and rounded to the dtype, so each is one the dtype holds."""
    from hypothesis import strategies as st

    dtype = np.dtype(dtype if dtype is not None else draw(st.sampled_from(STORAGE)))
    N = draw(st.sampled_from([1, 2, 3, 20]))
    H = draw(st.sampled_from([1, 2, 3, 7, 16, 33, 100]))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0, 60.0]))  # 60: saturated gates
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = (rng.standard_normal((N, 4 * H)) * scale).astype(dtype)
    c_prev = (rng.standard_normal((N, H)) * draw(st.sampled_from([0.5, 2.0]))).astype(dtype)
    garbage = lambda shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731  outputs start dirty
    if not with_gradients:
        return A, c_prev, garbage((N, H)), garbage((N, H)), garbage((N, H))
    from .reference import lstm_step_forward as forward

    h_next, c_next, tanh_c = garbage((N, H)), garbage((N, H)), garbage((N, H))
    forward(A, c_prev, h_next, c_next, tanh_c)
    dh_next, dc_next = garbage((N, H)), garbage((N, H))
    return dh_next, dc_next, A, c_prev, tanh_c, garbage((N, 4 * H)), garbage((N, H))


def _forward_examples(dtype=None):
    from hypothesis import strategies as st

    return st.composite(lambda draw: _random_step(draw, False, dtype))()


def _backward_examples(dtype=None):
    from hypothesis import strategies as st

    return st.composite(lambda draw: _random_step(draw, True, dtype))()


def _benchmark_step(with_gradients):
    """One step of the book's BetterRnnlm (ch. 6): batch 20, hidden 650, float32."""
    N, H = 20, 650
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((N, 4 * H)) * 2).astype(np.float32)
    c_prev = rng.standard_normal((N, H)).astype(np.float32)
    h_next, c_next, tanh_c = (np.zeros((N, H), np.float32) for _ in range(3))
    if not with_gradients:
        return A, c_prev, h_next, c_next, tanh_c
    from .reference import lstm_step_forward as forward

    forward(A, c_prev, h_next, c_next, tanh_c)  # A now holds the gates
    dh_next, dc_next = rng.standard_normal((2, N, H)).astype(np.float32)
    return dh_next, dc_next, A, c_prev, tanh_c, np.zeros((N, 4 * H), np.float32), np.zeros((N, H), np.float32)


def _forward_benchmark():
    return _benchmark_step(False)


def _backward_benchmark():
    return _benchmark_step(True)


# CuPy (13) has no bfloat16 dtype: a device array cannot hold one, so no CuPy call can carry it.
_CUPY_NO_BF16 = ("CuPy arrays cannot hold ml_dtypes.bfloat16; lstm_half.cu has the __nv_bfloat16 kernels "
                 "(lstm_forward_bf16, lstm_backward_bf16) for uint16 views")

# Measured with bench/test_bench_lstm.py (one thread, float32, medians in us at batch x hidden
# 20 x 100 / 20 x 650 / 128 x 256): forward NumPy 18.3/42.2/95.1, Numba 4.0/15.7/39.7, Cython
# 3.2/13.9/32.2 (the same math in torch ops: 23.3/82.0/193); backward NumPy 23.0/48.9/112, Numba
# 4.1/9.0/33.8, Cython 2.3/8.3/20.6. NumPy's SVML tanh is fast, but a dozen ufunc calls and
# temporaries per step are not; the compiled loops win once tanh is plain arithmetic that
# vectorises (Numba's LLVM targets the host CPU; Cython's C clones pick AVX-512 at load).
# Which runs by default is measured per machine (kernels/calibration.py). (float64, used by
# gradient checks only, runs libm's scalar tanh in the compiled forwards: 3-5x slower than NumPy.)
registry.register(registry.OpSpec(
    name="lstm_step_forward", family="lstm",
    doc="gates [f,g,i,o] activated in place; c_next, tanh(c_next), h_next from A and c_prev",
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND, exact=False, tolerance=_TOLERANCE,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_forward_examples, benchmark_args=_forward_benchmark, writes=(0, 2, 3, 4),
    dtype_of=lambda args: args[0].dtype))
registry.register(registry.OpSpec(
    name="lstm_step_backward", family="lstm",
    doc="dA [f,g,i,o] and dc_prev from dh_next, dc_next and the forward's gates, c_prev, tanh_c",
    dtypes=STORAGE, deterministic=registry.EVERY_BACKEND, exact=False, tolerance=_TOLERANCE,
    lacks_dtype={"cupy": {BFLOAT16: _CUPY_NO_BF16}},
    examples=_backward_examples, benchmark_args=_backward_benchmark, writes=(5, 6),
    dtype_of=lambda args: args[0].dtype))
