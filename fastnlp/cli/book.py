"""The book's first jobs: ``spiral`` (ch. 1) and ``count`` (ch. 2).

``fastnlp train spiral`` and ``fastnlp train count`` run the same code with the options every
``train`` job has (see ``fastnlp.cli.train``); the options here are added by
``add_spiral_options`` / ``add_count_options`` for both.
"""
from __future__ import annotations

import argparse
import importlib.util
import time

from ..svd import DEFAULT_SVD_METHOD
from ._common import (UsageError, check_output_file, describe, describe_where_ops_ran, existing_file, existing_folder,
                      finite_float, int_at_least, max_window)

SPIRAL_EVAL_INTERVAL = 10
BOOK_QUERIES = ("you", "year", "car", "toyota")


def check_plot_path(path, option="--plot") -> None:
    """Refuse, before any work, a figure path that cannot be written or names no image format."""
    check_output_file(path, option)
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(f"{option} needs matplotlib: pip install 'fastnlp[plot]'")
    from fastnlp.plot import check_figure_path

    try:
        check_figure_path(path)
    except ValueError as exc:
        raise UsageError(f"{option} {path!r}: {describe(exc)}") from None


def refuse_resume(args, model: str) -> None:
    if getattr(args, "resume", None):
        raise UsageError(f"--resume is not supported for {model}: only rnnlm, better-rnnlm (checkpoints) and "
                         "word2vec (a saved model) can continue training")


