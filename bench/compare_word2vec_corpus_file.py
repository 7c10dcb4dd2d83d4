"""One-run comparison of word2vec trained from a text file, fastnlp vs gensim, both in their
``corpus_file`` mode (issue 19):

    python bench/compare_word2vec_corpus_file.py [--data-dir ../shared/data] [--work-dir /tmp/fastnlp-corpus-file]
        [--seeds 1,2] [--zipf-words 10000000] [--big-gb 2.4] [--skip-big] [--big-gensim]

Three files:

* PTB train (ptb.train.txt as it is), 5 epochs; quality: WordSim-353 Spearman of the input vectors;
* a generated Zipf text with topics (``--zipf-words`` words, 1 epoch; see ``write_zipf_topics``):
  V = 200,000 word forms ``w<id>``, 50 topics (word id mod 50); each sentence (5-30 words) picks
  a topic and draws each word from that topic's words (Zipf over their ranks) or, half the time,
  from all words (Zipf over the ids), so word frequencies follow Zipf's law and words co-occur
  within their topic; quality: the share of the words ranked 20,000-21,000 whose nearest neighbour
  is of their topic;
* a big generated text of the same kind (``--big-gb`` GB, 1 epoch, fastnlp only unless
  ``--big-gensim``): the peak resident memory of a process that builds the vocabulary and trains
  one epoch on it, beside what the same text would take as a list of lists of str (bytes per
  token measured on its first 2M tokens, in a process of its own).

Same settings on both sides: vector_size 100, window 5, negative 5, sample 1e-3, min_count 5
(PTB: 1), alpha 0.025 -> 0.0001; skip-gram and CBOW; 1 and 2 worker threads. Speed is the
file's words times epochs over the wall time of one ``train`` call (the vocabulary is built
beforehand and not timed; its pass is timed apart); the runs of the two libraries alternate, so
both see the same load from other jobs on a shared machine. Generated files are written once
into ``--work-dir`` (check ``df -h`` first: the big one is --big-gb GB) and are not part of the
repository. Prints markdown tables with the machine, threads, versions and load.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETTINGS = dict(vector_size=100, window=5, negative=5, hs=0, sample=1e-3, alpha=0.025, min_alpha=0.0001)
ZIPF_VOCABULARY, ZIPF_TOPICS, IN_TOPIC = 200_000, 50, 0.5
CHUNK_WORDS = 2_000_000


def write_zipf_topics(path: Path, n_words: int, seed: int = 0) -> Path:
    """A text of about ``n_words`` words (see the module docstring), written in chunks of
    CHUNK_WORDS to ``path`` through a temporary file renamed at the end (readers never see half
    a file). Kept when it already exists."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    global_cdf = np.cumsum(1 / np.arange(1, ZIPF_VOCABULARY + 1))
    global_cdf /= global_cdf[-1]
    per_topic = ZIPF_VOCABULARY // ZIPF_TOPICS
    topic_cdf = np.cumsum(1 / np.arange(1, per_topic + 1))
    topic_cdf /= topic_cdf[-1]
    forms = np.array([f"w{i}".encode() for i in range(ZIPF_VOCABULARY)], dtype=object)
    partial = path.with_name(path.name + ".partial")
    written = 0
    with open(partial, "wb") as f:
        while written < n_words:
            lengths = rng.integers(5, 31, CHUNK_WORDS // 17 + 1)
            ends = np.cumsum(lengths)
            ends = ends[ends <= min(CHUNK_WORDS, n_words - written)]
            if ends.size == 0:
                break
            n = int(ends[-1])
            starts = np.concatenate([[0], ends[:-1]])
            topic = np.repeat(rng.integers(0, ZIPF_TOPICS, ends.size), ends - starts)
            in_topic = rng.random(n) < IN_TOPIC
            ids = np.where(in_topic, np.searchsorted(topic_cdf, rng.random(n)) * ZIPF_TOPICS + topic,
                           np.searchsorted(global_cdf, rng.random(n)))
            tokens = forms[ids].tolist()
            f.write(b"\n".join([b" ".join(tokens[a:b]) for a, b in zip(starts.tolist(), ends.tolist())]) + b"\n")
            written += n
    os.replace(partial, path)
    return path


def topic_accuracy(vectors, first=20_000, last=21_000) -> float:
    """Share of the words ranked first..last (by frequency) whose nearest neighbour has their topic."""
    words = list(vectors.words[first:last])
    hits = 0
    for word in words:
        neighbour = vectors.most_similar(word, top=1)[0][0]
        hits += int(word[1:]) % ZIPF_TOPICS == int(neighbour[1:]) % ZIPF_TOPICS
    return hits / len(words)


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM, the high-water mark of its own address space.
    (getrusage's ru_maxrss is no good in a child: Linux carries the parent's peak across fork and
    exec into it.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB or bytes, per system


def run_fastnlp(path, sg, workers, seed, epochs, min_count):
    import fastnlp

    model = fastnlp.Word2Vec(sg=sg, workers=workers, seed=seed, epochs=epochs, min_count=min_count, progress=False,
                             **SETTINGS)
    start = time.perf_counter()
    model.build_vocab(corpus_file=str(path))
    vocab_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.train(corpus_file=str(path))
    seconds = time.perf_counter() - start
    return len(model.vocabulary), model.corpus_total_words, vocab_seconds, seconds, lambda: model.wv


def run_gensim(path, sg, workers, seed, epochs, min_count):
    import gensim

    import fastnlp

    model = gensim.models.Word2Vec(sg=sg, workers=workers, seed=seed, epochs=epochs, min_count=min_count,
                                   **SETTINGS)
    start = time.perf_counter()
    model.build_vocab(corpus_file=str(path))
    vocab_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.train(corpus_file=str(path), total_words=model.corpus_total_words, epochs=epochs)
    seconds = time.perf_counter() - start
    return (len(model.wv), model.corpus_total_words, vocab_seconds, seconds,
            lambda: fastnlp.WordVectors(model.wv.vectors, model.wv.index_to_key))


RUNNERS = {"gensim": run_gensim, "fastnlp": run_fastnlp}


def compare(path, label, quality, epochs, min_count, seeds, sgs, worker_counts):
    """Rows of a table: for each model and worker count, both libraries (median words/s over
    seeds, mean quality), runs alternating."""
    results = {}
    for sg in sgs:
        for seed in seeds:
            for workers in worker_counts:
                for name, run in RUNNERS.items():
                    _, words, vocab_seconds, seconds, vectors = run(path, sg, workers, seed, epochs, min_count)
                    score = quality(vectors())
                    results.setdefault((sg, workers, name), []).append((words * epochs / seconds, score, vocab_seconds))
                    print(f"  {label} sg={sg} workers={workers} seed={seed} {name}: train {seconds:.2f} s "
                          f"({words * epochs / seconds / 1e3:,.0f}k words/s), vocabulary pass {vocab_seconds:.2f} s, "
                          f"quality {score:.3f}", file=sys.stderr, flush=True)
    rows = []
    for sg in sgs:
        for workers in worker_counts:
            summary = {name: (statistics.median(r[0] for r in results[sg, workers, name]),
                              statistics.fmean(r[1] for r in results[sg, workers, name]),
                              statistics.median(r[2] for r in results[sg, workers, name])) for name in RUNNERS}
            rows.append((sg, workers, summary))
    return rows


def print_table(title, rows, quality_name):
    print(f"\n{title}\n")
    print(f"| model | workers | gensim words/s | fastnlp words/s | fastnlp / gensim | {quality_name} gensim | "
          f"{quality_name} fastnlp | vocabulary pass gensim | vocabulary pass fastnlp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sg, workers, s in rows:
        g, f = s["gensim"], s["fastnlp"]
        print(f"| {'skip-gram' if sg else 'CBOW'} | {workers} | {g[0] / 1e3:,.0f}k | {f[0] / 1e3:,.0f}k | "
              f"{f[0] / g[0]:.2f}x | {g[1]:.3f} | {f[1]:.3f} | {g[2]:.1f} s | {f[2]:.1f} s |")


# ----- the big file: each measurement in a process of its own --------------------------------------

def child_train(args):
    """One library's vocabulary pass and one epoch on the big file; prints a JSON line."""
    vocabulary, words, vocab_seconds, seconds, _ = RUNNERS[args.child](args.path, 0, args.child_workers, 1, 1, 5)
    print(json.dumps({"words": words, "vocabulary": vocabulary, "vocab_seconds": vocab_seconds,
                      "train_seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def child_lists(args):
    """Bytes per token of the file's first ``--tokens`` tokens held as a list of lists of str."""
    import gc

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    gc.collect()
    before = rss()
    sentences, tokens = [], 0
    with open(args.path, encoding="utf-8") as f:
        for line in f:
            sentences.append(line.split())
            tokens += len(sentences[-1])
            if tokens >= args.tokens:
                break
    print(json.dumps({"tokens": tokens, "bytes_per_token": (rss() - before) / tokens}))


def in_child(*argv) -> dict:
    output = subprocess.run([sys.executable, __file__, *map(str, argv)], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def big_file(args, work):
    path = work / f"zipf-topics-{args.big_gb:g}GB.txt"
    words = int(args.big_gb * 1e9 / 5.44)  # the generator writes ~5.44 bytes a word (word, space or newline)
    start = time.perf_counter()
    write_zipf_topics(path, words, seed=1)
    print(f"  big file: {path} ({path.stat().st_size / 1e9:.2f} GB) ready in {time.perf_counter() - start:.0f} s",
          file=sys.stderr, flush=True)
    lists = in_child("--child-lists", "--path", path, "--tokens", 2_000_000)
    rows = []
    for name in ["fastnlp"] + (["gensim"] if args.big_gensim else []):
        result = in_child("--child", name, "--path", path, "--child-workers", 2)
        print(f"  big file {name}: {result}", file=sys.stderr, flush=True)
        rows.append((name, result))
    return path, lists, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--work-dir", default="/tmp/fastnlp-corpus-file")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sg", default="1,0")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--ptb-epochs", type=int, default=5)
    parser.add_argument("--zipf-words", type=int, default=10_000_000)
    parser.add_argument("--big-gb", type=float, default=2.4)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--big-gensim", action="store_true", help="also gensim on the big file")
    parser.add_argument("--only-big", action="store_true")
    # a process of its own for one big-file measurement
    parser.add_argument("--child", choices=sorted(RUNNERS))
    parser.add_argument("--child-lists", action="store_true")
    parser.add_argument("--child-workers", type=int, default=2)
    parser.add_argument("--path")
    parser.add_argument("--tokens", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    # BLAS threads would spin beside the training threads (gensim calls BLAS; nothing else here does).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if args.child:
        return child_train(args)
    if args.child_lists:
        return child_lists(args)

    import gensim

    sys.path.insert(0, str(HERE))
    from machine import describe

    data, work = Path(args.data_dir), Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    sgs = [int(x) for x in args.sg.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    load_before = os.getloadavg()
    tables = []
    if not args.only_big:
        wordsim = data / "eval" / "wordsim353.tsv"
        ptb = data / "ptb" / "ptb.train.txt"
        rows = compare(ptb, "PTB", lambda v: v.evaluate_word_pairs(wordsim)["spearman"], args.ptb_epochs, 1, seeds,
                       sgs, worker_counts)
        tables.append((f"PTB train ({ptb.stat().st_size / 1e6:.1f} MB, 887,521 words), {args.ptb_epochs} epochs, "
                       f"min_count 1; seeds {args.seeds} (words/s: median, WS-353: mean)", rows, "WS-353"))
        zipf = write_zipf_topics(work / f"zipf-topics-{args.zipf_words}.txt", args.zipf_words)
        rows = compare(zipf, "Zipf", topic_accuracy, 1, 5, seeds, sgs, worker_counts)
        tables.append((f"Generated Zipf text with topics ({zipf.stat().st_size / 1e6:.0f} MB, {args.zipf_words:,} "
                       f"words), 1 epoch, min_count 5; seeds {args.seeds} (words/s: median, topic accuracy of the "
                       "nearest neighbour of words ranked 20,000-21,000: mean)", rows, "topic acc."))
    big = None if args.skip_big else big_file(args, work)

    print(describe())
    print("load average (1, 5, 15 min) before / after: " + " / ".join(
        ", ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())) +
        f" on {os.cpu_count()} cores (other jobs share this machine: compare ratios within one table)")
    from fastnlp.kernels import registry

    print(f"gensim {gensim.__version__} (word2vec_inner FAST_VERSION {gensim.models.word2vec.FAST_VERSION}, "
          f"corpus_file CORPUSFILE_VERSION {gensim.models.word2vec.CORPUSFILE_VERSION}); fastnlp word2vec backend: "
          f"{registry.backend_for('word2vec_sg')}; OMP/MKL/OPENBLAS_NUM_THREADS=1")
    print("settings: vector_size 100, window 5, negative 5, sample 1e-3, alpha 0.025 -> 0.0001; corpus_file mode on "
          "both sides; words/s = the file's words x epochs / seconds of train(); vocabulary pass timed apart")
    for title, rows, quality in tables:
        print_table(title, rows, quality)
    if big is not None:
        path, lists, rows = big
        tokens = rows[0][1]["words"]
        as_lists = lists["bytes_per_token"] * tokens / 2**30
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        print(f"\nBig generated Zipf text with topics: {path.stat().st_size / 1e9:.2f} GB, {tokens:,} words; CBOW, "
              f"2 workers, 1 epoch, min_count 5, each run a process of its own. As a list of lists of str it would "
              f"take {lists['bytes_per_token']:.1f} bytes a word (measured on its first {lists['tokens']:,} words), "
              f"{as_lists:.1f} GiB, against the machine's {total:.1f} GiB of memory.\n")
        print("| library | vocabulary | vocabulary pass | train (1 epoch) | words/s | peak resident memory |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in rows:
            print(f"| {name} | {r['vocabulary']:,} | {r['vocab_seconds']:.0f} s | {r['train_seconds']:.0f} s | "
                  f"{r['words'] / r['train_seconds'] / 1e3:,.0f}k | {r['peak_rss_mib']:,.0f} MiB |")


if __name__ == "__main__":
    main()
