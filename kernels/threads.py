"""How many threads a row-parallel op runs on, and the pool that runs them.

The compiled kernels release the GIL, so an op over many independent rows (the softmax of a
language model's 700 x 10,000 scores, the top-k of a block of queries) can hand row blocks to
other threads. They use as many threads as NumPy's BLAS has now (threadpoolctl's
``threadpool_limits`` or OMP/OPENBLAS_NUM_THREADS set it), so the pass runs on the cores the
matrix products before and after it run on, and ``threadpool_limits(1)`` makes everything
single-threaded.

Which threads: where a matrix library in the process runs on libgomp (MKL's GNU layer, oneDNN's
OpenMP build), the blocks run as an OpenMP parallel region of that same runtime
(``_openmp_rows``), so the worker still spinning after the last product takes its block at
once; a Python thread of our own would wait for the core that worker holds. Measured on the
2-core Xeon at 2 threads: Rnnlm's iteration 34.5 -> 30 ms, BetterRnnlm's 242 -> 220 ms (the
softmax pass 3.8 -> 2.4 ms, the clipping and update 9.1 -> 8.2). Elsewhere (NumPy's OpenBLAS,
whose pthreads pool sleeps on its own terms; no compiler; a forked child, where the parent's
OpenMP pool does not exist) a pool of Python threads runs them.
"""
from __future__ import annotations

import os
import threading

import numpy as np

_CONTROLLER = []
_POOLS = {}
_lock = threading.Lock()


def blas_threads() -> int:
    """The thread count of NumPy's BLAS now (1 when threadpoolctl cannot tell)."""
    controller = _blas_controller()
    if controller is None:
        return 1
    counts = [c.num_threads for c in controller.lib_controllers]
    return max(1, min(counts)) if counts else 1


def _blas_controller():
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController().select(user_api="blas"))
        except Exception:  # threadpoolctl is a dependency; a broken one means one thread
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


def pool(threads: int):
    """A thread pool of ``threads`` workers, one per count and process (a forked child makes
    its own: the parent's threads do not exist there)."""
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), threads)
    with _lock:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="fastnlp-rows")
        return _POOLS[key]


def run_row_blocks(work, rows: int, threads: int | None = None) -> None:
    """``work(begin, end)`` over ``[0, rows)`` split into one contiguous block per thread
    (``blas_threads()`` when not given); the calling thread runs the first block. Exceptions
    of any block are raised here, after every block has finished."""
    threads = blas_threads() if threads is None else threads
    threads = max(1, min(threads, rows))
    if threads == 1:
        work(0, rows)
        return
    bounds = np.linspace(0, rows, threads + 1).astype(int)
    openmp = openmp_runner()
    if openmp is not None:
        edges = bounds.tolist()
        openmp(lambda block: work(edges[block], edges[block + 1]), threads, threads)
        return
    futures = [pool(threads - 1).submit(work, int(a), int(b)) for a, b in zip(bounds[1:-1], bounds[2:])]
    try:
        work(int(bounds[0]), int(bounds[1]))
    finally:
        for future in futures:
            future.exception()  # wait for every block before the caller touches the arrays
    for future in futures:
        future.result()


_OPENMP = {}  # "pid": the process that first asked; "runner": run_blocks once the libraries use libgomp


def openmp_runner():
    """``_openmp_rows.run_blocks`` where a matrix library loaded in this process runs its threads
    on libgomp (see the module's docstring), else None. Never loads a library itself."""
    runner = _OPENMP.get("runner")
    pid = os.getpid()
    if _OPENMP.setdefault("pid", pid) != pid:
        return None  # a forked child: libgomp's pool of the parent is not there
    if runner is None and _blas_on_libgomp():
        try:
            from ._openmp_rows import run_blocks
        except ImportError:  # built without OpenMP or without a compiler
            run_blocks = False
        runner = _OPENMP["runner"] = run_blocks
    return runner or None


def _blas_on_libgomp() -> bool:
    from .gemm import _libraries

    for name in _libraries.NAMES:
        # MKL's GNU or Intel layer, oneDNN's OpenMP build: the extension's GOMP_* calls bind to
        # whichever OpenMP runtime the process loaded first, the one these libraries share
        if _libraries.is_loaded(name) and _libraries.threading_layer(name) in ("gnu", "intel", "OpenMP"):
            return True
    return False


# Below this many values a pass stays on the calling thread: handing a block to the pool costs
# tens of microseconds, what NumPy needs for a few hundred thousand floats.
PARALLEL_MIN_VALUES = 1 << 18
# Column sums split the rows into this many blocks whatever the thread count, and add the
# partial sums in order: the bits are those of any thread count.
COLUMN_SUM_BLOCKS = 4


def parallel_rows(work, rows: int, values: int) -> None:
    """``work(begin, end)`` over ``[0, rows)``: one call when the pass covers fewer than
    PARALLEL_MIN_VALUES values, else one block per BLAS thread (:func:`run_row_blocks`). For
    elementwise NumPy passes over large host arrays (ufuncs release the GIL)."""
    if values < PARALLEL_MIN_VALUES:
        work(0, rows)
    else:
        run_row_blocks(work, rows)


def column_sums(x: np.ndarray, block_sums=None) -> np.ndarray:
    """``x.sum(axis=0)`` of a 2-D host array, its row blocks summed on the BLAS threads.

    Small arrays are summed by NumPy at once. Large ones are cut into COLUMN_SUM_BLOCKS fixed
    blocks whose sums are added in block order, so the result does not depend on the thread count.
    ``block_sums(begin, end, out)``, when given, sets ``out`` to the sums of rows [begin, end)
    (a pass that does more with the rows on the way; it releases the GIL): every array goes
    through the fixed blocks then, one block when it has fewer rows than blocks.
    """
    rows = x.shape[0]
    if block_sums is None:
        if x.size < PARALLEL_MIN_VALUES or rows < COLUMN_SUM_BLOCKS:
            return x.sum(axis=0)

        def block_sums(begin, end, out):
            x[begin:end].sum(axis=0, out=out)
    blocks = COLUMN_SUM_BLOCKS if rows >= COLUMN_SUM_BLOCKS else 1
    bounds = np.linspace(0, rows, blocks + 1).astype(int)
    partial = np.empty((blocks, x.shape[1]), x.dtype)

    def work(begin, end):
        for block in range(begin, end):
            block_sums(bounds[block], bounds[block + 1], partial[block])

    run_row_blocks(work, blocks)
    total = partial[0].copy()
    for block in range(1, blocks):
        total += partial[block]
    return total
