"""Recurrent layers (book ch. 5-6): RNN, LSTM and GRU cells, their Time versions over (N, T, D)
sequences, and the Time layers a language model wraps around them.

Shapes follow the book: inputs ``xs`` (N, T, D), hidden states (N, H). Time layers are
``stateful`` when built so: the last hidden state carries into the next ``forward`` (truncated
BPTT), until ``reset_state()``; ``set_state`` sets it. Backward always starts from zero
gradient at the last step, so gradients are cut between calls.

Inside, the time loops run time-major (T, N, ...) so every step's arrays are contiguous. What
does not depend on the previous step is batched over all T steps: the input projection
``xs @ Wx + b`` is one matrix product before the loop, and the weight gradients are one product
each after the backward loop. Only ``h_prev @ Wh`` stays per step. The LSTM's elementwise step
is the fused kernel ``fastnlp.kernels.lstm_step_forward/backward`` (gate blocks [f, g, i, o]);
the GRU's gate blocks are the book's [z, r, h].

Every matrix product is ``fastnlp.kernels.gemm`` (the machine's fastest matrix library): the
per-step ``h_prev @ Wh`` is added straight into the step's pre-activations (``accumulate``),
the backward's ``dA[t] @ Wh.T`` straight into the previous step's ``dh``, and the weight
gradients are written into the gradient buffers.
"""
from __future__ import annotations

import numpy as np

from ..kernels import exp_row_sums, lstm_step_backward, lstm_step_forward
from ..kernels.dropout import apply_dropout, dropout_mask
from ..kernels.lstm import sequence_kernels
from ..kernels.dispatch import array_module
from ..kernels.gemm import autocast_dtype, column_sums_and_cast, repeated_product
from ..kernels.memory import (aligned_copy, aligned_empty, aligned_zeros, aligned_zeros_like,
                              memory_signature)
from ..kernels.threads import column_sums, parallel_rows
from ..kernels.validate import as_id_array, check_ids
from .base import FLOAT, Layer, NonFiniteError, check_dout, check_input, check_param
from .core import gemm_ready, product, product_into, rows
from .embedding import Embedding


def _sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5  # = 1 / (1 + exp(-x)), without overflow


def _recurrent_params(who, Wx, Wh, b, gates):
    """Check Wx (D, gates*H), Wh (H, gates*H), b (gates*H,) of one dtype; return H."""
    check_param(Wx, who, "Wx", 2), check_param(Wh, who, "Wh", 2), check_param(b, who, "b", 1)
    H = Wh.shape[0]
    if Wh.shape[1] != gates * H or Wx.shape[1] != gates * H or b.shape[0] != gates * H:
        raise ValueError(f"{who}: need Wx (D, {gates}H), Wh (H, {gates}H), b ({gates}H,); got Wx "
                         f"{tuple(Wx.shape)}, Wh {tuple(Wh.shape)}, b {tuple(b.shape)}")
    if not Wx.dtype == Wh.dtype == b.dtype:
        raise TypeError(f"{who}: Wx, Wh and b must share one dtype, got {Wx.dtype}, {Wh.dtype}, {b.dtype}")
    return H


def _input(x, who, D, dtype, ndim, what="input"):
    """A finite float array of ``ndim`` dimensions whose last axis is D, cast to the layer's dtype."""
    x = check_input(x, who, FLOAT, what)
    if x.ndim != ndim or x.shape[-1] != D:
        wanted = "(N, D)" if ndim == 2 else "(N, T, D)"
        raise ValueError(f"{who}: {what} must be {wanted} with D = {D}, got shape {tuple(x.shape)}")
    return x.astype(dtype, copy=False)


def _state(h, who, name, N, H, dtype, xp):
    """A carried or given state as an (N, H) array of the layer's dtype (zeros for None)."""
    if h is None:
        return xp.zeros((N, H), dtype=dtype)
    if tuple(h.shape) != (N, H):
        raise ValueError(f"{who}: {name} has shape {tuple(h.shape)} but this batch needs ({N}, {H}); "
                         "call reset_state() when the batch size changes")
    return xp.ascontiguousarray(h, dtype=dtype)


# ----- cells: one time step ------------------------------------------------------------------

