"""The command line's tools: similar, analogy, project, download, bench, and the parser's own UX
(--version, no job, --help). Every mistake is one ``fastnlp JOB: error: ...`` line on stderr and a
non-zero exit status; nothing here touches the network (the URL fetch is replaced)."""
import argparse
import json
import sys
import urllib.error

import numpy as np
import pytest

import fastnlp
from fastnlp.cli import bench as bench_job
from fastnlp.cli import build_parser
from fastnlp.cli._common import describe_active_backend, describe_where_ops_ran, where_ops_run
from fastnlp.datasets import _files

from conftest import DATA_DIR, assert_one_error_line, run_cli, savefig_writing_half_then_failing

MY_JOBS = ("similar", "analogy", "project", "download", "bench", "backends")




# ---- the parser: --version, no job, --help ---------------------------------------------------------


def _jobs():
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers


def test_version(capsys):
    code, out, err = run_cli(["--version"])
    assert code == 0 and err == ""
    assert out == f"fastnlp {fastnlp.__version__}\n"


def test_no_job_prints_the_help_and_exits_0(capsys):
    code, out, err = run_cli([])
    assert code == 0 and err == ""
    assert out.startswith("usage: fastnlp")
    for job in MY_JOBS + ("spiral", "count"):
        assert f"\n    {job} " in out, job


def test_top_level_help_lists_every_job_in_one_line_without_markup(capsys):
    code, out, err = run_cli(["--help"])
    assert code == 0
    assert "``" not in out and "`" not in out
    jobs = _jobs()
    listed = {action.dest for action in jobs._choices_actions}
    assert listed == set(jobs.choices), "every job needs help= (one line in the list)"
    for action in jobs._choices_actions:
        assert action.help and "\n" not in action.help, action.dest


@pytest.mark.parametrize("job", MY_JOBS)
def test_job_help_shows_defaults_and_every_option_has_help(job, capsys):
    parser = _jobs().choices[job]
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"{job} {action.option_strings or action.dest} has no help text"
    code, out, err = run_cli([job, "--help"])
    assert code == 0 and "``" not in out
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(out.split()), (job, action.option_strings)


def test_options_of_similar_show_their_defaults(capsys):
    code, out, err = run_cli(["similar", "--help"])
    assert "(default: 5)" in out


# ---- similar and analogy ---------------------------------------------------------------------------

WORDS = ["man", "king", "woman", "queen", "apple", "pear", "car", "bus"]


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(WORDS), 10)).astype(np.float32)
    v[3] = v[1] - v[0] + v[2]  # queen = king - man + woman
    return fastnlp.WordVectors(v, WORDS)


@pytest.fixture(params=["npz", "txt", "bin", "vec-binary-named-txt"])
def vectors_file(request, vectors, tmp_path):
    kind = request.param
    if kind == "npz":
        return vectors.save(tmp_path / "v.npz")
    if kind == "txt":
        return vectors.save_word2vec_format(tmp_path / "v.txt")
    if kind == "bin":
        return vectors.save_word2vec_format(tmp_path / "v.bin", binary=True)
    return vectors.save_word2vec_format(tmp_path / "v.txt", binary=True)  # told apart by the contents


def test_similar_on_every_format(vectors_file, vectors, capsys):
    code, out, err = run_cli(["similar", vectors_file, "king", "man", "--top", "3"])
    assert code == 0 and err == "", err
    expected = vectors.most_similar("king", top=3)
    assert out.startswith("[query] king\n")
    assert f" {expected[0][0]}: {expected[0][1]:.3f}" in out
    assert "[query] man" in out
    assert out.count("\n ") == 6


def test_analogy_finds_the_planted_answer(vectors_file, capsys):
    code, out, err = run_cli(["analogy", vectors_file, "man", "king", "woman", "--top", "2"])
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == "[analogy] man : king = woman : ?"
    assert out.splitlines()[1].startswith(" queen: ")


def test_word2vec_model_file_uses_its_vectors(tmp_path, capsys):
    model = fastnlp.Word2Vec([WORDS * 20], vector_size=8, window=2, min_count=1, epochs=1, seed=1)
    path = fastnlp.save(tmp_path / "w2v.npz", model)
    code, out, err = run_cli(["similar", path, "king", "--top", "2"])
    assert code == 0, err
    assert out.startswith("[query] king\n") and out.count("\n ") == 2


