"""Dask: shard files counted on a cluster (the single machine's counts and vectors exactly, a
worker killed mid-count included), the precision study and word2vec sweeps one task per
configuration (the same results as without a client, resumable), and the errors of bad shards
and of a client that has gone away."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the Dask tests need dask[distributed] (the test extra)")

from distributed import Client, LocalCluster  # noqa: E402

import fastnlp  # noqa: E402
from fastnlp import precision, sweeps  # noqa: E402
from fastnlp.corpus_files import CorpusDecodeError, count_files, vocabulary_from_files  # noqa: E402
from fastnlp.distributed import count_shards, count_vectors_on_cluster  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """Two single-thread workers in this process: quick to start, and monkeypatches reach them."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as connected:
            yield connected


def _zipf_lines(rng, n_lines, vocab=300):
    words = [f"w{i}" for i in range(vocab)]
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    return [" ".join(words[i] for i in rng.choice(vocab, rng.integers(1, 25), p=p)) + "\n" for _ in range(n_lines)]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Five shards of Zipf text: one empty and one of a single word, so a shard's left context
    comes from two shards back; the last line of one shard has no newline."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    texts = ["".join(_zipf_lines(rng, 300)), "", "w7", "".join(_zipf_lines(rng, 200)).rstrip("\n"),
             "".join(_zipf_lines(rng, 250))]
    paths = []
    for i, text in enumerate(texts):
        path = folder / f"shard-{i}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _assert_same_csr(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype == np.float64
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


@pytest.mark.parametrize("settings", [{"window": 3}, {"window": 2, "weighting": "harmonic", "eos_boundary": True}])
def test_shards_counted_on_the_cluster_equal_one_stream_bit_for_bit(client, shards, settings):
    settings = dict(settings)
    boundary = settings.pop("eos_boundary", False)
    want_vocabulary = vocabulary_from_files(shards)
    if boundary:
        settings["boundary_id"] = want_vocabulary.word_to_id["<eos>"]
    counts, vocabulary = count_shards(shards, client, split_every=2, **settings)
    assert vocabulary.id_to_word == want_vocabulary.id_to_word
    np.testing.assert_array_equal(vocabulary.counts, want_vocabulary.counts)
    _assert_same_csr(counts, count_files(shards, want_vocabulary, **settings))


def test_a_given_vocabulary_and_min_count_follow_the_single_machine_rules(client, shards):
    words = ["w0", "w1", "w2", "w5", "<eos>", "not-in-the-corpus"]
    counts, vocabulary = count_shards(shards, client, words=words, window=2)
    assert vocabulary.id_to_word == words
    _assert_same_csr(counts, count_files(shards, words, window=2))
    _, frequent = count_shards(shards, client, min_count=40)
    assert frequent.id_to_word == vocabulary_from_files(shards, min_count=40).id_to_word


def test_count_vectors_with_a_client_equals_the_single_machine(client, shards):
    timings = {}
    got = fastnlp.count_vectors([str(p) for p in shards], window=2, k=8, client=client, timings=timings)
    want = fastnlp.count_vectors([str(p) for p in shards], window=2, k=8)
    assert got.words == want.words
    np.testing.assert_array_equal(got.vectors, want.vectors)
    assert timings["gathered"] and {"vocabulary", "cooccurrence", "ppmi", "svd"} <= set(timings)


def test_the_compressed_svd_runs_when_the_counts_would_not_fit(client, shards):
    # gather_limit=0: nothing may come here, so PPMI runs per row block on the workers and the
    # SVD is Dask's randomized svd_compressed, approximate: compare the singular values.
    timings = {}
    got = count_vectors_on_cluster(shards, window=2, k=5, client=client, gather_limit=0, timings=timings)
    want = fastnlp.count_vectors(shards, window=2, k=5)
    assert timings["gathered"] is False and got.words == want.words
    np.testing.assert_allclose(np.linalg.norm(got.vectors, axis=0), np.linalg.norm(want.vectors, axis=0),
                               rtol=0.02)


