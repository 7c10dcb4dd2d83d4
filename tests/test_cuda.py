"""CUDA sources compile on every CI run where nvcc exists; GPU tests need CuPy and a device."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fastnlp

KERNELS_DIR = Path(fastnlp.kernels.__file__).parent
CU_FILES = sorted(KERNELS_DIR.glob("*/*.cu"))  # one per op family folder
GPU_REASON = fastnlp.available_backends()["cupy"]


def test_cuda_sources_are_shipped():
    assert CU_FILES, f"no .cu files found under {KERNELS_DIR}"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_cuda_source_compiles_to_ptx(source, tmp_path):
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", "-std=c++14", str(source), "-o",
                             str(tmp_path / (source.stem + ".ptx"))], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backend: {GPU_REASON}")
def test_embedding_layer_trains_on_the_gpu():
    import cupy

    W = cupy.asarray(np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32))
    layer = fastnlp.layers.Embedding(W)
    idx = cupy.asarray([[1, 2, 2], [99, 0, 1]])
    out = layer.forward(idx)
    assert isinstance(out, cupy.ndarray)
    layer.backward(cupy.ones_like(out))
    grad = layer.grads[0].get()
    assert grad[2].tolist() == [2.0] * 8 and grad[1].tolist() == [2.0] * 8 and grad[3].sum() == 0


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex64])
def test_cuda_kernels_refuse_dtypes_they_were_not_built_for(dtype):
    """An explicit dtype map: float16 must not silently run the float64 kernel."""
    from fastnlp.kernels import _cuda

    assert _cuda.kernel_name("scatter_add", np.float32) == "scatter_add_f32"
    assert _cuda.kernel_name("scatter_add", np.float64) == "scatter_add_f64"
    with pytest.raises(TypeError, match="no CUDA kernel scatter_add for dtype"):
        _cuda.kernel_name("scatter_add", dtype)
