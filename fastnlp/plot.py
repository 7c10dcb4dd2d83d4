"""Figures (matplotlib, imported only when a figure is drawn: pip install 'fastnlp[plot]').

Figures are made without pyplot, so drawing one neither picks a backend (a notebook keeps its
own) nor leaves figures open. They are saved like every file the library writes, atomically
(``serialization.atomic_write``), in the format named by the path's suffix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .serialization import atomic_write


def new_figure(who, **kwargs):
    """A matplotlib ``Figure(**kwargs)`` outside pyplot; ``who`` names the caller in the
    ImportError raised when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"{who} needs matplotlib: pip install 'fastnlp[plot]'") from exc
    return Figure(**kwargs)


def check_figure_path(path, who="a figure") -> str:
    """The image format (``'png'``, ``'pdf'``, ``'svg'``, ...) that ``path``'s suffix names, or a
    ValueError listing the formats matplotlib can write. Cheap: call it before a long run whose
    figure goes to ``path``, so a bad name fails before the work rather than after it."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise ImportError(f"{who} needs matplotlib: pip install 'fastnlp[plot]'") from exc
    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower()
    if suffix[1:] not in supported:
        problem = "has no suffix" if not suffix else f"has the suffix {suffix}, which is not an image format"
        raise ValueError(f"cannot save {who} as {str(path)!r}: the name {problem}; use one of "
                         + ", ".join(f".{name}" for name in sorted(supported)))
    return suffix[1:]


def save_figure(fig, path, who="a figure") -> Path:
    """Write ``fig`` to ``path`` atomically (see ``atomic_write``: a read-only file or a missing
    folder is refused, and a failed write leaves the old file as it was), in the format of the
    suffix. Returns ``path`` as a Path."""
    image_format = check_figure_path(path, who)
    # format= is needed: the temporary file's name does not end in the target's suffix.
    return atomic_write(path, lambda f: fig.savefig(f, format=image_format))


def plot_attention(model, question, path="attention.png", *, id_to_char, start_id, sample_size,
                   is_reverse=False, end_id=None):
    """Answer ``question`` greedily with an attention model and save the heat map of where each
    output character looked: input characters along x, output characters along y (the book's
    figure 8-26), the grey scale spanning the weights' own range (a bar shows it). Returns
    ``(path, answer, weights)``.

    ``question``: one question, ids (T,) or (1, T), as fed to the model (reversed when it was
    trained on reversed questions: ``is_reverse=True`` then labels and orders the x axis the
    right way round). A batch of several is refused: pass ``x[i:i + 1]`` or ``x[i]`` and call
    once per question. With ``end_id`` the answer and the map stop at the end symbol. The
    file's format is ``path``'s suffix (``.png``, ``.pdf``, ``.svg``, ...; checked before the
    model runs) and it is written atomically. Works for AttentionSeq2seq and the Transformer
    (its last decoder block's attention over the question, heads averaged), see
    ``attention_weights_of``.
    """
    check_figure_path(path, "the attention map")
    question = np.asarray(question)
    if question.ndim == 0 or question.ndim > 2 or (question.ndim == 2 and question.shape[0] != 1):
        raise ValueError(f"plot_attention draws one question, ids (T,) or (1, T), got shape {question.shape}; "
                         "pass one question (x[i:i+1]) and call it once per question")
    question = question.reshape(1, -1)
    answer = np.asarray(model.generate(question, start_id, sample_size, end_id)).reshape(-1)
    weights = attention_weights_of(model)
    if end_id is not None and weights.shape[0] < len(answer) and np.all(answer[weights.shape[0]:] == end_id):
        answer = answer[:weights.shape[0]]  # decoding stopped at end_id; the rest is padding
    if weights.shape != (len(answer), question.shape[1]):
        raise ValueError(f"the model's attention weights have shape {weights.shape}; expected "
                         f"({len(answer)}, {question.shape[1]}) for this question and answer")
    inputs = [id_to_char[int(i)] for i in question[0]]
    if is_reverse:
        inputs, weights = inputs[::-1], weights[:, ::-1]
    outputs = [id_to_char[int(i)] for i in answer]
    size = (max(4.0, 0.3 * len(inputs) + 1), max(3.0, 0.3 * len(outputs) + 1))
    fig = new_figure("plot_attention", figsize=size)
    ax = fig.subplots()
    # Coloured by the data's range: early in training every weight is near 1/T_in, which a
    # fixed 0-1 scale would show as a uniform black.
    image = ax.imshow(weights, cmap="Greys_r", aspect="auto")
    ax.set_xticks(range(len(inputs)), [repr(c)[1:-1] if c != " " else "␣" for c in inputs])
    ax.set_yticks(range(len(outputs)), [c if c != " " else "␣" for c in outputs])
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    ax.set_title("where each output character looked")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    return save_figure(fig, path, "the attention map"), "".join(outputs), weights


def attention_weights_of(model, n: int = 0) -> np.ndarray:
    """(T_out, T_in) attention weights of item ``n`` after the model's last forward or generate
    (``model.attention_weights``: AttentionSeq2seq's, or the Transformer's last decoder block's
    attention over the question with its heads averaged)."""
    weights = getattr(model, "attention_weights", None)
    if weights is None:
        raise ValueError(f"{type(model).__name__} keeps no attention weights (run generate or forward first)")
    weights = weights.get() if hasattr(weights, "get") else weights
    return np.asarray(weights, dtype=np.float64)[n]
