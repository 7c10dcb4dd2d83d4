"""lstm_half.cu's __nv_bfloat16 kernels executed on CPU threads (the emulation of
tests/test_cuda_emulation.py): CuPy cannot hold bfloat16, so the registry never sends one to the
cupy backend and the generated emulation tests skip it; here the wrapper's bits entry points
(``lstm_step_forward_bits`` / ``lstm_step_backward_bits``, "bf16") run on uint16 views of the
spec's own bfloat16 examples, against the NumPy reference within the spec's bfloat16 tolerance.
No GPU, nvcc or CuPy is needed; only g++ (skipped without it)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import fastnlp  # noqa: F401 (attaches fastnlp.kernels in a source checkout)
from fastnlp.kernels import harness, registry
from fastnlp.kernels.validate import BFLOAT16

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_emulation import build, fake_cupy  # noqa: E402

SOURCE = Path(registry.__file__).resolve().parent / "lstm" / "lstm_half.cu"

pytestmark = pytest.mark.skipif(build.compiler() is None, reason="g++ is not on PATH: the CUDA emulation needs it")


@pytest.fixture(scope="module")
def emulated_lstm_half(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_emulation_lstm_bf16")
    built = build.build_many([SOURCE], folder)[SOURCE]
    if isinstance(built, Exception):
        raise built
    return folder


@pytest.mark.parametrize("op", ["lstm_step_forward", "lstm_step_backward"])
def test_bf16_kernels_match_the_reference(emulated_lstm_half, monkeypatch, op):
    from hypothesis import HealthCheck, given, settings

    spec = registry.spec(op)
    atol, rtol = spec.tolerance_for(BFLOAT16, "cupy")
    with fake_cupy.installed(emulated_lstm_half, monkeypatch) as cupy:
        impl = fake_cupy.cupy_impl("lstm")
        run_bits = getattr(impl, f"{op}_bits")

        @settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(args=harness.examples_for(op, BFLOAT16))
        def check(args):
            expected = harness.run_implementation(op, registry.REFERENCE, args)
            moved = [cupy.array(a.view(np.uint16), copy=True, order="C") for a in args]
            run_bits(*moved, "bf16")
            for k, position in enumerate(spec.writes):
                got = moved[position].get().view(BFLOAT16)
                harness.validate_result(got, expected[k], atol, rtol, what=f"{op} bf16 on emulated cupy, output {k}")

        before = fake_cupy.launches
        check()
        assert fake_cupy.launches > before, f"{op}: no example reached a kernel"
