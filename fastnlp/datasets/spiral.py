"""The book's three-class spiral (ch. 1)."""
import numpy as np


def load_spiral(n_per_class: int = 100, n_classes: int = 3, seed: int = 1984, dtype=np.float32):
    """Return ``(x, t)``: points (N, 2) and one-hot labels (N, n_classes), N = n_per_class * n_classes.

    The book's generator and default seed (1984), with the same noise draws, so the data match
    its figures.
    """
    rng = np.random.RandomState(seed)
    dim = 2
    x = np.zeros((n_per_class * n_classes, dim))
    t = np.zeros((n_per_class * n_classes, n_classes), dtype=np.int32)
    for j in range(n_classes):
        for i in range(n_per_class):
            rate = i / n_per_class
            radius = 1.0 * rate
            theta = j * 4.0 + 4.0 * rate + rng.randn() * 0.2
            ix = n_per_class * j + i
            x[ix] = np.array([radius * np.sin(theta), radius * np.cos(theta)]).flatten()
            t[ix, j] = 1
    return x.astype(dtype), t
