"""The shared calibration (kernels/calibration.py): each op's default backend measured here once,
lazily, cached per machine; off with FASTNLP_CALIBRATION=off; a user's choice always wins."""
import json

import pytest

import fastnlp
from fastnlp.kernels import calibration, dispatch, registry

OPS = [op for op in registry.ops() if registry.spec(op).calibration is None]


@pytest.fixture
def fresh_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(calibration.ENV_VAR, raising=False)
    monkeypatch.setattr(dispatch, "_selected", None)
    monkeypatch.setattr(dispatch, "_env_choice", None)
    calibration.forget()
    yield tmp_path / "fastnlp" / "calibration"
    calibration.forget()


def _fake_measure(monkeypatch, seconds, measured=None):
    """Rankings from ``seconds`` ({backend: s}) for every op's loaded candidates."""
    def measure(op):
        if measured is not None:
            measured.append(op)
        return sorted(([b, seconds[b]] for b in calibration.candidates(op)), key=lambda pair: pair[1])

    monkeypatch.setattr(calibration, "_measure", measure)


def test_an_op_is_measured_at_its_first_call_once_and_read_back_from_disk(fresh_calibration, monkeypatch):
    measured = []
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 2.0, "numpy": 3.0}, measured)
    assert not list(fresh_calibration.glob("ops-*.json"))  # nothing measured before a call
    first = registry.backend_for("scatter_add")
    registry.backend_for("scatter_add")
    assert measured == ["scatter_add"]
    (saved,) = fresh_calibration.glob("ops-*.json")
    content = json.loads(saved.read_text())
    assert content["key"] == calibration.machine_key() and "scatter_add" in content["ops"]
    calibration.forget()  # a new process: the file answers
    monkeypatch.setattr(calibration, "_measure", lambda op: pytest.fail(f"{op} was measured again"))
    assert registry.backend_for("scatter_add") == first


def test_a_cached_ranking_without_a_backend_that_loads_now_is_measured_again(fresh_calibration, monkeypatch):
    # A cache written before a backend existed (or was built) must not hide it forever.
    measured = []
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 2.0, "numpy": 3.0}, measured)
    registry.backend_for("scatter_add")
    calibration._state["ops"]["scatter_add"] = [["numpy", 3.0]]  # as if only numpy had loaded then
    assert calibration.preference("scatter_add")[0] == "numba"
    assert measured == ["scatter_add", "scatter_add"]
    calibration.preference("scatter_add")  # complete again: answered from the cache
    assert measured == ["scatter_add", "scatter_add"]


def test_the_fastest_backend_runs_and_a_close_call_keeps_the_static_order(fresh_calibration, monkeypatch):
    loaded = [b for b in ("cython", "numba") if dispatch.backend_reason(b) is None]
    if len(loaded) < 2:
        pytest.skip("needs both compiled backends")
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 2.0, "numpy": 30.0})
    assert registry.backend_for("lstm_step_forward") == "numba"
    assert calibration.preference("lstm_step_forward") == ("numba", "cython", "numpy")
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 1.05, "numpy": 30.0})  # within TIE: noise
    calibration.calibrate(["lstm_step_forward"], refresh=True)
    assert registry.backend_for("lstm_step_forward") == "cython"
    _fake_measure(monkeypatch, {"numba": 3.0, "cython": 2.0, "numpy": 1.0})
    calibration.calibrate(["lstm_step_forward"], refresh=True)
    assert calibration.preference("lstm_step_forward") == ("numpy", "cython", "numba")


def test_a_user_choice_wins_over_the_measurement(fresh_calibration, monkeypatch):
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 2.0, "numpy": 3.0})
    with fastnlp.use_backend("numpy"):
        assert registry.backend_for("scatter_add") == "numpy"
    fastnlp.set_backend("numpy")
    try:
        assert registry.resolved_backends()["scatter_add"] == "numpy"
    finally:
        dispatch._selected = None


def test_off_means_the_static_preference_and_no_measuring(fresh_calibration, monkeypatch):
    monkeypatch.setenv(calibration.ENV_VAR, "off")
    monkeypatch.setattr(calibration, "_measure", lambda op: pytest.fail(f"{op} was measured"))
    for op in OPS:
        assert calibration.preference(op) == registry.spec(op).preference
    resolved = registry.resolved_backends()
    assert set(resolved) == set(registry.ops()) and set(resolved.values()) <= set(dispatch.HOST_BACKENDS)
    assert not list(fresh_calibration.glob("ops-*.json"))


def test_another_machine_gets_its_own_file_and_a_damaged_file_is_measured_again(fresh_calibration, monkeypatch):
    measured = []
    _fake_measure(monkeypatch, {"numba": 1.0, "cython": 2.0, "numpy": 3.0}, measured)
    calibration.preference("id_range")
    calibration.forget()
    monkeypatch.setattr(calibration.cpu, "model_name", lambda: "another CPU")
    calibration.preference("id_range")
    assert measured == ["id_range", "id_range"] and len(list(fresh_calibration.glob("ops-*.json"))) == 2
    for saved in fresh_calibration.glob("ops-*.json"):
        saved.write_text("{not json")
    calibration.forget()
    calibration.preference("id_range")
    assert len(measured) == 3


def test_a_real_measurement_ranks_every_loaded_candidate(fresh_calibration):
    result = calibration.calibrate(["scatter_add", "id_range"])
    for op in ("scatter_add", "id_range"):
        ranking = result[op]
        assert {b for b, _ in ranking} == set(calibration.candidates(op))
        if len(ranking) > 1:
            assert all(s > 0 for _, s in ranking) and [s for _, s in ranking] == sorted(s for _, s in ranking)
    assert set(calibration.calibrate(["scatter_add"], refresh=True)) >= {"scatter_add", "id_range"}
