"""The reference matrix product: NumPy's ``matmul`` (OpenBLAS in NumPy's wheels).

bfloat16 inputs are widened to float32 first, so the product accumulates in float32 as every
other implementation's does. Arguments are already validated (see __init__.py).
"""
import numpy as np


def gemm(a, b, out, trans_a, trans_b, accumulate):
    left = a.swapaxes(-1, -2) if trans_a else a
    right = b.swapaxes(-1, -2) if trans_b else b
    if left.dtype != out.dtype:  # bfloat16 storage: compute in float32
        left, right = left.astype(out.dtype), right.astype(out.dtype)
    if accumulate:
        out += np.matmul(left, right)
    else:
        np.matmul(left, right, out=out)
