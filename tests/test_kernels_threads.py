"""Row blocks on several threads (kernels/threads.py) and the ops that use them: the same bits as
one thread, every row once, errors raised in the caller."""
import numpy as np
import pytest

import fastnlp  # noqa: F401 (attaches fastnlp.kernels in a source checkout)
from fastnlp.kernels import exp_row_sums, use_backend
from fastnlp.kernels import threads as threads_module
from fastnlp.kernels.threads import run_row_blocks


@pytest.fixture(params=["python threads", "openmp"])
def runner(request, monkeypatch):
    """Each test below runs on both ways of running blocks: the pool of Python threads and the
    compiled OpenMP region (what a process whose matrix library runs on libgomp uses)."""
    if request.param == "openmp":
        openmp_rows = pytest.importorskip("fastnlp.kernels._openmp_rows", reason="the OpenMP runner is not built")
        monkeypatch.setattr(threads_module, "openmp_runner", lambda: openmp_rows.run_blocks)
    else:
        monkeypatch.setattr(threads_module, "openmp_runner", lambda: None)
    return request.param


@pytest.mark.parametrize("rows, threads", [(1, 2), (2, 2), (7, 3), (100, 2), (5, 1)])
def test_every_row_is_worked_on_exactly_once(rows, threads, runner):
    seen = np.zeros(rows, np.int64)

    def work(begin, end):
        seen[begin:end] += 1

    run_row_blocks(work, rows, threads=threads)
    np.testing.assert_array_equal(seen, 1)


def test_an_error_in_any_block_reaches_the_caller_after_every_block_ran(runner):
    finished = []

    def work(begin, end):
        if begin > 0:
            raise ValueError(f"block {begin}")
        finished.append(begin)

    with pytest.raises(ValueError, match="block"):
        run_row_blocks(work, 10, threads=3)
    assert finished == [0]


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_exp_row_sums_on_two_threads_gives_the_bits_of_one(backend):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl sets the BLAS thread count")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((301, 1000)) * 3).astype(np.float32)
    assert x.size >= threads_module.PARALLEL_MIN_VALUES  # large enough to be split
    with use_backend(backend):
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            one_y, one_sums = exp_row_sums(x)
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            two_y, two_sums = exp_row_sums(x)
    np.testing.assert_array_equal(two_y, one_y)
    np.testing.assert_array_equal(two_sums, one_sums)
    np.testing.assert_allclose(one_sums, np.exp(x.astype(np.float64)).sum(axis=1), rtol=1e-5)


def test_exp_row_sums_refuses_what_the_kernels_cannot_take():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="exp_row_sums.*float16"):
        exp_row_sums(x.astype(np.float16))
    with pytest.raises(ValueError, match="2-D"):
        exp_row_sums(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="no columns"):
        exp_row_sums(np.zeros((2, 0), np.float32))
    with pytest.raises(ValueError, match="overlaps x"):
        exp_row_sums(x, out=x)
    with pytest.raises(ValueError, match="sums must be a float32 array of shape"):
        exp_row_sums(x, sums=np.zeros(3, np.float32))


@pytest.mark.parametrize("shape", [(3, 5), (700, 400), (1001, 300), (2, 200_000)])
def test_column_sums_equal_numpys_and_do_not_depend_on_the_thread_count(shape):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl sets the BLAS thread count")
    from fastnlp.kernels.threads import column_sums

    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = column_sums(x)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = column_sums(x)
    np.testing.assert_array_equal(two, one)
    np.testing.assert_allclose(one, x.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-4)
    assert one.dtype == x.dtype and one.shape == (shape[1],)


def test_parallel_rows_covers_every_row_of_a_large_pass_once():
    from fastnlp.kernels.threads import PARALLEL_MIN_VALUES, parallel_rows

    x = np.zeros((513, PARALLEL_MIN_VALUES // 256), np.float32)
    parallel_rows(lambda begin, end: np.add(x[begin:end], 1, out=x[begin:end]), x.shape[0], x.size)
    np.testing.assert_array_equal(x, 1)
    small = np.zeros((3, 4), np.float32)
    parallel_rows(lambda begin, end: np.add(small[begin:end], 1, out=small[begin:end]), 3, small.size)
    np.testing.assert_array_equal(small, 1)


def test_blocks_run_on_the_matrix_librarys_openmp_threads_once_it_is_loaded_and_not_in_a_forked_child():
    """With MKL loaded on an OpenMP layer, passes use the compiled OpenMP runner; a forked child
    (where the parent's OpenMP pool does not exist) goes back to Python threads."""
    import os

    from fastnlp.kernels.gemm import _libraries

    pytest.importorskip("fastnlp.kernels._openmp_rows", reason="the OpenMP runner is not built")
    if _libraries.unavailable_reason("mkl") is not None:
        pytest.skip(f"MKL: {_libraries.unavailable_reason('mkl')}")
    _libraries.load("mkl").mkl_get_max_threads()
    if _libraries.threading_layer("mkl") not in ("gnu", "intel"):
        pytest.skip(f"MKL runs on its {_libraries.threading_layer('mkl')} layer")
    assert threads_module.openmp_runner() is not None
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's result travels through the pipe)
        os.write(write, b"none" if threads_module.openmp_runner() is None else b"openmp")
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 16) == b"none"


def test_no_kernel_changes_the_openmp_thread_count_the_user_set():
    """Every op on every CPU backend, at working size, in a process started with
    OMP_NUM_THREADS=1: no OpenMP pool reports more threads afterwards. Numba's OpenMP layer set
    it to NUMBA_NUM_THREADS at its first parallel loop (the rounding op's), which put oneDNN and
    MKL's GNU layer on 2 threads and made the gemm calibration rank for 2."""
    import subprocess
    import sys

    pytest.importorskip("threadpoolctl")
    script = """
import numpy as np
import fastnlp
from fastnlp.kernels import registry, dispatch
from threadpoolctl import threadpool_info
for op in registry.ops():
    spec = registry.spec(op)
    for backend, function in registry.implementations(op).items():
        if isinstance(function, str) or backend not in dispatch.CPU_BACKENDS:
            continue
        args = spec.benchmark_args()
        dtype = spec.dtype_of(args) if spec.dtype_of is not None else None
        if dtype is not None and spec.dtype_reason(backend, dtype) is not None:
            continue
        function(*args)
        counts = [p.get("num_threads") for p in threadpool_info() if p.get("internal_api") == "openmp"]
        assert all(c == 1 for c in counts), (op, backend, counts)
print("ok")
"""
    env = {k: v for k, v in __import__("os").environ.items()}
    env.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
