"""What this CPU is: its model name and feature flags, read once (Linux /proc/cpuinfo spelling).

Code paths are chosen from these flags and from measurement, never from the model name; the
name only labels caches and benchmark tables.
"""
from __future__ import annotations

import functools
import os
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


# FASTNLP_MAX_ISA: the highest instruction set the compiled kernels' own branches may take
# (include/fastnlp/dispatch.h reads it once per process), lowest first. "avx512bf16" runs them as
# on an AMD Zen 4 (AVX-512 with bf16, no AVX512-FP16), "avx2" as on a CPU without AVX-512.
ISA_CAP_VARIABLE = "FASTNLP_MAX_ISA"
ISA_CAPS = ("default", "avx2", "avx512f", "avx512bf16", "avx512fp16")


def isa_cap() -> str | None:
    """The cap FASTNLP_MAX_ISA sets, or None when unset or "avx512fp16" (nothing capped);
    ValueError naming the accepted values for any other setting."""
    value = os.environ.get(ISA_CAP_VARIABLE)
    if value is None or value == "":
        return None
    if value not in ISA_CAPS:
        raise ValueError(f"{ISA_CAP_VARIABLE}={value!r} is not an instruction-set cap; use one of "
                         f"{', '.join(ISA_CAPS)}, or leave it unset")
    return None if value == ISA_CAPS[-1] else value
