"""NumPy reference of sgd_update (contract in __init__.py)."""
import numpy as np


def sgd_update(p, g, lr):
    """p -= lr * g: NumPy rounds the product to p's dtype, then the difference."""
    with np.errstate(over="ignore", invalid="ignore"):
        p -= p.dtype.type(lr) * g
