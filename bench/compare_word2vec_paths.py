"""The same CBOW trained two ways on PTB train, compared on quality: the book's layer path and the
fused trainer.

    python bench/compare_word2vec_paths.py [--data-dir ../shared/data] [--epochs 10] [--seeds 1,2,3]
                                           [--paths layer,fused,fused-shrunk] [--lazy]
                                           [--alpha 0.05] [--sample 1e-3]

* layer path: ``fastnlp.models.CBOW`` (Embedding in, NegativeSamplingLoss out) trained by
  ``fastnlp.Trainer`` with Adam on mini-batches of 100 (window 5, hidden 100, 5 negatives), as the
  book's ch. 4 does; ``--lazy`` uses lazy Adam (only the rows a batch touched are updated).
* fused path: ``fastnlp.Word2Vec(sg=0)`` with the same window, size and negatives, min_count 1,
  the book's fixed window (``shrink_windows=False``), and word2vec.c's own CBOW training settings:
  SGD per window with alpha decaying linearly from 0.05 to 0.0001 and subsampling 1e-3
  (``--alpha 0.025 --sample 0``: gensim's rate, and every word of the corpus as the book uses it).
* fused-shrunk: the same with word2vec.c's randomly shrunk windows (the default).

The update rules differ (Adam on the mean loss of 100 windows against plain SGD per window with a
decaying rate), so the vectors differ; the question is whether the quality agrees within seed
noise. Prints WordSim-353 Spearman and Google-analogy accuracy per seed, their mean, and the wall
time per path, with the machine, threads and versions.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = ("layer", "fused", "fused-shrunk")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--lazy", action="store_true", help="lazy Adam for the layer path")
    parser.add_argument("--alpha", type=float, default=0.05, help="fused paths: starting learning rate")
    parser.add_argument("--sample", type=float, default=1e-3, help="fused paths: subsampling threshold (0: off)")
    args = parser.parse_args(argv)
    paths = args.paths.split(",")
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

    import fastnlp
    from fastnlp import optim
    from fastnlp.models import CBOW

    sys.path.insert(0, str(HERE))
    from machine import describe

    data = Path(args.data_dir)
    wordsim, analogies = data / "eval" / "wordsim353.tsv", data / "eval" / "questions-words.txt"
    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=data)
    words = [id_to_word[i] for i in range(len(id_to_word))]
    with open(data / "ptb" / "ptb.train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=5)

    def quality(vectors):
        return (vectors.evaluate_word_pairs(wordsim)["spearman"], vectors.evaluate_analogies(analogies)["accuracy"])

    def layer(seed):
        model = CBOW(len(words), 100, 5, corpus, seed=seed)
        fastnlp.Trainer(model, optim.Adam(lazy=args.lazy), seed=seed).fit(
            contexts, target, max_epoch=args.epochs, batch_size=100, eval_interval=None, progress=False)
        return fastnlp.WordVectors(model.word_vecs, words)

    def fused(seed, shrink_windows=False):
        model = fastnlp.Word2Vec(sg=0, vector_size=100, window=5, negative=5, sample=args.sample, min_count=1,
                                 alpha=args.alpha, epochs=args.epochs, workers=1, seed=seed,
                                 shrink_windows=shrink_windows, progress=False)
        model.build_vocab(sentences)
        model.train(sentences)
        return model.wv

    adam = "lazy Adam" if args.lazy else "Adam"
    runs = {"layer": (f"layer path: CBOW + Trainer, {adam}, batch 100", layer),
            "fused": (f"fused path: Word2Vec(sg=0, alpha={args.alpha:g}, sample={args.sample:g}, "
                      "shrink_windows=False), SGD per window", fused),
            "fused-shrunk": ("fused path, word2vec.c's shrunk windows (shrink_windows=True)",
                             lambda seed: fused(seed, shrink_windows=True))}
    rows = []
    for path in paths:
        name, train = runs[path]
        results = []
        for seed in seeds:
            start = time.perf_counter()
            vectors = train(seed)
            seconds = time.perf_counter() - start
            results.append((seconds, *quality(vectors)))
            print(f"  {path} seed {seed}: {seconds:.1f} s, WS-353 {results[-1][1]:.3f}, "
                  f"analogy {results[-1][2]:.4f}", file=sys.stderr, flush=True)
        rows.append((name, results))

    print(describe())
    print(f"\nPTB train, {args.epochs} epochs, window 5, hidden 100, 5 negatives, min_count 1; "
          f"seeds {args.seeds}\n")
    print("| path | wall s (median) | WordSim-353 Spearman (per seed; mean ± sd) | analogy accuracy (mean) |")
    print("| --- | ---: | ---: | ---: |")
    for name, results in rows:
        rhos = [r[1] for r in results]
        spread = f" ± {statistics.stdev(rhos):.3f}" if len(rhos) > 1 else ""
        print(f"| {name} | {statistics.median(r[0] for r in results):.1f} | "
              f"{' / '.join(f'{x:.3f}' for x in rhos)}; {statistics.fmean(rhos):.3f}{spread} | "
              f"{statistics.fmean(r[2] for r in results):.4f} |")


if __name__ == "__main__":
    main()