class RNN(Layer):
    """``h_next = tanh(h_prev Wh + x Wx + b)``; backward returns ``(dx, dh_prev)``."""

    def __init__(self, Wx, Wh, b):
        _recurrent_params("RNN", Wx, Wh, b, 1)
        self.params, self.grads = [Wx, Wh, b], [aligned_zeros_like(p) for p in (Wx, Wh, b)]
        self.cache = None

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        x = _input(x, "RNN.forward", Wx.shape[0], Wx.dtype, 2)
        h_prev = _state(h_prev, "RNN.forward", "h_prev", x.shape[0], Wh.shape[0], Wx.dtype, array_module(x))
        h_next = product(h_prev, Wh)
        product_into(x, Wx, h_next, accumulate=True)
        h_next += b
        np.tanh(h_next, out=h_next)
        self.cache = (x, h_prev, h_next)
        return h_next

    def backward(self, dh_next):
        Wx, Wh, _ = self.params
        x, h_prev, h_next = self.saved("cache")
        dt = check_dout(dh_next, h_next.shape, "RNN.backward") * (1 - h_next ** 2)
        product_into(x, dt, self.grads[0], trans_a=True)
        product_into(h_prev, dt, self.grads[1], trans_a=True)
        self.grads[2][...] = dt.sum(axis=0)
        return product(dt, Wx, trans_b=True), product(dt, Wh, trans_b=True)


