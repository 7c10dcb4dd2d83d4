"""One-run comparison of word2vec training, gensim vs fastnlp, on PTB train:

    python bench/compare_word2vec.py [--data-dir ../shared/data] [--epochs 5] [--seeds 1,2,3]

Both train on the same sentences (the lines of ptb.train.txt, split on spaces) with the same
settings: vector_size 100, window 5, negative 5, sample 1e-3, min_count 1, alpha 0.025 ->
0.0001; skip-gram and CBOW; 1 and 2 worker threads. Speed is the corpus's words times epochs
over the wall time of one ``train`` call (the vocabulary is built beforehand and not timed),
the runs of the two libraries interleaved (so both see the same load from other jobs on a
shared machine; the load average is printed); quality is WordSim-353 Spearman and the Google
analogy accuracy (3CosAdd, all questions whose words are in the vocabulary) of the input
vectors, both evaluated by fastnlp.WordVectors. Prints a markdown table with the machine,
threads and versions; speeds are the median over seeds, qualities the mean, and the scaling
from 1 to 2 workers the median of per-seed ratios of runs made back to back.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = dict(vector_size=100, window=5, negative=5, hs=0, sample=1e-3, min_count=1, alpha=0.025,
                min_alpha=0.0001)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (quality: mean over them)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--sg", default="1,0")
    args = parser.parse_args(argv)
    # BLAS threads would spin beside the training threads (gensim calls BLAS; nothing else here does).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

    import gensim

    import fastnlp

    sys.path.insert(0, str(HERE))
    from machine import describe

    data = Path(args.data_dir)
    with open(data / "ptb" / "ptb.train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    n_words = sum(map(len, sentences))
    wordsim = data / "eval" / "wordsim353.tsv"
    analogies = data / "eval" / "questions-words.txt"
    seeds = [int(s) for s in args.seeds.split(",")]
    load_before = os.getloadavg()

    def quality(vectors):
        return (vectors.evaluate_word_pairs(wordsim)["spearman"], vectors.evaluate_analogies(analogies)["accuracy"])

    def run_gensim(sg, workers, seed):
        model = gensim.models.Word2Vec(sg=sg, workers=workers, seed=seed, epochs=args.epochs, **SETTINGS)
        model.build_vocab(sentences)
        start = time.perf_counter()
        model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        seconds = time.perf_counter() - start
        return seconds, quality(fastnlp.WordVectors(model.wv.vectors, model.wv.index_to_key))

    def run_fastnlp(sg, workers, seed):
        model = fastnlp.Word2Vec(sg=sg, workers=workers, seed=seed, epochs=args.epochs, progress=False, **SETTINGS)
        model.build_vocab(sentences)
        start = time.perf_counter()
        model.train(sentences)
        seconds = time.perf_counter() - start
        run_fastnlp.backend = model.kernel_backend
        return seconds, quality(model.wv)

    run_fastnlp.backend = None

    # For each model and seed the 1- and 2-worker runs of both libraries follow one another, so a
    # change in the machine's load (a shared VM's second core comes and goes) hits a ratio's two
    # sides alike; each library's scaling is the median of its per-seed ratios.
    sgs = [int(x) for x in args.sg.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    rows, scaling = [], {}
    for sg in sgs:
        results = {(workers, name): [] for workers in worker_counts for name in ("gensim", "fastnlp")}
        for seed in seeds:
            for workers in worker_counts:
                for name, run in (("gensim", run_gensim), ("fastnlp", run_fastnlp)):
                    seconds, (spearman, accuracy) = run(sg, workers, seed)
                    results[workers, name].append((n_words * args.epochs / seconds, spearman, accuracy))
                    print(f"  sg={sg} workers={workers} seed={seed} {name}: {seconds:.2f} s, "
                          f"WS-353 {spearman:.3f}, analogy {accuracy:.4f}", file=sys.stderr, flush=True)
        for workers in worker_counts:
            summary = {name: (statistics.median(r[0] for r in results[workers, name]),
                              statistics.fmean(r[1] for r in results[workers, name]),
                              statistics.fmean(r[2] for r in results[workers, name])) for name in ("gensim", "fastnlp")}
            if workers != 1 and 1 in worker_counts:
                scaling[sg, workers] = {name: statistics.median(
                    many[0] / one[0] for many, one in zip(results[workers, name], results[1, name]))
                    for name in ("gensim", "fastnlp")}
            rows.append((sg, workers, summary))

    print(describe())
    print("load average (1, 5, 15 min) before / after: " + " / ".join(
        ", ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())) +
        f" on {os.cpu_count()} cores (other jobs share this machine: compare ratios within one table)")
    simd = ""
    if run_fastnlp.backend == "cython":
        from fastnlp.kernels.word2vec import _cython_impl

        simd = f" (step compiled for {_cython_impl.SIMD})"
    print(f"gensim {gensim.__version__} (word2vec_inner FAST_VERSION {gensim.models.word2vec.FAST_VERSION}); "
          f"fastnlp word2vec backend: {run_fastnlp.backend}{simd}; OMP/MKL/OPENBLAS_NUM_THREADS=1")
    vocabulary = len({w for s in sentences for w in s})
    print(f"\nPTB train: {len(sentences):,} sentences, {n_words:,} words, V = {vocabulary:,}; {args.epochs} epochs; "
          "vector_size 100, window 5, negative 5, sample 1e-3, min_count 1; "
          f"seeds {args.seeds} (speed: median, quality: mean)\n")
    print("| model | workers | gensim words/s | fastnlp words/s | fastnlp / gensim | vs 1 worker: gensim | "
          "vs 1 worker: fastnlp | WS-353 gensim | WS-353 fastnlp | analogy gensim | analogy fastnlp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sg, workers, summary in rows:
        g, f = summary["gensim"], summary["fastnlp"]
        ratio = scaling.get((sg, workers))
        ratios = f"{ratio['gensim']:.2f}x | {ratio['fastnlp']:.2f}x" if ratio else " | "
        print(f"| {'skip-gram' if sg else 'CBOW'} | {workers} | {g[0] / 1e3:,.0f}k | {f[0] / 1e3:,.0f}k | "
              f"{f[0] / g[0]:.2f}x | {ratios} | {g[1]:.3f} | {f[1]:.3f} | {g[2]:.4f} | {f[2]:.4f} |")

if __name__ == "__main__":
    main()
