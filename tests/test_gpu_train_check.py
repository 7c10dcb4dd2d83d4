"""bench/gpu_train_check.py without a GPU: its dry run (tiny synthetic sizes) under the strict
stand-in device of tests/strict_device.py, so every model's GPU side really moves to a device,
takes its batches through the pinned copies and never mixes host and device arrays; plus the
time budget and the reading of pytest's summary."""
import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent / "bench"))
import gpu_train_check  # noqa: E402
import strict_device  # noqa: E402

MODELS = ["TwoLayerNet", "CBOW", "SkipGram", "Rnnlm", "BetterRnnlm", "Seq2seq", "PeekySeq2seq", "AttentionSeq2seq",
          "Transformer"]


def test_the_dry_run_trains_every_model_on_the_stand_in_device_and_writes_its_tables(tmp_path):
    with strict_device.installed():
        copies_before = strict_device.copies()[0]
        result = gpu_train_check.main(["--dry-run", "--device", "cuda", "--out", str(tmp_path), "--budget", "300"])
        assert strict_device.copies()[0] > copies_before  # the GPU sides' batches went through pinned buffers
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved["machine"]["device"] == "cuda" and saved["machine"]["dry_run"] is True
    parts = saved["parts"]
    assert list(parts) == list(gpu_train_check.PARTS)
    models = parts["models"]
    assert [row["model"] for row in models["rows"]] == MODELS
    for row in models["rows"]:
        # The stand-in runs the NumPy references: the two sides agree, and every row says so.
        assert row["result"] == "pass" and row["steps"] == 6, row
        assert row["final_diff"] <= gpu_train_check.FINAL_TOLERANCE_DROPOUT
        assert ("first_diff" in row) == (row["model"] != "BetterRnnlm")  # dropout: no first-step comparison
    assert models["status"] == "passed"
    speed = parts["speed"]["rows"]
    assert [row["model"].split()[0] for row in speed] == ["Rnnlm", "BetterRnnlm", "AttentionSeq2seq"]
    for row in speed:
        assert row["steps"] > 0 and row["ours_tokens_per_s"] > 0 and row["ours_metric"] >= 0, row
    words = parts["word2vec"]["rows"]
    assert [row["device"] for row in words] == ["cuda", "cpu"]
    assert all(("words_per_s" in row) != ("error" in row) for row in words)  # measured, or its error recorded
    for name in gpu_train_check.SUBPROCESS_PARTS:
        assert parts[name]["status"] == "skipped: dry run"
    table = (tmp_path / "check.md").read_text()
    assert "dry run" in table.splitlines()[0]
    assert "| TwoLayerNet | spiral | 6 |" in table and "## speed" in table
    assert result == saved


def test_no_time_left_skips_the_parts_and_still_writes_the_report(tmp_path):
    gpu_train_check.main(["--dry-run", "--device", "cpu", "--out", str(tmp_path), "--budget", "0",
                          "--parts", "models,speed"])
    parts = json.loads((tmp_path / "check.json").read_text())["parts"]
    assert {name: part["status"] for name, part in parts.items()} == {
        "models": "skipped: no time left", "speed": "skipped: no time left"}


def test_a_failing_part_is_recorded_and_the_next_part_runs(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("no such kernel")

    monkeypatch.setitem(gpu_train_check.SHARE, "word2vec", 30)
    monkeypatch.setattr(gpu_train_check, "part_models", broken)
    gpu_train_check.main(["--dry-run", "--device", "cpu", "--out", str(tmp_path), "--parts", "models,word2vec"])
    parts = json.loads((tmp_path / "check.json").read_text())["parts"]
    assert parts["models"]["status"] == "error: RuntimeError: no such kernel"
    assert parts["word2vec"]["status"] in ("done", "errors on cpu") and len(parts["word2vec"]["rows"]) == 2


def test_each_part_gets_its_share_and_leaves_the_floor_to_the_later_ones():
    budget = gpu_train_check.Budget(200)
    share = gpu_train_check.SHARE
    assert budget.share("models", []) == pytest.approx(share["models"], abs=1)
    assert budget.share("models", ["speed", "word2vec"]) == pytest.approx(
        min(share["models"], 200 - 2 * gpu_train_check.FLOOR), abs=1)
    assert gpu_train_check.Budget(10).share("ops", ["models"]) == 0


@pytest.mark.parametrize("text, counts", [
    ("..s\n=== 12 passed, 3 skipped, 285 deselected in 4.10s ===\n", {"passed": 12, "skipped": 3, "deselected": 285}),
    ("F.\nFAILED tests/x.py::t - in a test\n1 failed, 1 passed in 0.2s\n", {"failed": 1, "passed": 1}),
    ("no tests ran in 0.01s\n", {}),
    ("Traceback (most recent call last):\n", {}),
])
def test_pytest_summaries_are_read(text, counts):
    assert gpu_train_check.pytest_counts(text) == counts


def test_unknown_parts_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_train_check.main(["--dry-run", "--out", str(tmp_path), "--parts", "models,nonsense"])
    assert "nonsense" in capsys.readouterr().err
