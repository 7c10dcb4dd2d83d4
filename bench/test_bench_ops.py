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


def _cases():
    cases = []
    for op in registry.ops():
        for backend, impl in registry.implementations(op).items():
            if registry.lacks_on_purpose(op, backend):
                continue  # e.g. a matrix library for a non-matrix op
            missing = impl if isinstance(impl, str) else None
            cases.append(pytest.param(op, backend, id=f"{op}-{backend}",
                                      marks=pytest.mark.skipif(missing is not None, reason=f"{backend}: {missing}")))
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


@pytest.mark.parametrize("op, backend", _cases())
def test_op(benchmark, op, backend):
    spec = registry.spec(op)
    if spec.benchmark_args is None:
        pytest.fail(f"{op}: OpSpec.benchmark_args is not set (kernels/{spec.family}/__init__.py)")
    benchmark.group = op
    benchmark.extra_info["backend"] = backend
    call = _timed_call(registry.implementations(op)[backend], spec.benchmark_args(), backend)
    if benchmark.enabled:
        call()  # JIT compilation and caches outside the timing
    benchmark(call)
