"""Counting co-occurrences straight from a text file: fastnlp against GloVe's vocab_count + cooccur.

    python bench/compare_cooccur_glove.py --glove-bin DIR [--corpus FILE | --tokens 10000000 --vocab 100000]
        [--window 5] [--weighting harmonic] [--memory-budget SIZE] [--repeat 2]

Both sides read the same text, build the vocabulary (min count 1), count the symmetric window
pairs with the same weighting (GloVe's default 1/distance is ``weighting="harmonic"``;
``--weighting uniform`` runs cooccur with ``-distance-weighting 0``) and write their result to the
work folder: GloVe its binary (word1, word2, value) triples, fastnlp the CSR arrays
(``scipy.sparse.save_npz``, uncompressed). Each side is one process per run, timed from start to
exit (imports and all) with its peak resident memory (``ru_maxrss`` from ``wait4``); GloVe's two
tools run one after the other and count as one side (times added, the larger peak). Sides run
round robin, ``--repeat`` times; the table shows the best time and the largest peak.

``--glove-bin DIR`` holds ``vocab_count`` and ``cooccur`` built from stanfordnlp/GloVe's
``src/`` (``gcc -O3``; see bench/README.md). No GloVe code is part of this project.

The generated corpus is one line of Zipf-distributed words ("w<rank>"), like text8: GloVe never
counts across a newline and fastnlp counts the file as one stream (``eos=None`` here), so on one
line both count exactly the same pairs. ``--check`` compares the two results entry by entry.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FASTNLP_SIDE = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
from scipy import sparse
from fastnlp.corpus_files import count_files, vocabulary_from_files

corpus, window, weighting, budget, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
budget = None if budget == "default" else budget
imported = time.perf_counter()
vocabulary = vocabulary_from_files(corpus, eos=None)
counted_vocabulary = time.perf_counter()
C = count_files(corpus, vocabulary, window, weighting=weighting, memory_budget=budget, eos=None)
counted = time.perf_counter()
sparse.save_npz(out + "/fastnlp.npz", C, compressed=False)
with open(out + "/fastnlp.vocab.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(vocabulary.id_to_word) + "\n")
done = time.perf_counter()
print(json.dumps({"import": imported - start, "vocabulary": counted_vocabulary - imported,
                  "count": counted - counted_vocabulary, "write": done - counted, "nnz": int(C.nnz)}))
"""


