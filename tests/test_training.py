import numpy as np
import pytest

import fastnlp
from conftest import savefig_writing_half_then_failing
from fastnlp import optim
from fastnlp.datasets import load_spiral


def test_spiral_matches_the_book():
    x, t = load_spiral()
    assert x.shape == (300, 2) and t.shape == (300, 3) and x.dtype == np.float32
    assert (t.sum(axis=1) == 1).all()
    assert load_spiral(dtype=np.float64)[0].dtype == np.float64


def test_two_layer_net_reaches_95_percent_on_the_spiral():
    """The book's setting: hidden 10, 300 epochs, batch 30, SGD lr 1.0."""
    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, 10, 3, seed=0)
    trainer = fastnlp.Trainer(model, optim.SGD(lr=1.0), seed=0)
    history = trainer.fit(x, t, max_epoch=300, batch_size=30, eval_interval=10, progress=False)
    assert history[-1] < history[0] / 4
    assert model.accuracy(x, t) >= 0.95


def test_trainer_gradient_check_of_the_whole_net():
    x, t = load_spiral(n_per_class=4, dtype=np.float64)
    model = fastnlp.TwoLayerNet(2, 5, 3, seed=1, dtype=np.float64)

    class Whole:
        params, grads = model.params, model.grads

        def forward(self, x, t):
            return model.forward(x, t)

        def backward(self, dout=1):
            return model.backward(dout)

    fastnlp.gradcheck(Whole(), x, t)


def test_trainer_stops_on_nan_loss():
    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, 10, 3, seed=0)
    model.params[0][...] = np.nan
    with pytest.raises(FloatingPointError, match="epoch 1, iteration 1 .*NaN or inf"):
        fastnlp.Trainer(model, optim.SGD()).fit(x, t, max_epoch=1, progress=False)


def test_trainer_refuses_non_finite_data_up_front():
    x, t = load_spiral()
    x[7, 1] = np.inf
    with pytest.raises(ValueError, match="training inputs contain NaN or inf"):
        fastnlp.Trainer(fastnlp.TwoLayerNet(2, 3, 3), optim.SGD()).fit(x, t, progress=False)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(max_grad=-1), ValueError, "max_grad must be positive and finite"),
    (dict(max_grad=float("nan")), ValueError, "max_grad must be positive and finite"),
    (dict(eval_interval=-1), ValueError, "eval_interval must be a positive integer"),
    (dict(eval_interval=0), ValueError, "eval_interval must be a positive integer"),
    (dict(eval_interval=2.5), TypeError, "eval_interval must be an integer"),
    (dict(max_epoch=0), ValueError, "max_epoch must be a positive integer"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=True), TypeError, "batch_size must be an integer"),
])
def test_fit_rejects_bad_arguments_before_any_step(kwargs, error, message):
    """max_grad=-1 used to flip every gradient (the loss climbed from 7.7 to 2665)."""
    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, 3, 3, seed=0)
    before = [p.copy() for p in model.params]
    with pytest.raises(error, match=message):
        fastnlp.Trainer(model, optim.SGD()).fit(x, t, progress=False, **kwargs)
    for p, q in zip(model.params, before):
        np.testing.assert_array_equal(p, q)


class RecordingModel:
    """Records each batch size; its loss is the mean of x, so the history is checkable."""

    def __init__(self):
        self.params, self.grads, self.batches = [np.zeros(1)], [np.zeros(1)], []

    def forward(self, x, t):
        self.batches.append(len(x))
        return float(x.mean())

    def backward(self, dout=1):
        return None


def test_batch_larger_than_the_data_is_one_batch_per_epoch():
    model = RecordingModel()
    trainer = fastnlp.Trainer(model, optim.SGD(), seed=0)
    x = np.arange(10.0)
    history = trainer.fit(x, x, max_epoch=3, batch_size=100, progress=False)  # eval_interval 20 > 3 steps
    assert model.batches == [10, 10, 10]
    assert history == [pytest.approx(4.5)]  # never an empty history
    assert trainer.eval_interval == 3


