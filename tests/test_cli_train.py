"""``fastnlp train <model>``, ``generate``, ``eval`` and ``attention``, in-process on small data.

Every train job runs once on a small slice (``--corpus-size``, one epoch, small sizes) and saves
its model; generate / eval / attention then read the saved files. Every mistake is one
``fastnlp ...: error: ...`` line on stderr with a non-zero exit status, never a traceback.
"""
import argparse
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from conftest import assert_one_error_line, run_cli
from fastnlp.cli import build_parser
from fastnlp.datasets import _files

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"shared data folder {DATA_DIR} is not present")

# Small runs: a few iterations each, so the whole file stays well under a minute.
SMALL = {
    "spiral": ["--epochs", "2", "--hidden", "5"],
    "count": ["--corpus-size", "3000", "--k", "10", "--queries", "you"],
    "cbow": ["--corpus-size", "2000", "--epochs", "1", "--hidden", "10", "--queries", "you"],
    "skipgram": ["--corpus-size", "2000", "--epochs", "1", "--hidden", "10", "--queries", "you"],
    "word2vec": ["--corpus-size", "3000", "--epochs", "1", "--hidden", "10", "--queries", "you"],
    "fasttext": ["--corpus-size", "3000", "--epochs", "1", "--hidden", "10", "--bucket", "5000", "--queries", "you"],
    "rnnlm": ["--corpus-size", "1500", "--epochs", "1", "--hidden", "12", "--wordvec", "12"],
    "better-rnnlm": ["--corpus-size", "1000", "--epochs", "1", "--hidden", "12", "--wordvec", "12"],
    "seq2seq": ["--corpus-size", "200", "--epochs", "1", "--hidden", "16", "--wordvec", "8"],
    "peeky": ["--corpus-size", "200", "--epochs", "1", "--hidden", "16", "--wordvec", "8"],
    "attention": ["--corpus-size", "200", "--epochs", "1", "--hidden", "16", "--wordvec", "8"],
    "transformer": ["--corpus-size", "200", "--epochs", "1", "--d-model", "16", "--d-ff", "16", "--heads", "2"],
}
NO_DATA_DIR = {"spiral"}
NO_PROGRESS = {"count"}  # nothing to report while it runs: no --quiet




