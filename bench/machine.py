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
    from fastnlp.kernels import dispatch

    for name in dispatch.LIBRARY_BACKENDS:
        if dispatch.backend_reason(name) is None:
            from fastnlp.kernels.gemm import _libraries

            bf16 = _libraries.bf16_support(name)
            parts.append(f"{name}: {_libraries.version(name)}, {_libraries.threading_layer(name)} threads, "
                         f"bfloat16 {'native' if bf16 is None else 'not native (' + bf16 + ')'}")
    parts.append("CPU features: " + (" ".join(_cpu_features()) or "unknown"))
    parts.append("threads: " + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in
                                         ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")))
    return "\n".join(parts)


def _cpu_features() -> list:
    """The instruction sets that decide the matrix products' speed (AMX, AVX512-BF16/FP16)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


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