class LSTM(Layer):
    """One LSTM step: ``forward(x, h_prev, c_prev) -> (h_next, c_next)``; ``backward(dh_next,
    dc_next) -> (dx, dh_prev, dc_prev)``. Gate blocks of Wx, Wh, b: [f, g, i, o]."""

    def __init__(self, Wx, Wh, b):
        _recurrent_params("LSTM", Wx, Wh, b, 4)
        self.params, self.grads = [Wx, Wh, b], [aligned_zeros_like(p) for p in (Wx, Wh, b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        x = _input(x, "LSTM.forward", Wx.shape[0], Wx.dtype, 2)
        N, H, xp = x.shape[0], Wh.shape[0], array_module(x)
        h_prev = _state(h_prev, "LSTM.forward", "h_prev", N, H, Wx.dtype, xp)
        c_prev = _state(c_prev, "LSTM.forward", "c_prev", N, H, Wx.dtype, xp)
        A = product(x, Wx)
        product_into(h_prev, Wh, A, accumulate=True)
        A += b
        gates, h_next, c_next, tanh_c = lstm_step_forward(A, c_prev, overwrite_A=True)
        self.cache = (x, h_prev, c_prev, gates, tanh_c)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, gates, tanh_c = self.saved("cache")
        dh_next = check_dout(dh_next, c_prev.shape, "LSTM.backward").astype(Wx.dtype, copy=False)
        dc_next = check_dout(dc_next, c_prev.shape, "LSTM.backward").astype(Wx.dtype, copy=False)
        dA, dc_prev = lstm_step_backward(dh_next, dc_next, gates, c_prev, tanh_c)
        product_into(x, dA, self.grads[0], trans_a=True)
        product_into(h_prev, dA, self.grads[1], trans_a=True)
        self.grads[2][...] = dA.sum(axis=0)
        return product(dA, Wx, trans_b=True), product(dA, Wh, trans_b=True), dc_prev


def _gru_blocks(Wh):
    """The [z, r] and candidate column blocks of Wh (H, 3H) as C-contiguous matrices, made once
    per call: gemm would copy a column slice at every product."""
    H, xp = Wh.shape[0], array_module(Wh)
    return xp.ascontiguousarray(Wh[:, :2 * H]), xp.ascontiguousarray(Wh[:, 2 * H:])


def _gru_step(ax, h_prev, Wh_zr, Wh_h):
    """GRU step from the input projection ``ax = x Wx + b`` (N, 3H), blocks [z, r, h]; Wh_zr
    and Wh_h are the blocks of Wh (``_gru_blocks``)."""
    H = h_prev.shape[1]
    zr = product(h_prev, Wh_zr)
    zr += ax[:, :2 * H]
    zr = _sigmoid(zr)
    z, r = zr[:, :H], zr[:, H:]
    rh = r * h_prev
    h_hat = product(rh, Wh_h)
    h_hat += ax[:, 2 * H:]
    np.tanh(h_hat, out=h_hat)
    h_next = h_prev + z * (h_hat - h_prev)  # = (1 - z) h_prev + z h_hat
    return h_next, (z, r, h_hat, rh)


def _gru_step_backward(dh_next, h_prev, saved, Wh_zr, Wh_h, dA):
    """Fill dA (N, 3H) with the gradient of the pre-activations; return dh_prev."""
    z, r, h_hat, _ = saved
    H = h_prev.shape[1]
    dt = dh_next * z * (1 - h_hat ** 2)  # through tanh
    dA[:, 2 * H:] = dt
    drh = product(dt, Wh_h, trans_b=True)
    dA[:, :H] = dh_next * (h_hat - h_prev) * z * (1 - z)  # update gate
    dA[:, H:2 * H] = drh * h_prev * r * (1 - r)  # reset gate
    return dh_next * (1 - z) + drh * r + product(dA[:, :2 * H], Wh_zr, trans_b=True)


def _gru_weight_grads(grads, x2, h_prev2, rh2, dA2):
    """Wx, Wh, b gradients from (rows, .) matrices: the z and r blocks of Wh see h_prev, the
    candidate block sees r * h_prev."""
    H = h_prev2.shape[1]
    product_into(x2, dA2, grads[0], trans_a=True)
    grads[1][:, :2 * H] = product(h_prev2, dA2[:, :2 * H], trans_a=True)
    grads[1][:, 2 * H:] = product(rh2, dA2[:, 2 * H:], trans_a=True)
    grads[2][...] = dA2.sum(axis=0)


class GRU(Layer):
    """One GRU step (book ch. 6 appendix): ``forward(x, h_prev) -> h_next``, backward returns
    ``(dx, dh_prev)``. Gate blocks of Wx (D, 3H), Wh (H, 3H), b (3H,): [z, r, h]."""

    def __init__(self, Wx, Wh, b):
        _recurrent_params("GRU", Wx, Wh, b, 3)
        self.params, self.grads = [Wx, Wh, b], [aligned_zeros_like(p) for p in (Wx, Wh, b)]
        self.cache = None

    def forward(self, x, h_prev):
        Wx, Wh, b = self.params
        x = _input(x, "GRU.forward", Wx.shape[0], Wx.dtype, 2)
        h_prev = _state(h_prev, "GRU.forward", "h_prev", x.shape[0], Wh.shape[0], Wx.dtype, array_module(x))
        ax = product(x, Wx)
        ax += b
        h_next, saved = _gru_step(ax, h_prev, *_gru_blocks(Wh))
        self.cache = (x, h_prev, saved)
        return h_next

    def backward(self, dh_next):
        Wx, Wh, _ = self.params
        x, h_prev, saved = self.saved("cache")
        dh_next = check_dout(dh_next, h_prev.shape, "GRU.backward")
        dA = array_module(x).empty((x.shape[0], Wx.shape[1]), dtype=Wx.dtype)
        dh_prev = _gru_step_backward(dh_next, h_prev, saved, *_gru_blocks(Wh), dA)
        _gru_weight_grads(self.grads, x, h_prev, saved[3], dA)
        return product(dA, Wx, trans_b=True), dh_prev


# ----- Time layers: whole sequences ------------------------------------------------------------

class _TimeRecurrent(Layer):
    """What TimeRNN, TimeLSTM and TimeGRU share: parameters, the carried state, batched input
    projection."""

    gates = 1
    n_states = 1  # h; the LSTM adds c

    def __init__(self, Wx, Wh, b, stateful=False):
        self.H = _recurrent_params(type(self).__name__, Wx, Wh, b, self.gates)
        self.params, self.grads = [Wx, Wh, b], [aligned_zeros_like(p) for p in (Wx, Wh, b)]
        self.stateful = bool(stateful)
        self.h = self.c = None  # carried state: the last step's, kept even when not stateful
        self.dh = None  # gradient reaching the initial h (the book's seq2seq reads it)
        self._saved = None

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def reset_state(self):
        self.h = self.c = None

    def _begin(self, xs):
        """Checked inputs, time-major (T, N, D), and the input projection of every step,
        ``xs @ Wx + b``, in one matrix product: (T, N, gates*H)."""
        Wx, _, b = self.params
        who = f"{type(self).__name__}.forward"
        xs = _input(xs, who, Wx.shape[0], Wx.dtype, 3)
        N, T, D = xs.shape
        if N == 0 or T == 0:
            raise ValueError(f"{who}: empty batch or sequence, input of shape {tuple(xs.shape)}")
        xp = array_module(xs)
        x_tm = xp.ascontiguousarray(xs.transpose(1, 0, 2))
        A = aligned_empty((T, N, Wx.shape[1]), Wx.dtype, xp)  # large buffers: reused (kernels/memory.py)
        product_into(x_tm.reshape(T * N, D), Wx, A.reshape(T * N, -1))
        A += b
        h0 = _state(self.h if self.stateful else None, who, "the carried state h", N, self.H, Wx.dtype, xp)
        return xp, x_tm, A, h0

    def _time_major(self, dhs, T, N, dtype, xp):
        """The checked ``dhs`` (N, T, H) as a new time-major (T, N, H) array of ``dtype``."""
        dhs = check_dout(dhs, (N, T, self.H), f"{type(self).__name__}.backward")
        dH = aligned_empty((T, N, self.H), dtype, xp)
        dH[...] = dhs.transpose(1, 0, 2)
        return dH

    def _step_product(self, dtype, N, transposed=False):
        """What the time loops call per step, ``(a, out, accumulate=)``: ``out (+)= a @ Wh``
        (``a @ Wh.T`` when ``transposed``) for N sequences. gemm's repeated product (Wh
        prepared once for the loop: packed on MKL) for the dtypes gemm multiplies, else the
        promoting :func:`product_into`."""
        Wh = self.params[1]
        if gemm_ready(dtype, Wh.dtype):
            return repeated_product(Wh, N, trans_b=transposed)
        return lambda a, out, accumulate=False: product_into(a, Wh, out, trans_b=transposed, accumulate=accumulate)

    def _finish_backward(self, x_tm, h_prev_tm, dA):
        """Weight gradients of all steps in one product each; dxs back in (N, T, D)."""
        Wx, _, _ = self.params
        T, N, D = x_tm.shape
        dA2 = dA.reshape(T * N, -1)
        product_into(x_tm.reshape(T * N, D), dA2, self.grads[0], trans_a=True)  # straight into the buffers
        product_into(h_prev_tm.reshape(T * N, -1), dA2, self.grads[1], trans_a=True)
        self.grads[2][...] = dA2.sum(axis=0)
        return product(dA2, Wx, trans_b=True).reshape(T, N, D).transpose(1, 0, 2).copy()


class TimeRNN(_TimeRecurrent):
    """T steps of RNN over xs (N, T, D) -> hs (N, T, H)."""

    def forward(self, xs):
        xp, x_tm, A, h0 = self._begin(xs)
        T, N, _ = A.shape
        hs = aligned_empty((T + 1, N, self.H), A.dtype, xp)  # hs[0] = initial state, hs[t + 1] = step t
        hs[0] = h0
        step = self._step_product(A.dtype, N)
        for t in range(T):
            step(hs[t], A[t], accumulate=True)  # A[t] += h_prev @ Wh, no temporary
            np.tanh(A[t], out=hs[t + 1])
        self.h = hs[T]
        self._saved = (x_tm, hs)
        return aligned_copy(hs[1:].transpose(1, 0, 2), xp)  # aligned: the attention kernels stream it

    def backward(self, dhs):
        x_tm, hs = self.saved("_saved")
        T, N = hs.shape[0] - 1, hs.shape[1]
        xp = array_module(hs)
        dH = self._time_major(dhs, T, N, hs.dtype, xp)
        dA = aligned_empty(dH.shape, dH.dtype, xp)
        step = self._step_product(hs.dtype, N, transposed=True)
        dh = xp.empty((N, self.H), dtype=hs.dtype)
        for t in reversed(range(T)):
            dA[t] = dH[t] * (1 - hs[t + 1] ** 2)
            if t:
                step(dA[t], dH[t - 1], accumulate=True)  # dH[t - 1] += dA[t] @ Wh.T
            else:
                step(dA[t], dh)
        self.dh = dh
        return self._finish_backward(x_tm, hs[:-1], dA)


class TimeLSTM(_TimeRecurrent):
    """T steps of LSTM over xs (N, T, D) -> hs (N, T, H); carries ``h`` and ``c``.

    Gate blocks [f, g, i, o]. Per step only ``h_prev @ Wh`` (BLAS) and the fused kernel run;
    the pre-activation buffer becomes the gates in place, which backward reads.
    """

    gates = 4

    def forward(self, xs):
        xp, x_tm, A, h0 = self._begin(xs)
        T, N, H = A.shape[0], A.shape[1], self.H
        c0 = _state(self.c if self.stateful else None, "TimeLSTM.forward", "the carried state c", N, H, A.dtype, xp)
        hs = aligned_empty((T + 1, N, H), A.dtype, xp)  # [0] initial state, [t + 1] after step t
        cs = aligned_empty((T + 1, N, H), A.dtype, xp)
        tanh_cs = aligned_empty((T, N, H), A.dtype, xp)
        hs[0], cs[0] = h0, c0
        step = self._step_product(A.dtype, N)
        forward_step, _ = sequence_kernels(A, cs, tanh_cs)  # checked once for all T steps
        for t in range(T):
            step(hs[t], A[t], accumulate=True)  # A[t] += h_prev @ Wh, no temporary
            forward_step(A[t], cs[t], hs[t + 1], cs[t + 1], tanh_cs[t])  # A[t] becomes the gates
        self.h, self.c = hs[T], cs[T]
        self._saved = (x_tm, A, hs, cs, tanh_cs)  # A now holds the gates
        return aligned_copy(hs[1:].transpose(1, 0, 2), xp)  # aligned: the attention kernels stream it

    def backward(self, dhs):
        x_tm, gates, hs, cs, tanh_cs = self.saved("_saved")
        T, N, H = tanh_cs.shape
        xp = array_module(gates)
        dH = self._time_major(dhs, T, N, gates.dtype, xp)
        dA = aligned_empty(gates.shape, gates.dtype, xp)
        dc, dc_prev = xp.zeros((N, H), dtype=gates.dtype), xp.empty((N, H), dtype=gates.dtype)
        step = self._step_product(gates.dtype, N, transposed=True)
        dh = xp.empty((N, H), dtype=gates.dtype)
        _, backward_step = sequence_kernels(gates, cs, tanh_cs)
        for t in reversed(range(T)):
            backward_step(dH[t], dc, gates[t], cs[t], tanh_cs[t], dA[t], dc_prev)
            if t:
                step(dA[t], dH[t - 1], accumulate=True)  # dH[t - 1] += dA[t] @ Wh.T
            else:
                step(dA[t], dh)
            dc, dc_prev = dc_prev, dc
        self.dh = dh
        return self._finish_backward(x_tm, hs[:-1], dA)


class TimeGRU(_TimeRecurrent):
    """T steps of GRU over xs (N, T, D) -> hs (N, T, H); gate blocks [z, r, h]."""

    gates = 3

    def forward(self, xs):
        _, Wh, _ = self.params
        xp, x_tm, A, h0 = self._begin(xs)
        T, N, H = A.shape[0], A.shape[1], self.H
        hs = aligned_empty((T + 1, N, H), A.dtype, xp)
        hs[0] = h0
        steps = []
        Wh_zr, Wh_h = _gru_blocks(Wh)
        for t in range(T):
            hs[t + 1], saved = _gru_step(A[t], hs[t], Wh_zr, Wh_h)
            steps.append(saved)
        self.h = hs[T]
        self._saved = (x_tm, hs, steps)
        return aligned_copy(hs[1:].transpose(1, 0, 2), xp)  # aligned: the attention kernels stream it

    def backward(self, dhs):
        _, Wh, _ = self.params
        x_tm, hs, steps = self.saved("_saved")
        T, N, H = hs.shape[0] - 1, hs.shape[1], self.H
        xp = array_module(hs)
        dH = self._time_major(dhs, T, N, hs.dtype, xp)
        dA = aligned_empty((T, N, 3 * H), hs.dtype, xp)
        Wh_zr, Wh_h = _gru_blocks(Wh)
        for t in reversed(range(T)):
            dh = _gru_step_backward(dH[t], hs[t], steps[t], Wh_zr, Wh_h, dA[t])
            if t:
                dH[t - 1] += dh
        self.dh = dh
        rhs = xp.stack([saved[3] for saved in steps])
        _gru_weight_grads(self.grads, x_tm.reshape(T * N, -1), hs[:-1].reshape(T * N, H),
                          rhs.reshape(T * N, H), dA.reshape(T * N, -1))
        Wx = self.params[0]
        return product(dA.reshape(T * N, -1), Wx, trans_b=True).reshape(T, N, -1).transpose(1, 0, 2).copy()


class TimeBiLSTM(Layer):
    """Two TimeLSTMs, one reading the sequence backwards; outputs concatenated (N, T, 2H)."""

    def __init__(self, Wx1, Wh1, b1, Wx2, Wh2, b2, stateful=False):
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1, stateful)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2, stateful)
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads

    def forward(self, xs):
        o1 = self.forward_lstm.forward(xs)
        o2 = self.backward_lstm.forward(xs[:, ::-1])
        return np.concatenate((o1, o2[:, ::-1]), axis=2)

    def backward(self, dhs):
        H = self.forward_lstm.H
        dhs = check_dout(dhs, dhs.shape[:2] + (2 * H,), "TimeBiLSTM.backward")
        dxs1 = self.forward_lstm.backward(dhs[:, :, :H])
        dxs2 = self.backward_lstm.backward(dhs[:, ::-1, H:])
        return dxs1 + dxs2[:, ::-1]

    def reset_state(self):
        self.forward_lstm.reset_state()
        self.backward_lstm.reset_state()


