"""What a benchmark table must carry: machine, threads, versions."""
import os
import platform


def describe() -> str:
    import numpy

    import fastnlp

    parts = [f"CPU: {_cpu_name()} ({os.cpu_count()} logical cores)",
             f"Python {platform.python_version()}, numpy {numpy.__version__}"]
    for module in ("numba", "scipy", "torch", "gensim", "cupy"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    parts.append(f"fastnlp {fastnlp.__version__}; backends "
                 + ", ".join(n for n, why in fastnlp.available_backends().items() if why is None))
    parts.append("threads: " + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in
                                         ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")))
    return "\n".join(parts)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_backend_params(op="scatter_add"):
    """The host backends of ``op`` from the registry as pytest params; one that lacks the op or
    does not load here is skipped with its reason (device backends are timed by compare_gpu.py)."""
    import pytest

    from fastnlp.kernels import dispatch, registry

    return [pytest.param(name, marks=pytest.mark.skipif(isinstance(impl, str), reason=f"{name}: {impl}"))
            for name, impl in registry.implementations(op).items() if name in dispatch.CPU_BACKENDS]
