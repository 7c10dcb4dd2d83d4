"""The precision study runner: the ops study over the registry, storage in low precision, the
report's verdict, resuming a stopped run, and the command line."""
import json

import numpy as np
import pytest

import fastnlp
from fastnlp import precision
from fastnlp.cli import main
from conftest import DATA_DIR
from fastnlp.kernels import harness, registry

FEW_OPS = ["embedding_gather", "round_to_format", "attention_weights"]


def test_the_ops_study_measures_every_loaded_backend_and_resumes(tmp_path, monkeypatch):
    report = precision.run_study("ops", tmp_path, progress=False, ops=FEW_OPS)
    rows = json.loads((tmp_path / "ops.json").read_text())["rows"]
    for op in FEW_OPS:
        loaded = [b for b, impl in registry.implementations(op).items() if callable(impl)]
        assert {f"{op}/{b}" for b in loaded} <= set(rows)
    # A gather copies rows and the rounding op is exact: no error at all. A softmax of dot
    # products carries float32's rounding, small but not zero.
    assert rows["embedding_gather/numpy"]["max_abs"] == 0.0
    assert rows["round_to_format/numpy"]["max_ulp"] == 0.0
    assert 0 < rows["attention_weights/numpy"]["max_rel"] < 1e-5
    # Each 16-bit storage dtype the op takes is a row of its own: a gather copies the stored rows
    # exactly, and against the float32 problem it shows what storing them in 16 bits cost.
    for dtype, mantissa_bits in (("float16", 10), ("bfloat16", 7)):
        row = rows[f"embedding_gather/numpy/{dtype}"]
        assert row["dtype"] == dtype and row["max_ulp"] == 0.0
        assert 0 < row["max_rel_vs_float32_inputs"] <= 2.0 ** -mantissa_bits
    text = report.read_text()
    assert "| attention_weights | numpy | float32 |" in text and "float64 reference" in text
    assert "| embedding_gather | numpy | bfloat16 | 0 |" in text

    def must_not_run(*args):
        raise AssertionError("a measured row was measured again")

    monkeypatch.setattr(harness, "run_implementation", must_not_run)
    precision.run_study("ops", tmp_path, progress=False, ops=FEW_OPS)  # everything is already there


def test_storage_formats_round_as_stored_and_count_their_bytes():
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((50, 8)) * np.logspace(-4, 3, 50)[:, None]).astype(np.float32)
    assert precision.stored_as(weights, "fp32") is weights
    half = precision.stored_as(weights, "fp16")
    np.testing.assert_array_equal(half, weights.astype(np.float16).astype(np.float32))
    # fp8 without a scale loses the small rows to zero; one scale per row keeps every row.
    raw = precision.stored_as(weights, "e4m3")
    scaled = precision.stored_as(weights, "e4m3+scale")
    assert np.all(raw[0] == 0) and np.all(scaled[0] != 0)
    np.testing.assert_allclose(scaled, weights, rtol=2.0 ** -4)
    assert precision._stored_bytes([weights], "fp32") == 1600
    assert precision._stored_bytes([weights], "bf16") == 800
    assert precision._stored_bytes([weights], "e4m3+scale") == 400 + 50 * 4


def test_weights_study_restores_the_model_and_fp32_is_the_baseline(tmp_path):
    model = fastnlp.models.Rnnlm(30, 4, 6, seed=0)
    before = [p.copy() for p in model.params]
    corpus = (np.arange(400) * 7) % 30
    rows = precision._Rows(tmp_path / "storage.json", quick=True, progress=False)
    precision._weights_study(rows, "Rnnlm", model, "perplexity", lambda m: precision._perplexity(m, corpus))
    assert all(np.array_equal(a, b) for a, b in zip(model.params, before))
    assert rows.done["Rnnlm/fp32"]["value"] == pytest.approx(precision._perplexity(model, corpus))
    assert rows.done["Rnnlm/bf16"]["bytes"] * 2 == rows.done["Rnnlm/fp32"]["bytes"]
    text = precision._storage_report(rows.done, tmp_path)
    assert "## Rnnlm" in text and "## Verdict" in text


