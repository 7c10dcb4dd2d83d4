"""Numba version of sgd_update (contract in __init__.py): one loop over the flat arrays;
without fastmath LLVM keeps the product and the difference as two roundings. Releases the GIL."""
import numba


@numba.njit(cache=True, nogil=True)
def _update(p, g, lr):
    for i in range(p.size):
        p[i] = p[i] - lr * g[i]


def sgd_update(p, g, lr):
    _update(p.reshape(-1), g.reshape(-1), p.dtype.type(lr))
