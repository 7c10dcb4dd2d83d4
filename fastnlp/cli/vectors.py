"""``fastnlp similar``, ``fastnlp analogy`` and ``fastnlp project``: query and draw saved word vectors.

VECTORS is any file of word vectors: one written by fastnlp (``.npz``: WordVectors, or a Word2Vec
model, whose input vectors are used), or the word2vec text or binary format (told apart by the
file's contents, whatever its name).
"""
from __future__ import annotations

import importlib.util
import os
import zipfile

from ._common import UsageError, existing_file, int_at_least, output_file

_ZIP_MAGIC = b"PK\x03\x04"  # .npz files are zip archives
_VECTORS_HELP = ("word vectors: a fastnlp .npz (WordVectors or Word2Vec) or the word2vec text or binary "
                 "format (detected from the contents)")


def _kind_of(obj) -> str:
    if isinstance(obj, list):
        return "list of arrays (parameters without a class)"
    return type(obj).__name__


def load_vectors(path):
    """The ``WordVectors`` in ``path``: a fastnlp file (WordVectors, or an object with ``.wv``
    such as Word2Vec) or the word2vec text/binary format. ValueError with one clear line for a
    file of another kind ("PATH holds a Seq2seq, not word vectors") or a damaged file."""
    import fastnlp

    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        try:
            obj = fastnlp.load(path)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path} is not a readable .npz file ({exc})") from None
        if isinstance(obj, fastnlp.WordVectors):
            return obj
        wv = getattr(obj, "wv", None)
        if isinstance(wv, fastnlp.WordVectors):
            return wv
        raise ValueError(f"{path} holds a {_kind_of(obj)}, not word vectors")
    if not head:
        raise ValueError(f"{path} is empty, not a file of word vectors")
    try:
        return fastnlp.WordVectors.load_word2vec_format(path)
    except ValueError as exc:
        message = str(exc)
        for prefix in (f"{path}: ", f"{path} "):
            message = message.removeprefix(prefix)
        raise ValueError(f"{path} is neither a fastnlp .npz file nor in the word2vec format: {message}") from None


def _check_words(vectors, path, words) -> None:
    """Every word first, so an unknown one is found before anything is printed."""
    for word in words:
        if word not in vectors:
            raise KeyError(f"word {word!r} is not in {path} ({len(vectors):,} words)")


def _similar(args) -> int:
    vectors = load_vectors(args.vectors)
    _check_words(vectors, args.vectors, args.words)
    for n, word in enumerate(args.words):
        print(("\n" if n else "") + f"[query] {word}")
        for other, score in vectors.most_similar(word, top=args.top):
            print(f" {other}: {score:.3f}")
    return 0


def _analogy(args) -> int:
    vectors = load_vectors(args.vectors)
    _check_words(vectors, args.vectors, (args.a, args.b, args.c))
    answers = vectors.analogy(args.a, args.b, args.c, top=args.top, method=args.method)
    print(f"[analogy] {args.a} : {args.b} = {args.c} : ?")
    for word, score in answers:
        print(f" {word}: {score:.3f}")
    return 0


def project_2d(matrix, method: str = "pca", seed: int = 0):
    """(coordinates (n, 2), axis labels) of the rows of ``matrix`` projected to 2-D: PCA by
    NumPy's SVD of the centred rows (labels give each axis's share of the variance), or t-SNE
    (scikit-learn)."""
    import numpy as np

    x = np.asarray(matrix, dtype=np.float64)
    n = x.shape[0]
    if method == "pca":
        centred = x - x.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        coords = np.zeros((n, 2))
        k = min(2, vt.shape[0])
        coords[:, :k] = centred @ vt[:k].T
        variance = s ** 2
        total = variance.sum()
        shares = [variance[i] / total if total > 0 and i < len(variance) else 0.0 for i in range(2)]
        return coords, [f"PC{i + 1} ({share:.0%} of the variance)" for i, share in enumerate(shares)]
    if method == "tsne":
        from sklearn.manifold import TSNE

        # t-SNE needs perplexity < n; a few words get a small one.
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        return coords, ["t-SNE 1", "t-SNE 2"]
    raise ValueError(f"unknown projection method {method!r}; expected 'pca' or 'tsne'")