def _spiral(args) -> int:
    refuse_resume(args, "spiral")
    save = getattr(args, "save", None)
    if save:
        check_output_file(save, "--save")
    if args.plot:
        check_plot_path(args.plot)

    import fastnlp
    from fastnlp.datasets import load_spiral

    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, args.hidden, 3, seed=args.seed, init=getattr(args, "init", None))
    trainer = fastnlp.Trainer(model, fastnlp.optim.SGD(lr=args.lr), seed=args.seed)
    # The loss is recorded every 10 iterations; a short run records it at its end instead of never.
    iterations = args.epochs * max(len(x) // args.batch_size, 1)
    start = time.perf_counter()
    history = trainer.fit(x, t, max_epoch=args.epochs, batch_size=args.batch_size,
                          eval_interval=min(SPIRAL_EVAL_INTERVAL, iterations), progress=not args.quiet)
    if not history:
        raise RuntimeError(f"no loss was recorded in {args.epochs} epochs")
    print(f"spiral: {args.epochs} epochs in {time.perf_counter() - start:.2f} s, "
          f"final loss {history[-1]:.4f}, training accuracy {model.accuracy(x, t):.1%}")
    if args.plot:
        trainer.plot(args.plot)
        print(f"loss curve written to {args.plot}")
    if save:
        fastnlp.save(save, model)
        print(f"model saved to {save}")
    return 0


def report_vectors(vectors, data_dir, queries=BOOK_QUERIES) -> dict:
    """Print the nearest neighbours of ``queries`` and the WordSim-353 Spearman correlation of
    ``vectors`` (a WordVectors); returns evaluate_word_pairs' result."""
    from fastnlp.datasets._files import find_or_fetch

    _print_neighbours(vectors, queries)
    result = vectors.evaluate_word_pairs(find_or_fetch("eval/wordsim353.tsv", data_dir))
    print(f"\nWordSim-353: Spearman {result['spearman']:.3f} over {result['pairs']} pairs "
          f"({result['oov_ratio']:.1%} out of vocabulary)")
    return result


def save_vectors(vectors, path) -> None:
    """``.npz``: the library's file (``fastnlp.load`` reads it); otherwise word2vec format
    (``.bin``: binary, anything else: text)."""
    import fastnlp

    if path.lower().endswith(".npz"):
        fastnlp.save(path, vectors)
    else:
        vectors.save_word2vec_format(path, binary=path.endswith(".bin"))
    print(f"vectors saved to {path}")


def _count(args) -> int:
    refuse_resume(args, "count")
    if args.save:
        check_output_file(args.save, "--save")
    if args.corpus:
        return _count_files(args)

    from fastnlp.count import count_vectors
    from fastnlp.datasets import load_ptb

    start = time.perf_counter()
    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = [id_to_word[i] for i in range(len(id_to_word))]
    corpus_size = getattr(args, "corpus_size", None)
    if corpus_size is not None:
        corpus = corpus[:corpus_size]
    if args.k >= len(words):
        raise UsageError(f"--k {args.k} must be smaller than the vocabulary ({len(words):,} words)")
    _check_memory_budget(args, len(words))
    print(f"PTB train: {len(corpus):,} tokens, {len(words):,} words ({time.perf_counter() - start:.2f} s to load)")
    timings = {}
    vectors = count_vectors(corpus, words, window=args.window, k=args.k, power=args.power, alpha=args.alpha,
                            boundary_id=word_to_id["<eos>"] if args.sentences else None,
                            method=args.svd, seed=args.seed, timings=timings, memory_budget=args.memory_budget)
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    print(f"PPMI + SVD (window {args.window}, k {args.k}): {stages}, total {sum(timings.values()):.2f} s; "
          f"ran on {describe_where_ops_ran()}")
    report_vectors(vectors, args.data_dir, args.queries)
    if args.save:
        save_vectors(vectors, args.save)
    return 0


def _count_files(args) -> int:
    """``count --corpus FILE...``: the same job on text files, streamed (fastnlp.corpus_files)."""
    if getattr(args, "corpus_size", None) is not None:
        raise UsageError("--corpus-size cuts PTB; it does not apply to --corpus files")
    from fastnlp.corpus_files import EOS_TOKEN, CorpusDecodeError, vocabulary_from_files
    from fastnlp.count import count_vectors

    start = time.perf_counter()
    try:
        vocabulary = vocabulary_from_files(args.corpus, min_count=args.min_count, encoding=args.encoding)
    except CorpusDecodeError as exc:
        raise ValueError(f"{exc.path}: the bytes at offset {exc.offset} are not valid {exc.encoding} ({exc.reason}); "
                         f"pass --encoding with the files' encoding (e.g. --encoding latin-1)") from None
    n_tokens = int(vocabulary.counts.sum())
    if args.k >= len(vocabulary):
        raise UsageError(f"--k {args.k} must be smaller than the vocabulary ({len(vocabulary):,} words)")
    _check_memory_budget(args, len(vocabulary))
    files = args.corpus[0] if len(args.corpus) == 1 else f"{len(args.corpus)} files"
    print(f"{files}: {n_tokens:,} tokens, {len(vocabulary):,} words ({time.perf_counter() - start:.2f} s to build "
          f"the vocabulary)")
    if args.sentences and EOS_TOKEN not in vocabulary:
        raise UsageError(f"--sentences: {EOS_TOKEN} is not in the vocabulary (--min-count {args.min_count})")
    timings = {}
    vectors = count_vectors(args.corpus, vocabulary, window=args.window, k=args.k, power=args.power,
                            alpha=args.alpha, boundary_id=vocabulary.word_to_id[EOS_TOKEN] if args.sentences else None,
                            method=args.svd, seed=args.seed, timings=timings, memory_budget=args.memory_budget,
                            encoding=args.encoding)
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    print(f"PPMI + SVD (window {args.window}, k {args.k}): {stages}, total {sum(timings.values()):.2f} s; "
          f"ran on {describe_where_ops_ran()}")
    if _local_data_file("eval/wordsim353.tsv", args.data_dir) is not None:
        report_vectors(vectors, args.data_dir, args.queries)
    else:  # text files of one's own: the neighbours, and no download for the evaluation
        _print_neighbours(vectors, args.queries)
        print("\nWordSim-353: not scored (eval/wordsim353.tsv is not in the data folder; 'fastnlp download' "
              "fetches it)")
    if args.save:
        save_vectors(vectors, args.save)
    return 0


def _check_memory_budget(args, vocab_size) -> None:
    """Refuse, before any counting, a --memory-budget too small for one window of pairs."""
    from fastnlp.kernels.cooccurrence import minimum_memory_budget

    least = minimum_memory_budget(vocab_size, args.window)
    if args.memory_budget is not None and args.memory_budget < least:
        raise UsageError(f"--memory-budget {args.memory_budget} bytes is too small for one window of pairs: "
                         f"window {args.window} over {vocab_size:,} words needs at least {least} bytes")


def _print_neighbours(vectors, queries) -> None:
    """The five nearest neighbours of each of ``queries`` (report_vectors prints them before the score)."""
    for query in queries:
        if query not in vectors:
            print(f"\n[query] {query}: not in the vocabulary")
            continue
        print(f"\n[query] {query}")
        for word, score in vectors.most_similar(query, top=5):
            print(f" {word}: {score:.3f}")


def _local_data_file(relative_name, data_dir):
    """The data file if it is already in the data folder (never downloaded), else None."""
    from fastnlp.datasets._files import data_home

    home = data_home(data_dir)
    for path in (home / relative_name, home / relative_name.rsplit("/", 1)[-1]):
        if path.is_file():
            return path
    return None


def add_spiral_options(parser) -> None:
    positive = int_at_least(1)
    parser.add_argument("--hidden", type=positive, default=10, help="hidden layer size (default: %(default)s)")
    parser.add_argument("--epochs", type=positive, default=300, help="training epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive, default=30, help="mini-batch size (default: %(default)s)")
    parser.add_argument("--lr", type=finite_float(0.0, low_open=True), default=1.0,
                        help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--init", choices=("book", "scaled"), default=None,
                        help="initial weights: the book's N(0, 0.01^2) or scaled N(0, 1/fan_in) (default: book)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of the initial weights and the shuffling (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_count_options(parser) -> None:
    positive = int_at_least(1)
    max_window_ = max_window()
    parser.add_argument("--window", type=int_at_least(1, max_window_), default=2,
                        help="context words on each side" + (f" (1 to {max_window_})" if max_window_ else "")
                        + " (default: %(default)s)")
    parser.add_argument("--k", type=positive, default=100,
                        help="vector size (number of singular vectors; less than the vocabulary size) "
                             "(default: %(default)s)")
    parser.add_argument("--power", type=finite_float(), default=1.0, help="vectors = U * S**power (default: %(default)s)")
    parser.add_argument("--alpha", type=finite_float(0.0, 1.0, low_open=True), default=None,
                        help="context smoothing in (0, 1], e.g. 0.75 (default: none)")
    parser.add_argument("--svd", choices=("randomized", "arpack"), default=DEFAULT_SVD_METHOD,
                        help="ARPACK is exact and, at k = 100 on PTB, faster than randomized (default: %(default)s)")
    parser.add_argument("--sentences", action="store_true", help="do not count pairs across <eos>")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the SVD (default: %(default)s)")
    parser.add_argument("--queries", nargs="*", default=list(BOOK_QUERIES), metavar="WORD",
                        help="words whose nearest neighbours are printed (default: %(default)s)")
    parser.add_argument("--corpus", nargs="+", type=existing_file, metavar="FILE",
                        help="count text files instead of PTB, streamed (one sentence a line, <eos> after each; "
                             "ids by first appearance)")
    parser.add_argument("--encoding", type=text_encoding, default="utf-8",
                        help="encoding of the --corpus files (default: %(default)s)")
    parser.add_argument("--min-count", type=positive, default=1,
                        help="leave out words of the --corpus files seen fewer times (default: %(default)s)")
    parser.add_argument("--memory-budget", type=memory_size, metavar="SIZE",
                        help="working memory of the counting, e.g. 512M or 2G; the result comes on top "
                             "(default: an eighth of the available memory, at most 512M)")


def text_encoding(text: str) -> str:
    """An argparse type: the name of a codec Python knows."""
    import codecs

    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r}") from None
    return text


def memory_size(text: str) -> int:
    """An argparse type: bytes from a size such as 512M, 2G or 1500000."""
    from fastnlp.kernels.cooccurrence import parse_size

    try:
        return parse_size(text, "size")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(describe(exc)) from None


def register(jobs) -> None:
    spiral = jobs.add_parser("spiral", help="train the two-layer net on the spiral data")
    add_spiral_options(spiral)
    spiral.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    spiral.set_defaults(run=_spiral)

    count = jobs.add_parser("count", help="PPMI + SVD word vectors on PTB or text files (book ch. 2)")
    count.add_argument("--data-dir", type=existing_folder,
                       help="folder holding ptb/ and eval/ (default: $FASTNLP_DATA, "
                            "then the user cache, downloading when missing)")
    add_count_options(count)
    count.add_argument("--save", help="write the vectors: .npz in fastnlp's format (what 'fastnlp eval' reads), "
                                      "otherwise word2vec format (.bin: binary)")
    count.set_defaults(run=_count)
