"""CuPy version of the id-range check: two device reductions (contract in __init__.py)."""


def id_range(ids):
    return int(ids.min()), int(ids.max())
