"""Generated from the registry: every op on every backend that has it, against the reference.

A new op (an OpSpec with its examples) or a new backend needs no new test code here.
"""
import inspect
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnlp
from fastnlp.kernels import dispatch, harness, registry
from fastnlp.kernels.validate import HALF_DTYPES

KERNELS_DIR = Path(fastnlp.kernels.__file__).parent


def _cases(include_reference=False):
    """(op, backend) for every backend that has the op, or is meant to and does not load here."""
    cases = []
    for op in registry.ops():
        for backend, impl in registry.implementations(op).items():
            if backend == registry.REFERENCE and not include_reference:
                continue  # the reference compared with itself tests nothing
            if registry.lacks_on_purpose(op, backend):
                continue  # e.g. a matrix library for a non-matrix op: nothing to compare
            missing = impl if isinstance(impl, str) else None
            cases.append(pytest.param(op, backend, id=f"{op}-{backend}",
                                      marks=pytest.mark.skipif(missing is not None, reason=f"{backend}: {missing}")))
    return cases


def _dtype_cases(include_reference=False):
    """(op, backend, dtype) for every dtype the op declares (OpSpec.dtypes): skipped with the
    registry's reason where the backend lacks the op or that dtype for it (OpSpec.lacks_dtype)."""
    cases = []
    for case in _cases(include_reference):
        op, backend = case.values
        for dtype in registry.spec(op).dtypes:
            missing = registry.implementation_for(op, backend, dtype)
            missing = missing if isinstance(missing, str) else None
            cases.append(pytest.param(op, backend, dtype, id=f"{op}-{backend}-{dtype.name}",
                                      marks=pytest.mark.skipif(missing is not None, reason=f"{backend}: {missing}")))
    return cases


@pytest.mark.parametrize("op, backend, dtype", _dtype_cases())
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_implementation_matches_reference(op, backend, dtype, data):
    """Every op on every backend and every dtype it declares, against the reference, with the
    spec's tolerance for that dtype (exact where the contract is)."""
    args = data.draw(harness.examples_for(op, dtype), label="args")
    assert np.dtype(registry.spec(op).dtype_of(args)) == dtype
    harness.check_against_reference(op, backend, args)


def _deterministic_cases():
    """(op, backend, dtype) for every backend an op's spec calls deterministic, except the
    reference where it is a Python loop that takes seconds at working size (not among its
    contenders); the dtype of ``benchmark_args``, and each float16 / bfloat16 the op takes."""
    cases = []
    for case in _cases(include_reference=True):
        op, backend = case.values
        spec = registry.spec(op)
        if not spec.is_deterministic(backend) or (backend == registry.REFERENCE
                                                  and registry.REFERENCE not in spec.preference):
            continue
        for dtype in (None,) + tuple(d for d in spec.dtypes if d in HALF_DTYPES):
            missing = None if dtype is None else registry.implementation_for(op, backend, dtype)
            missing = missing if isinstance(missing, str) else None
            marks = list(case.marks) + [pytest.mark.skipif(missing is not None, reason=f"{backend}: {missing}")]
            cases.append(pytest.param(op, backend, dtype, id=f"{op}-{backend}-{getattr(dtype, 'name', 'working')}",
                                      marks=marks))
    return cases


@pytest.mark.parametrize("op, backend, dtype", _deterministic_cases())
def test_a_deterministic_backend_gives_the_same_bits_every_run(op, backend, dtype):
    """OpSpec.deterministic, read: two runs on one problem at working size (benchmark_args:
    thousands of ids with many duplicates, where a race or a reordered reduction would show;
    converted to float16 / bfloat16 for those) give byte-identical outputs, NaN payloads and
    signed zeros included."""
    problem = harness.benchmark_problem(op, dtype)
    first, second = (harness.run_implementation(op, backend, problem) for _ in range(2))
    harness.check_same_bits(first, second, what=f"{op} on {backend}")


def test_same_bits_check_can_fail():
    harness.check_same_bits((np.array([np.nan, -0.0]), 3, 0.5), (np.array([np.nan, -0.0]), 3, 0.5))
    for a, b in [(np.array([0.0]), np.array([-0.0])), (np.array([2.0]), np.array([np.nextafter(2.0, 3.0)])),
                 (1.5, 1.25), (np.zeros(2, np.float32), np.zeros(2, np.float64))]:
        with pytest.raises(AssertionError, match="run to run"):
            harness.check_same_bits((a,), (b,), what="op")


def test_deterministic_is_a_set_of_backends_and_atomics_are_left_out():
    for op in registry.ops():
        spec = registry.spec(op)
        assert isinstance(spec.deterministic, frozenset) and spec.deterministic <= set(dispatch.BACKENDS), op
    # The CUDA scatters add with atomicAdd: their order of additions varies run to run.
    for op in ("scatter_add", "gather_dot_backward"):
        assert not registry.spec(op).is_deterministic("cupy")
        assert registry.spec(op).is_deterministic("cython") and registry.spec(op).is_deterministic("numba")
    assert registry.OpSpec(name="x", family="x", doc="x", dtypes=(), deterministic=True, exact=True,
                           tolerance={}).deterministic == registry.EVERY_BACKEND
    with pytest.raises(ValueError, match="unknown backends"):
        registry.OpSpec(name="x", family="x", doc="x", dtypes=(), deterministic={"fortran"}, exact=True, tolerance={})


