"""One-run comparison of fastText training, gensim vs fastnlp, on PTB train:

    python bench/compare_fasttext.py [--data-dir ../shared/data] [--bucket 2000000] [--sg 1,0]
                                     [--workers 1,2] [--seeds 1] [--epochs 1] [--ns-exponent 0.75]
                                     [--facebook]

Both libraries train FastText on the same sentences (the lines of ptb.train.txt split on spaces)
with the same settings: vector_size 100, window 5, negative 5, n-grams 3-6 in ``bucket`` rows,
min_count 5, sample 1e-3, alpha 0.025 -> 0.0001; skip-gram and CBOW; 1 and 2 worker threads.
For each model, worker count and seed the two libraries run back to back (gensim first), so a
change in the machine's load hits both sides of a ratio alike; the load average is printed.

Speed is raw corpus words times epochs per second, two ways: of the ``train`` call alone (what
gensim reports, and what bench/compare_word2vec.py measures) and end to end, ``build_vocab``
included: counting, the n-gram tables and the initialisation of the V + bucket input rows (at
2,000,000 buckets, 800 MB of float32 drawn at random by both libraries: gensim with NumPy's
generator, fastnlp with its compiled counter-based fill; the seconds of ``build_vocab`` are
printed with each run). A third ratio divides
the training words by the process's CPU seconds in ``train`` (all threads): on a machine other
jobs load, wall time also counts the time slices they take, CPU time much less so. Quality is WordSim-353's
Spearman rho of cosine similarities, on the pairs with both words in PTB's vocabulary and on the
pairs with a word out of it, which both libraries answer from its n-gram rows (``wv[word]``).
Speeds are medians over seeds, qualities means (with the sample standard deviation over seeds,
``±``, when there are several: after one epoch the seeds differ by several hundredths); prints a
markdown table with the machine, threads and versions.

``--facebook`` also trains Facebook's fastText (its Python module ``fasttext``, e.g. ``pip install
fasttext-wheel``) with the same settings and seeds (its ``seed`` argument; its threads seed their
generators with seed + thread number), right after fastnlp for every seed, on the same sentences
written one per line to a temporary file: one call reads the file, builds the dictionary,
initialises and trains, so only its end-to-end speed is measured. It differs
in ways the settings cannot change: its learning rate decays to 0 (not 0.0001), its noise
distribution is counts**0.5 (not 0.75) and every line ends with an end-of-sentence word, ``</s>``.
``--ns-exponent 0.5`` gives gensim and fastnlp fastText's noise distribution (after 5 epochs of CBOW
it decides the unseen-word pairs' rho: near 0 at 0.75 in both, about 0.04-0.05 at 0.5, as fastText's).
"""
import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTINGS = dict(vector_size=100, window=5, negative=5, min_n=3, max_n=6, min_count=5, sample=1e-3, alpha=0.025,
                min_alpha=0.0001)


