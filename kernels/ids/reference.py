"""NumPy reference of the id-range check (contract in __init__.py)."""


def id_range(ids):
    """(min, max) of a non-empty int64 array, as Python ints."""
    return int(ids.min()), int(ids.max())