def train_argv(model, *extra):
    data = [] if model in NO_DATA_DIR else ["--data-dir", DATA_DIR]
    quiet = [] if model in NO_PROGRESS else ["--quiet"]
    return ["train", model, *quiet, *data, *SMALL[model], *extra]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each model trained once on a small slice and saved: model name -> (path, stdout)."""
    folder = tmp_path_factory.mktemp("models")
    files = {}

    def get(model):
        if model not in files:
            path = folder / f"{model}.npz"
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_files, "fetch_url_bytes", lambda url, timeout=60.0: pytest.fail(f"download {url}"))
                code, out, err = run_cli(train_argv(model, "--save", path))
            assert code == 0, err
            assert err == ""  # --quiet: no progress report
            assert f"saved to {path}" in out
            files[model] = (path, out)
        return files[model]

    return get


# ---- every train job, its final report, and the saved file read back ------------------------------


def test_rnnlm_reports_perplexity_and_its_file_generates_and_evaluates(saved):
    path, out = saved("rnnlm")
    assert "test perplexity:" in out and "1,500 tokens of PTB test" in out
    code, text, err = run_cli(["generate", path, "--start", "the market", "--length", "8", "--seed", "3"])
    assert code == 0 and err == "", err
    words = text.split()
    assert words[:2] == ["the", "market"] and len(words) >= 9
    assert run_cli(["generate", path, "--start", "the market", "--length", "8", "--seed", "3"])[1] == text  # seeded
    code, text, err = run_cli(["eval", path, "--data-dir", DATA_DIR, "--corpus-size", "400"])
    assert code == 0, err
    assert "Rnnlm: perplexity" in text and "PTB test (400 tokens)" in text
    ppl = float(text.split("perplexity ")[1].split()[0])
    assert 1 < ppl < 20000


def test_rnnlm_checkpoint_resume_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    checkpoint, plot = tmp_path / "run.npz", tmp_path / "ppl.png"
    code, out, err = run_cli(train_argv("rnnlm", "--checkpoint", checkpoint))
    assert code == 0, err
    assert f"checkpoint written to {checkpoint}" in out
    code, out, err = run_cli(train_argv("rnnlm", "--resume", checkpoint, "--plot", plot))
    assert code == 0, err
    assert "resuming after 1 epoch: 1 more" in out and "test perplexity:" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The checkpoint of a Rnnlm cannot resume a BetterRnnlm.
    code, out, err = run_cli(train_argv("better-rnnlm", "--resume", checkpoint))
    assert_one_error_line(code, err, 2)
    assert "Rnnlm" in err and "--resume" in err


def test_rnnlm_resumes_an_interrupted_run_with_its_own_settings(tmp_path, monkeypatch):
    """Interrupted in epoch 2 of 2 (Ctrl-C): --resume finishes that run, from the end of epoch 1."""
    checkpoint = tmp_path / "run.npz"
    step, calls = fastnlp.RnnlmTrainer._step, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:  # 1,500 tokens are 2 iterations an epoch: this is epoch 2's first
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(fastnlp.RnnlmTrainer, "_step", interrupted)
    code, out, err = run_cli(train_argv("rnnlm", "--epochs", "2", "--checkpoint", checkpoint))
    assert code == 130 and err == "fastnlp train: interrupted\n", err
    monkeypatch.setattr(fastnlp.RnnlmTrainer, "_step", step)
    code, out, err = run_cli(train_argv("rnnlm", "--resume", checkpoint, "--corpus-size", "2000"))
    assert_one_error_line(code, err, 2)
    assert "same --corpus-size" in err
    code, out, err = run_cli(train_argv("rnnlm", "--resume", checkpoint, "--checkpoint", checkpoint))
    assert code == 0, err
    assert "continuing the checkpoint's run of 2 epochs" in out and "test perplexity:" in out
    assert len(calls) == 3  # the patched step ran no more
    assert fastnlp.RnnlmTrainer(fastnlp.load(checkpoint), fastnlp.optim.SGD()).load_checkpoint(
        checkpoint).current_epoch == 2


def test_better_rnnlm_reports_validation_and_test_perplexity(saved):
    path, out = saved("better-rnnlm")
    assert "epoch 1: validation perplexity" in out and "test perplexity:" in out
    code, text, err = run_cli(["generate", path, "--length", "5", "--seed", "0"])
    assert code == 0 and text.split()[0] == "you", err


@pytest.mark.parametrize("model, task", [("seq2seq", "addition"), ("peeky", "addition"), ("attention", "date"),
                                         ("transformer", "date")])
def test_seq2seq_models_report_accuracy_and_answer_questions(saved, model, task):
    path, out = saved(model)
    assert f"accuracy on 200 held-out {task} questions:" in out and "epoch 1: loss" in out
    question = "16+75" if task == "addition" else "september 27, 1994"
    code, answer, err = run_cli(["generate", path, "--start", question])
    assert code == 0 and err == "", err
    assert len(answer.strip()) <= (4 if task == "addition" else 10) and answer.endswith("\n")
    code, text, err = run_cli(["eval", path, "--data-dir", DATA_DIR, "--corpus-size", "50"])
    assert code == 0, err
    assert f"on 50 held-out {task} questions" in text  # the task was told by the saved characters


@pytest.mark.parametrize("model", ["attention", "transformer"])
def test_attention_maps(saved, model, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = saved(model)
    target = tmp_path / "map.png"
    code, out, err = run_cli(["attention", path, "--input", "september 27, 1994", "--plot", target])
    assert code == 0, err
    assert f"attention map written to {target}" in out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(["attention", path, "--input", "2/10/93", "--input", "Aug 1, 2001", "--plot", target])
    assert code == 0, err
    assert (tmp_path / "map-1.png").exists() and (tmp_path / "map-2.png").exists()


def test_seq2seq_plot_is_a_loss_curve(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "loss.png"
    code, out, err = run_cli(train_argv("peeky", "--plot", target))
    assert code == 0, err
    assert f"loss curve written to {target}" in out and target.stat().st_size > 1000


@pytest.mark.parametrize("model", ["cbow", "skipgram"])
def test_book_word2vec_reports_wordsim_and_neighbours_and_saves_vectors(saved, model):
    path, out = saved(model)
    assert "[query] you" in out and "WordSim-353: Spearman" in out
    vectors = fastnlp.load(path)
    assert isinstance(vectors, fastnlp.WordVectors) and len(vectors) == 10000 and vectors.vector_size == 10
    code, text, err = run_cli(["eval", path, "--data-dir", DATA_DIR])
    assert code == 0, err
    assert "WordSim-353: Spearman" in text and "analogies (questions-words.txt): accuracy" in text


def test_word2vec_saves_the_model_resumes_and_plots(saved, tmp_path):
    pytest.importorskip("matplotlib")
    path, out = saved("word2vec")
    assert "Word2Vec (CBOW)" in out and "WordSim-353: Spearman" in out
    model = fastnlp.load(path)
    assert isinstance(model, fastnlp.Word2Vec) and model.epochs_trained == 1
    again, plot = tmp_path / "again.npz", tmp_path / "loss.png"
    code, out, err = run_cli(train_argv("word2vec", "--resume", path, "--save", again, "--plot", plot))
    assert code == 0, err
    assert "resuming a Word2Vec model trained for 1 epoch" in out
    assert fastnlp.load(again).epochs_trained == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, text, err = run_cli(["eval", path, "--data-dir", DATA_DIR])
    assert code == 0 and "WordSim-353" in text, err


def test_count_shares_the_count_job_and_saves_vectors(saved):
    path, out = saved("count")
    assert "PPMI + SVD" in out and "WordSim-353: Spearman" in out
    assert isinstance(fastnlp.load(path), fastnlp.WordVectors)


def test_count_in_word2vec_format_is_read_by_eval(tmp_path):
    path = tmp_path / "vectors.txt"
    code, out, err = run_cli(train_argv("count", "--save", path))
    assert code == 0, err
    code, text, err = run_cli(["eval", path, "--data-dir", DATA_DIR])
    assert code == 0 and "WordSim-353" in text, err


def test_spiral_shares_the_spiral_job(saved):
    path, out = saved("spiral")
    assert "spiral: 2 epochs" in out and "training accuracy" in out
    code, text, err = run_cli(["eval", path])
    assert code == 0 and "TwoLayerNet: accuracy" in text, err


def test_help_shows_the_book_defaults():
    code, out, err = run_cli(["train", "rnnlm", "--help"])
    assert code == 0
    for text in ("(default: 20.0)", "(default: 0.25)", "(default: 35)", "--corpus-size N", "--resume PATH"):
        assert text in out, text
    # every option of every train job explains itself
    for name, parser in _train_jobs().items():
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)


# ---- mistakes: one line, the right exit status ---------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    text = folder / "notes.txt"
    text.write_text("not a model\n")
    arrays = folder / "arrays.npz"
    np.savez(arrays, a=np.zeros(3))
    read_only = folder / "read-only.npz"
    read_only.write_bytes(b"keep me")
    read_only.chmod(0o444)
    return {"text": text, "arrays": arrays, "read_only": read_only, "folder": folder}


def _mistakes(saved, files):
    lm, vectors = saved("rnnlm")[0], saved("cbow")[0]
    date, addition = saved("attention")[0], saved("seq2seq")[0]
    missing = files["folder"] / "no-such-model.npz"
    d = ["--data-dir", DATA_DIR]
    return {
        # a missing file, a folder, a file of another kind
        "generate-missing-file": (["generate", missing], 2, "does not exist"),
        "eval-missing-file": (["eval", missing], 2, "does not exist"),
        "attention-missing-file": (["attention", missing, "--input", "x", "--plot", files["folder"] / "m.png"], 2,
                                   "does not exist"),
        "eval-a-folder": (["eval", files["folder"]], 2, "is a folder"),
        "generate-vectors-file": (["generate", vectors, "--start", "you"], 2, "WordVectors"),
        "generate-not-fastnlp": (["generate", files["text"]], 1, "not a file written by fastnlp"),
        "eval-not-fastnlp": (["eval", files["text"], *d], 1, "neither a file written by fastnlp"),
        "generate-bare-arrays": (["generate", files["arrays"]], 1, "not a file written by fastnlp"),
        "attention-without-attention": (["attention", addition, "--input", "1+2", "--plot",
                                         files["folder"] / "m.png"], 2, "has no attention"),
        "resume-a-vectors-file": (train_argv("word2vec", "--resume", vectors), 2, "not a Word2Vec"),
        # unknown words and characters
        "generate-unknown-word": (["generate", lm, "--start", "the zzyzxq"], 2, "'zzyzxq'"),
        "generate-unknown-character": (["generate", addition, "--start", "1+x"], 2, "'x'"),
        "generate-question-too-long": (["generate", addition, "--start", "1234+5678"], 2, "width"),
        "generate-seq2seq-without-question": (["generate", date], 2, "--start"),
        "attention-unknown-character": (["attention", date, "--input", "september 27, 1994 \u00e9", "--plot",
                                         files["folder"] / "m.png"], 2, "'\u00e9'"),
        "eval-wrong-task": (["eval", date, "--task", "addition", *d, "--corpus-size", "5"], 1, "addition task"),
        # bad numbers
        "train-epochs-zero": (["train", "rnnlm", "--epochs", "0"], 2, "--epochs"),
        "train-lr-negative": (["train", "seq2seq", "--lr", "-1"], 2, "--lr"),
        "train-lr-nan": (["train", "cbow", "--lr", "nan"], 2, "--lr"),
        "train-hidden-word": (["train", "transformer", "--d-model", "big"], 2, "--d-model"),
        "train-corpus-size-zero": (["train", "word2vec", "--corpus-size", "0"], 2, "--corpus-size"),
        "train-corpus-size-too-small": (["train", "rnnlm", *d, "--corpus-size", "100"], 2, "--corpus-size 100"),
        "train-better-rnnlm-untied-sizes": (["train", "better-rnnlm", "--wordvec", "10", "--hidden", "12"], 2,
                                            "--wordvec"),
        "generate-temperature-zero": (["generate", lm, "--temperature", "0"], 2, "--temperature"),
        "generate-top-k-too-large": (["generate", lm, "--top-k", "20000"], 2, "--top-k 20000"),
        "generate-length-negative": (["generate", lm, "--length", "-3"], 2, "--length"),
        "train-transformer-heads": (train_argv("transformer", "--heads", "3"), 1, "n_heads"),
        # outputs that cannot be written, checked before any work
        "train-save-read-only": (["train", "rnnlm", "--save", files["read_only"]], 2, "read-only"),
        "train-save-missing-folder": (["train", "cbow", "--save", files["folder"] / "no" / "v.npz"], 2,
                                      "does not exist"),
        "train-save-not-npz": (["train", "seq2seq", "--save", files["folder"] / "model.bin"], 2, ".npz"),
        "train-checkpoint-read-only": (["train", "rnnlm", "--checkpoint", files["read_only"]], 2, "read-only"),
        "train-plot-not-an-image": (["train", "attention", "--plot", files["folder"] / "curve.txt"], 2, "--plot"),
        "attention-plot-missing-folder": (["attention", date, "--input", "x", "--plot",
                                           files["folder"] / "no" / "m.png"], 2, "does not exist"),
        # resume where it is not supported
        "train-resume-unsupported": (train_argv("seq2seq", "--resume", addition), 2, "not supported for seq2seq"),
        "train-resume-missing": (["train", "rnnlm", "--resume", missing], 2, "does not exist"),
        "train-no-model": (["train"], 2, "MODEL"),
        "train-unknown-model": (["train", "gpt"], 2, "gpt"),
    }


MISTAKE_IDS = ["generate-missing-file", "eval-missing-file", "attention-missing-file", "eval-a-folder",
               "generate-vectors-file", "generate-not-fastnlp", "eval-not-fastnlp", "generate-bare-arrays",
               "attention-without-attention", "resume-a-vectors-file", "generate-unknown-word",
               "generate-unknown-character", "generate-question-too-long", "generate-seq2seq-without-question",
               "attention-unknown-character", "eval-wrong-task", "train-epochs-zero", "train-lr-negative",
               "train-lr-nan", "train-hidden-word", "train-corpus-size-zero", "train-corpus-size-too-small",
               "train-better-rnnlm-untied-sizes", "generate-temperature-zero", "generate-top-k-too-large",
               "generate-length-negative", "train-transformer-heads", "train-save-read-only",
               "train-save-missing-folder", "train-save-not-npz", "train-checkpoint-read-only",
               "train-plot-not-an-image", "attention-plot-missing-folder", "train-resume-unsupported",
               "train-resume-missing", "train-no-model", "train-unknown-model"]


@pytest.mark.parametrize("name", MISTAKE_IDS)
def test_mistake_is_one_error_line(name, saved, files):
    argv, status, words = _mistakes(saved, files)[name]
    code, out, err = run_cli(argv)
    assert_one_error_line(code, err, status)
    assert words in err, err
    assert files["read_only"].read_bytes() == b"keep me"


def test_mistake_table_is_complete(saved, files):
    assert sorted(_mistakes(saved, files)) == sorted(MISTAKE_IDS)


def test_unwritable_folder_is_refused_before_the_work(tmp_path, monkeypatch):
    import fastnlp.datasets

    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):  # root writes into a read-only folder; /sys is read-only for all
        try:
            with open(candidate / ".probe", "w"):
                pass
        except OSError:
            break
        (candidate / ".probe").unlink()
    else:
        pytest.skip("no unwritable folder here")
    monkeypatch.setattr(fastnlp.datasets, "load_ptb", lambda *a, **k: pytest.fail("loaded PTB before the check"))
    code, out, err = run_cli(["train", "rnnlm", "--data-dir", DATA_DIR, "--save", candidate / "lm.npz"])
    assert_one_error_line(code, err, 2)
    assert "--save" in err and out == ""


# ---- every option of every train job, found from the parser -----------------------------------------


def _train_jobs():
    (jobs,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (models,) = [a for a in jobs.choices["train"]._actions if isinstance(a, argparse._SubParsersAction)]
    return models.choices


def _typed_options():
    return [(name, action.option_strings[-1]) for name, parser in _train_jobs().items()
            for action in parser._actions if action.option_strings and action.type is not None]


def _output_options():
    return [(name, action.option_strings[-1]) for name, parser in _train_jobs().items()
            for action in parser._actions if action.dest in ("save", "plot", "checkpoint")]


@pytest.mark.parametrize("model, option", _typed_options())
def test_every_typed_train_option_refuses_garbage_in_one_line(model, option):
    code, out, err = run_cli(["train", model, option, "no-such-value"])
    assert_one_error_line(code, err, 2)
    assert option in err and out == ""


@pytest.mark.parametrize("model, option", _output_options())
def test_every_train_output_refuses_a_read_only_file(model, option, files):
    code, out, err = run_cli(["train", model, option, files["read_only"]])
    assert_one_error_line(code, err, 2)
    assert option in err and "read-only" in err and out == ""


def test_precision_trains_and_a_bad_one_is_one_line():
    code, out, err = run_cli(train_argv("rnnlm", "--precision", "bf16-mixed"))
    assert code == 0, err
    assert "test perplexity" in out
    code, out, err = run_cli(train_argv("rnnlm", "--precision", "fp8"))
    assert_one_error_line(code, err, 2)
    assert "unknown precision 'fp8'" in err
    code, out, err = run_cli(train_argv("word2vec", "--precision", "fp16-mixed"))
    assert_one_error_line(code, err, 1)
    assert "mixed precision ('fp16-mixed') does not apply" in err


def test_fasttext_trains_saves_and_its_file_answers_queries(saved, tmp_path):
    path, out = saved("fasttext")
    assert "FastText (CBOW) on PTB train" in out and "WordSim-353" in out
    code, out, err = run_cli(["similar", path, "you", "--top", "2"])
    assert code == 0, err
    code, out, err = run_cli(train_argv("fasttext", "--resume", path, "--save", tmp_path / "again.npz"))
    assert code == 0 and "resuming a FastText model" in out, err
    code, out, err = run_cli(train_argv("fasttext", "--bucket", "0"))
    assert_one_error_line(code, err, 2)