def test_trainer_finds_tied_params_once_and_updates_them_once():
    """An embedding tied to an output projection (W and W.T), plus two params cut from one buffer."""
    W = np.zeros((4, 2))
    flat = np.zeros(4)
    a, b = flat[:2], flat[2:]

    class Tied(RecordingModel):
        def __init__(self):
            super().__init__()
            self.params = [W, a, W.T, b]
            self.grads = [np.ones((4, 2)), np.ones(2), np.full((2, 4), 2.0), np.full(2, 5.0)]

    model = Tied()
    trainer = fastnlp.Trainer(model, optim.SGD(lr=1.0), seed=0)
    assert [p is q for p, q in zip(trainer.ties.params, [W, a, b])] == [True, True, True]
    trainer.fit(np.ones(3), np.ones(3), max_epoch=2, batch_size=3, progress=False)
    np.testing.assert_array_equal(W, -6.0)  # (1 + 2) per step, once per step
    np.testing.assert_array_equal(flat, [-2.0, -2.0, -10.0, -10.0])


def test_trainer_rejects_empty_and_mismatched_data():
    model = fastnlp.TwoLayerNet(2, 3, 3)
    trainer = fastnlp.Trainer(model, optim.SGD())
    with pytest.raises(ValueError, match="no training data"):
        trainer.fit(np.zeros((0, 2)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="5 inputs but 4 targets"):
        trainer.fit(np.zeros((5, 2)), np.zeros((4, 3)))


def test_trainer_progress_bar_and_clipping_run(capsys):
    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, 10, 3, seed=0)
    trainer = fastnlp.Trainer(model, optim.Adam(), seed=0)
    history = trainer.fit(x, t, max_epoch=2, batch_size=30, max_grad=0.5, eval_interval=5, progress=True)
    assert len(history) == 4


def trained_trainer():
    x, t = load_spiral()
    trainer = fastnlp.Trainer(fastnlp.TwoLayerNet(2, 4, 3, seed=0), optim.SGD(1.0), seed=0)
    trainer.fit(x, t, max_epoch=3, batch_size=30, progress=False)
    return trainer


def test_plot_returns_the_figure_and_writes_a_valid_png(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    trainer = trained_trainer()
    fig = trainer.plot(tmp_path / "loss.png")
    assert isinstance(fig, Figure)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), trainer.loss_list)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(tmp_path / "loss.png").ndim == 3  # decodes as a whole image
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # no temporary file left behind
    assert isinstance(trainer.plot(None), Figure) and len(list(tmp_path.iterdir())) == 1
    trainer.plot(tmp_path / "loss.SVG")
    assert b"<svg" in (tmp_path / "loss.SVG").read_bytes()[:1000]


def test_plot_refuses_a_name_that_is_not_an_image_before_drawing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastnlp import plot

    assert plot.check_figure_path("curve.PNG") == "png" and plot.check_figure_path("a/b.pdf") == "pdf"
    monkeypatch.setattr(plot, "new_figure", lambda *a, **k: pytest.fail("drew a figure for a bad name"))
    for name in ("loss.txt", "loss"):
        with pytest.raises(ValueError, match=r"\.png.*\.svg"):
            trained_trainer().plot(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_plot_refuses_a_read_only_file_and_leaves_it_unchanged(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    path.write_bytes(b"old picture")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        trained_trainer().plot(path)  # also as root, which the OS would let overwrite it
    assert path.read_bytes() == b"old picture" and oct(path.stat().st_mode & 0o777) == "0o444"


def test_plot_failing_midway_leaves_the_old_file_intact(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    path = tmp_path / "loss.png"
    path.write_bytes(b"old picture")

    monkeypatch.setattr(Figure, "savefig", savefig_writing_half_then_failing)
    with pytest.raises(OSError, match="No space"):
        trained_trainer().plot(path)
    assert path.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]


def test_plot_over_the_file_size_limit_leaves_the_old_file_intact(tmp_path):
    """``ulimit -f 8``: the write fails with EFBIG (Python ignores SIGXFSZ) after 8 KiB."""
    pytest.importorskip("matplotlib")
    resource = pytest.importorskip("resource")
    trainer = trained_trainer()
    path = tmp_path / "loss.png"
    trainer.plot(path)
    old = path.read_bytes()
    assert len(old) > 8 * 1024
    trainer.loss_list.append(0.0)  # a different picture
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 1024, hard))
    try:
        with pytest.raises(OSError):
            trainer.plot(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]
