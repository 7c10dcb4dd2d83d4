"""The gemm implementations on MKL and oneDNN against the reference (kernels/gemm/reference.py).

Every dtype, both trans flags, accumulate, 2-D and batched products with every batch layout
the contract admits (contiguous, broadcast with stride 0, spaced, reversed, not a whole
number of elements). A test skips, saying why, where its library is not installed.
"""
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnlp.kernels.gemm import _libraries, reference

ml_dtypes = pytest.importorskip("ml_dtypes")

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64), BFLOAT16)
LAYOUTS = ("contiguous", "broadcast", "spaced", "reversed", "unaligned")
# (module, function): oneDNN's two ways in are tested on their own as well as through gemm
IMPLEMENTATIONS = [("mkl", "mkl_impl", "gemm"), ("onednn", "onednn_impl", "gemm"),
                   ("onednn", "onednn_impl", "gemm_call"), ("onednn", "onednn_impl", "gemm_primitive")]


def _implementation(library, module, function):
    reason = _libraries.unavailable_reason(library)
    if reason is not None:
        pytest.skip(reason)
    # import_module, not attribute access: fastnlp.kernels.gemm is also the name of a function
    return getattr(importlib.import_module(f"fastnlp.kernels.gemm.{module}"), function)


def _operand(rng, batch, rows, cols, dtype, layout):
    """A (rows, cols) matrix, or a (batch, rows, cols) stack laid out as ``layout`` says; the
    last two axes always C-contiguous, as the contract guarantees."""
    if batch is None:
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "contiguous":
        return rng.standard_normal((batch, rows, cols)).astype(dtype)
    if layout == "broadcast":
        return np.broadcast_to(rng.standard_normal((1, rows, cols)).astype(dtype), (batch, rows, cols))
    if layout == "spaced":  # every other matrix of a larger stack
        return rng.standard_normal((2 * batch, rows, cols)).astype(dtype)[::2]
    if layout == "reversed":  # a negative batch stride
        return rng.standard_normal((batch, rows, cols)).astype(dtype)[::-1]
    # "unaligned": a batch stride of a whole matrix plus 2 bytes, not a multiple of the itemsize
    # for float32/float64 (every matrix starts at a new misalignment)
    itemsize = dtype.itemsize
    step = rows * cols * itemsize + 2
    buffer = np.zeros(step * batch + itemsize, np.uint8)
    stack = np.lib.stride_tricks.as_strided(buffer[2:].view(np.uint8), (batch, rows * cols * itemsize), (step, 1))
    stack[...] = rng.standard_normal((batch, rows * cols)).astype(dtype).view(np.uint8)
    return np.lib.stride_tricks.as_strided(stack.view(dtype), (batch, rows, cols), (step, cols * itemsize, itemsize))


@st.composite
def problems(draw):
    dtype = draw(st.sampled_from(DTYPES))
    m, n, k = (draw(st.integers(1, 40)) for _ in range(3))
    batch = draw(st.one_of(st.none(), st.integers(1, 5)))
    trans_a, trans_b, accumulate = (draw(st.booleans()) for _ in range(3))
    layout_a, layout_b = draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(LAYOUTS))
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, m, n, k, batch, trans_a, trans_b, accumulate, layout_a, layout_b, seed


def _make(problem):
    dtype, m, n, k, batch, trans_a, trans_b, accumulate, layout_a, layout_b, seed = problem
    rng = np.random.default_rng(seed)
    a = _operand(rng, batch, *((k, m) if trans_a else (m, k)), dtype, layout_a)
    b = _operand(rng, batch, *((n, k) if trans_b else (k, n)), dtype, layout_b)
    out_dtype = np.float64 if dtype == np.float64 else np.float32
    out = rng.standard_normal((m, n) if batch is None else (batch, m, n)).astype(out_dtype)
    return a, b, out, trans_a, trans_b, accumulate


def _check_matches_reference(implementation, a, b, out, trans_a, trans_b, accumulate):
    expected = out.copy()
    reference.gemm(a, b, expected, trans_a, trans_b, accumulate)
    assert implementation(a, b, out, trans_a, trans_b, accumulate) is None
    # Sums of K products may round differently: bound the difference by the size of the
    # terms, sum |a||b| (float32 and bf16 accumulate in float32, K <= 40 here).
    left = np.abs(a.astype(np.float64)).swapaxes(-1, -2) if trans_a else np.abs(a.astype(np.float64))
    right = np.abs(b.astype(np.float64)).swapaxes(-1, -2) if trans_b else np.abs(b.astype(np.float64))
    scale = np.matmul(left, right) + (np.abs(expected) if accumulate else 0)
    relative = 1e-12 if out.dtype == np.float64 else 1e-5
    np.testing.assert_array_less(np.abs(out.astype(np.float64) - expected), relative * scale + 1e-30)