class TimeEmbedding(Embedding):
    """Embedding of ids (N, T) -> (N, T, D): one gather and one scatter-add for all T steps
    (the book loops over T Embedding layers)."""


class TimeAffine(Layer):
    """``xs (N, T, D) @ W (D, V) + b`` -> (N, T, V), one matrix product for all rows.

    ``W`` may be a transposed view (the book's tied ``embed_W.T``): the gradient is then
    written through the same layout, so it stays one contiguous (V, D) block.

    An untied C-contiguous W keeps both gradients in one (D + 1, V) block (``grads[0]`` its
    first D rows, ``grads[1]`` the last): backward writes them with one product, ``[x, 1].T @
    dout``, instead of the weight gradient's product plus a pass summing the (N*T, V) columns of
    dout (Rnnlm, 2 threads on the Xeon: 5.6 -> 4.7 ms). Gradient arrays replaced from outside
    (another device, another dtype) take the two-step path.
    """

    def __init__(self, W, b):
        check_param(W, "TimeAffine", "W", 2)
        if check_param(b, "TimeAffine", "b", 1).shape[0] != W.shape[1]:
            raise ValueError(f"TimeAffine: b of shape {tuple(b.shape)} does not fit W of shape {tuple(W.shape)}")
        self._joint = None
        if type(W) is np.ndarray and W.flags.c_contiguous and W.dtype == b.dtype and gemm_ready(W.dtype, W.dtype):
            self._joint = aligned_zeros((W.shape[0] + 1, W.shape[1]), W.dtype)
            self.params, self.grads = [W, b], [self._joint[:-1], self._joint[-1]]
        else:
            self.params, self.grads = [W, b], [aligned_zeros_like(W), aligned_zeros_like(b)]
        self.x = None

    def forward(self, xs):
        W, b = self.params
        xs = check_input(xs, "TimeAffine.forward", FLOAT)
        if xs.ndim < 2 or xs.shape[-1] != W.shape[0]:
            raise ValueError(f"TimeAffine.forward: input of shape {tuple(xs.shape)} needs a last axis of "
                             f"{W.shape[0]} to multiply W of shape {tuple(W.shape)}")
        self.x = xs = xs.astype(W.dtype, copy=False)
        x2 = rows(xs)
        if type(x2) is not np.ndarray:
            out = product(x2, W)
            out += b
        elif autocast_dtype() is not None and gemm_ready(x2.dtype, W.dtype, b.dtype):
            # 16-bit products: the bias first, then the product added to it (gemm's accumulate),
            # so the product's own pass over the N*T*V scores adds it (BetterRnnlm in bf16 at one
            # thread: the layer 18.3-19.6 -> 17.8 ms; in float32 no gain, so not there).
            out = aligned_empty((x2.shape[0], W.shape[1]), W.dtype)
            parallel_rows(lambda begin, end: np.copyto(out[begin:end], b), out.shape[0], out.size)
            product_into(x2, W, out, accumulate=True)  # a transposed (tied) W is gemm's trans_b flag
        else:
            out = product(x2, W)  # a transposed (tied) W is gemm's trans_b flag, not a copy
            # the bias pass over N*T*V scores, on the BLAS threads
            parallel_rows(lambda begin, end: np.add(out[begin:end], b, out=out[begin:end]), out.shape[0], out.size)
        return out.reshape(xs.shape[:-1] + (W.shape[1],))

    def backward(self, dout):
        W, _ = self.params
        x = self.saved("x")
        dout = array_module(x).asarray(dout)
        if tuple(dout.shape) != x.shape[:-1] + (W.shape[1],) or dout.dtype.kind not in "iuf":
            check_dout(dout, x.shape[:-1] + (W.shape[1],), "TimeAffine.backward")  # raises, naming the problem
        d2, x2 = dout.reshape(-1, W.shape[1]), x.reshape(-1, W.shape[0])
        if self._joint_gradients_apply(d2, x2):
            return self._backward_joint(d2, x2).reshape(x.shape)
        # Inside autocast, dout's 16-bit copy for the two products is made in the same pass.
        db = column_sums_and_cast(d2)
        if db is None:
            db = column_sums(d2) if type(d2) is np.ndarray else d2.sum(axis=0)
        # NaN or inf anywhere in dout makes its column sum non-finite: this check over V sums
        # replaces a pass over all N*T*V values, before any gradient is written.
        if not bool(array_module(db).isfinite(db).all()):
            raise NonFiniteError("TimeAffine.backward: dout contains NaN or inf")
        dW = self.grads[0]
        if dW.flags.c_contiguous:
            product_into(x2, d2, dW, trans_a=True)
        else:  # the transpose of a C-contiguous (V, D) block: write dW.T = d2.T @ x2 straight into it
            product_into(d2, x2, dW.T, trans_a=True)
        self.grads[1][...] = db
        return product(d2, W, trans_b=True).reshape(x.shape)

    def _joint_gradients_apply(self, d2, x2):
        """Whether backward can write both gradients with one product: the (D + 1, V) block is
        still what grads holds, the arrays are NumPy's in its dtype, and no autocast would round
        dout to 16 bits for the bias sums."""
        joint, grads = self._joint, self.grads
        return (joint is not None and type(grads[0]) is np.ndarray and type(grads[1]) is np.ndarray
                and memory_signature(grads[0]) == memory_signature(joint[:-1])
                and memory_signature(grads[1]) == memory_signature(joint[-1])
                and type(d2) is np.ndarray and d2.dtype == joint.dtype and x2.dtype == joint.dtype
                and autocast_dtype() is None)

    def _backward_joint(self, d2, x2):
        """``[dW; db] = [x, 1].T @ dout`` into the joint block, then dx. NaN or inf in dout makes
        its bias sums non-finite: checked on those V values, as the two-step path does."""
        R, D = x2.shape
        x_ones = aligned_empty((R, D + 1), x2.dtype)
        x_ones[:, :D] = x2
        x_ones[:, D] = 1
        product_into(x_ones, d2, self._joint, trans_a=True)
        if not bool(np.isfinite(self._joint[D]).all()):
            raise NonFiniteError("TimeAffine.backward: dout contains NaN or inf")
        return product(d2, self.params[0], trans_b=True)


