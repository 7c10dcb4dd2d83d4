"""Seq2seq models (book ch. 7-8): gradients, batched greedy generation, evaluation, heat map, training."""
import io

import numpy as np
import pytest

import fastnlp
from conftest import savefig_writing_half_then_failing
from fastnlp import optim
from fastnlp.datasets import encode_sequences, generate_additions
from fastnlp.gradcheck import check_layer
from fastnlp.models import AttentionSeq2seq, PeekySeq2seq, Seq2seq, Transformer, eval_seq2seq, seq2seq_accuracy

V = 6
rng = np.random.default_rng(0)
XS, TS = rng.integers(0, V, (3, 5)), rng.integers(0, V, (3, 4))

MODELS = {
    "Seq2seq": lambda dtype=np.float32: Seq2seq(V, 3, 4, seed=0, dtype=dtype),
    "PeekySeq2seq": lambda dtype=np.float32: PeekySeq2seq(V, 3, 4, seed=0, dtype=dtype),
    "AttentionSeq2seq": lambda dtype=np.float32: AttentionSeq2seq(V, 3, 4, seed=0, dtype=dtype),
    "AttentionSeq2seq-bidirectional": lambda dtype=np.float32: AttentionSeq2seq(V, 3, 4, seed=0, dtype=dtype,
                                                                                 bidirectional=True),
    "Transformer": lambda dtype=np.float32: Transformer(V, d_model=4, n_heads=2, d_ff=8, n_layers=1, seed=0,
                                                        dtype=dtype),
}
RECURRENT = [name for name in MODELS if name != "Transformer"]


@pytest.mark.parametrize("name", RECURRENT)
def test_float64_gradient_check(name):
    check_layer(MODELS[name](np.float64), XS, TS)


@pytest.mark.parametrize("name", list(MODELS))
def test_generation_is_batched_and_equals_one_question_at_a_time(name):
    model = MODELS[name]()
    xs = rng.integers(0, V, (7, 5))
    out = model.generate(xs, 2, 4)
    assert out.shape == (7, 4) and out.dtype == np.int64
    for i in range(7):
        np.testing.assert_array_equal(model.generate(xs[i:i + 1], 2, 4), out[i:i + 1])
    starts = np.array([2, 3, 2, 3, 2, 3, 2])
    mixed = model.generate(xs, starts, 4)
    np.testing.assert_array_equal(mixed[starts == 2], out[starts == 2])
    assert model.generate(xs, 2, 0).shape == (7, 0)


def test_generation_stops_when_every_sequence_has_ended(monkeypatch):
    model = Seq2seq(V, 3, 4, seed=0)
    out = model.generate(XS, 2, 8)
    end_id = int(out[0, 1])  # a symbol the first sequence emits at step 2
    steps = []
    original = model.decoder.lstm.forward
    monkeypatch.setattr(model.decoder.lstm, "forward", lambda xs: steps.append(1) or original(xs))
    ended = model.generate(XS, 2, 8, end_id=end_id)
    first_end = [int(np.argmax(row == end_id)) if (row == end_id).any() else None for row in out]
    for row, plain, k in zip(ended, out, first_end):
        if k is None:
            np.testing.assert_array_equal(row, plain)
        else:
            np.testing.assert_array_equal(row[:k + 1], plain[:k + 1])
            assert (row[k:] == end_id).all()
    if all(k is not None for k in first_end):
        assert len(steps) == max(first_end) + 1


def test_attention_weights_are_kept_for_every_generated_step():
    model = AttentionSeq2seq(V, 3, 4, seed=0)
    model.generate(XS, 2, 6)
    weights = model.attention_weights
    assert weights.shape == (3, 6, 5)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, rtol=1e-5)
    model.forward(XS, TS)
    assert model.attention_weights.shape == (3, 3, 5)


@pytest.mark.parametrize("name", ["AttentionSeq2seq", "AttentionSeq2seq-bidirectional", "Transformer"])
def test_attention_weights_belong_to_the_last_generate_only(name):
    model = MODELS[name]()
    model.generate(XS, 2, 6)
    model.generate(XS[:2], 2, 0)
    assert model.attention_weights.shape == (2, 0, 5)  # no steps, not the previous call's 6
    model.generate(XS, 2, 3)
    with pytest.raises(ValueError, match="one per question"):
        model.generate(XS, [1, 2], 3)
    assert model.attention_weights is None


