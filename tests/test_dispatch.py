import subprocess
import sys

import numpy as np
import pytest

import fastnlp
from fastnlp.kernels import BACKENDS, BackendUnavailableError, dispatch


def test_available_backends_names_every_backend_with_none_or_a_reason():
    status = fastnlp.available_backends()
    assert set(status) == set(BACKENDS)
    assert status["numpy"] is None
    for name, reason in status.items():
        assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)


def test_default_is_a_compiled_cpu_backend_when_one_loads():
    status = fastnlp.available_backends()
    compiled = [n for n in ("numba", "cython") if status[n] is None]
    default = dispatch.default_backend()
    assert default in dispatch.CPU_BACKENDS
    if compiled:
        assert default in compiled


def test_without_a_choice_get_backend_says_auto_and_auto_undoes_a_choice(monkeypatch):
    monkeypatch.setattr(dispatch, "_selected", None)
    monkeypatch.setattr(dispatch, "_env_choice", "numpy")  # as if FASTNLP_BACKEND=numpy
    assert fastnlp.get_backend() == "numpy"
    fastnlp.set_backend("auto")
    assert fastnlp.get_backend() == "auto" and dispatch.chosen_backend() is None
    with fastnlp.use_backend("numba"):
        assert fastnlp.get_backend() == "numba"
        with fastnlp.use_backend("AUTO"):
            assert dispatch.chosen_backend() is None
    monkeypatch.setattr(dispatch, "_env_choice", None)
    monkeypatch.setattr(dispatch, "_selected", None)
    assert fastnlp.get_backend() == "auto"


def test_set_backend_and_context_manager_restore():
    before = fastnlp.get_backend()
    with fastnlp.use_backend("numpy"):
        assert fastnlp.get_backend() == "numpy"
        with fastnlp.use_backend(before):
            assert fastnlp.get_backend() == before
        assert fastnlp.get_backend() == "numpy"
    assert fastnlp.get_backend() == before
    try:
        fastnlp.set_backend("numpy")
        assert fastnlp.get_backend() == "numpy"
    finally:
        dispatch._selected = None
    assert fastnlp.get_backend() == before


def test_context_manager_restores_after_an_exception():
    before = fastnlp.get_backend()
    with pytest.raises(RuntimeError):
        with fastnlp.use_backend("numpy"):
            raise RuntimeError("boom")
    assert fastnlp.get_backend() == before


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        fastnlp.set_backend("tensorflow")


def test_unavailable_backend_raises_with_the_reason(monkeypatch):
    monkeypatch.setitem(dispatch._reasons, "cupy", "no GPU in this test")
    with pytest.raises(BackendUnavailableError, match="'cupy' is not available: no GPU in this test"):
        fastnlp.set_backend("cupy")
    with pytest.raises(BackendUnavailableError):
        with fastnlp.use_backend("cupy"):
            pass


@pytest.mark.parametrize("name", ["numpy", "numba", "cython"])
def test_environment_variable_selects_the_backend(name):
    if fastnlp.available_backends()[name] is not None:
        pytest.skip(f"{name} backend not available here")
    code = "import fastnlp; print(fastnlp.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**_env(), "FASTNLP_BACKEND": name}, check=True)
    assert out.stdout.strip() == name


def test_environment_variable_naming_a_bad_backend_fails_clearly():
    code = "import fastnlp; fastnlp.get_backend()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**_env(), "FASTNLP_BACKEND": "fortran"})
    assert out.returncode != 0
    assert "unknown backend 'fortran'" in out.stderr


def test_switching_backend_changes_the_kernel_layers_run(monkeypatch):
    """Layers reach kernels only through dispatch: a spy on one backend sees the Embedding's calls."""
    from fastnlp.kernels import registry

    calls = []
    original = registry.implementations("scatter_add")["numpy"]
    registry.forget_resolutions()
    monkeypatch.setitem(registry._implementations, ("scatter_add", "numpy"),
                        lambda *a: (calls.append(1), original(*a)))
    layer = fastnlp.layers.Embedding(np.ones((5, 3), np.float32))
    with fastnlp.use_backend("numpy"):
        layer.forward(np.array([1, 1, 4]))
        layer.backward(np.ones((3, 3), np.float32))
    assert calls == [1]
    monkeypatch.undo()
    registry.forget_resolutions()


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "FASTNLP_BACKEND"}