def _row(model, fmt, value):
    return {"model": model, "format": fmt, "metric": "accuracy", "value": value, "bytes": 100}


def test_the_verdict_follows_the_numbers(tmp_path):
    holds = {"m/fp32": _row("m", "fp32", 0.9), "m/fp16": _row("m", "fp16", 0.8995)}
    assert "**holds**" in precision._storage_report(holds, tmp_path)
    fails = {"m/fp32": _row("m", "fp32", 0.9), "m/fp16": _row("m", "fp16", 0.5)}
    assert "**does not hold**" in precision._storage_report(fails, tmp_path)


def test_unknown_studies_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown study 'speedy'; the studies are ops, storage, train, speed"):
        precision.run_study("speedy", tmp_path)


def test_the_command_line_runs_a_study_and_refuses_a_file_as_the_folder(tmp_path, capsys, monkeypatch):
    real = precision.run_study
    monkeypatch.setattr(precision, "run_study", lambda *a, **k: real(*a, **k, ops=FEW_OPS[:1]))
    assert main(["precision", "ops", "--out", str(tmp_path / "study"), "--quick", "--quiet"]) == 0
    assert "report written to" in capsys.readouterr().out
    assert (tmp_path / "study" / "ops.md").exists()
    (tmp_path / "file").write_text("x")
    assert main(["precision", "ops", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file; give a folder" in err[0]


def test_the_command_line_sends_a_study_to_a_dask_scheduler(tmp_path, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    real = precision.run_study
    seen = {}

    def study(*a, **k):
        seen["client"] = k.get("client")
        return real(*a, **k, ops=FEW_OPS[:1])

    monkeypatch.setattr(precision, "run_study", study)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert main(["precision", "ops", "--out", str(tmp_path / "study"), "--quick", "--quiet",
                     "--scheduler", cluster.scheduler_address]) == 0
    assert isinstance(seen["client"], distributed.Client)
    assert (tmp_path / "study" / "ops.md").exists()


def _train_row(model, run, value, **extra):
    return {"model": model, "run": run, "metric": "accuracy", "value": value, "curve": [1.0, 0.5],
            "curve_label": "training loss", "underflow": 0.0, "skipped": 0, **extra}


def test_the_train_report_compares_each_precision_with_fp32_and_keeps_divergence(tmp_path):
    done = {"m/fp32": _train_row("m", "fp32", 0.90), "m/bf16-mixed": _train_row("m", "bf16-mixed", 0.899),
            "m/fp16-mixed": _train_row("m", "fp16-mixed", 0.898, underflow=1e-4, skipped=2),
            "m/e4m3": {"model": "m", "run": "e4m3 (simulated), stochastic", "metric": None, "value": None,
                       "curve": [], "diverged": "training diverged at epoch 1"}}
    text = precision._train_report(done, tmp_path)
    assert "| fp16-mixed | 0.898 | -0.22% | 0.0001 | 2 |" in text
    assert "diverged: training diverged at epoch 1" in text and "**within 1%**" in text
    done["m/n-a"] = {"model": "m", "run": "fp16-mixed", "metric": "accuracy", "value": None, "curve": [],
                     "not_applicable": "no products to run mixed"}
    assert "| fp16-mixed | n/a: no products to run mixed |" in precision._train_report(done, tmp_path)
    done["m/bf16-mixed"] = _train_row("m", "bf16-mixed", 0.80)
    assert "**more than 1%**" in precision._train_report(done, tmp_path)


def test_the_verdict_weighs_each_mixed_change_against_the_widest_float32_noise_row(tmp_path):
    done = {"m/fp32": _train_row("m", "fp32", 200.0), "m/seed": _train_row("m", "fp32, another seed", 200.1),
            "m/ulp": _train_row("m", "fp32, weights 1 ulp apart", 201.2),
            "m/bf16-mixed": _train_row("m", "bf16-mixed", 201.0), "m/fp16-mixed": _train_row("m", "fp16-mixed", 198.0)}
    text = precision._train_report(done, tmp_path)
    assert ("- m, bf16-mixed: 0.50% against up to 0.60% between float32 runs that differ by chance (another seed, "
            "weights 1 ulp apart) (within chance)") in text
    assert "- m, fp16-mixed: 1.00% against up to 0.60%" in text and "(beyond chance)" in text


def test_the_one_ulp_run_moves_every_initial_weight_by_exactly_one_ulp():
    from fastnlp.models import BetterRnnlm

    model, twin = BetterRnnlm(50, 8, 8, seed=0), BetterRnnlm(50, 8, 8, seed=0)  # tied weights: moved once
    assert precision._perturbed(twin, ("fp32", {})) is twin  # other runs are left as they are
    assert all(np.array_equal(a, b) for a, b in zip(model.params, twin.params))
    precision._perturbed(twin, ("fp32", {"perturb": "ulp"}))
    moved = [0, 0]
    for a, b in zip(model.params, twin.params):
        steps = np.abs(b.view(np.int32).astype(np.int64) - a.view(np.int32).astype(np.int64))
        steps[(a == 0) & (b != 0)] = 1  # across zero: the smallest subnormal
        assert (steps == 1).all()
        moved[0] += int((b > a).sum())
        moved[1] += int((b < a).sum())
    assert min(moved) > 0.4 * sum(moved)  # up and down alike
    again = precision._perturbed(BetterRnnlm(50, 8, 8, seed=0), ("fp32", {"perturb": "ulp"}))
    assert all(np.array_equal(a, b) for a, b in zip(again.params, twin.params))
    assert precision._trainer_keywords(("fp32", {"perturb": "ulp"})) == {"precision": "fp32"}


def test_the_train_study_runs_every_precision_once_and_records_divergence(tmp_path, monkeypatch):
    seen = []

    def fake_task(run):
        seen.append(run[0])
        if run[0] == "simulate:e4m3":
            raise FloatingPointError("training diverged at epoch 1, iteration 3: the loss is nan")
        return {"metric": "m", "value": 1.0, "curve": [], "underflow": 0.0, "skipped": 0}

    monkeypatch.setattr(precision, "_train_rnnlm_in", lambda run, *a: fake_task(run))
    monkeypatch.setattr(precision, "_train_seq2seq_in", lambda run, *a: fake_task(run))
    monkeypatch.setattr(precision, "_train_cbow_in", lambda run, *a: fake_task(run))
    rows = precision._Rows(tmp_path / "train.json", quick=True, progress=False)
    precision._train_study(rows, quick=True, data_dir=DATA_DIR)
    assert len(seen) == 3 * len(precision.TRAINING_RUNS)
    assert rows.done["Rnnlm/e4m3 (simulated), stochastic"]["diverged"].startswith("training diverged")
    precision._train_study(rows, quick=True, data_dir=DATA_DIR)  # resumed: nothing runs again
    assert len(seen) == 3 * len(precision.TRAINING_RUNS)


def test_the_speed_report_gives_ratios_to_fp32():
    done = {"Rnnlm/fp32": {"model": "Rnnlm", "precision": "fp32", "tokens_per_s": 1000.0, "param_bytes": 400},
            "Rnnlm/bf16": {"model": "Rnnlm", "precision": "bf16", "tokens_per_s": 1500.0, "param_bytes": 200},
            "torch-comparison": {"text": "| ours | torch |"}}
    text = precision._speed_report(done)
    assert "| Rnnlm | bf16 | 1,500 | 1.50x | 200 |" in text and "| ours | torch |" in text
