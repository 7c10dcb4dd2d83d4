"""What a benchmark table must carry: machine, threads, versions."""
import os
import platform


def describe() -> str:
    import numpy

    import fastnlp
    from fastnlp.kernels import cpu, dispatch

    parts = [f"CPU: {cpu.model_name()} ({os.cpu_count()} logical cores)",
             f"Python {platform.python_version()}, numpy {numpy.__version__}"]
    for module in ("numba", "scipy", "torch", "gensim", "cupy", "dask", "distributed"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    parts.append(f"fastnlp {fastnlp.__version__}; backends "
                 + ", ".join(n for n, why in fastnlp.available_backends().items() if why is None))
    for name in dispatch.LIBRARY_BACKENDS:
        if dispatch.backend_reason(name) is None:
            from fastnlp.kernels.gemm import _libraries

            parts.append(f"{name}: {_libraries.describe(name)}")
    parts.append("CPU features: " + (" ".join(cpu.matrix_features()) or "unknown"))
    return "\n".join(parts)


def cpu_backend_params(op="scatter_add"):
    """The host backends of ``op`` from the registry as pytest params; one that lacks the op or
    does not load here is skipped with its reason (device backends are timed by compare_gpu.py)."""
    import pytest

    from fastnlp.kernels import dispatch, registry

    return [pytest.param(name, marks=pytest.mark.skipif(isinstance(impl, str), reason=f"{name}: {impl}"))
            for name, impl in registry.implementations(op).items() if name in dispatch.CPU_BACKENDS]
