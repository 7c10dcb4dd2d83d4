# cython: language_level=3
"""Row blocks of an elementwise pass run on the OpenMP threads of the matrix libraries.

MKL's GNU threading layer and oneDNN's ``-gomp`` wheel run their products on libgomp's thread
pool; after each product its workers spin for a while waiting for the next parallel region.
A pass that hands its second row block to a Python thread of its own then waits for a core
that a spinning OpenMP worker holds (2-core Xeon, Rnnlm at 2 threads: the softmax's pass over
the 700 x 10,000 scores took 3.8 ms, about its 1-thread time). Run as an OpenMP parallel region
of the same libgomp, the spinning worker takes the block at once (2.4 ms). This module is
built against the compiler's libgomp, the one MKL's GNU layer and oneDNN load; each block
calls back into Python (the work is NumPy ufuncs and compiled kernels that release the GIL).
"""
from cython.parallel cimport prange


def run_blocks(work, Py_ssize_t blocks, int threads):
    """``work(i)`` for i in ``[0, blocks)``, one OpenMP thread per block (``threads`` of them),
    the calling thread running block 0. Every block runs; the first exception is raised after
    all have finished."""
    cdef Py_ssize_t i
    errors = []
    for i in prange(blocks, nogil=True, num_threads=threads, schedule="static", chunksize=1):
        with gil:
            try:
                work(i)
            except BaseException as exc:  # noqa: B036  raised below, after every block ran
                errors.append(exc)
    if errors:
        raise errors[0]