def test_bad_shards_name_the_shard_and_return_nothing(client, shards, tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        fastnlp.count_vectors([shards[0], missing], k=2, client=client)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    with pytest.raises(CorpusDecodeError, match="latin.txt.*not valid utf-8"):
        fastnlp.count_vectors([shards[0], latin], k=2, client=client)
    vectors = fastnlp.count_vectors([shards[0], latin], k=2, client=client, encoding="latin-1")
    assert "café" in vectors.words
    with pytest.raises(IsADirectoryError, match=str(tmp_path.name)):
        count_shards([tmp_path], client, words=["w0", "w1"])
    with pytest.raises(TypeError, match="give their paths"):
        fastnlp.count_vectors(np.arange(10), words=[str(i) for i in range(10)], k=2, client=client)
    with pytest.raises(ValueError, match="unknown encoding 'utf-9'"):
        count_shards(shards, client, encoding="utf-9")
    with pytest.raises(ValueError, match="k=500 must be below the vocabulary size"):
        fastnlp.count_vectors(shards, k=500, client=client)


def test_a_client_that_has_gone_away_is_named(shards, tmp_path):
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        closed = Client(cluster)
        closed.close()
        for call in (lambda: fastnlp.count_vectors(shards, k=2, client=closed),
                     lambda: precision.run_study("ops", tmp_path, progress=False, ops=["embedding_gather"],
                                                 client=closed),
                     lambda: sweeps.word2vec_grid([["a", "b"]], {"sg": [0]}, client=closed)):
            with pytest.raises(RuntimeError, match=f"Dask client {closed.id}.*closed"):
                call()
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        fastnlp.count_vectors(shards, k=2, client="tcp://127.0.0.1:8786")


def _kill_a_worker_when(client, busy_with, pids):
    """Kill (SIGKILL) the first worker seen running a task whose key contains ``busy_with``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(busy_with in str(key) for key in keys):
                os.kill(pids[address], signal.SIGKILL)
                return address
        time.sleep(0.005)
    return None


@pytest.fixture(scope="module")
def process_client():
    """Two worker processes (Nanny-managed: a killed one is started again)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as connected:
            yield connected


def _run_while_killing(client, busy_with, work):
    """``work()`` in a thread while the first worker seen running a ``busy_with`` task is killed;
    returns (its result, whether a worker was killed)."""
    pids = client.run(os.getpid)
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=work()))
    thread.start()
    killed = _kill_a_worker_when(client, busy_with, pids)
    thread.join(120)
    assert "value" in result, "the work did not finish"
    return result["value"], killed is not None


def test_a_worker_killed_mid_count_loses_only_its_tasks(process_client, tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"part-{i}.txt")
        paths[-1].write_text("".join(_zipf_lines(rng, 1500, vocab=2000)), encoding="utf-8")
    (counts, vocabulary), killed = _run_while_killing(process_client, "count-shard",
                                                      lambda: count_shards(paths, process_client, window=2))
    assert killed, "no shard was seen counting"
    want = vocabulary_from_files(paths)
    assert vocabulary.id_to_word == want.id_to_word
    _assert_same_csr(counts, count_files(paths, want, window=2))


def test_a_worker_killed_mid_sweep_loses_only_its_configuration(process_client, tmp_path):
    grid = {"window": [2, 3, 4]}
    base = {**BASE, "epochs": 4}
    rows, killed = _run_while_killing(process_client, "train_one", lambda: sweeps.word2vec_grid(
        SENTENCES, grid, client=process_client, results=tmp_path, base=base))
    assert killed, "no configuration was seen training"
    alone = sweeps.word2vec_grid(SENTENCES, grid, base=base)
    assert [r["loss_history"] for r in rows] == [r["loss_history"] for r in alone]
    assert len(list(tmp_path.glob("*.json"))) == 3


# ----- studies and sweeps ------------------------------------------------------------------------

FEW_OPS = ["attention_weights", "weighted_sum", "gather_dot"]


def test_the_ops_study_on_a_cluster_gives_the_rows_and_report_of_one_run(client, tmp_path):
    alone = precision.run_study("ops", tmp_path / "alone", progress=False, ops=FEW_OPS)
    spread = precision.run_study("ops", tmp_path / "spread", progress=False, ops=FEW_OPS, client=client)
    assert spread.read_text() == alone.read_text()
    rows = json.loads((tmp_path / "spread" / "ops.json").read_text())["rows"]
    assert list(rows) == list(json.loads((tmp_path / "alone" / "ops.json").read_text())["rows"])


