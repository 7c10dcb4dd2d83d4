"""The command line reports a user's mistake as one ``fastnlp ...: error: ...`` line on stderr and a
non-zero exit status, never a traceback (unless --debug asks for it).

Most cases run ``fastnlp.cli.main`` in-process; a few run ``python -m fastnlp`` in a subprocess,
for what only a fresh process shows (the environment variable, the traceback, the real entry point).
"""
import argparse
import os
import subprocess
import sys

import pytest

import fastnlp
from conftest import assert_one_error_line, run_cli

UNAVAILABLE = [name for name, why in fastnlp.available_backends().items() if why is not None]




def _unwritable_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, "/sys"):
        try:
            with open(os.path.join(candidate, ".probe"), "w"):
                pass
        except OSError:
            return str(candidate)
        os.remove(os.path.join(candidate, ".probe"))
    pytest.skip("no unwritable folder here (running as root without a read-only /sys)")


BAD_ARGS = {
    "backend-unknown": ["--backend", "bogus", "backends"],
    "count-window-negative": ["count", "--window", "-1"],
    "count-window-zero": ["count", "--window", "0"],
    "count-window-too-large": ["count", "--window", "300"],
    "count-window-not-a-number": ["count", "--window", "two"],
    "count-k-zero": ["count", "--k", "0"],
    "count-k-negative": ["count", "--k", "-5"],
    "count-alpha-zero": ["count", "--alpha", "0"],
    "count-alpha-above-one": ["count", "--alpha", "1.5"],
    "count-power-nan": ["count", "--power", "nan"],
    "count-data-dir-missing": ["count", "--data-dir", "{tmp}/no/such/folder"],
    "count-data-dir-is-a-file": ["count", "--data-dir", "{tmp}/a-file"],
    "count-save-missing-folder": ["count", "--data-dir", "{tmp}", "--save", "{tmp}/no/such/vectors.bin"],
    "count-save-under-a-file": ["count", "--data-dir", "{tmp}", "--save", "{tmp}/a-file/vectors.bin"],
    "count-save-is-a-folder": ["count", "--data-dir", "{tmp}", "--save", "{tmp}"],
    "count-save-unwritable": ["count", "--data-dir", "{tmp}", "--save", "{unwritable}/vectors.bin"],
    "spiral-epochs-zero": ["spiral", "--epochs", "0"],
    "spiral-batch-size-zero": ["spiral", "--batch-size", "0"],
    "spiral-lr-zero": ["spiral", "--lr", "0"],
    "spiral-lr-inf": ["spiral", "--lr", "inf"],
    "spiral-hidden-zero": ["spiral", "--hidden", "0"],
    "spiral-plot-missing-folder": ["spiral", "--quiet", "--epochs", "1", "--plot", "{tmp}/missing/dir/x.png"],
    "spiral-hidden-beyond-memory": ["spiral", "--quiet", "--hidden", "200000000000"],
    "spiral-plot-not-a-figure-format": ["spiral", "--quiet", "--epochs", "1", "--plot", "{tmp}/loss.txt"],
    "spiral-plot-read-only": ["spiral", "--quiet", "--epochs", "1", "--plot", "{read_only}"],
    "count-save-read-only": ["count", "--data-dir", "{tmp}", "--save", "{read_only}"],
    "unknown-job": ["no-such-job"],  # (no job at all prints the help: tests/test_cli_tools.py)
}