@pytest.mark.parametrize("op, backend", _cases(include_reference=True))
def test_implementation_has_the_reference_signature(op, backend):
    assert registry.check_signature(op, registry.implementations(op)[backend]) is None


def test_registry_walk_every_op_is_fully_specified():
    assert {"scatter_add", "embedding_gather", "id_range", "cooccurrence", "ppmi_values"} <= set(registry.ops())
    for op in registry.ops():
        spec = registry.spec(op)
        assert spec.reference is registry.implementations(op)[registry.REFERENCE]
        assert spec.doc and spec.dtypes and set(spec.dtypes) <= set(spec.tolerance)
        assert set(spec.preference) <= set(dispatch.HOST_BACKENDS)
        implementations = registry.implementations(op)
        assert set(implementations) == set(dispatch.BACKENDS)
        for backend, impl in implementations.items():
            assert callable(impl) or (isinstance(impl, str) and impl and "\n" not in impl), (op, backend)


def test_every_family_folder_holds_every_version_side_by_side():
    import importlib

    files = {"numba": "numba_impl.py", "cython": "_cython_impl.pyx", "cupy": "cupy_impl.py"}
    families = {registry.spec(op).family: registry.spec(op) for op in registry.ops()}
    for family, spec in families.items():
        folder = KERNELS_DIR / family
        names = {p.name for p in folder.iterdir()}
        # A backend the family lacks on purpose says why in its spec instead of shipping a file.
        required = ["__init__.py", "reference.py"] + [f for b, f in files.items() if b not in spec.absent]
        for name in required:
            assert name in names, f"kernels/{family}/ lacks {name}"
        for backend in spec.absent:
            assert files[backend] not in names, f"kernels/{family}/{files[backend]} exists but {backend} is absent"
        cuda_library = getattr(importlib.import_module(f"fastnlp.kernels.{family}"), "CUDA_LIBRARY", None)
        if cuda_library is None and "cupy" not in spec.absent:
            assert any(name.endswith(".cu") for name in names), f"kernels/{family}/ has no .cu source"


def test_harness_catches_a_wrong_implementation(monkeypatch):
    """The generated test can fail: an off-by-one implementation is rejected."""
    spec = registry.spec("embedding_gather")
    wrong = lambda W, idx: W[idx] + 1e-3  # noqa: E731
    monkeypatch.setitem(registry._implementations, ("embedding_gather", "numba"), wrong)
    args = (np.ones((4, 3), np.float32), np.array([0, 3], np.int64))
    with pytest.raises(AssertionError, match="differs from the reference"):
        harness.check_against_reference("embedding_gather", "numba", args)
    assert spec.tolerance_for(np.float32, "numba") == (0.0, 0.0)


def test_validate_result_tolerance_rule():
    ref = np.array([1.0, 100.0, 0.0])
    harness.validate_result(ref + [1e-7, 1e-5, 1e-9], ref, atol=1e-8, rtol=1e-6)
    with pytest.raises(AssertionError, match="allowed"):
        harness.validate_result(ref + [0, 2e-4, 0], ref, atol=1e-8, rtol=1e-6)
    with pytest.raises(AssertionError, match="exact match"):
        harness.validate_result(np.nextafter(ref, 2), ref, atol=0, rtol=0)
    harness.validate_result(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), atol=0, rtol=0)


def test_a_backend_lacking_an_op_falls_back_and_logs_once(monkeypatch, caplog):
    registry.forget_resolutions()
    missing = "not implemented in embedding/numba_impl (test)"
    monkeypatch.setitem(registry._implementations, ("scatter_add", "numba"), missing)
    dW = np.zeros((3, 2))
    with caplog.at_level(logging.WARNING, logger="fastnlp.kernels"), fastnlp.use_backend("numba"):
        fastnlp.kernels.scatter_add(dW, [1, 1], np.ones((2, 2)))
        fastnlp.kernels.scatter_add(dW, [2], np.ones((1, 2)))
        assert registry.backend_for("scatter_add") != "numba"
    assert dW.tolist() == [[0, 0], [2, 2], [1, 1]]
    warnings = [r for r in caplog.records if "scatter_add" in r.getMessage()]
    assert len(warnings) == 1 and "numba lacks it" in warnings[0].getMessage()
    monkeypatch.undo()
    registry.forget_resolutions()


def test_without_a_choice_or_calibration_each_op_runs_on_its_static_preference(monkeypatch):
    monkeypatch.setattr(dispatch, "_selected", None)
    monkeypatch.setattr(dispatch, "_env_choice", None)
    monkeypatch.setenv("FASTNLP_CALIBRATION", "off")
    registry.forget_resolutions()
    resolved = registry.resolved_backends()
    for op in registry.ops():
        if registry.spec(op).calibration is not None:
            continue  # gemm ranks its libraries with its own calibration (tests/test_gemm.py)
        loaded = [b for b in registry.spec(op).preference if not isinstance(registry.implementations(op)[b], str)]
        assert registry.backend_for(op) == loaded[0] == resolved[op]
    registry.forget_resolutions()


