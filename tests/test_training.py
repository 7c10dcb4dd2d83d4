import numpy as np
import pytest

import fastnlp
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
    with pytest.raises(FloatingPointError, match="loss became nan"):
        fastnlp.Trainer(model, optim.SGD()).fit(x, t, max_epoch=1, progress=False)


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


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, t = load_spiral()
    trainer = fastnlp.Trainer(fastnlp.TwoLayerNet(2, 4, 3, seed=0), optim.SGD(1.0), seed=0)
    trainer.fit(x, t, max_epoch=3, batch_size=30, progress=False)
    path = trainer.plot(tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
