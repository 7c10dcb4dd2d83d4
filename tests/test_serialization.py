import numpy as np
import pytest

import fastnlp
from fastnlp import serialization


def test_round_trip_is_exact(tmp_path):
    model = fastnlp.TwoLayerNet(2, 5, 3, seed=0)
    path = fastnlp.save_params(tmp_path / "m.npz", model)
    other = fastnlp.TwoLayerNet(2, 5, 3, seed=1)
    fastnlp.load_params(path, into=other)
    for a, b in zip(model.params, other.params):
        np.testing.assert_array_equal(a, b)


def test_float16_storage_loads_back_as_float32(tmp_path):
    params = [np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)]
    path = fastnlp.save_params(tmp_path / "half.npz", params, dtype=np.float16)
    with np.load(path) as data:
        assert data["param_0000"].dtype == np.float16
    (loaded,) = fastnlp.load_params(path)
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, params[0], rtol=1e-3)


def test_float16_overflow_is_refused(tmp_path):
    with pytest.raises(OverflowError, match="float16 range"):
        fastnlp.save_params(tmp_path / "x.npz", [np.array([1e6], np.float32)], dtype=np.float16)
    assert list(tmp_path.iterdir()) == []


def test_shape_and_count_mismatch(tmp_path):
    path = fastnlp.save_params(tmp_path / "m.npz", [np.zeros((2, 2))])
    with pytest.raises(ValueError, match="saved shape"):
        fastnlp.load_params(path, into=[np.zeros((3, 2))])
    with pytest.raises(ValueError, match="holds 1 params but the model has 2"):
        fastnlp.load_params(path, into=[np.zeros((2, 2)), np.zeros(1)])


def test_failed_save_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "m.npz"
    fastnlp.save_params(path, [np.ones(3)])
    before = path.read_bytes()

    def explode(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        serialization.atomic_write(path, explode)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, param_0000=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        fastnlp.load_params(path)


# ---- parameter files: order, dtypes, atomicity of loading -----------------------------------


def test_more_than_ten_thousand_params_load_in_order(tmp_path):
    # 'param_10000' sorts before 'param_9999' as text; the order must be numeric.
    params = [np.full(1, i, dtype=np.float32) for i in range(10_003)]
    path = fastnlp.save_params(tmp_path / "many.npz", params)
    loaded = fastnlp.load_params(path)
    np.testing.assert_array_equal(np.concatenate(loaded), np.arange(10_003))


def test_files_with_the_padded_key_names_still_load(tmp_path):
    # The layout every earlier version wrote: four-digit padding, wider past 9999.
    path = tmp_path / "old.npz"
    np.savez(path, param_10000=np.array([3.0]), param_0001=np.array([1.0]), param_0000=np.array([0.0]),
             **{f"param_{i:04d}": np.array([float(i)]) for i in range(2, 10_000)})
    loaded = fastnlp.load_params(path)
    assert len(loaded) == 10_001 and loaded[10_000][0] == 3.0 and loaded[9_999][0] == 9_999.0


def test_a_missing_param_index_is_reported(tmp_path):
    path = tmp_path / "gap.npz"
    np.savez(path, param_0000=np.zeros(1), param_0002=np.zeros(1))
    with pytest.raises(ValueError, match="lacks param 1"):
        fastnlp.load_params(path)


@pytest.mark.parametrize("bad", [np.array([object()], dtype=object), np.array(["1.5"]), np.array([b"x"])],
                         ids=["object", "str", "bytes"])
def test_non_numeric_params_are_refused_before_writing(tmp_path, bad):
    path = fastnlp.save_params(tmp_path / "m.npz", [np.ones(3)])
    before = path.read_bytes()
    with pytest.raises(TypeError, match=f"param 1 has dtype {bad.dtype}"):
        fastnlp.save_params(path, [np.zeros(2), bad])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    np.testing.assert_array_equal(fastnlp.load_params(path)[0], np.ones(3))


def test_non_numeric_storage_dtype_is_refused(tmp_path):
    with pytest.raises(TypeError, match="dtype must be numeric"):
        fastnlp.save_params(tmp_path / "m.npz", [np.ones(3)], dtype=str)
    assert list(tmp_path.iterdir()) == []


def test_float32_storage_overflow_is_refused(tmp_path):
    with pytest.raises(OverflowError, match="param 0 .*float32 range"):
        fastnlp.save_params(tmp_path / "x.npz", [np.array([1e300])], dtype=np.float32)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model_shapes, message", [
    ([(2, 2), (3,), (5,)], "param 2: saved shape"),
    ([(2, 2), (3,)], "holds 3 params but the model has 2"),
])
def test_mismatch_leaves_every_model_param_untouched(tmp_path, model_shapes, message):
    path = fastnlp.save_params(tmp_path / "m.npz", [np.ones((2, 2)), np.ones(3), np.ones(4)])
    model = [np.zeros(shape, dtype=np.float32) for shape in model_shapes]
    with pytest.raises(ValueError, match=message):
        fastnlp.load_params(path, into=model)
    assert all(not p.any() for p in model)