def test_eval_seq2seq_and_batched_accuracy_agree(capsys):
    model = PeekySeq2seq(V, 3, 4, seed=0)
    id_to_char = {i: "abcdef"[i] for i in range(V)}
    xs = rng.integers(0, V, (20, 5))
    guess = model.generate(xs, 2, 3)
    ts = np.concatenate([np.full((20, 1), 2), guess], axis=1)
    ts[::2, 1] = (ts[::2, 1] + 1) % V  # every other answer wrong
    marks = [eval_seq2seq(model, xs[i:i + 1], ts[i], id_to_char) for i in range(20)]
    assert marks == [0, 1] * 10
    assert seq2seq_accuracy(model, xs, ts, batch_size=7) == 0.5
    out = io.StringIO()
    seq2seq_accuracy(model, xs, ts, id_to_char, show_wrong=2, file=out, is_reverse=True)
    assert out.getvalue().count("\nX ") == 2 and out.getvalue().startswith("Q " + "".join(
        id_to_char[int(i)] for i in xs[0][::-1]))
    assert eval_seq2seq(model, xs[1], ts[1], id_to_char, verbose=True) == 1
    printed = capsys.readouterr().out
    assert printed.startswith("Q ") and "\nO " in printed


def test_bad_input_is_refused_clearly():
    model = Seq2seq(V, 3, 4, seed=0)
    with pytest.raises(IndexError, match="id 6 in the questions is outside the vocabulary of 6"):
        model.forward(np.full((3, 5), V), TS)
    with pytest.raises(ValueError, match="3 questions but 2 answers"):
        model.forward(XS, TS[:2])
    with pytest.raises(ValueError, match="start symbol"):
        model.forward(XS, TS[:, :1])
    with pytest.raises(TypeError, match="integer ids"):
        model.generate(XS.astype(np.float32), 2, 3)
    with pytest.raises(ValueError, match="one per question"):
        model.generate(XS, [1, 2], 3)
    with pytest.raises(ValueError, match="sample_size"):
        model.generate(XS, 2, -1)
    with pytest.raises(ValueError, match="must be even"):
        AttentionSeq2seq(V, 3, 5, bidirectional=True)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        Seq2seq(V, 3, 0)
    with pytest.raises(ValueError, match="show_wrong needs id_to_char"):
        seq2seq_accuracy(model, XS, TS, show_wrong=1)


