"""One file format for every saved object: save, ``fastnlp.load``, and the files of the format
before it (tests/data/format_v0, written by the code before the one format)."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp import models
from fastnlp.serialization import FORMAT_VERSION, HEADER_KEY

V0 = Path(__file__).parent / "data" / "format_v0"
CORPUS = (np.arange(200) * 7) % 15

MODELS = {
    "TwoLayerNet": lambda: models.TwoLayerNet(2, 5, 3, seed=0),
    "SimpleRnnlm": lambda: models.SimpleRnnlm(15, 4, 5, seed=0),
    "Rnnlm": lambda: models.Rnnlm(15, 4, 5, seed=0),
    "BetterRnnlm": lambda: models.BetterRnnlm(15, 6, 6, dropout_ratio=0.3, seed=0),
    "Seq2seq": lambda: models.Seq2seq(15, 4, 5, seed=0),
    "PeekySeq2seq": lambda: models.PeekySeq2seq(15, 4, 5, seed=0),
    "AttentionSeq2seq": lambda: models.AttentionSeq2seq(15, 4, 5, seed=0),
    "AttentionSeq2seq-bidirectional": lambda: models.AttentionSeq2seq(15, 4, 6, seed=0, bidirectional=True),
    "Transformer": lambda: models.Transformer(15, d_model=8, n_heads=2, d_ff=16, n_layers=1, seed=0),
    "SimpleCBOW": lambda: models.SimpleCBOW(15, 4, seed=0),
    "SimpleSkipGram": lambda: models.SimpleSkipGram(15, 4, seed=0),
    "CBOW": lambda: models.CBOW(15, 4, 2, CORPUS, seed=0),
    "SkipGram": lambda: models.SkipGram(15, 4, 2, CORPUS, seed=0),
}


def _header(path):
    with np.load(path, allow_pickle=False) as data:
        return json.loads(data[HEADER_KEY].tobytes().decode("utf-8"))


def _perturb(model):
    # Saved values must differ from what the constructor draws, or a load that ignored the
    # parameters would pass.
    for i, p in enumerate(model.params):
        p += np.float32(0.001 * (i + 1))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_saves_and_loads_as_itself(name, tmp_path):
    model = MODELS[name]()
    _perturb(model)
    path = fastnlp.save(tmp_path / "m.npz", model, vocabulary=[f"w{i}" for i in range(15)])
    header = _header(path)
    assert header["format"] == "fastnlp" and header["version"] == FORMAT_VERSION and header["kind"] == "model"
    assert header["class"] == f"{type(model).__module__}.{type(model).__qualname__}"
    loaded = fastnlp.load(path)
    assert type(loaded) is type(model)
    assert loaded.settings.keys() == model.settings.keys()
    assert len(loaded.params) == len(model.params)
    for saved, got in zip(model.params, loaded.params):
        assert got.dtype == saved.dtype and np.array_equal(got, saved)
    assert loaded.vocabulary.id_to_word[3] == "w3"
    # The parameters are the loaded model's own arrays (tied weights stay tied, layers see them).
    assert all(any(p is q for q in loaded.params) for p in loaded.params)


def test_a_loaded_language_model_predicts_as_the_saved_one(tmp_path):
    model = models.Rnnlm(15, 4, 5, seed=3)
    _perturb(model)
    xs = CORPUS[:20].reshape(2, 10)
    expected = model.predict(xs)
    model.reset_state()
    loaded = fastnlp.load(fastnlp.save(tmp_path / "m.npz", model))
    np.testing.assert_array_equal(loaded.predict(xs), expected)


def test_settings_hold_dtypes_and_arrays(tmp_path):
    model = models.CBOW(15, 4, 2, CORPUS, seed=0, dtype=np.float64)
    loaded = fastnlp.load(fastnlp.save(tmp_path / "m.npz", model))
    assert loaded.params[0].dtype == np.float64
    np.testing.assert_array_equal(loaded.settings["corpus"], CORPUS)
    assert _header(tmp_path / "m.npz")["settings"]["dtype"] == {"dtype": "float64"}


def test_half_precision_storage_loads_into_the_model_dtype(tmp_path):
    model = models.Rnnlm(15, 4, 5, seed=0)
    loaded = fastnlp.load(fastnlp.save_params(tmp_path / "m.npz", model, dtype=np.float16))
    assert loaded.params[0].dtype == np.float32
    np.testing.assert_allclose(loaded.params[0], model.params[0], rtol=1e-3, atol=1e-4)


def test_word_vectors_and_word2vec_through_fastnlp_load(tmp_path):
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "sat", "on", "a", "log"]] * 20
    w2v = fastnlp.Word2Vec(sentences, vector_size=4, min_count=1, epochs=1, seed=1, progress=False, workers=1)
    loaded = fastnlp.load(fastnlp.save(tmp_path / "w2v.npz", w2v))
    assert isinstance(loaded, fastnlp.Word2Vec) and np.array_equal(loaded.syn0, w2v.syn0)
    assert loaded.epochs_trained == w2v.epochs_trained
    vectors = fastnlp.load(fastnlp.save(tmp_path / "wv.npz", w2v.wv))
    assert isinstance(vectors, fastnlp.WordVectors)
    np.testing.assert_array_equal(vectors.vectors, w2v.wv.vectors)
    assert _header(tmp_path / "wv.npz")["kind"] == "vectors"
    with pytest.raises(ValueError, match="not word vectors"):
        fastnlp.WordVectors.load(tmp_path / "w2v.npz")
    with pytest.raises(ValueError, match="not a Word2Vec model"):
        fastnlp.Word2Vec.load(tmp_path / "wv.npz")


def test_a_list_of_arrays_loads_as_a_list(tmp_path):
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, dtype=np.int64)]
    got = fastnlp.load(fastnlp.save(tmp_path / "a.npz", arrays))
    assert len(got) == 2 and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(got, arrays))


def test_a_checkpoint_loads_as_its_model_and_resumes(tmp_path):
    model = models.Rnnlm(15, 4, 5, seed=0)
    trainer = fastnlp.RnnlmTrainer(model, fastnlp.optim.Adam(lr=0.01))
    trainer.fit(CORPUS[:-1], CORPUS[1:], max_epoch=1, batch_size=2, time_size=5, progress=False)
    path = trainer.save_checkpoint(tmp_path / "run.npz")
    assert _header(path)["kind"] == "checkpoint"
    loaded = fastnlp.load(path)
    assert isinstance(loaded, models.Rnnlm)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.params, model.params))
    resumed = fastnlp.RnnlmTrainer(loaded, fastnlp.optim.Adam(lr=0.01)).load_checkpoint(path)
    assert resumed.time_idx == trainer.time_idx and resumed.optimizer.iter == trainer.optimizer.iter


# ----- files of the format before this one ---------------------------------------------------

def test_previous_format_files_still_load():
    expected = np.load(V0 / "expected.npz")
    facts = json.loads((V0 / "expected.json").read_text())
    # save_params of a model: no identity recorded, so the parameters come back as a list.
    params = fastnlp.load(V0 / "rnnlm_params.npz")
    fresh = models.Rnnlm(12, 3, 4, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(params, fresh.params))
    into = models.Rnnlm(12, 3, 4, seed=5)
    fastnlp.load_params(V0 / "rnnlm_params.npz", into=into)
    assert all(np.array_equal(a, b) for a, b in zip(into.params, fresh.params))

    w2v = fastnlp.load(V0 / "word2vec.npz")
    assert isinstance(w2v, fastnlp.Word2Vec) and w2v.epochs_trained == facts["epochs_trained"]
    np.testing.assert_array_equal(w2v.syn0, expected["word2vec_syn0"])
    assert fastnlp.Word2Vec.load(V0 / "word2vec.npz").vocabulary.id_to_word == facts["words"]

    vectors = fastnlp.load(V0 / "vectors.npz")
    assert isinstance(vectors, fastnlp.WordVectors)
    np.testing.assert_array_equal(vectors.vectors, expected["vectors"])
    assert list(fastnlp.WordVectors.load(V0 / "vectors.npz").words) == facts["words"]

    model = models.Rnnlm(12, 3, 4, seed=0)
    trainer = fastnlp.RnnlmTrainer(model, fastnlp.optim.Adam(lr=0.01)).load_checkpoint(V0 / "rnnlm_checkpoint.npz")
    assert trainer.time_idx == facts["time_idx"]
    assert all(np.array_equal(p, expected[f"rnnlm_{i}"]) for i, p in enumerate(model.params))
    checkpoint_params = fastnlp.load(V0 / "rnnlm_checkpoint.npz")
    assert all(np.array_equal(p, expected[f"rnnlm_{i}"]) for i, p in enumerate(checkpoint_params))


# ----- what is refused -----------------------------------------------------------------------

def _rewrite_header(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    header = json.loads(arrays[HEADER_KEY].tobytes().decode("utf-8"))
    change(header)
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def test_a_newer_version_an_unknown_class_and_a_damaged_header_are_refused(tmp_path):
    path = fastnlp.save(tmp_path / "m.npz", models.Rnnlm(15, 4, 5, seed=0))
    _rewrite_header(path, lambda h: h.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="format version .* upgrade fastnlp"):
        fastnlp.load(path)
    path = fastnlp.save(tmp_path / "m.npz", models.Rnnlm(15, 4, 5, seed=0))
    _rewrite_header(path, lambda h: h.update({"class": "os.system"}))
    with pytest.raises(ValueError, match="os.system, which fastnlp cannot build"):
        fastnlp.load(path)
    path = fastnlp.save(tmp_path / "m.npz", models.Rnnlm(15, 4, 5, seed=0))
    _rewrite_header(path, lambda h: h["settings"].update(hidden_size=7))
    with pytest.raises(ValueError, match="param 1 has shape"):
        fastnlp.load(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    arrays[HEADER_KEY] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="header is not valid JSON"):
        fastnlp.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a file written by fastnlp"):
        fastnlp.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="not a file written by fastnlp"):
        fastnlp.load(tmp_path / "other.npz")


def test_unsaveable_settings_write_nothing(tmp_path):
    model = models.Rnnlm(15, 4, 5, seed=0)
    model._settings["seed"] = object()
    with pytest.raises(TypeError, match="setting seed=object"):
        fastnlp.save(tmp_path / "m.npz", model)
    assert not (tmp_path / "m.npz").exists()
