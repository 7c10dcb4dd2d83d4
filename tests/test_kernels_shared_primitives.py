"""One copy of each primitive the op families share: splitmix64 and the ISA dispatch live in
kernels/include/fastnlp/ (C, CUDA) and kernels/_numba_common.py (Numba), nowhere else."""
from pathlib import Path

import numpy as np
import pytest

import fastnlp

KERNELS = Path(fastnlp.kernels.__file__).parent
COMPILED_SOURCES = [p for pattern in ("*/*.pyx", "*/*.h", "*/*.cu", "*/numba_impl.py")
                    for p in sorted(KERNELS.glob(pattern))]


@pytest.mark.parametrize("source", COMPILED_SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_family_writes_out_a_shared_primitive_again(source):
    text = source.read_text().lower()
    assert "0xbf58476d1ce4e5b9" not in text, "splitmix64 belongs in fastnlp/rng.h or _numba_common.py"
    assert "target_clones" not in text and "__builtin_cpu_supports" not in text, \
        "instruction-set dispatch belongs in fastnlp/dispatch.h"


def test_numba_splitmix64_gives_the_reference_draws():
    from fastnlp.kernels import _numba_common
    from fastnlp.kernels.sgns import reference as sgns_reference
    from fastnlp.kernels.word2vec import reference as word2vec_reference

    seed = np.uint64(0xDEADBEEF12345678)
    counters = np.array([0, 1, 7, 2**32 + 5, 2**64 - 2], dtype=np.uint64)
    expected = [word2vec_reference.draw(int(seed), int(c)) for c in counters]
    assert [int(_numba_common.splitmix64(seed, c)) for c in counters] == expected
    assert sgns_reference.draw(seed, counters).tolist() == expected


def test_the_shared_headers_are_where_the_build_and_the_package_look():
    folder = KERNELS / "include" / "fastnlp"
    assert {p.name for p in folder.glob("*.h")} >= {"rng.h", "simd.h", "dispatch.h"}
    setup = (KERNELS.parent / "setup.py")
    if setup.is_file():  # a source checkout
        text = setup.read_text()
        assert "include/fastnlp/*.h" in text and "SHARED_INCLUDE" in text


def test_the_word2vec_step_reports_the_clone_the_loader_runs():
    from fastnlp.kernels import registry

    if isinstance(registry.implementations("word2vec_sg")["cython"], str):
        pytest.skip("the Cython extension is not built")
    from fastnlp.kernels import cpu
    from fastnlp.kernels.word2vec import _cython_impl

    flags = cpu.flags() or frozenset()
    narrow = "avx2" if "avx2" in flags else "default"
    assert _cython_impl.SIMD_LEVELS in ((narrow,), ("avx512f", narrow)) or cpu.flags() is None
    assert _cython_impl.SIMD == _cython_impl.SIMD_LEVELS[0] and _cython_impl.use_simd(_cython_impl.SIMD)
