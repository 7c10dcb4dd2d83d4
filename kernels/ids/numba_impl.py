"""Numba version of the id-range check: one pass, compiled on first call (cached on disk)."""
import numba


@numba.njit(cache=True, nogil=True)
def _id_range(ids):
    low = high = ids[0]
    for i in range(1, ids.shape[0]):
        v = ids[i]
        if v < low:
            low = v
        elif v > high:
            high = v
    return low, high


def id_range(ids):
    low, high = _id_range(ids)
    return int(low), int(high)
