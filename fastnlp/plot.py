"""Figures (matplotlib, imported only when a figure is drawn: pip install 'fastnlp[plot]')."""
from __future__ import annotations

import numpy as np


def _pyplot(who):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"{who} needs matplotlib: pip install 'fastnlp[plot]'") from exc
    return plt


def plot_attention(model, question, path="attention.png", *, id_to_char, start_id, sample_size,
                   is_reverse=False, end_id=None):
    """Answer ``question`` greedily with an attention model and save the heat map of where each
    output character looked: input characters along x, output characters along y (the book's
    figure 8-26). Returns ``(path, answer, weights)``.

    ``question``: ids (T,) or (1, T), as fed to the model (reversed when it was trained on
    reversed questions: ``is_reverse=True`` then labels and orders the x axis the right way
    round). Works for AttentionSeq2seq and the Transformer (its last decoder block's attention
    over the question, heads averaged), see ``attention_weights_of``.
    """
    plt = _pyplot("plot_attention")
    question = np.asarray(question).reshape(1, -1)
    answer = np.asarray(model.generate(question, start_id, sample_size, end_id)).reshape(-1)
    weights = attention_weights_of(model)
    if weights.shape != (len(answer), question.shape[1]):
        raise ValueError(f"the model's attention weights have shape {weights.shape}; expected "
                         f"({len(answer)}, {question.shape[1]}) for this question and answer")
    inputs = [id_to_char[int(i)] for i in question[0]]
    if is_reverse:
        inputs, weights = inputs[::-1], weights[:, ::-1]
    outputs = [id_to_char[int(i)] for i in answer]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(inputs) + 1), max(3.0, 0.3 * len(outputs) + 1)))
    image = ax.imshow(weights, cmap="Greys_r", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(inputs)), [repr(c)[1:-1] if c != " " else "␣" for c in inputs])
    ax.set_yticks(range(len(outputs)), [c if c != " " else "␣" for c in outputs])
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path, "".join(outputs), weights


def attention_weights_of(model, n: int = 0) -> np.ndarray:
    """(T_out, T_in) attention weights of item ``n`` after the model's last forward or generate
    (``model.attention_weights``: AttentionSeq2seq's, or the Transformer's last decoder block's
    attention over the question with its heads averaged)."""
    weights = getattr(model, "attention_weights", None)
    if weights is None:
        raise ValueError(f"{type(model).__name__} keeps no attention weights (run generate or forward first)")
    weights = weights.get() if hasattr(weights, "get") else weights
    return np.asarray(weights, dtype=np.float64)[n]