def test_unknown_word_is_one_line_naming_it(tmp_path, vectors, capsys):
    path = vectors.save(tmp_path / "v.npz")
    for argv in (["similar", path, "king", "zebra"], ["analogy", path, "man", "zebra", "woman"]):
        code, out, err = run_cli(argv)
        assert_one_error_line(code, err, 1)
        assert "'zebra'" in err and out == ""


def test_file_of_another_kind_is_named(tmp_path, capsys):
    model = fastnlp.TwoLayerNet(2, 3, 2, seed=0)
    path = fastnlp.save(tmp_path / "net.npz", model)
    code, out, err = run_cli(["similar", path, "king"])
    assert_one_error_line(code, err, 1)
    assert f"{path} holds a TwoLayerNet, not word vectors" in err
    params = fastnlp.save(tmp_path / "params.npz", [np.zeros(3)])
    code, out, err = run_cli(["analogy", params, "a", "b", "c"])
    assert_one_error_line(code, err, 1)
    assert "not word vectors" in err


BAD_VECTOR_FILES = {
    "text": b"hello world\n",
    "empty": b"",
    "broken-zip": b"PK\x03\x04 not really a zip",
    "short-rows": b"2 3\na 1 2 3\nb 1 2\n",
}


@pytest.mark.parametrize("content", BAD_VECTOR_FILES.values(), ids=BAD_VECTOR_FILES.keys())
def test_damaged_or_foreign_file_is_one_line(content, tmp_path, capsys):
    path = tmp_path / "v.npz"
    path.write_bytes(content)
    code, out, err = run_cli(["similar", path, "a"])
    assert_one_error_line(code, err, 1)
    assert str(path) in err and out == ""


VECTOR_USAGE_MISTAKES = {
    "missing-file": ["similar", "{tmp}/nope.npz", "king"],
    "a-folder": ["similar", "{tmp}", "king"],
    "no-word": ["similar", "{vectors}"],
    "top-zero": ["similar", "{vectors}", "king", "--top", "0"],
    "top-not-a-number": ["analogy", "{vectors}", "a", "b", "c", "--top", "many"],
    "analogy-two-words": ["analogy", "{vectors}", "man", "king"],
    "analogy-bad-method": ["analogy", "{vectors}", "man", "king", "woman", "--method", "4cos"],
    "project-no-words": ["project", "{vectors}", "--plot", "{tmp}/p.png"],
    "project-no-plot": ["project", "{vectors}", "--words", "man", "king", "woman"],
    "project-two-words": ["project", "{vectors}", "--words", "man", "king", "king", "--plot", "{tmp}/p.png"],
    "project-bad-method": ["project", "{vectors}", "--words", "a", "b", "c", "--plot", "{tmp}/p.png",
                           "--method", "umap"],
    "project-plot-missing-folder": ["project", "{vectors}", "--words", "a", "b", "c", "--plot", "{tmp}/no/p.png"],
    "project-plot-is-a-folder": ["project", "{vectors}", "--words", "a", "b", "c", "--plot", "{tmp}"],
}


@pytest.mark.parametrize("argv", VECTOR_USAGE_MISTAKES.values(), ids=VECTOR_USAGE_MISTAKES.keys())
def test_vector_command_line_mistakes(argv, tmp_path, vectors, capsys):
    fill = {"tmp": str(tmp_path), "vectors": str(vectors.save(tmp_path / "v.npz"))}
    code, out, err = run_cli([a.format(**fill) for a in argv])
    assert_one_error_line(code, err, 2)
    assert out == ""
    assert not (tmp_path / "p.png").exists()


# ---- project ----------------------------------------------------------------------------------------