def _timed(argv, stdin_path=None, stdout_path=None, env=None):
    """Run one process and return (seconds, CPU seconds, peak MiB, stdout): wait4 gives its own
    rusage (user + system time, ru_maxrss)."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    try:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
        out = process.stdout.read() if stdout_path is None else b""
        err = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    finally:
        if stdin_path:
            stdin.close()
        if stdout_path:
            stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {err.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode()


def write_zipf_text(path, tokens, vocab, seed=0):
    """One line of ``tokens`` Zipf-distributed words "w<rank>" (written in blocks)."""
    import numpy as np

    from fastnlp.kernels.harness import zipf_probabilities

    rng = np.random.default_rng(seed)
    probabilities = zipf_probabilities(vocab)
    words = np.array([f"w{i}" for i in range(vocab)])
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, tokens, 1_000_000):
            ids = rng.choice(vocab, min(1_000_000, tokens - start), p=probabilities)
            f.write(" ".join(words[ids].tolist()))
            f.write(" " if start + 1_000_000 < tokens else "\n")


def glove_counts(folder, vocabulary_words):
    """GloVe's output as a CSR matrix over fastnlp's ids (its ids are 1-based frequency ranks)."""
    import numpy as np
    from scipy import sparse

    ranks = [line.split(" ")[0] for line in (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()]
    our_id = {word: i for i, word in enumerate(vocabulary_words)}
    rank_to_id = np.array([our_id[word] for word in ranks], dtype=np.int64)
    triples = np.fromfile(folder / "glove.bin", dtype=np.dtype([("w1", "<i4"), ("w2", "<i4"), ("value", "<f8")]))
    size = len(vocabulary_words)
    rows, cols = rank_to_id[triples["w1"] - 1], rank_to_id[triples["w2"] - 1]
    return sparse.coo_matrix((triples["value"], (rows, cols)), shape=(size, size)).tocsr()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glove-bin", required=True, type=Path, help="folder with GloVe's vocab_count and cooccur")
    parser.add_argument("--corpus", type=Path, help="a text file (default: generate one Zipf line)")
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--weighting", choices=("harmonic", "uniform"), default="harmonic")
    parser.add_argument("--memory-budget", default="default", help="fastnlp's budget, e.g. 512M (default: its own)")
    parser.add_argument("--glove-memory", default=None, help="cooccur -memory in GB (default: cooccur's own)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="compare the two results entry by entry")
    parser.add_argument("--work-dir", type=Path, help="where the corpus and the results go (default: a temp folder)")
    args = parser.parse_args(argv)
    tools = {name: args.glove_bin / name for name in ("vocab_count", "cooccur")}
    for name, tool in tools.items():
        if not os.access(tool, os.X_OK):
            parser.error(f"--glove-bin: {tool} is not an executable (build GloVe's src/{name}.c)")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")

    sys.path.insert(0, str(HERE))
    from machine import describe

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        work = Path(work)
        corpus = args.corpus
        if corpus is None:
            corpus = work / "zipf.txt"
            write_zipf_text(corpus, args.tokens, args.vocab)
        fastnlp_runs, glove_runs = [], []
        cooccur = [str(tools["cooccur"]), "-verbose", "0", "-symmetric", "1", "-window-size", str(args.window),
                   "-vocab-file", str(work / "vocab.txt"), "-overflow-file", str(work / "overflow"),
                   "-distance-weighting", "1" if args.weighting == "harmonic" else "0"]
        if args.glove_memory:
            cooccur += ["-memory", args.glove_memory]
        for _ in range(args.repeat):
            seconds, cpu, peak, out = _timed([sys.executable, "-c", FASTNLP_SIDE, str(corpus), str(args.window),
                                              args.weighting, args.memory_budget, str(work)], env=env)
            fastnlp_runs.append(dict(json.loads(out.strip().splitlines()[-1]), seconds=seconds, cpu=cpu, peak=peak))
            vocab_seconds, vocab_cpu, vocab_peak, _ = _timed(
                [str(tools["vocab_count"]), "-min-count", "1", "-verbose", "0"], stdin_path=corpus,
                stdout_path=work / "vocab.txt")
            count_seconds, count_cpu, count_peak, _ = _timed(cooccur, stdin_path=corpus,
                                                             stdout_path=work / "glove.bin")
            glove_runs.append(dict(vocabulary=vocab_seconds, count=count_seconds, seconds=vocab_seconds + count_seconds,
                                   cpu=vocab_cpu + count_cpu, peak=max(vocab_peak, count_peak),
                                   output=(work / "glove.bin").stat().st_size))
        check = ""
        if args.check:
            import numpy as np
            from scipy import sparse

            ours = sparse.load_npz(work / "fastnlp.npz").tocsr()
            words = (work / "fastnlp.vocab.txt").read_text(encoding="utf-8").splitlines()
            theirs = glove_counts(work, words)
            theirs.sum_duplicates()
            same_pattern = (ours.nnz == theirs.nnz and np.array_equal(ours.indptr, theirs.indptr)
                            and np.array_equal(ours.indices, theirs.indices))
            relative = np.abs(ours.data - theirs.data) / ours.data if same_pattern else np.full(1, np.nan)
            differing = int((relative > 1e-9).sum())
            check = (f"Check: fastnlp {ours.nnz:,} entries, GloVe {theirs.nnz:,}; same pairs: {same_pattern}; "
                     f"{differing} values differ by more than 1e-9 (relative), the largest difference "
                     f"{float(relative.max()):.1e}; totals {ours.sum():.9e} and {theirs.sum():.9e}.")
            first = words.index((work / "vocab.txt").read_text(encoding="utf-8").split(" ", 1)[0])
            if differing == 1 and theirs[first, first] == 2 * ours[first, first]:
                # merge_files reads one record from each temporary file without checking fread: an
                # empty overflow file (a small corpus) repeats the first record of the dense table.
                check += (" The one difference is GloVe's first record, the most frequent word with itself, "
                          "counted twice: its merge repeats it when an overflow file is empty.")
        size = corpus.stat().st_size
    best_ours = min(fastnlp_runs, key=lambda r: r["seconds"])
    best_theirs = min(glove_runs, key=lambda r: r["seconds"])
    print(describe())
    print(f"gcc: {subprocess.run(['gcc', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}"
          if _has_gcc() else "")
    print(f"\n{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f} at the end; one thread each. "
          f"{corpus.name if args.corpus else f'Zipf text, {args.tokens:,} tokens over {args.vocab:,} words, one line'}"
          f" ({size / 2**20:,.0f} MiB); window {args.window}, symmetric, {args.weighting} weights; "
          f"best of {args.repeat} runs, round robin.\n")
    print("| counting from the text file | seconds | CPU seconds | peak MiB | stages (s) |")
    print("| --- | ---: | ---: | ---: | --- |")
    stages = ", ".join(f"{k} {best_ours[k]:.2f}" for k in ("import", "vocabulary", "count", "write"))
    ours_peak, theirs_peak = max(r["peak"] for r in fastnlp_runs), max(r["peak"] for r in glove_runs)
    print(f"| fastnlp count_files (budget {args.memory_budget}) | {best_ours['seconds']:.2f} | "
          f"{min(r['cpu'] for r in fastnlp_runs):.2f} | {ours_peak:,.0f} | {stages} |")
    print(f"| GloVe vocab_count + cooccur | {best_theirs['seconds']:.2f} | {min(r['cpu'] for r in glove_runs):.2f} | "
          f"{theirs_peak:,.0f} | vocab_count {best_theirs['vocabulary']:.2f}, cooccur {best_theirs['count']:.2f} "
          f"(writes {best_theirs['output'] / 2**20:,.0f} MiB) |")
    # Each round's two runs saw about the same load: the median of their ratios is the steadiest figure.
    ratios = sorted(ours["seconds"] / theirs["seconds"] for ours, theirs in zip(fastnlp_runs, glove_runs))
    cpu_ratios = sorted(ours["cpu"] / theirs["cpu"] for ours, theirs in zip(fastnlp_runs, glove_runs))
    print(f"\nfastnlp / GloVe: time {ratios[len(ratios) // 2]:.2f}x (median of the rounds' ratios; "
          f"CPU time {cpu_ratios[len(cpu_ratios) // 2]:.2f}x), peak memory {ours_peak / theirs_peak:.2f}x. "
          f"All runs (s): fastnlp {[round(r['seconds'], 2) for r in fastnlp_runs]}, "
          f"GloVe {[round(r['seconds'], 2) for r in glove_runs]}.")
    if check:
        print(check)


def _has_gcc():
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


if __name__ == "__main__":
    main()
