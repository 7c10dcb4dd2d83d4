"""Co-occurrence counting under a memory budget: time and peak memory per budget and chunk size.

    python bench/compare_count_budget.py [--tokens 10000000] [--vocab 100000] [--window 5] [--repeat 2]

One synthetic Zipf corpus (the issue's: 10M ids over V = 100k, window 5, uniform weights) is
counted by ``fastnlp.kernels.cooccurrence`` in a fresh process per setting (so each peak is its
own). For each budget: the automatic chunk size (the largest the budget allows), then the
corpus handed over in fixed smaller chunks under the same budget. Settings run round robin,
``--repeat`` times; the table has the best time and the largest peak of each. Peak memory is
the process's maximum resident set (``ru_maxrss``) minus what it held before counting (the
corpus, the libraries): the counting's working memory plus its result.
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

CHILD = r"""
import importlib, json, resource, sys, time
import numpy as np
from fastnlp.kernels import cooccurrence
counting = importlib.import_module("fastnlp.kernels.cooccurrence")  # the module, not the function

path, vocab, window, chunk, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
corpus = np.load(path)
cooccurrence(corpus[:10_000], vocab, window)  # load the kernels before the baseline
budget = None if budget == "default" else budget
pieces = corpus if chunk == "auto" else (corpus[i:i + int(chunk)] for i in range(0, len(corpus), int(chunk)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
C = cooccurrence(pieces, vocab, window, dtype=np.float64, memory_budget=budget)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
chunk_tokens = counting.chunk_tokens_for_budget(budget, vocab, window)
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mib": (peak - before) / 1024, "nnz": int(C.nnz),
                  "chunk_tokens": chunk_tokens, "budget_mib": counting._Budget(budget, vocab, window,
                  counting._backend_of(np)).total / 2**20}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000_000)
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="*", default=[250_000, 1_000_000, 4_000_000],
                        help="fixed chunk sizes (tokens) to time under each budget they fit")
    parser.add_argument("--budgets", nargs="*", default=["default", "1G", "512M", "256M"],
                        help="budgets to time")
    args = parser.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")

    import numpy as np

    sys.path.insert(0, str(HERE))
    from machine import describe

    from fastnlp.kernels.harness import zipf_probabilities

    from fastnlp.kernels.cooccurrence import chunk_tokens_for_budget

    settings = []
    for budget in args.budgets:
        auto = chunk_tokens_for_budget(None if budget == "default" else budget, args.vocab, args.window)
        settings += [("auto", budget)] + [(str(chunk), budget) for chunk in args.chunks if chunk < auto]
    results = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "corpus.npy"
        rng = np.random.default_rng(0)
        np.save(path, rng.choice(args.vocab, args.tokens, p=zipf_probabilities(args.vocab)).astype(np.int64))
        for _ in range(args.repeat):
            for chunk, budget in settings:
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.vocab), str(args.window),
                                      chunk, budget], env=env, check=True, capture_output=True, text=True).stdout
                results[(chunk, budget)].append(json.loads(out.strip().splitlines()[-1]))

    print(describe())
    print(f"\n{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f} at the end; one thread. "
          f"Zipf corpus of {args.tokens:,} ids, V = {args.vocab:,}, window {args.window}, uniform weights; "
          f"best of {args.repeat} runs.\n")
    # CPU seconds beside the wall clock: on a shared machine they move less with the load.
    print("| budget | chunk (tokens) | seconds | CPU seconds | CPU vs auto | counting's peak MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for budget in args.budgets:
        auto_cpu = min(r["cpu"] for r in results[("auto", budget)])
        for chunk, _ in [s for s in settings if s[1] == budget]:
            runs = results[(chunk, budget)]
            seconds, cpu = min(r["seconds"] for r in runs), min(r["cpu"] for r in runs)
            peak = max(r["peak_mib"] for r in runs)
            shown_chunk = f"{runs[0]['chunk_tokens']:,} (auto)" if chunk == "auto" else f"{int(chunk):,}"
            print(f"| {budget} ({runs[0]['budget_mib']:,.0f} MiB) | {shown_chunk} | {seconds:.2f} | {cpu:.2f} | "
                  f"{cpu / auto_cpu:.2f}x | {peak:,.0f} |")
    nnz = next(iter(results.values()))[0]["nnz"]
    print(f"\nThe result has {nnz:,} entries ({nnz * 12 / 2**20:,.0f} MiB as CSR).")

if __name__ == "__main__":
    main()
