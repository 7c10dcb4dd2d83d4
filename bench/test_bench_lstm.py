"""The LSTM step ops (fused elementwise forward and backward) per backend, from the registry, at
the sizes of the book's models and one wider batch:

    pytest bench/test_bench_lstm.py      (one group per op and size; float32, one thread)

The problem is one step's worth of arrays, validated as the public op validates; the kernel
is called directly, so the table compares the loops, not the argument checks (about 6 us per
call of the public wrapper, bench/README.md).
"""
import numpy as np
import pytest

from fastnlp.kernels import dispatch, registry
from fastnlp.kernels.lstm import reference

SIZES = {"N20xH100": (20, 100), "N20xH650": (20, 650), "N128xH256": (128, 256)}
OPS = ("lstm_step_forward", "lstm_step_backward")


def make_problem(op, size, dtype=np.float32):
    N, H = SIZES[size]
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((N, 4 * H)) * 2).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    h_next, c_next, tanh_c = (np.empty((N, H), dtype) for _ in range(3))
    if op == "lstm_step_forward":
        return A, c_prev, h_next, c_next, tanh_c
    reference.lstm_step_forward(A, c_prev, h_next, c_next, tanh_c)  # A now holds the gates
    dh_next, dc_next = rng.standard_normal((2, N, H)).astype(dtype)
    return dh_next, dc_next, A, c_prev, tanh_c, np.empty_like(A), np.empty_like(c_prev)


def _cases():
    cases = []
    for op in OPS:
        for backend, impl in registry.implementations(op).items():
            if backend not in dispatch.CPU_BACKENDS:
                continue
            missing = impl if isinstance(impl, str) else None
            cases.append(pytest.param(op, backend, id=f"{op}-{backend}",
                                      marks=pytest.mark.skipif(missing is not None, reason=f"{backend}: {missing}")))
    return cases


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("op, backend", _cases())
def test_lstm_step(benchmark, op, backend, size):
    benchmark.group = f"{op} {size}"
    function = registry.implementations(op)[backend]
    args = make_problem(op, size)
    if op == "lstm_step_forward":  # the forward overwrites A: time it on a fresh copy each round
        A = args[0].copy()

        def setup():
            A[...] = args[0]
            return (A,) + args[1:], {}

        benchmark.pedantic(function, setup=setup, rounds=300, warmup_rounds=5)
    else:
        benchmark(function, *args)


@pytest.mark.parametrize("size", list(SIZES))
def test_torch_lstm_cell_step(benchmark, size):
    """The same elementwise step written with torch ops on one thread (nn.LSTM's CPU cell runs
    these ops between its matrix products), for comparison with the forward kernels."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    benchmark.group = f"lstm_step_forward {size}"
    A, c_prev = (torch.from_numpy(a) for a in make_problem("lstm_step_forward", size)[:2])

    def step():
        f, g, i, o = A.chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.tanh(g) * torch.sigmoid(i)
        return torch.sigmoid(o) * torch.tanh(c), c

    benchmark(step)
