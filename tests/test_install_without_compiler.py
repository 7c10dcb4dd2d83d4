"""``pip install .`` on a machine without a C compiler: the install succeeds without the Cython
extensions, the library runs on Numba, and ``fastnlp backends`` says why Cython is missing.

A real install (with build isolation, as a user's; no dependencies) of a copy of this checkout without its
built extensions, with CC and CXX set to ``false``, into a target folder; then a fresh Python
that imports fastnlp from there. About 30-60 s on a 2-core machine (Cython translates every
.pyx before the compiler fails), so it is marked slow.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
import pathlib
import numpy as np
import fastnlp
from fastnlp.kernels import registry

site = pathlib.Path(sys.argv[1]).resolve()
assert pathlib.Path(fastnlp.__file__).resolve().is_relative_to(site), fastnlp.__file__
assert not list((site / "fastnlp").rglob("*.so")), "an extension was built after all"
assert (site / "fastnlp" / "kernels" / "include" / "fastnlp" / "rng.h").is_file()  # for the CUDA sources
reasons = fastnlp.available_backends()
assert reasons["numba"] is None, reasons["numba"]
print("CYTHON:", reasons["cython"])
print(registry.matrix())
dW = np.zeros((5, 3))
with fastnlp.use_backend("numba"):
    fastnlp.kernels.scatter_add(dW, [1, 1, 4], np.ones((3, 3)))
assert dW[:, 0].tolist() == [0, 2, 0, 0, 1]
assert registry.backend_for("scatter_add") in ("numba", "numpy")  # no choice: never cython
sentences = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"]] * 20
model = fastnlp.Word2Vec(sentences, vector_size=8, min_count=1, epochs=1, workers=1, seed=1)
assert np.isfinite(model.wv["cat"]).all()
print("TRAINED")
"""


@pytest.mark.slow
def test_install_without_a_c_compiler_succeeds_and_runs_on_numba(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".benchmarks",
        ".pytest_cache", "*.so", "_cython_impl.c", "bench", "tests"))
    site = tmp_path / "site"
    env = dict(os.environ, CC="false", CXX="false", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    install = subprocess.run(
        # Build isolation, as a user's install gets: the build requirements come from pyproject.toml
        # (offline here, from the wheels pip is configured with), not from whatever this venv holds.
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(source)],
        capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX")}
    env.update(PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", CHECK, str(site)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    cython_reason = next(line for line in run.stdout.splitlines() if line.startswith("CYTHON:"))
    assert "was not built (no C compiler at install time?)" in cython_reason
    assert "reinstall with a C compiler" in cython_reason
    assert "no C compiler at install time?" in run.stdout.split("CYTHON:", 1)[1]  # the backends table too
    assert "TRAINED" in run.stdout