def test_npy_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ValueError, match=r"weights.npy holds a single array \(.npy\), not an .npz written by save_params"):
        fastnlp.load_params(path)


@pytest.mark.parametrize("content", [b"", b"not numpy at all", b"PK\x03\x04 broken zip"], ids=["empty", "text", "zip"])
def test_foreign_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="m.npz is not an .npz written by save_params"):
        fastnlp.load_params(path)


def test_npz_of_other_arrays_is_not_taken_for_params(tmp_path):
    path = tmp_path / "vectors.npz"
    fastnlp.WordVectors(np.eye(2), ["a", "b"]).save(path)
    with pytest.raises(ValueError, match="no param_\\* arrays"):
        fastnlp.load_params(path)


# ---- word vectors: binary word2vec range, exact words in .npz -------------------------------


def test_binary_word2vec_refuses_values_beyond_float32(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"old file")
    wv = fastnlp.WordVectors(np.array([[1.0, 2.0], [1e39, 0.0], [0.0, -1e300]]), ["fine", "huge", "vast"])
    with pytest.raises(ValueError, match="word 'huge' \\(and 1 other words\\) has values beyond the float32 range"):
        wv.save_word2vec_format(path, binary=True)
    assert path.read_bytes() == b"old file" and [p.name for p in tmp_path.iterdir()] == ["v.bin"]
    # The text format keeps float64 exactly, so it stays available for such vectors.
    wv.save_word2vec_format(path)
    np.testing.assert_array_equal(fastnlp.WordVectors.load_word2vec_format(path, dtype=np.float64).vectors, wv.vectors)


@pytest.mark.parametrize("words", [["y\x00", "y"], ["x", "x\x00"], ["\x00", "\x00\x00"], ["", " a ", "é\ud800"]],
                         ids=["trailing-nul", "nul-twin", "only-nuls", "empty-spaces-surrogate"])
def test_npz_words_round_trip_exactly(tmp_path, words):
    wv = fastnlp.WordVectors(np.arange(2 * len(words), dtype=np.float32).reshape(len(words), 2), words)
    loaded = fastnlp.WordVectors.load(wv.save(tmp_path / "v.npz"))
    assert loaded.words == tuple(words)
    np.testing.assert_array_equal(loaded.vectors, wv.vectors)


def test_npz_vectors_written_with_a_words_string_array_still_load(tmp_path):
    # The layout of earlier versions: words as a NumPy unicode array.
    path = tmp_path / "old.npz"
    np.savez(path, vectors=np.eye(2, dtype=np.float32), words=np.array(["naïve", "b"]))
    loaded = fastnlp.WordVectors.load(path)
    assert loaded.words == ("naïve", "b") and loaded.vectors.dtype == np.float32


@pytest.mark.parametrize("offsets, message", [([0, 1], "do not split"), ([0, 2, 1, 3], "do not split"),
                                              ([1, 2, 3], "do not split"), ([0, 1, 3], "2 words for 3 vectors")])
def test_npz_with_damaged_word_offsets_is_reported(tmp_path, offsets, message):
    path = tmp_path / "v.npz"
    np.savez(path, vectors=np.eye(3), word_bytes=np.frombuffer(b"abc", np.uint8), word_offsets=np.array(offsets))
    with pytest.raises(ValueError, match=message):
        fastnlp.WordVectors.load(path)


@pytest.mark.parametrize("values, dtype, error, message", [
    ([1000.7], np.int8, ValueError, "fractional values"),
    ([1000.0], np.int8, OverflowError, "beyond the int8 range"),
    ([-1.0], np.uint16, OverflowError, "beyond the uint16 range"),
    ([np.nan], np.int32, ValueError, "NaN or inf"),
    ([2.0], np.bool_, ValueError, "other than 0 and 1"),
    ([70000], np.float16, OverflowError, "float16 range"),
])
def test_integer_and_narrow_targets_refuse_instead_of_wrapping(tmp_path, values, dtype, error, message):
    path = tmp_path / "params.npz"
    fastnlp.save_params(path, [np.ones(2, np.float32)])
    before = path.read_bytes()
    with pytest.raises(error, match=f"param 1 .*{message}"):
        fastnlp.save_params(path, [np.zeros(1), np.array(values)], dtype=dtype)
    assert path.read_bytes() == before  # checked before the file is touched


def test_integer_target_keeps_integral_values_exactly(tmp_path):
    path = fastnlp.save_params(tmp_path / "ints.npz", [np.array([-128.0, 0.0, 127.0])], dtype=np.int8)
    (loaded,) = fastnlp.load_params(path, dtype=None)
    assert loaded.dtype == np.int8 and loaded.tolist() == [-128, 0, 127]
