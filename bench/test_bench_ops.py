"""Every op in the registry on every backend, at the working size its ``OpSpec.benchmark_args``
builds (the sizes the library's models run, named beside each builder in kernels/<family>/):
generated from the registry, so a new op or backend is timed with no new code here.

    pytest bench/test_bench_ops.py                  (one group per op: its backends side by side)
    pytest bench/test_bench_ops.py -k scatter_add   (one op; -k cupy: the GPU only)

The backend's implementation is called directly (``registry.implementations(op)[backend]``) on
arguments already in the contract's form, so each number is the kernel's alone, without the
public wrapper's validation and dispatch. Device backends get the arguments copied to the device
once (``harness.to_backend``) and synchronise inside the timed call, so device time is counted.
Ops that write into their arguments are called again and again on the same arrays (timing only:
weights keep training, outputs are overwritten; the work per call stays the same). Each case is
called once before timing (JIT compilation, kernel loading, caches). A backend that lacks the op
or does not load here is skipped with the registry's reason. One thread (bench/conftest.py).
"""
import pytest

from fastnlp.kernels import dispatch, harness, registry
from fastnlp.kernels.validate import HALF_DTYPES


def _cases():
    """(op, backend, dtype): dtype None is benchmark_args as built; each float16 / bfloat16 the
    op takes is the same problem with its float32 arrays rounded to it (``-k bfloat16``)."""
    cases = []
    for op in registry.ops():
        for backend, impl in registry.implementations(op).items():
            if registry.lacks_on_purpose(op, backend):
                continue  # e.g. a matrix library for a non-matrix op
            for dtype in (None,) + tuple(d for d in registry.spec(op).dtypes if d in HALF_DTYPES):
                missing = impl if dtype is None else registry.implementation_for(op, backend, dtype)
                missing = missing if isinstance(missing, str) else None
                name = f"{op}-{backend}" + ("" if dtype is None else f"-{dtype.name}")
                cases.append(pytest.param(op, backend, dtype, id=name, marks=pytest.mark.skipif(
                    missing is not None, reason=f"{backend}: {missing}")))
    return cases


def _timed_call(function, args, backend):
    """``function(*args)`` on ``backend``'s device, returning only once the device is done."""
    if backend in dispatch.HOST_BACKENDS:
        return lambda: function(*args)
    moved = tuple(harness.to_backend(a, backend) for a in args)
    synchronize = harness._synchronizer(backend)

    def call():
        function(*moved)
        synchronize()

    return call


@pytest.mark.parametrize("op, backend, dtype", _cases())
def test_op(benchmark, op, backend, dtype):
    spec = registry.spec(op)
    if spec.benchmark_args is None:
        pytest.fail(f"{op}: OpSpec.benchmark_args is not set (kernels/{spec.family}/__init__.py)")
    benchmark.group = op
    benchmark.extra_info["backend"] = backend
    args = harness.benchmark_problem(op, dtype)
    call = _timed_call(registry.implementations(op)[backend], args, backend)
    if benchmark.enabled:
        call()  # JIT compilation and caches outside the timing
    benchmark(call)