@pytest.mark.parametrize("library, module, function", IMPLEMENTATIONS, ids=[f"{m}.{f}" for _, m, f in IMPLEMENTATIONS])
@settings(max_examples=80, deadline=None)
@given(problem=problems())
def test_gemm_matches_reference(library, module, function, problem):
    _check_matches_reference(_implementation(library, module, function), *_make(problem))


@pytest.mark.parametrize("library, module, function", IMPLEMENTATIONS, ids=[f"{m}.{f}" for _, m, f in IMPLEMENTATIONS])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_at_working_sizes(library, module, function, dtype, trans_a, trans_b, accumulate):
    """Sizes past the libraries' blocking (and oneDNN's choice of way in), batch broadcasts too."""
    implementation = _implementation(library, module, function)
    for m, n, k, batch, layout_a, layout_b in ((20, 260, 65, None, None, None), (70, 65, 260, None, None, None),
                                                (128, 29, 64, 3, "contiguous", "broadcast"),
                                                (1, 29, 256, 16, "contiguous", "contiguous"),
                                                (29, 1, 256, 16, "broadcast", "spaced")):
        rng = np.random.default_rng(m * n * k)
        a = _operand(rng, batch, *((k, m) if trans_a else (m, k)), dtype, layout_a)
        b = _operand(rng, batch, *((n, k) if trans_b else (k, n)), dtype, layout_b)
        out = rng.standard_normal((m, n) if batch is None else (batch, m, n)).astype(
            np.float64 if dtype == np.float64 else np.float32)
        _check_matches_reference(implementation, a, b, out, trans_a, trans_b, accumulate)


@pytest.mark.parametrize("library, module", [("mkl", "mkl_impl"), ("onednn", "onednn_impl")])
def test_module_has_the_reference_signature(library, module):
    import inspect

    implementation = _implementation(library, module, "gemm")
    assert list(inspect.signature(implementation).parameters) == list(inspect.signature(reference.gemm).parameters)


@pytest.mark.parametrize("library", _libraries.NAMES)
def test_library_describes_itself(library):
    reason = _libraries.unavailable_reason(library)
    if reason is not None:
        pytest.skip(reason)
    assert _libraries.version(library)
    bf16 = _libraries.bf16_support(library)
    assert bf16 is None or isinstance(bf16, str) and bf16
    assert library in _libraries.thread_counts()
    assert _libraries.threading_layer(library)


_CAPS = {"mkl": ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"), "onednn": ("ONEDNN_MAX_CPU_ISA", "SSE41")}


@pytest.mark.parametrize("library", _libraries.NAMES)
def test_an_isa_cap_changes_the_code_path_and_so_the_calibration_key(library):
    """A library capped to an older instruction set (or on a CPU it does not tune for) runs
    other kernels, so rankings measured on one code path must not serve another."""
    reason = _libraries.unavailable_reason(library)
    if reason is not None:
        pytest.skip(reason)
    script = ("import json; from fastnlp.kernels.gemm import _libraries, calibration; "
              f"print(json.dumps([_libraries.code_path({library!r}), calibration.machine_key()[{library!r}]]))")

    def code_path_and_key(**env):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env}, check=True)
        return json.loads(run.stdout)

    variable, oldest = _CAPS[library]
    plain, capped = code_path_and_key(), code_path_and_key(**{variable: oldest})
    assert plain[0] == _libraries.code_path(library) and plain[0] in plain[1]
    if plain[0] == capped[0]:
        pytest.skip(f"{library} already runs its {oldest} path on this CPU")
    assert capped[0] in capped[1] and capped[1] != plain[1]


@pytest.mark.parametrize("library, module", [("mkl", "mkl_impl"), ("onednn", "onednn_impl")])
def test_thread_limits_reach_the_library(library, module):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    implementation = _implementation(library, module, "gemm")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal((64, 64)).astype(np.float32)
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads):
            out = np.empty((64, 64), np.float32)
            implementation(a, b, out, False, False, False)  # oneDNN: a primitive per thread count
            np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)
            assert _libraries.thread_counts()[library] == threads


def test_unknown_library_is_refused():
    with pytest.raises(ValueError, match="unknown library"):
        _libraries.load("openblas")


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_libraries, "_candidates", lambda name: iter(()))
    with pytest.raises(ImportError, match=r'pip install "fastnlp\[accel\]"'):
        _libraries._find_and_load("onednn")


def test_library_that_fails_to_load_says_why(monkeypatch, tmp_path):
    broken = tmp_path / "libdnnl.so.3"
    broken.write_bytes(b"not a shared object")
    monkeypatch.setattr(_libraries, "_candidates", lambda name: iter([str(broken)]))
    with pytest.raises(ImportError, match="fails to load"):
        _libraries._find_and_load("onednn")
