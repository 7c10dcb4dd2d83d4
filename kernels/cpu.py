"""What this CPU is: its model name and feature flags, read once (Linux /proc/cpuinfo spelling).

Code paths are chosen from these flags and from measurement, never from the model name; the
name only labels caches and benchmark tables.
"""
from __future__ import annotations

import functools
import platform

# The instruction sets that decide the matrix products' speed, in the order tables print them.
MATRIX_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


@functools.lru_cache(maxsize=None)
def model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=None)
def flags() -> frozenset | None:
    """This CPU's feature flags; None when they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    # Elsewhere NumPy's run-time CPU detection (cpuid): it knows AVX512-BF16 but not AMX,
    # which is enough, since every CPU with AMX-BF16 also has AVX512-BF16.
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return None
    return frozenset({"avx512_bf16"} if __cpu_features__.get("AVX512BF16") else ())


def matrix_features() -> list:
    """Which of MATRIX_FEATURES this CPU has (AMX, AVX512-BF16, ...)."""
    present = flags() or frozenset()
    return [flag for flag in MATRIX_FEATURES if flag in present]
