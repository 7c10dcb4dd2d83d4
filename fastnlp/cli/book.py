"""The book's first jobs: ``spiral`` (ch. 1) and ``count`` (ch. 2)."""
from __future__ import annotations

import importlib.util
import time

from ._common import UsageError, check_output_file, describe, existing_folder, finite_float, int_at_least, max_window

SPIRAL_EVAL_INTERVAL = 10


def _spiral(args) -> int:
    if args.plot:
        check_output_file(args.plot, "--plot")
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib: pip install 'fastnlp[plot]'")
        from fastnlp.plot import check_figure_path

        try:
            check_figure_path(args.plot)
        except ValueError as exc:
            raise UsageError(f"--plot {args.plot!r}: {describe(exc)}") from None

    import fastnlp
    from fastnlp.datasets import load_spiral

    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, args.hidden, 3, seed=args.seed)
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
    return 0


BOOK_QUERIES = ("you", "year", "car", "toyota")


def _count(args) -> int:
    if args.save:
        check_output_file(args.save, "--save")

    from fastnlp.count import count_vectors
    from fastnlp.datasets import load_ptb
    from fastnlp.datasets._files import find_or_fetch

    import fastnlp

    start = time.perf_counter()
    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = [id_to_word[i] for i in range(len(id_to_word))]
    if args.k >= len(words):
        raise UsageError(f"--k {args.k} must be smaller than the vocabulary ({len(words):,} words)")
    print(f"PTB train: {len(corpus):,} tokens, {len(words):,} words ({time.perf_counter() - start:.2f} s to load)")
    timings = {}
    vectors = count_vectors(corpus, words, window=args.window, k=args.k, power=args.power, alpha=args.alpha,
                            boundary_id=word_to_id["<eos>"] if args.sentences else None,
                            method=args.svd, seed=args.seed, timings=timings)
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
    print(f"PPMI + SVD (window {args.window}, k {args.k}, backend {fastnlp.get_backend()}): {stages}, "
          f"total {sum(timings.values()):.2f} s")
    for query in args.queries:
        if query not in vectors:
            print(f"\n[query] {query}: not in the vocabulary")
            continue
        print(f"\n[query] {query}")
        for word, score in vectors.most_similar(query, top=5):
            print(f" {word}: {score:.3f}")
    result = vectors.evaluate_word_pairs(find_or_fetch("eval/wordsim353.tsv", args.data_dir))
    print(f"\nWordSim-353: Spearman {result['spearman']:.3f} over {result['pairs']} pairs "
          f"({result['oov_ratio']:.1%} out of vocabulary)")
    if args.save:
        vectors.save_word2vec_format(args.save, binary=args.save.endswith(".bin"))
        print(f"vectors saved to {args.save}")
    return 0




def register(jobs) -> None:
    positive = int_at_least(1)
    spiral = jobs.add_parser("spiral", help="train the two-layer net on the spiral data")
    spiral.add_argument("--hidden", type=positive, default=10)
    spiral.add_argument("--epochs", type=positive, default=300)
    spiral.add_argument("--batch-size", type=positive, default=30)
    spiral.add_argument("--lr", type=finite_float(0.0, low_open=True), default=1.0)
    spiral.add_argument("--seed", type=int_at_least(0), default=0)
    spiral.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    spiral.add_argument("--quiet", action="store_true", help="no progress bar")
    spiral.set_defaults(run=_spiral)


    count = jobs.add_parser("count", help="PPMI + SVD word vectors on PTB (book ch. 2)")
    count.add_argument("--data-dir", type=existing_folder,
                       help="folder holding ptb/ and eval/ (default: $FASTNLP_DATA, "
                            "then the user cache, downloading when missing)")
    max_window_ = max_window()
    count.add_argument("--window", type=int_at_least(1, max_window_), default=2,
                       help="context words on each side" + (f" (1 to {max_window_})" if max_window_ else ""))
    count.add_argument("--k", type=positive, default=100,
                       help="vector size (number of singular vectors; less than the vocabulary size)")
    count.add_argument("--power", type=finite_float(), default=1.0, help="vectors = U * S**power")
    count.add_argument("--alpha", type=finite_float(0.0, 1.0, low_open=True), default=None,
                       help="context smoothing in (0, 1], e.g. 0.75")
    count.add_argument("--svd", choices=("randomized", "arpack"), default="arpack",
                       help="ARPACK is exact and, at k = 100 on PTB, faster than randomized")
    count.add_argument("--sentences", action="store_true", help="do not count pairs across <eos>")
    count.add_argument("--seed", type=int_at_least(0), default=0)
    count.add_argument("--queries", nargs="*", default=list(BOOK_QUERIES))
    count.add_argument("--save", help="write the vectors in word2vec format (.bin: binary)")
    count.set_defaults(run=_count)