def _pairs(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, score = line.rstrip("\n").split("\t")[:3]
            pairs.append((a.lower(), b.lower(), float(score)))
    return pairs


def _rho(get, pairs):
    """Spearman rho of the cosine of each pair's vectors against the human score (pairs whose
    words have no vector are left out)."""
    from scipy.stats import spearmanr

    got, gold = [], []
    for a, b, score in pairs:
        try:
            x, y = get(a), get(b)
        except KeyError:
            continue
        got.append(float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
        gold.append(score)
    return spearmanr(got, gold).correlation


def _quality(values):
    """The mean of a quality over seeds, with its sample standard deviation when there are several."""
    mean = statistics.fmean(values)
    return f"{mean:.3f} ±{statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--bucket", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--sg", default="1,0")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--ns-exponent", type=float, default=0.75,
                        help="noise distribution exponent of gensim and fastnlp (fastText's is 0.5, fixed)")
    parser.add_argument("--seeds", default="1", help="comma-separated seeds (speed: median, quality: mean)")
    parser.add_argument("--facebook", action="store_true",
                        help="also train Facebook's fastText (module fasttext) with the same seeds")
    parser.add_argument("--corpus-file", action="store_true",
                        help="fastnlp trains from a file of the same sentences (corpus_file=), as fastText does: "
                             "each worker reads its own byte range, the learning rate falling over it")
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
        sentences = [line.split() for line in f if line.split()]
    n_words = sum(map(len, sentences))
    pairs = _pairs(data / "eval" / "wordsim353.tsv")
    seeds = [int(s) for s in args.seeds.split(",")]
    common = dict(SETTINGS, bucket=args.bucket, epochs=args.epochs, ns_exponent=args.ns_exponent)
    load_before = os.getloadavg()

    def run_gensim(sg, workers, seed):
        start = time.perf_counter()
        model = gensim.models.FastText(sg=sg, workers=workers, seed=seed, **common)
        model.build_vocab(sentences)
        trained, cpu = time.perf_counter(), time.process_time()
        model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
        end, cpu = time.perf_counter(), time.process_time() - cpu
        return end - trained, end - start, cpu, model.wv.key_to_index, lambda word: model.wv[word]

    def run_fastnlp(sg, workers, seed):
        start = time.perf_counter()
        model = fastnlp.FastText(sg=sg, workers=workers, seed=seed, progress=False, **common)
        source = {"corpus_file": str(sentences_file)} if args.corpus_file else {"sentences": sentences}
        model.build_vocab(**source)
        trained, cpu = time.perf_counter(), time.process_time()
        model.train(**source)
        end, cpu = time.perf_counter(), time.process_time() - cpu
        run_fastnlp.backend = model.kernel_backend
        wv = model.wv
        return end - trained, end - start, cpu, model.vocabulary.word_to_id, lambda word: wv[word]

    run_fastnlp.backend = None

    def run_facebook(sg, workers, seed, path):
        # train_unsupervised of the 0.9.2 module does not pass `seed` on (its C++ arguments have it):
        # the arguments are built and trained the way that function does, with the seed added.
        from fasttext import FastText as facebook

        settings = dict(facebook.unsupervised_default, input=str(path), model="skipgram" if sg else "cbow",
                        dim=SETTINGS["vector_size"], ws=SETTINGS["window"], neg=SETTINGS["negative"],
                        minn=SETTINGS["min_n"], maxn=SETTINGS["max_n"], minCount=SETTINGS["min_count"],
                        t=SETTINGS["sample"], lr=SETTINGS["alpha"], epoch=args.epochs, thread=workers,
                        bucket=args.bucket, seed=seed, verbose=0)
        start = time.perf_counter()
        arguments = facebook._build_args(settings, set(settings))
        model = facebook._FastText(args=arguments)
        facebook.fasttext.train(model.f, arguments)
        model.set_args(model.f.getArgs())
        total_s = time.perf_counter() - start
        return total_s, set(model.words), model.get_word_vector

    facebook_dir = tempfile.TemporaryDirectory() if args.facebook or args.corpus_file else None
    if facebook_dir is not None:  # one sentence a line: fastText's input, and fastnlp's with --corpus-file
        facebook_file = sentences_file = Path(facebook_dir.name) / "ptb.train.sentences.txt"
        with open(facebook_file, "w", encoding="utf-8") as f:
            f.writelines(" ".join(sentence) + "\n" for sentence in sentences)
    facebook_rows = []

    sgs = [int(x) for x in args.sg.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    rows = []
    for sg in sgs:
        for workers in worker_counts:
            results = {"gensim": [], "fastnlp": []}
            facebook = []
            for seed in seeds:
                for name, run in (("gensim", run_gensim), ("fastnlp", run_fastnlp)):
                    train_s, total_s, cpu_s, vocabulary, get = run(sg, workers, seed)
                    vocab_s = total_s - train_s
                    in_vocab = [p for p in pairs if p[0] in vocabulary and p[1] in vocabulary]
                    out_of_vocab = [p for p in pairs if p[0] not in vocabulary or p[1] not in vocabulary]
                    result = (n_words * args.epochs / train_s, n_words * args.epochs / total_s,
                              _rho(get, in_vocab), _rho(get, out_of_vocab), n_words * args.epochs / cpu_s)
                    results[name].append(result)
                    print(f"  sg={sg} workers={workers} seed={seed} {name}: build_vocab {vocab_s:.2f} s, train "
                          f"{train_s:.2f} s ({cpu_s:.2f} s CPU), total {total_s:.2f} s, WS-353 {result[2]:.3f} / OOV "
                          f"pairs {result[3]:.3f}, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
                    del vocabulary, get
                    gc.collect()  # the 800 MB of one model are freed before the next is drawn
                if args.facebook:
                    total_s, vocabulary, get = run_facebook(sg, workers, seed, facebook_file)
                    in_vocab = [p for p in pairs if p[0] in vocabulary and p[1] in vocabulary]
                    out_of_vocab = [p for p in pairs if p[0] not in vocabulary or p[1] not in vocabulary]
                    facebook.append((n_words * args.epochs / total_s, _rho(get, in_vocab), _rho(get, out_of_vocab)))
                    print(f"  sg={sg} workers={workers} seed={seed} facebook: total {total_s:.2f} s, WS-353 "
                          f"{facebook[-1][1]:.3f} / OOV pairs {facebook[-1][2]:.3f}, load {os.getloadavg()[0]:.2f}",
                          file=sys.stderr, flush=True)
                    del vocabulary, get
                    gc.collect()
            summary = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                              _quality([r[2] for r in rs]), _quality([r[3] for r in rs]),
                              statistics.median(r[4] for r in rs))
                       for name, rs in results.items()}
            rows.append((sg, workers, summary))
            if facebook:
                facebook_rows.append((sg, workers, statistics.median(r[0] for r in facebook),
                                      _quality([r[1] for r in facebook]), _quality([r[2] for r in facebook]),
                                      summary["fastnlp"][1]))

    print(describe())
    print("load average (1, 5, 15 min) before / after: " + " / ".join(
        ", ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())) +
        f" on {os.cpu_count()} cores (other jobs share this machine: compare ratios within one table)")
    simd = ""
    if run_fastnlp.backend == "cython":
        from fastnlp.kernels.fasttext import _cython_impl

        simd = f" (step compiled for {_cython_impl.SIMD})"
    print(f"gensim {gensim.__version__} (fasttext_inner MAX_WORDS_IN_BATCH "
          f"{gensim.models.fasttext_inner.MAX_WORDS_IN_BATCH}); fastnlp fastText backend: "
          f"{run_fastnlp.backend}{simd}; OMP/MKL/OPENBLAS_NUM_THREADS=1")
    print(f"\nPTB train: {len(sentences):,} sentences, {n_words:,} words; {args.epochs} epoch(s); vector_size 100, "
          f"window 5, negative 5, n-grams 3-6, bucket {args.bucket:,}, min_count 5, sample 1e-3, noise exponent "
          f"{args.ns_exponent} (fastText: 0.5); seeds {args.seeds}; fastnlp from "
          f"{'a file of the sentences (corpus_file=, a byte range per worker)' if args.corpus_file else 'the sentences in memory'}\n")
    print("| model | workers | gensim words/s (train) | fastnlp words/s (train) | fastnlp / gensim (train) | "
          "gensim words/s (end to end) | fastnlp words/s (end to end) | fastnlp / gensim (end to end) | "
          "fastnlp / gensim (train, CPU time) | WS-353 gensim | WS-353 fastnlp | OOV pairs gensim | "
          "OOV pairs fastnlp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sg, workers, summary in rows:
        g, f = summary["gensim"], summary["fastnlp"]
        print(f"| {'skip-gram' if sg else 'CBOW'} | {workers} | {g[0] / 1e3:,.0f}k | {f[0] / 1e3:,.0f}k | "
              f"{f[0] / g[0]:.2f}x | {g[1] / 1e3:,.0f}k | {f[1] / 1e3:,.0f}k | {f[1] / g[1]:.2f}x | "
              f"{f[4] / g[4]:.2f}x | {g[2]} | {f[2]} | {g[3]} | {f[3]} |")
    if facebook_rows:
        import fasttext

        version = getattr(fasttext, "__version__", "0.9.2 (fasttext-wheel)")
        print(f"\nFacebook's fastText {version} in the same run, the same seeds, from the sentences' file:\n")
        print("| model | workers | fastText words/s (end to end) | fastnlp / fastText (end to end) | WS-353 fastText | "
              "OOV pairs fastText |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for sg, workers, speed, rho, rho_oov, fastnlp_speed in facebook_rows:
            print(f"| {'skip-gram' if sg else 'CBOW'} | {workers} | {speed / 1e3:,.0f}k | "
                  f"{fastnlp_speed / speed:.2f}x | {rho} | {rho_oov} |")
    if facebook_dir is not None:
        facebook_dir.cleanup()


if __name__ == "__main__":
    main()
