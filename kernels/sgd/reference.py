"""NumPy reference of sgd_update (contract in __init__.py)."""
import numpy as np


def sgd_update(p, g, lr, grad_scale=1.0):
    """g scaled (a copy: g is not written), p -= lr * g: NumPy rounds each product to p's
    dtype, then the difference."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if grad_scale != 1.0:
            g = g * p.dtype.type(grad_scale)
        p -= p.dtype.type(lr) * g
