"""Numba version of sgd_update (contract in __init__.py): one loop over the flat arrays;
without fastmath LLVM keeps each product and the difference as separate roundings. Releases the GIL."""
import numba


@numba.njit(cache=True, nogil=True)
def _update(p, g, lr, grad_scale):
    for i in range(p.size):
        p[i] = p[i] - lr * (grad_scale * g[i])


def sgd_update(p, g, lr, grad_scale=1.0):
    _update(p.reshape(-1), g.reshape(-1), p.dtype.type(lr), p.dtype.type(grad_scale))
