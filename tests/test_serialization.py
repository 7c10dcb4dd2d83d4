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
