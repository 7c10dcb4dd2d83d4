"""FASTNLP_MAX_ISA: the compiled kernels' own instruction-set branches capped, so that this CPU
runs, and these tests check against the reference, the paths other CPUs take: an AMD Zen 4 (AVX-512
with bf16, no AVX512-FP16), a CPU without AVX-512, one without AVX2. The generated tests reach
only the branch the CPU itself picks; the cap is read once per process, so each cap runs the
kernels' tests in a fresh interpreter."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastnlp.kernels import cpu

from conftest import assert_one_error_line, run_cli

TESTS = Path(__file__).resolve().parent
# The tests that run every compiled kernel against the NumPy reference (the Cython ones picked
# with -k) and the compiled paths the layers reach directly (bf16 narrowing, top-k, the fused trainers).
KERNEL_TESTS = ["test_kernels_registry.py", "test_kernels_dtypes.py", "test_kernels_embedding.py",
                "test_attention_half.py"]
PATH_TESTS = ["test_gemm_autocast.py", "test_neighbours.py", "test_word2vec.py", "test_fasttext.py"]
# The CPU feature a cap takes away: without it on this CPU the cap changes nothing.
TAKEN_AWAY = {"avx512bf16": "avx512_fp16", "avx512f": "avx512_bf16", "avx2": "avx512f", "default": "avx2"}


def _run(code_or_args, cap, timeout=600):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=TESTS.parent,
                          env={**os.environ, cpu.ISA_CAP_VARIABLE: cap})


def _needs(cap):
    flags = cpu.flags() or frozenset()
    if TAKEN_AWAY[cap] not in flags:
        pytest.skip(f"this CPU has no {TAKEN_AWAY[cap]}: the cap {cap} runs the branches it runs anyway")


def test_an_unknown_cap_is_refused_naming_the_accepted_ones(monkeypatch):
    """Refused when a compiled kernel is first looked up, and by the command line in one line
    (the import itself succeeds, so the CLI can report it)."""
    monkeypatch.setenv(cpu.ISA_CAP_VARIABLE, "avx3")
    with pytest.raises(ValueError, match=r"FASTNLP_MAX_ISA='avx3' is not an instruction-set cap; use one of "
                                         r"default, avx2, avx512f, avx512bf16, avx512fp16"):
        cpu.isa_cap()
    run = _run("import fastnlp; fastnlp.kernels.registry.implementations('topk')", "avx3", timeout=120)
    assert run.returncode != 0 and "is not an instruction-set cap" in run.stderr.splitlines()[-1]
    code, _, err = run_cli(["backends"])
    assert_one_error_line(code, err)
    assert "FASTNLP_MAX_ISA='avx3' is not an instruction-set cap" in err


@pytest.mark.parametrize("cap, expected", [("", None), ("avx512fp16", None), ("avx2", "avx2")])
def test_the_cap_is_read_as_set(monkeypatch, cap, expected):
    monkeypatch.setenv(cpu.ISA_CAP_VARIABLE, cap)
    assert cpu.isa_cap() == expected


def test_a_cap_reaches_the_compiled_branches():
    _needs("avx2")
    pytest.importorskip("fastnlp.kernels.topk._cython_impl", reason="the Cython extensions are not built")
    code = ("from fastnlp.kernels.topk import _cython_impl as topk; "
            "from fastnlp.kernels.word2vec import _cython_impl as w2v; "
            "print(topk.isa_level(), 'avx512f' in w2v.SIMD_LEVELS)")
    assert _run(code, "avx512f", timeout=120).stdout.split() == ["avx512f", "True"]
    assert _run(code, "avx2", timeout=120).stdout.split() == ["avx2", "False"]


@pytest.mark.parametrize("cap", ["avx512bf16", "avx2", "default"])
def test_the_kernels_equal_the_reference_on_the_paths_of_a_lesser_cpu(cap):
    _needs(cap)
    pytest.importorskip("fastnlp.kernels.topk._cython_impl", reason="the Cython extensions are not built")
    for files, selection in ((KERNEL_TESTS, ["-k", "cython"]), (PATH_TESTS, [])):
        run = _run(["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *selection,
                    *[str(TESTS / name) for name in files]], cap)
        assert run.returncode == 0, f"{cpu.ISA_CAP_VARIABLE}={cap}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