def test_the_train_study_on_a_cluster_resumes_and_keeps_the_order(client, tmp_path, monkeypatch):
    seen = []

    def fake_task(run, *args):
        seen.append(run)
        if run[0] == "simulate:e4m3":
            raise FloatingPointError("training diverged at epoch 1: the loss is nan")
        return {"metric": "m", "value": float(len(run[0])), "curve": [], "underflow": 0.0, "skipped": 0}

    monkeypatch.setattr(precision, "_train_rnnlm_in", fake_task)
    monkeypatch.setattr(precision, "_train_seq2seq_in", fake_task)
    monkeypatch.setattr(precision, "_train_cbow_in", fake_task)
    monkeypatch.setattr(precision, "_train_data", lambda data_dir: (None, None, 10, None))
    rows = precision._Rows(tmp_path / "train.json", quick=True, progress=False)
    rows.add("Rnnlm/bf16-mixed", {"model": "Rnnlm", "run": "bf16-mixed", "value": 1.0})  # done before
    precision._train_study(rows, quick=True, data_dir=None, client=client)
    expected = [f"{m}/{label}" for m in precision.TRAINED_MODELS for label, _, _ in precision.TRAINING_RUNS]
    assert list(rows.done) == expected and len(seen) == len(expected) - 1
    assert rows.done["Rnnlm/bf16-mixed"]["value"] == 1.0  # not measured again
    assert rows.done["CBOW/e4m3 (simulated), stochastic"]["diverged"].startswith("training diverged")
    precision._train_study(rows, quick=True, data_dir=None, client=client)
    assert len(seen) == len(expected) - 1


SENTENCES = [line.split() for line in _zipf_lines(np.random.default_rng(2), 400, vocab=150)]
GRID = {"sg": [0, 1], "window": [2, 4]}
BASE = {"vector_size": 12, "epochs": 2, "min_count": 1, "seed": 3}


def test_a_word2vec_grid_on_a_cluster_equals_one_run_and_resumes(client, tmp_path, monkeypatch):
    alone = sweeps.word2vec_grid(SENTENCES, GRID, base=BASE)
    spread = sweeps.word2vec_grid(SENTENCES, GRID, client=client, results=tmp_path, base=BASE)
    assert [r["settings"] for r in spread] == [{"sg": s, "window": w} for s in (0, 1) for w in (2, 4)]
    for a, b in zip(alone, spread):
        assert a["key"] == b["key"] and a["loss_history"] == b["loss_history"]  # workers=1: the same bits
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(r["key"] for r in spread)

    # A rerun trains only what has no result file (as after a worker died before writing it),
    # on the cluster as here.
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    (tmp_path / f"{spread[2]['key']}.json").unlink()
    again = sweeps.word2vec_grid(SENTENCES, GRID, client=client, results=tmp_path, base=BASE)
    assert [r["loss_history"] for r in again] == [r["loss_history"] for r in spread]
    rewritten = {p.name for p in tmp_path.glob("*.json") if p.stat().st_mtime_ns != written.get(p.name)}
    assert rewritten == {f"{spread[2]['key']}.json"}

    class Trained(Exception):
        pass

    def must_not_train(*args):
        raise Trained(args[1])

    monkeypatch.setattr(sweeps, "_train_one", must_not_train)
    assert sweeps.word2vec_grid(SENTENCES, GRID, results=tmp_path, base=BASE) == again
    # Another corpus or other shared settings are other configurations, not stale results.
    with pytest.raises(Trained):
        sweeps.word2vec_grid(SENTENCES[:200], {"sg": [0]}, results=tmp_path, base=BASE)


def test_word2vec_grids_refuse_what_a_results_file_cannot_name(tmp_path):
    with pytest.raises(ValueError, match="'windows', which is not a Word2Vec setting"):
        sweeps.word2vec_grid(SENTENCES, {"windows": [2]})
    with pytest.raises(ValueError, match="'callbacks', which a sweep cannot vary"):
        sweeps.word2vec_grid(SENTENCES, {"sg": [0]}, base={"callbacks": [print]})
    with pytest.raises(TypeError, match="alpha=.*must be a number, string, bool or None"):
        sweeps.word2vec_grid(SENTENCES, {"alpha": [np.array([0.1])]})
    with pytest.raises(ValueError, match=r"grid\['sg'\] is empty"):
        sweeps.word2vec_grid(SENTENCES, {"sg": []})
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        sweeps.word2vec_grid(SENTENCES, {"sg": [0]}, results=tmp_path / "file")
    with pytest.raises(TypeError, match="iterator, read once"):
        sweeps.word2vec_grid(iter(SENTENCES), {"sg": [0]})
    assert sweeps.config_key({"a": 1, "b": [2, 3]}) == sweeps.config_key({"b": [2, 3], "a": 1})
