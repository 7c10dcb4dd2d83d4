"""Command line: ``fastnlp <job>`` (also ``python -m fastnlp``).

Jobs:
  count      PPMI + SVD word vectors on PTB, most-similar words and WordSim-353 (ch. 2)
  spiral     train the book's two-layer net on the spiral data (ch. 1)
  backends   list the kernel backends and why any does not load
"""
from __future__ import annotations

import argparse
import sys
import time


def _spiral(args) -> int:
    import fastnlp
    from fastnlp.datasets import load_spiral

    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, args.hidden, 3, seed=args.seed)
    trainer = fastnlp.Trainer(model, fastnlp.optim.SGD(lr=args.lr), seed=args.seed)
    start = time.perf_counter()
    history = trainer.fit(x, t, max_epoch=args.epochs, batch_size=args.batch_size, eval_interval=10,
                          progress=not args.quiet)
    print(f"spiral: {args.epochs} epochs in {time.perf_counter() - start:.2f} s, "
          f"final loss {history[-1]:.4f}, training accuracy {model.accuracy(x, t):.1%}")
    if args.plot:
        print(f"loss curve written to {trainer.plot(args.plot)}")
    return 0


BOOK_QUERIES = ("you", "year", "car", "toyota")


def _count(args) -> int:
    from fastnlp.count import count_vectors
    from fastnlp.datasets import load_ptb
    from fastnlp.datasets._files import find_or_fetch

    import fastnlp

    start = time.perf_counter()
    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = [id_to_word[i] for i in range(len(id_to_word))]
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


def _backends(args) -> int:
    import fastnlp

    for name, why in fastnlp.available_backends().items():
        print(f"{name:7s} {'ok' if why is None else 'unavailable: ' + why}")
    print(f"active: {fastnlp.get_backend()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help="kernel backend (numpy, numba, cython, cupy)")
    jobs = parser.add_subparsers(dest="job", required=True)

    spiral = jobs.add_parser("spiral", help="train the two-layer net on the spiral data")
    spiral.add_argument("--hidden", type=int, default=10)
    spiral.add_argument("--epochs", type=int, default=300)
    spiral.add_argument("--batch-size", type=int, default=30)
    spiral.add_argument("--lr", type=float, default=1.0)
    spiral.add_argument("--seed", type=int, default=0)
    spiral.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    spiral.add_argument("--quiet", action="store_true", help="no progress bar")
    spiral.set_defaults(run=_spiral)

    count = jobs.add_parser("count", help="PPMI + SVD word vectors on PTB (book ch. 2)")
    count.add_argument("--data-dir", help="folder holding ptb/ and eval/ (default: $FASTNLP_DATA, "
                                          "then the user cache, downloading when missing)")
    count.add_argument("--window", type=int, default=2)
    count.add_argument("--k", type=int, default=100, help="vector size (number of singular vectors)")
    count.add_argument("--power", type=float, default=1.0, help="vectors = U * S**power")
    count.add_argument("--alpha", type=float, default=None, help="context smoothing, e.g. 0.75")
    count.add_argument("--svd", choices=("randomized", "arpack"), default="arpack",
                       help="ARPACK is exact and, at k = 100 on PTB, faster than randomized")
    count.add_argument("--sentences", action="store_true", help="do not count pairs across <eos>")
    count.add_argument("--seed", type=int, default=0)
    count.add_argument("--queries", nargs="*", default=list(BOOK_QUERIES))
    count.add_argument("--save", help="write the vectors in word2vec format (.bin: binary)")
    count.set_defaults(run=_count)

    backends = jobs.add_parser("backends", help="list kernel backends")
    backends.set_defaults(run=_backends)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.backend:
        import fastnlp

        fastnlp.set_backend(args.backend)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