class TimeSoftmaxWithLoss(Layer):
    """Softmax + mean cross-entropy over all N*T positions of scores (N, T, V), labels (N, T)
    (or one-hot (N, T, V)). Positions labelled ``ignore_label`` (the book's -1: padding) add
    neither loss nor gradient, and the mean is over the others.

    Fused: forward makes one (N*T, V) buffer holding ``exp(x)`` and keeps the row sums (one
    pass over the scores, the ``exp_row_sums`` op, on the BLAS threads); backward scales that buffer into the gradient in place (``softmax - onehot``, divided by
    the count). Scores are not shifted by their row maximum unless a row would overflow or lose
    precision (float32: a score above ~88, or every score below ~-44; language-model scores lie
    far inside), so the scores are read once and the buffer written twice in all, where
    softmax, log and a separate gradient take about three times as many passes. Backward
    returns that buffer: call it once per forward.
    """

    def __init__(self, ignore_label: int | None = -1):
        super().__init__()
        self.ignore_label = ignore_label
        self._saved = None
        self._spent = False

    def forward(self, xs, ts):
        xs = array_module(xs).asarray(xs)
        if xs.dtype.kind != "f":
            raise TypeError(f"TimeSoftmaxWithLoss.forward: scores must be a floating-point array, got dtype {xs.dtype}")
        if xs.ndim < 2 or xs.shape[-1] == 0 or xs.size == 0:
            raise ValueError(f"TimeSoftmaxWithLoss.forward: scores must be (..., V) and non-empty, "
                             f"got shape {tuple(xs.shape)}")
        V = xs.shape[-1]
        xp = array_module(xs)
        ts = as_id_array(ts, like=xs)
        if tuple(ts.shape) == tuple(xs.shape):  # one-hot rows, as the book allows
            ts = ts.argmax(axis=-1)
        if tuple(ts.shape) != tuple(xs.shape[:-1]):
            raise ValueError(f"TimeSoftmaxWithLoss.forward: labels of shape {tuple(ts.shape)} do not fit "
                             f"scores of shape {tuple(xs.shape)}")
        labels = ts.reshape(-1)
        mask = None
        if self.ignore_label is not None:
            keep = labels != self.ignore_label
            if not bool(keep.all()):
                mask = keep.astype(xs.dtype)
                labels = xp.where(keep, labels, 0)
        check_ids(labels, V, what="label")  # in [0, V), else IndexError naming the label
        x2 = xs.reshape(-1, V)
        rows = xp.arange(x2.shape[0])
        picked = x2[rows, labels]
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            # unshifted: one pass (exp and row sums, the exp_row_sums op) instead of four (max,
            # shift, exp, sum); float16 / bfloat16 scores, which the op declines, go to NumPy
            if x2.dtype == np.float32 or x2.dtype == np.float64:
                y, sums = exp_row_sums(x2)
            else:
                y = np.exp(x2)
                sums = y.sum(axis=1)
            # A row overflowed (a score above ~88 in float32), holds NaN, or its sum is so small
            # (every score below ~-44) that less likely classes would lose precision: shift
            # those rows by their maximum, as softmax always may.
            ok = xp.isfinite(sums) & (sums >= np.finfo(y.dtype).tiny ** 0.5)
            if not bool(ok.all()):
                bad = xp.nonzero(~ok)[0]
                top = x2[bad].max(axis=1, keepdims=True)
                if not bool(xp.isfinite(top).all()):
                    raise NonFiniteError("TimeSoftmaxWithLoss.forward: scores contain NaN or inf")
                y[bad] = np.exp(x2[bad] - top)
                sums[bad] = y[bad].sum(axis=1)
                picked[bad] -= top[:, 0]
            losses = np.log(sums) - picked  # -log softmax(x)_t, scores shifted per row alike
        count = x2.shape[0] if mask is None else max(int(mask.sum()), 1)
        if mask is not None:
            losses = xp.where(mask > 0, losses, 0)
        # NaN or +inf in a row makes its sum non-finite (and its max, above); -inf at a label
        # makes its loss infinite: checked on N*T values instead of a pass over all scores.
        # (-inf elsewhere is a masked class: probability 0, gradient 0.)
        if not bool(xp.isfinite(losses).all()):
            raise NonFiniteError("TimeSoftmaxWithLoss.forward: scores contain NaN or inf")
        self._saved = (y, sums, rows, labels, mask, count, xs.shape)
        self._spent = False
        return losses.sum() / count

    def backward(self, dout=1):
        y, sums, rows, labels, mask, count, shape = self.saved("_saved")
        if self._spent:
            raise RuntimeError("TimeSoftmaxWithLoss.backward: called twice after one forward; the first call "
                               "already turned the saved softmax into the gradient it returned")
        dout = check_dout(dout, (), "TimeSoftmaxWithLoss.backward")
        scale = (dout / count) / sums  # per row: softmax = y / sum
        if mask is not None:
            scale *= mask
        scale = scale.astype(y.dtype, copy=False)[:, None]
        if type(y) is np.ndarray:  # a pass over all N*T*V values: on the BLAS threads
            parallel_rows(lambda begin, end: np.multiply(y[begin:end], scale[begin:end], out=y[begin:end]),
                          y.shape[0], y.size)
        else:
            y *= scale
        y[rows, labels] -= (dout / count) if mask is None else (dout / count) * mask
        self._spent = True  # y is now the gradient
        return y.reshape(shape)