@pytest.mark.parametrize("argv", BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_mistake_is_one_error_line(argv, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder\n")
    read_only = tmp_path / "read-only.png"
    read_only.write_bytes(b"keep me")
    read_only.chmod(0o444)
    fill = {"tmp": str(tmp_path), "read_only": str(read_only)}
    if any("{unwritable}" in arg for arg in argv):
        fill["unwritable"] = _unwritable_folder(tmp_path)
    code, out, err = run_cli([arg.format(**fill) for arg in argv])
    assert_one_error_line(code, err)
    assert out == ""


def test_memory_error_is_one_line_naming_the_allocation(capsys):
    code, out, err = run_cli(["spiral", "--quiet", "--hidden", "200000000000"])
    assert_one_error_line(code, err)
    assert "out of memory: Unable to allocate" in err


# ---- every job and option, found from the parser: a new command is covered by default --------


def _jobs():
    from fastnlp.cli import build_parser

    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices


def _typed_options():
    return [(job, action.option_strings[-1]) for job, parser in _jobs().items() for action in parser._actions
            if action.option_strings and action.type is not None]


def _output_options():
    return [(job, action.option_strings[-1]) for job, parser in _jobs().items() for action in parser._actions
            if action.dest in ("save", "plot")]


@pytest.mark.parametrize("job, option", _typed_options())
def test_every_typed_option_refuses_garbage_in_one_line(job, option, capsys):
    code, out, err = run_cli([job, option, "no-such-value"])
    assert_one_error_line(code, err)
    assert code == 2 and option in err and out == ""


@pytest.mark.parametrize("job, option", _output_options())
def test_every_output_option_refuses_a_read_only_file_before_the_work(job, option, tmp_path, capsys):
    read_only = tmp_path / "out.png"
    read_only.write_bytes(b"keep me")
    read_only.chmod(0o444)
    code, out, err = run_cli([job, option, str(read_only)])
    assert_one_error_line(code, err)
    # 2, not 1: a usage check before the job ran, not a failure after it.
    assert code == 2 and option in err and "read-only" in err and out == ""
    assert read_only.read_bytes() == b"keep me"


@pytest.mark.skipif(not UNAVAILABLE, reason="every backend loads here")
def test_unavailable_backend_is_one_error_line(capsys):
    code, out, err = run_cli(["--backend", UNAVAILABLE[0], "backends"])
    assert_one_error_line(code, err)
    assert f"backend {UNAVAILABLE[0]!r} is not available" in err


def test_k_not_smaller_than_vocabulary(data_dir, capsys):
    code, out, err = run_cli(["count", "--data-dir", str(data_dir), "--k", "100000"])
    assert_one_error_line(code, err)
    assert "--k 100000" in err and "vocabulary" in err
    assert out == ""  # found before any counting


def test_save_is_checked_before_the_work(data_dir, tmp_path, capsys, monkeypatch):
    import fastnlp.datasets

    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded the corpus before checking --save")

    monkeypatch.setattr(fastnlp.datasets, "load_ptb", must_not_load)
    code, out, err = run_cli(["count", "--data-dir", str(data_dir), "--save", str(tmp_path / "x" / "v.bin")])
    assert_one_error_line(code, err)
    assert "--save" in err


def test_plot_format_is_checked_before_the_work(tmp_path, capsys, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking --plot")

    monkeypatch.setattr(fastnlp.Trainer, "fit", must_not_train)
    code, out, err = run_cli(["spiral", "--quiet", "--plot", str(tmp_path / "loss.txt")])
    assert_one_error_line(code, err)
    assert code == 2 and "--plot" in err and ".png" in err and not (tmp_path / "loss.txt").exists()


def test_spiral_plot_names_the_file_it_wrote(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "loss.png"
    code, out, err = run_cli(["spiral", "--quiet", "--epochs", "2", "--plot", str(target)])
    assert code == 0, err
    assert f"loss curve written to {target}" in out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_short_spiral_run_reports_a_loss(capsys):
    """2 epochs of 3 batches: fewer iterations than the usual loss-recording interval."""
    code, out, err = run_cli(["spiral", "--quiet", "--batch-size", "100", "--epochs", "2"])
    assert code == 0, err
    assert "spiral: 2 epochs" in out and "final loss" in out


def test_happy_paths(capsys):
    assert run_cli(["backends"])[0] == 0
    code, out, err = run_cli(["spiral", "--quiet", "--epochs", "5"])
    assert code == 0, err
    assert "training accuracy" in out and err == ""


# ---- in a fresh process --------------------------------------------------------------------------


def run_in_fresh_process(*args, **env):
    environ = {key: value for key, value in os.environ.items() if key != "FASTNLP_BACKEND"}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "fastnlp", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


def test_bad_backend_in_the_environment():
    result = run_in_fresh_process("backends", FASTNLP_BACKEND="bogus")
    assert_one_error_line(result.returncode, result.stderr)
    assert "FASTNLP_BACKEND" in result.stderr


def test_debug_shows_the_traceback():
    result = run_in_fresh_process("--debug", "backends", FASTNLP_BACKEND="bogus")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "bogus" in result.stderr


def test_entry_point_bad_argument_and_happy_path():
    bad = run_in_fresh_process("count", "--window", "0")
    assert_one_error_line(bad.returncode, bad.stderr)
    good = run_in_fresh_process("--backend", "numpy", "spiral", "--quiet", "--epochs", "3")
    assert good.returncode == 0, good.stderr
    assert "spiral: 3 epochs" in good.stdout


def test_a_reader_closing_the_pipe_early_prints_nothing():
    """`fastnlp backends | head -1`: no error line and no traceback when the reader leaves."""
    import subprocess
    import sys

    done = subprocess.run(f"{sys.executable} -m fastnlp backends | head -1", shell=True, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""