def test_matrix_lists_every_op_and_backend():
    table = registry.matrix()
    for op in registry.ops():
        assert op in table
    for backend in dispatch.BACKENDS:
        assert backend in table.splitlines()[0]


@pytest.mark.parametrize("op", registry.ops())
def test_benchmark_args_fit_the_contract_and_run(op):
    """The problem bench/test_bench_ops.py times: the reference's arity, and one call on the op's
    preferred compiled CPU backend that loads here, with finite outputs. The reference is not
    called: some are pure Python loops that take seconds at working size."""
    spec = registry.spec(op)
    assert callable(spec.benchmark_args), f"{op}: OpSpec.benchmark_args is not set"
    args = spec.benchmark_args()
    assert isinstance(args, tuple) and len(args) == len(inspect.signature(spec.reference).parameters)
    candidates = spec.preference + tuple(b for b in dispatch.HOST_BACKENDS if b not in spec.preference)
    dtype = spec.dtype_of(args) if spec.dtype_of is not None else None
    loaded = [b for b in candidates
              if b != registry.REFERENCE and not isinstance(registry.implementations(op)[b], str)
              and (dtype is None or spec.dtype_reason(b, dtype) is None)]
    if not loaded:
        pytest.skip(f"{op}: only the reference loads here; it is not run at working size")
    returned = registry.implementations(op)[loaded[0]](*args)
    outputs = [] if returned is None else list(returned) if isinstance(returned, tuple) else [returned]
    for k, value in enumerate(outputs + [args[i] for i in spec.writes]):
        value = np.asarray(value)
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), f"{op} on {loaded[0]}: output {k} is not finite"


@pytest.mark.parametrize("shape, dtype", [((128, 29, 256), np.float32), ((3, 5), np.float64), ((0, 4), np.float32),
                                          (7, np.int32), ((), np.float64)])
def test_aligned_arrays_start_on_a_cache_line_and_behave_as_empty_ones(shape, dtype):
    from fastnlp.kernels.memory import aligned_copy, aligned_empty

    many = [aligned_empty(shape, dtype) for _ in range(8)]  # malloc's offsets vary call to call
    for a in many:
        assert a.shape == np.empty(shape).shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or a.__array_interface__["data"][0] % 64 == 0
    source = np.arange(np.prod(shape, dtype=int), dtype=dtype).reshape(shape)
    if source.ndim >= 2:
        source = source.swapaxes(0, 1)
    copy = aligned_copy(source)
    assert np.array_equal(copy, source) and copy.flags.c_contiguous and not np.shares_memory(copy, source)


@pytest.mark.parametrize("backend", [b for b in dispatch.CPU_BACKENDS if b != registry.REFERENCE])
def test_what_the_attention_kernels_stream_is_cache_line_aligned(backend):
    """TimeLSTM's output (the encoder states hs) and the gradient dhs: a misaligned start makes
    every 64-byte vector access of their rows cross cache lines (kernels/memory.py)."""
    from fastnlp import kernels
    from fastnlp.layers import TimeLSTM

    rng = np.random.default_rng(0)
    D, H = 3, 16
    lstm = TimeLSTM(*(rng.standard_normal(s).astype(np.float32) for s in ((D, 4 * H), (H, 4 * H), (4 * H,))))
    impl = registry.implementations("attention_context_backward")[backend]
    if isinstance(impl, str):
        pytest.skip(impl)
    for n in range(1, 9):
        hs = lstm.forward(rng.standard_normal((n, 5, D)).astype(np.float32))
        assert hs.__array_interface__["data"][0] % 64 == 0
        h, dc = hs[:, :1].copy(), hs[:, :1].copy()
        a, _ = kernels.attention_context(hs, h)
        dhs, _ = impl(hs, h, a, dc)
        assert dhs.__array_interface__["data"][0] % 64 == 0


def test_large_aligned_blocks_are_reused_only_once_no_array_uses_them():
    """aligned_empty hands a large block out again (no fresh pages to fault each iteration)
    only when nothing made from it is alive: not while a view of it is."""
    from fastnlp.kernels import memory

    shape = (memory.POOL_MIN_BYTES // 4 + 16,)

    def address(a):
        return a.__array_interface__["data"][0]

    first = memory.aligned_empty(shape, np.float32)
    first[...] = 1.0
    where = address(first)
    view = first[10:20]
    del first
    second = memory.aligned_empty(shape, np.float32)
    assert address(second) != where  # the view still holds the first block
    assert view.sum() == 10.0
    del view
    third = memory.aligned_empty(shape, np.float32)
    assert address(third) == where and address(third) % memory.ALIGNMENT == 0
    del second, third
    assert memory.release_cached_blocks() >= 2 * shape[0] * 4
    assert memory.release_cached_blocks() == 0