class TimeDropout(Layer):
    """Inverted dropout over (N, T, D) sequences; the identity in evaluation (``eval()``, or
    ``train_flg = False`` as in the book's BetterRnnlm).

    ``variational=True`` draws one mask per sequence and feature, shared by all T steps (Gal and
    Ghahramani 2016); otherwise every position gets its own (the book's TimeDropout).
    """

    def __init__(self, dropout_ratio: float = 0.5, variational: bool = False, seed: int | None = None):
        super().__init__()
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout ratio must be in [0, 1), got {dropout_ratio}")
        self.dropout_ratio = dropout_ratio
        self.variational = variational
        self.rng = np.random.default_rng(seed)
        self.mask = self.shape = None

    @property
    def train_flg(self):
        return self.training

    @train_flg.setter
    def train_flg(self, value):
        self.training = bool(value)

    def forward(self, xs):
        xs = check_input(xs, "TimeDropout.forward", FLOAT)
        self.shape = xs.shape
        if not self.training or self.dropout_ratio == 0.0:
            self.mask = None
            return xs
        keep = 1.0 - self.dropout_ratio
        seed = int(self.rng.bit_generator.random_raw())  # this layer's generator picks each call's draws
        if self.variational and xs.ndim == 3:  # one mask per sequence and feature, shared by the T steps
            self.mask = dropout_mask((xs.shape[0], 1, xs.shape[2]), keep, seed, xs.dtype, array_module(xs))
            return xs * self.mask
        out, self.mask = apply_dropout(xs, keep, seed)  # draws, mask and product in one pass
        return out

    def backward(self, dout):
        dout = check_dout(dout, self.saved("shape"), "TimeDropout.backward")
        return dout if self.mask is None else dout * self.mask
