"""Matrix products on the GPU: cuBLAS through ``cupy.matmul`` (inputs validated, see __init__.py).

cuBLAS is the fastest product a CUDA device has, so this family keeps no RawKernel of its own.
"""
import cupy


def gemm(a, b, out, trans_a, trans_b, accumulate):
    left = a.swapaxes(-1, -2) if trans_a else a
    right = b.swapaxes(-1, -2) if trans_b else b
    if left.dtype != out.dtype:  # float16 (CuPy holds no bfloat16): widened, so sums stay float32
        left, right = left.astype(out.dtype), right.astype(out.dtype)
    if accumulate:
        out += cupy.matmul(left, right)
    else:
        cupy.matmul(left, right, out=out)