def _project(args) -> int:
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'fastnlp[plot]'")
    if args.method == "tsne" and importlib.util.find_spec("sklearn") is None:
        raise UsageError("--method tsne needs scikit-learn: pip install scikit-learn (or use --method pca)")
    words = list(dict.fromkeys(args.words))  # a word given twice is drawn once
    if len(words) < 3:
        raise UsageError(f"--words: give at least 3 different words to project, got {len(words)}")
    vectors = load_vectors(args.vectors)
    _check_words(vectors, args.vectors, words)

    from fastnlp.plot import new_figure, save_figure

    matrix = vectors.unit_vectors[[vectors.get_index(w) for w in words]]
    coords, (xlabel, ylabel) = project_2d(matrix, args.method, seed=args.seed)
    fig = new_figure("fastnlp project", figsize=(7, 6))
    ax = fig.subplots()
    ax.scatter(coords[:, 0], coords[:, 1], s=12)
    for word, (x, y) in zip(words, coords):
        ax.annotate(word, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    name = "PCA" if args.method == "pca" else "t-SNE"
    ax.set_title(f"{len(words)} words of {os.path.basename(args.vectors)}: {name} of the unit vectors")
    fig.tight_layout()
    save_figure(fig, args.plot, "the projection")
    print(f"{len(words)} words projected ({name}) and drawn to {args.plot}")
    return 0


def register(jobs) -> None:
    positive = int_at_least(1)

    similar = jobs.add_parser("similar", help="the words nearest to each word (cosine) in saved vectors",
                              description="Print the words nearest to each WORD by cosine similarity. "
                                          + _VECTORS_HELP[0].upper() + _VECTORS_HELP[1:] + ".")
    similar.add_argument("vectors", metavar="VECTORS", type=existing_file, help=_VECTORS_HELP)
    similar.add_argument("words", metavar="WORD", nargs="+", help="the words to query")
    similar.add_argument("--top", type=positive, default=5, help="how many neighbours to print per word")
    similar.set_defaults(run=_similar)

    analogy = jobs.add_parser("analogy", help="answer A : B = C : ? from saved vectors",
                              description="Answer the analogy A is to B as C is to ? (the words nearest to "
                                          "B - A + C, never A, B or C).")
    analogy.add_argument("vectors", metavar="VECTORS", type=existing_file, help=_VECTORS_HELP)
    analogy.add_argument("a", metavar="A", help="first word, e.g. man")
    analogy.add_argument("b", metavar="B", help="its counterpart, e.g. king")
    analogy.add_argument("c", metavar="C", help="the word to find a counterpart for, e.g. woman")
    analogy.add_argument("--top", type=positive, default=5, help="how many answers to print")
    analogy.add_argument("--method", choices=("3cosadd", "3cosmul"), default="3cosadd",
                         help="3cosadd: cosine with B - A + C; 3cosmul: Levy and Goldberg's multiplicative form")
    analogy.set_defaults(run=_analogy)

    project = jobs.add_parser("project", help="draw words of saved vectors in 2-D (PCA or t-SNE)",
                              description="Project the vectors of the given words to two dimensions and draw "
                                          "them, each point labelled with its word (needs matplotlib; t-SNE "
                                          "needs scikit-learn).")
    project.add_argument("vectors", metavar="VECTORS", type=existing_file, help=_VECTORS_HELP)
    project.add_argument("--words", nargs="+", required=True, metavar="WORD", help="the words to draw (at least 3)")
    project.add_argument("--plot", required=True, type=output_file("--plot", figure=True),
                         help="the image to write; its suffix names the format (.png, .pdf, .svg, ...)")
    project.add_argument("--method", choices=("pca", "tsne"), default="pca",
                         help="pca: the two main directions (NumPy SVD); tsne: t-SNE (scikit-learn)")
    project.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of t-SNE")
    project.set_defaults(run=_project)