def test_seq2seq_accuracy_checks_its_batch_size_and_answers_before_decoding(monkeypatch):
    model = Seq2seq(V, 3, 4, seed=0)
    monkeypatch.setattr(model, "generate", lambda *a, **k: pytest.fail("decoded despite bad arguments"))
    for batch_size in (-1, 0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            seq2seq_accuracy(model, XS, TS, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"answers must be .* got shape \(3, 1\)"):
        seq2seq_accuracy(model, XS, TS[:, :1])  # the start column alone: nothing to compare
    with pytest.raises(ValueError, match=r"answers must be .* got shape \(3,\)"):
        seq2seq_accuracy(model, XS, TS[:, 0])
    with pytest.raises(ValueError, match=r"questions must be .* got shape \(5,\)"):
        seq2seq_accuracy(model, XS[0], TS[:1])
    with pytest.raises(ValueError, match="3 questions but 2 answers"):
        seq2seq_accuracy(model, XS, TS[:2])
    with pytest.raises(ValueError, match="no questions"):
        seq2seq_accuracy(model, XS[:0], TS[:0])
    monkeypatch.undo()
    assert 0 <= seq2seq_accuracy(model, XS, TS, batch_size=np.int64(2)) <= 1


ID_TO_CHAR = {i: "0123_ "[i] for i in range(V)}


def test_plot_attention_saves_a_heat_map(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    id_to_char = ID_TO_CHAR
    for model in (AttentionSeq2seq(V, 3, 4, seed=0), MODELS["Transformer"]()):
        path, answer, weights = fastnlp.plot_attention(model, XS[0], tmp_path / "map.png", id_to_char=id_to_char,
                                                       start_id=4, sample_size=3, is_reverse=True)
        assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert imread(path).ndim == 3
        assert len(answer) == 3 and weights.shape == (3, 5)
        assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="keeps no attention weights"):
        fastnlp.plot_attention(Seq2seq(V, 3, 4), XS[0], tmp_path / "x.png", id_to_char=id_to_char, start_id=4,
                               sample_size=3)


def plot_kwargs(**changes):
    return {"id_to_char": ID_TO_CHAR, "start_id": 4, "sample_size": 3, **changes}


def test_plot_attention_draws_one_question_and_refuses_a_batch(tmp_path):
    pytest.importorskip("matplotlib")
    model = AttentionSeq2seq(V, 3, 4, seed=0)
    _, answer, weights = fastnlp.plot_attention(model, XS[1:2], tmp_path / "one.png", **plot_kwargs())
    assert answer == "".join(ID_TO_CHAR[int(i)] for i in model.generate(XS[1:2], 4, 3)[0])
    with pytest.raises(ValueError, match=r"one question.*x\[i:i\+1\]"):
        fastnlp.plot_attention(model, XS[:2], tmp_path / "two.png", **plot_kwargs())
    with pytest.raises(ValueError, match="one question"):
        fastnlp.plot_attention(model, XS[:1, None], tmp_path / "two.png", **plot_kwargs())
    assert not (tmp_path / "two.png").exists()


def test_plot_attention_scales_the_colours_to_the_weights_and_labels_them(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastnlp import plot

    figures = []
    save_figure = plot.save_figure
    monkeypatch.setattr(plot, "save_figure", lambda fig, *a, **k: figures.append(fig) or save_figure(fig, *a, **k))
    _, _, weights = fastnlp.plot_attention(AttentionSeq2seq(V, 3, 4, seed=0), XS[0], tmp_path / "map.png",
                                           **plot_kwargs())
    assert weights.max() < 0.5  # an untrained model looks everywhere: on a 0-1 scale all of it is dark
    image_axes, colorbar_axes = figures[0].axes
    assert image_axes.images[0].get_clim() == pytest.approx((weights.min(), weights.max()))
    assert image_axes.get_title() and colorbar_axes.get_ylabel() == "attention weight"


def test_plot_attention_stops_at_the_end_symbol(tmp_path):
    pytest.importorskip("matplotlib")
    model = AttentionSeq2seq(V, 3, 4, seed=0)
    plain = model.generate(XS[:1], 4, 6)[0]
    end_id = int(plain[1])
    stop = int(np.argmax(plain == end_id))
    _, answer, weights = fastnlp.plot_attention(model, XS[0], tmp_path / "map.png",
                                                **plot_kwargs(sample_size=6, end_id=end_id))
    assert answer == "".join(ID_TO_CHAR[int(i)] for i in plain[:stop + 1]) and weights.shape == (stop + 1, 5)


def test_plot_attention_checks_the_file_name_before_decoding(tmp_path):
    pytest.importorskip("matplotlib")
    model = AttentionSeq2seq(V, 3, 4, seed=0)
    with pytest.raises(ValueError, match=r"\.txt.*use one of.*\.png"):
        fastnlp.plot_attention(model, XS[0], tmp_path / "map.txt", **plot_kwargs())
    assert model.attention_weights is None and list(tmp_path.iterdir()) == []


def test_plot_attention_writes_atomically(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    model = AttentionSeq2seq(V, 3, 4, seed=0)
    read_only = tmp_path / "read-only.png"
    read_only.write_bytes(b"old picture")
    read_only.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        fastnlp.plot_attention(model, XS[0], read_only, **plot_kwargs())
    assert read_only.read_bytes() == b"old picture"

    path = tmp_path / "map.png"
    path.write_bytes(b"old picture")
    monkeypatch.setattr(Figure, "savefig", savefig_writing_half_then_failing)
    with pytest.raises(OSError, match="No space"):
        fastnlp.plot_attention(model, XS[0], path, **plot_kwargs())
    assert path.read_bytes() == b"old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "read-only.png"]


@pytest.mark.parametrize("name", ["reversed + Peeky", "attention"])
def test_models_learn_addition_of_small_numbers(name):
    """One-digit additions (100 problems): a few seconds of the Trainer with Adam and clipping."""
    lines = generate_additions(100, seed=0, digits=1)
    chars = sorted(set("".join(lines)))
    char_to_id = {c: i for i, c in enumerate(chars)}
    x, t = encode_sequences(lines, char_to_id)
    x = np.ascontiguousarray(x[:, ::-1])
    model = (PeekySeq2seq if name == "reversed + Peeky" else AttentionSeq2seq)(len(chars), 8, 32, seed=0)
    fastnlp.Trainer(model, optim.Adam(0.005), seed=0).fit(x, t, max_epoch=110, batch_size=25, max_grad=5.0,
                                                          progress=False)
    assert seq2seq_accuracy(model, x, t) >= 0.9
