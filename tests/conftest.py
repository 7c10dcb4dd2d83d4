"""Shared fixtures: every available backend, automatically, and the shared data folder."""
from pathlib import Path

import pytest

import fastnlp

AVAILABLE = [name for name, reason in fastnlp.available_backends().items() if reason is None]
CPU_AVAILABLE = [name for name in AVAILABLE if name in fastnlp.kernels.dispatch.CPU_BACKENDS]
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def backend_choice_restored():
    """A test that chooses a backend for the process (``fastnlp --backend numpy ...`` run
    in-process calls set_backend) must not choose it for the tests after it."""
    saved = fastnlp.kernels.dispatch._selected
    yield
    fastnlp.kernels.dispatch._selected = saved


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never download: a check that comes too late must fail the test, not reach for the
    network. (Download tests put their own fake fetcher in its place.)"""
    from fastnlp.datasets import _files

    def refuse(url, timeout=60.0):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(_files, "fetch_url_bytes", refuse)


def run_cli(argv):
    """(exit status, stdout, stderr) of ``fastnlp argv``, run in-process."""
    import contextlib
    import io

    from fastnlp.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse exits on a bad command line
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code, err, expected_code=None):
    """A mistake on the command line: a non-zero status and exactly one 'fastnlp ...: error:' line."""
    assert code not in (0, None), err
    if expected_code is not None:
        assert code == expected_code, (code, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastnlp") and ": error: " in lines[0], lines[0]


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory):
    """Token caches and any download target go to a temporary folder, never the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
        patch.delenv("FASTNLP_DATA", raising=False)
        # Backends by the static order: timing-dependent defaults would make runs differ. The
        # calibration tests turn measuring back on for themselves.
        patch.setenv("FASTNLP_CALIBRATION", "off")
        yield


@pytest.fixture(params=CPU_AVAILABLE)
def cpu_backend(request):
    """Run the test once under each CPU backend that loads here (a new backend needs no new test)."""
    with fastnlp.use_backend(request.param):
        yield request.param


@pytest.fixture
def data_dir():
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    return DATA_DIR


def pytest_report_header(config):
    reasons = fastnlp.available_backends()
    lines = [f"fastnlp backends: {', '.join(AVAILABLE)} (default {fastnlp.get_backend()})"]
    lines += [f"  {name} unavailable: {why}" for name, why in reasons.items() if why]
    return lines


def savefig_writing_half_then_failing(self, target, **kwargs):
    """A stand-in for matplotlib's Figure.savefig that writes part of a PNG and then fails as a
    full disk would: what an atomic save must survive."""
    file = target if hasattr(target, "write") else open(target, "wb")  # savefig takes either
    try:
        file.write(b"\x89PNG half of it")
        file.flush()
        raise OSError(28, "No space left on device")
    finally:
        if file is not target:
            file.close()
