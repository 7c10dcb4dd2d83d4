"""Importing fastnlp from a source checkout (Python started in the repository root).

There the local ``fastnlp/`` folder shadows any installed copy and has no ``kernels`` inside (the
kernels live in the top-level ``kernels/`` folder, installed as ``fastnlp.kernels``); the package
attaches that folder itself. An editable install would hide the problem, so the subprocesses drop
setuptools' editable finder first, as a plain ``pip install .`` would have none.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path.insert(0, {root!r})
"""

CHECK = """
import fastnlp.kernels, fastnlp, pathlib, pkgutil
print(pathlib.Path(fastnlp.kernels.__file__).resolve().parent)
for info in pkgutil.iter_modules(fastnlp.kernels.__path__):
    if info.ispkg:
        __import__("fastnlp.kernels." + info.name)   # sub-packages of kernels import too
print(fastnlp.available_backends()["numpy"])
"""


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_import_from_the_repository_root():
    result = run_python(PRELUDE.format(root=str(ROOT)) + CHECK, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    folder, numpy_reason = result.stdout.split()
    assert Path(folder) == ROOT / "kernels"
    assert numpy_reason == "None"


def test_package_without_kernels_says_what_to_do(tmp_path):
    shutil.copytree(ROOT / "fastnlp", tmp_path / "fastnlp", ignore=shutil.ignore_patterns("__pycache__"))
    result = run_python(PRELUDE.format(root=str(tmp_path)) + "import fastnlp", cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastnlp.kernels is missing") and "pip install" in last
