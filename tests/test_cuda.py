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
    # The shared headers include each other as "fastnlp/<name>.h", found through kernels/include
    # (the C build's include_dirs; for NVRTC, kernels/_cuda.py pastes them in).
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", "-std=c++14", f"-I{KERNELS_DIR / 'include'}",
                             str(source), "-o", str(tmp_path / (source.stem + ".ptx"))],
                            capture_output=True, text=True)
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


@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_shared_headers_are_pasted_into_what_nvrtc_compiles(source):
    """NVRTC gets one self-contained text (kernels/_cuda.source_text): each shared header named by
    a .cu file appears in it once, and no include of a fastnlp header is left for NVRTC to resolve."""
    from fastnlp.kernels import _cuda

    text = _cuda.source_text(source)
    assert "fastnlp/" not in "".join(line for line in text.splitlines() if line.lstrip().startswith("#include"))
    if "fastnlp_splitmix64(" in source.read_text():
        assert text.count("FASTNLP_RNG_INLINE fastnlp_u64 fastnlp_splitmix64(") == 1


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_the_pasted_source_compiles_alone(source, tmp_path):
    """What NVRTC gets (headers pasted in) compiles with no include path at all."""
    from fastnlp.kernels import _cuda

    alone = tmp_path / source.name
    alone.write_text(_cuda.source_text(source))
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", "-std=c++14", str(alone), "-o",
                             str(tmp_path / (source.stem + ".ptx"))], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