def test_project_pca_draws_an_annotated_png(tmp_path, vectors, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    drawn = {}
    savefig = Figure.savefig

    def keep(self, *args, **kwargs):
        ax = self.axes[0]
        drawn.update(title=ax.get_title(), x=ax.get_xlabel(), y=ax.get_ylabel(), texts=[t.get_text() for t in ax.texts])
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    path = vectors.save(tmp_path / "v.npz")
    target = tmp_path / "words.png"
    code, out, err = run_cli(["project", path, "--words", *WORDS[:5], "--plot", target])
    assert code == 0, err
    assert f"drawn to {target}" in out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["texts"] == WORDS[:5]
    assert drawn["x"].startswith("PC1") and drawn["y"].startswith("PC2") and "PCA" in drawn["title"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npz", "words.png"]  # no temporary left


def test_project_pca_coordinates_are_the_main_directions():
    from fastnlp.cli.vectors import project_2d

    x = np.array([[3.0, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]]) + 5  # shifted: PCA centres first
    coords, labels = project_2d(x, "pca")
    np.testing.assert_allclose(np.abs(coords), [[3, 0], [3, 0], [0, 1], [0, 1]], atol=1e-12)
    assert labels == ["PC1 (90% of the variance)", "PC2 (10% of the variance)"]


def test_project_tsne_without_scikit_learn_says_to_install_it(tmp_path, vectors, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # importlib.util.find_spec then says None
    path = vectors.save(tmp_path / "v.npz")
    code, out, err = run_cli(["project", path, "--words", *WORDS[:5], "--plot", tmp_path / "p.png",
                               "--method", "tsne"])
    assert_one_error_line(code, err, 2)
    assert "scikit-learn" in err and "pip install" in err
    assert not (tmp_path / "p.png").exists()


def test_project_tsne(tmp_path, vectors, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    path = vectors.save(tmp_path / "v.npz")
    code, out, err = run_cli(["project", path, "--words", *WORDS, "--plot", tmp_path / "p.png",
                               "--method", "tsne"])
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_project_unknown_word_writes_nothing(tmp_path, vectors, capsys):
    pytest.importorskip("matplotlib")
    path = vectors.save(tmp_path / "v.npz")
    code, out, err = run_cli(["project", path, "--words", "man", "king", "zebra", "--plot", tmp_path / "p.png"])
    assert_one_error_line(code, err, 1)
    assert "'zebra'" in err and not (tmp_path / "p.png").exists()


def test_project_failed_write_leaves_the_old_file(tmp_path, vectors, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", savefig_writing_half_then_failing)
    path = vectors.save(tmp_path / "v.npz")
    target = tmp_path / "p.png"
    target.write_bytes(b"old figure")
    code, out, err = run_cli(["project", path, "--words", *WORDS[:4], "--plot", target])
    assert_one_error_line(code, err, 1)
    assert "No space left" in err
    assert target.read_bytes() == b"old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "v.npz"]


def test_project_needs_matplotlib(tmp_path, vectors, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = vectors.save(tmp_path / "v.npz")
    code, out, err = run_cli(["project", path, "--words", *WORDS[:4], "--plot", tmp_path / "p.png"])
    assert_one_error_line(code, err, 2)
    assert "matplotlib" in err


# ---- download ---------------------------------------------------------------------------------------


def _served(monkeypatch, corrupt=(), failing=()):
    """Replace the URL fetch by the shared data's bytes; returns the list of URLs asked for."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    by_url = {remote.url: name for name, remote in _files.KNOWN_FILES.items()}
    asked = []

    def fetch(url, timeout=60.0):
        asked.append(url)
        name = by_url[url]
        if name in failing:
            raise urllib.error.URLError("no route to host")
        payload = (DATA_DIR / name).read_bytes()
        return payload[:-1] + b"!" if name in corrupt else payload

    monkeypatch.setattr(_files, "fetch_url_bytes", fetch)
    return asked


def test_download_fetches_checks_and_then_skips(tmp_path, monkeypatch, capsys):
    asked = _served(monkeypatch)
    target = tmp_path / "data"
    code, out, err = run_cli(["download", "seq", "eval", "--data-dir", target])
    assert code == 0 and err == "", err
    assert len(asked) == 4 and "4 files ready: 4 downloaded" in out
    for name in _files.FILE_GROUPS["seq"] + _files.FILE_GROUPS["eval"]:
        assert _files.sha256_of(target / name) == _files.KNOWN_FILES[name].sha256
    asked.clear()
    code, out, err = run_cli(["download", "seq", "eval", "--data-dir", target])
    assert code == 0 and asked == [] and "0 downloaded, 4 already there" in out


def test_download_all_has_every_public_home_and_the_readme_sums(tmp_path):
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8") if DATA_DIR.is_dir() else None
    everything = _files.files_of("all")
    assert set(everything) == set(_files.KNOWN_FILES)
    for name in everything:
        remote = _files.KNOWN_FILES[name]
        assert remote.url.startswith("https://")
        if readme is not None:
            row = next(line for line in readme.splitlines() if line.startswith(f"| {name} |"))
            assert remote.sha256 in row


def test_download_of_the_shared_data_skips_every_file(data_dir, capsys):
    code, out, err = run_cli(["download", "all", "--data-dir", data_dir])
    assert code == 0, err
    assert f"{len(_files.KNOWN_FILES)} files ready: 0 downloaded" in out


def test_download_with_a_wrong_checksum_saves_nothing(tmp_path, monkeypatch, capsys):
    _served(monkeypatch, corrupt={"seq/date.txt"})
    code, out, err = run_cli(["download", "seq", "--data-dir", tmp_path])
    assert_one_error_line(code, err, 1)
    assert "date.txt" in err and "sha256" in err
    assert not (tmp_path / "seq" / "date.txt").exists()
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["addition.txt"]  # no temporary left


def test_download_keeps_an_altered_local_copy_and_names_it(tmp_path, monkeypatch, capsys):
    asked = _served(monkeypatch)
    altered = tmp_path / "eval" / "wordsim353.tsv"
    altered.parent.mkdir()
    altered.write_text("my own edits\n")
    code, out, err = run_cli(["download", "eval", "--data-dir", tmp_path])
    assert_one_error_line(code, err, 1)
    assert str(altered) in err and "delete it" in err
    assert altered.read_text() == "my own edits\n"
    assert (tmp_path / "eval" / "questions-words.txt").is_file()  # the others are still fetched
    assert len(asked) == 1


def test_download_network_failure_is_one_line(tmp_path, monkeypatch, capsys):
    _served(monkeypatch, failing={"ptb/ptb.valid.txt", "ptb/ptb.test.txt"})
    code, out, err = run_cli(["download", "ptb", "--data-dir", tmp_path])
    assert_one_error_line(code, err, 1)
    assert "ptb.valid.txt" in err and "1 more file failed" in err


def test_download_usage_mistakes(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for argv in (["download"], ["download", "imagenet"], ["download", "ptb", "--data-dir", a_file]):
        code, out, err = run_cli(argv)
        assert_one_error_line(code, err, 2)


def test_download_api_checks_names():
    with pytest.raises(ValueError, match="unknown data set"):
        fastnlp.datasets.download("imagenet")
    assert _files.files_of(["seq", "seq/date.txt", "ptb"])[:3] == ["seq/addition.txt", "seq/date.txt",
                                                                   "ptb/ptb.train.txt"]


# ---- bench: comparing saved runs ---------------------------------------------------------------------


def _benchmark_json(path, times, cpu="Test CPU"):
    entries = [{"group": None, "name": name.split("::")[-1], "fullname": name,
                "stats": {"min": t, "median": t * 1.1, "mean": t * 1.2, "max": t * 2, "rounds": 10}}
               for name, t in times.items()]
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": cpu}}, "benchmarks": entries}))
    return path


SAVED = {"bench/a.py::test_same": 1e-5, "bench/a.py::test_slower": 1e-5, "bench/a.py::test_faster": 1e-5,
         "bench/a.py::test_gone": 1e-5, "bench/a.py::test_a_bit_slower": 1e-5}
NOW = {"bench/a.py::test_same": 1.01e-5, "bench/a.py::test_slower": 1.5e-5, "bench/a.py::test_faster": 0.5e-5,
       "bench/a.py::test_new": 1e-5, "bench/a.py::test_a_bit_slower": 1.09e-5}


def test_compare_flags_regressions_only():
    result = bench_job.compare({k: {"min": v} for k, v in SAVED.items()}, {k: {"min": v} for k, v in NOW.items()},
                               threshold=10, stat="min")
    assert result.regressed == ["bench/a.py::test_slower"]
    assert result.improved == ["bench/a.py::test_faster"]
    assert result.missing == ["bench/a.py::test_gone"]
    assert result.added == ["bench/a.py::test_new"]
    assert len(result.rows) == 4
    strict = bench_job.compare({k: {"min": v} for k, v in SAVED.items()}, {k: {"min": v} for k, v in NOW.items()},
                               threshold=5, stat="min")
    assert strict.regressed == ["bench/a.py::test_a_bit_slower", "bench/a.py::test_slower"]


def test_bench_compare_two_saved_runs(tmp_path, capsys):
    saved = _benchmark_json(tmp_path / "saved.json", SAVED)
    now = _benchmark_json(tmp_path / "now.json", NOW, cpu="Another CPU")
    code, out, err = run_cli(["bench", "--compare", saved, "--against", now])
    assert code == 1
    assert err.count("\n") == 1 and "1 of 4 benchmarks are more than 10% slower" in err
    assert "test_slower" in err and "test_faster" not in err and "Traceback" not in err
    assert "| bench/a.py::test_slower | 10.000 | 15.000 | +50.0% | SLOWER |" in out
    assert "Missing now (1, in the saved run only): bench/a.py::test_gone" in out
    assert "New (1, not in the saved run): bench/a.py::test_new" in out
    assert "different CPUs" in out
    code, out, err = run_cli(["bench", "--compare", saved, "--against", now, "--threshold", "60"])
    assert code == 0 and err == "" and "no regression" in out
    code, out, err = run_cli(["bench", "--compare", saved, "--against", saved, "--stat", "median"])
    assert code == 0 and "median" in out


BENCH_MISTAKES = {
    "threshold-negative": (["bench", "--compare", "{saved}", "--against", "{saved}", "--threshold", "-1"], 2),
    "threshold-nan": (["bench", "--compare", "{saved}", "--against", "{saved}", "--threshold", "nan"], 2),
    "compare-missing": (["bench", "--compare", "{tmp}/nope.json", "--against", "{saved}"], 2),
    "against-alone": (["bench", "--against", "{saved}"], 2),
    "compare-not-json": (["bench", "--compare", "{text}", "--against", "{saved}"], 1),
    "compare-not-benchmarks": (["bench", "--compare", "{other_json}", "--against", "{saved}"], 1),
    "bad-stat": (["bench", "--compare", "{saved}", "--against", "{saved}", "--stat", "mean"], 2),
    "unknown-script": (["bench", "--scripts", "compare_nothing", "--no-suites"], 2),
    "nothing-to-run": (["bench", "--no-suites", "--no-scripts"], 2),
    "out-is-a-file": (["bench", "--no-suites", "--scripts", "count", "--out", "{text}"], 2),
}


@pytest.mark.parametrize("argv, status", BENCH_MISTAKES.values(), ids=BENCH_MISTAKES.keys())
def test_bench_mistakes(argv, status, tmp_path, capsys):
    (tmp_path / "t.json").write_text("not json")
    (tmp_path / "o.json").write_text('{"results": []}')
    fill = {"tmp": str(tmp_path), "saved": str(_benchmark_json(tmp_path / "s.json", SAVED)),
            "text": str(tmp_path / "t.json"), "other_json": str(tmp_path / "o.json")}
    code, out, err = run_cli([a.format(**fill) for a in argv])
    assert_one_error_line(code, err, status)


def test_bench_without_a_source_checkout_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_job, "repository_root", lambda: tmp_path)
    code, out, err = run_cli(["bench", "--quick", "--out", tmp_path / "out"])
    assert_one_error_line(code, err, 1)
    assert "bench/" in err and "source checkout" in err


def test_bench_skips_scripts_whose_peer_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_job, "_is_installed", lambda module: module not in ("gensim", "torch"))
    monkeypatch.setattr(bench_job, "machine_description", lambda threads: "CPU: test")
    code, out, err = run_cli(["bench", "--no-suites", "--scripts", "word2vec,rnnlm", "--out", tmp_path])
    assert code == 0, err
    assert "## compare_word2vec\n\nskipped: gensim not installed" in out
    assert "## compare_rnnlm\n\nskipped: torch not installed" in out
    assert (tmp_path / "report.md").is_file()


def test_bench_quick_real_run(tmp_path, capsys):
    """One tiny real run: one fast benchmark (the NumPy id_range op), saved, then compared."""
    pytest.importorskip("pytest_benchmark")
    if not (bench_job.repository_root() / "bench" / "conftest.py").is_file():
        pytest.skip("no bench/ folder (not a source checkout)")
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["bench", "--quick", "-k", "test_op and id_range-numpy", "--no-scripts",
                               "--out", out_dir])
    assert code == 0, err
    assert "CPU: " in out and "threads: OMP_NUM_THREADS=1" in out
    saved = bench_job.read_benchmarks(out_dir / "benchmarks.json")
    assert list(saved) == ["bench/test_bench_ops.py::test_op[id_range-numpy]"]
    assert (out_dir / "report.md").read_text().count("id_range-numpy") >= 1
    code, out, err = run_cli(["bench", "--compare", out_dir / "benchmarks.json", "--against",
                               out_dir / "benchmarks.json"])
    assert code == 0 and "no regression" in out


def test_bench_k_selecting_nothing_is_one_line(tmp_path, capsys):
    pytest.importorskip("pytest_benchmark")
    if not (bench_job.repository_root() / "bench" / "conftest.py").is_file():
        pytest.skip("no bench/ folder (not a source checkout)")
    code, out, err = run_cli(["bench", "--quick", "-k", "no_such_benchmark_anywhere", "--no-scripts",
                               "--out", tmp_path])
    assert_one_error_line(code, err, 2)
    assert "selects no benchmark" in err


# ---- where the work ran ------------------------------------------------------------------------------


def test_describe_where_ops_ran_names_backend_and_device():
    text = describe_where_ops_ran(["cooccurrence", "ppmi_values"])
    assert text.startswith("cooccurrence: ") and "ppmi_values: " in text and "(CPU)" in text
    with fastnlp.use_backend("numpy"):
        assert describe_where_ops_ran(["cooccurrence"]) == "cooccurrence: numpy (CPU)"
        assert set(where_ops_run(["scatter_add", "cooccurrence"]).values()) == {"numpy"}


def test_describe_where_ops_ran_defaults_to_the_ops_this_process_ran():
    from fastnlp.kernels import registry

    registry.forget_resolutions()
    assert describe_where_ops_ran() == "no kernel op ran"
    fastnlp.create_co_matrix(np.array([0, 1, 2, 1, 0]), 3, window_size=1)
    assert "cooccurrence" in describe_where_ops_ran()


def test_backends_active_line_says_what_runs(capsys):
    code, out, err = run_cli(["backends"])
    assert code == 0, err
    (active,) = [line for line in out.splitlines() if line.startswith("active:")]
    assert "(CPU)" in active and active == describe_active_backend()
    code, out, err = run_cli(["--backend", "numpy", "backends"])
    assert "active: numpy chosen; NumPy arrays run on numpy (CPU)" in out


def test_cupy_choice_says_numpy_arrays_stay_on_the_cpu(monkeypatch):
    from fastnlp.kernels import dispatch

    monkeypatch.setattr(dispatch, "chosen_backend", lambda: "cupy")
    line = describe_active_backend()
    assert line.startswith("active: cupy chosen") and "still run on the CPU" in line


def test_the_per_cpu_session_script_parses_and_names_its_folder(tmp_path):
    """bench/cpu_session.sh, the measurements bench/README.md keeps per CPU model in one run: it
    parses, and with no part selected it only makes its results folder, named by date and CPU."""
    import datetime
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("bash") is None:
        pytest.skip("bash is not on PATH")
    script = Path(__file__).resolve().parents[1] / "bench" / "cpu_session.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "OUT": str(tmp_path), "CPU_SESSION_PARTS": "none"})
    (folder,) = tmp_path.iterdir()
    assert folder.is_dir() and folder.name.startswith(datetime.date.today().isoformat())
    assert run.stdout.splitlines()[-1] == f"done: {folder}"
