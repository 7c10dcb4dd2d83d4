"""The README's examples run as written (with the shared data folder), so they stay true."""
import re
from pathlib import Path

import pytest

from conftest import DATA_DIR
from fastnlp.kernels import dispatch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dispatch, "_selected", dispatch._selected)  # blocks may call set_backend
    code = BLOCKS[index].replace("../shared/data", str(DATA_DIR))
    exec(compile(code, f"README block {index}", "exec"), {"__name__": "readme"})


def test_readme_starts_with_the_two_commands():
    commands = [line for line in README.read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) >= 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run must run exactly the README's test command"
