"""Shard files counted on a Dask LocalCluster (1 and 2 workers) against one process:

    python bench/compare_dask_count.py [--shards 8] [--tokens 1500000] [--vocab 100000] [--window 5]
                                       [--repeat 3] [--folder DIR]

Writes ``--shards`` shards of Zipf text (p ~ 1/rank over ``--vocab`` words, lines of 1-40 words)
unless ``--folder`` holds them already, then times, round robin in one process on the same files:
the vocabulary pass and ``corpus_files.count_files`` of all the shards as one stream here, and
``distributed.count_shards`` (vocabulary, per-shard counts, tree reduction, gather) on a
LocalCluster of 1 and of 2 single-thread workers started beforehand, checking that every result
equals the single process's counts bit for bit. One shard is then counted alone in a fresh
process for its cost: seconds, peak resident memory above the process's baseline, the bytes
of its CSR piece and of its word counts. Last, the estimate for 100 shards of a 3B-token,
V = 400k corpus built from those measurements (see ``paper_estimate``), beside GloVe's
``cooccur`` extrapolated from its measured 9.4 s and 1.1 GB for 10M tokens.
"""
import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# GloVe's cooccur, measured (the figures): 10M tokens, V = 100k, window 5, 9.4 s and
# 1.1 GB including parsing and writing its 383 MB result of (int32, int32, float64) records.
GLOVE_TOKENS, GLOVE_SECONDS, GLOVE_BYTES, GLOVE_RESULT_BYTES = 10_000_000, 9.4, 1.1e9, 383e6
GLOVE_RECORD_BYTES = 16
# The corpus the estimate is for.
TARGET_TOKENS, TARGET_SHARDS, TARGET_VOCAB = 3_000_000_000, 100, 400_000


def write_shards(folder: Path, shards: int, tokens: int, vocab: int, seed: int = 0) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    paths = []
    for s in range(shards):
        path = folder / f"shard-{s:03d}.txt"
        paths.append(path)
        if path.exists():
            continue
        ids = rng.choice(vocab, tokens, p=p)
        cuts = np.cumsum(rng.integers(1, 41, tokens // 10 + 1))
        cuts = cuts[cuts < tokens]
        lines = [" ".join(line) for line in np.split(words[ids], cuts)]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    return paths


def _csr_bytes(matrix) -> int:
    return matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes


def measure_one_shard(paths, index, window, split_every, repeat):
    """Runs in a fresh process: the cost of shard ``index`` as a worker meets it (its word
    counts, its co-occurrence counts with the left context; medians of ``repeat`` runs, the peak
    memory of the first) and of one tree node summing ``split_every`` pieces of its size."""
    import threading

    import psutil

    from fastnlp.corpus_files import count_files, vocabulary_from_files
    from fastnlp.distributed import _left_context, _shard_word_counts, _sum_counts

    vocabulary = vocabulary_from_files(paths)
    warm = Path(tempfile.mkdtemp()) / "warm.txt"  # compiles the kernels on a small file
    warm.write_text(paths[index].read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    count_files([warm], vocabulary, window=window)
    _shard_word_counts(str(warm), "utf-8", "<eos>")
    # Peak resident memory while the shard is counted, sampled every 2 ms (the kernels'
    # allocations do not all pass through Python's allocator, so tracemalloc would miss some).
    process, peak, counting = psutil.Process(), [0], threading.Event()

    def sample():
        while not counting.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    baseline = process.memory_info().rss
    sampler.start()
    start = time.perf_counter()
    word_counts = _shard_word_counts(str(paths[index]), "utf-8", "<eos>")
    words_seconds = time.perf_counter() - start
    start = time.perf_counter()
    piece = count_files([paths[index]], vocabulary, window=window,
                        context_ids=_left_context(paths, index, vocabulary, window, "utf-8", "<eos>"))
    seconds = time.perf_counter() - start
    counting.set()
    sampler.join()
    peak = peak[0]
    words_runs, count_runs = [words_seconds], [seconds]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        _shard_word_counts(str(paths[index]), "utf-8", "<eos>")
        words_runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        count_files([paths[index]], vocabulary, window=window,
                    context_ids=_left_context(paths, index, vocabulary, window, "utf-8", "<eos>"))
        count_runs.append(time.perf_counter() - start)
    words_seconds, seconds = statistics.median(words_runs), statistics.median(count_runs)
    start = time.perf_counter()
    _sum_counts(*[piece] * split_every)
    sum_seconds = time.perf_counter() - start
    return {"count_seconds": seconds, "words_seconds": words_seconds, "peak_extra_bytes": max(peak - baseline, 0),
            "piece_nnz": int(piece.nnz), "piece_bytes": _csr_bytes(piece), "piece_pickled": len(pickle.dumps(piece)),
            "word_counts_pickled": len(pickle.dumps(word_counts)), "vocab": len(vocabulary),
            "sum_seconds_per_count": sum_seconds / (split_every * piece.nnz)}


def paper_estimate(shard, shard_tokens_measured, growth, workers, split_every, link_bytes_per_s=1.25e9):
    """Time, memory and network for TARGET_SHARDS shards of a TARGET_TOKENS corpus, V = TARGET_VOCAB,
    on ``workers`` single-thread workers, from the measured ``shard`` (``measure_one_shard``).

    Assumptions: a shard costs the measured seconds per token (word counts + co-occurrence, one
    thread); the stored counts of a stream of t tokens are GloVe's 24M at 10M tokens (its 383 MB
    of 16-byte records) times (t / 10M)**growth, the exponent fitted here between one shard and
    all of them (V = 400k adds rare pairs, which the exponent carries); a stored count is 12
    bytes (float64 + int32 column), its pickle the same; each shard's count is cut into one row
    block per worker (balanced by the vocabulary counts) and every block summed by its own tree
    of ``split_every`` pieces a node, every piece but one per node crossing the network once per
    level, at ``link_bytes_per_s`` per worker (10 Gb/s); a node sums at the measured seconds
    per count. Memory: a count holds its working memory (the measured peak less the piece; the
    ``memory_budget`` bounds it) and, while merging its last partial counts, its piece twice; a
    tree task holds its pieces, their packed copy and their sum.
    """
    shard_tokens = TARGET_TOKENS // TARGET_SHARDS
    glove_nnz = GLOVE_RESULT_BYTES / GLOVE_RECORD_BYTES

    def nnz_of(tokens):
        return glove_nnz * (tokens / GLOVE_TOKENS) ** growth

    shard_nnz, total_nnz = nnz_of(shard_tokens), nnz_of(TARGET_TOKENS)
    per_token = (shard["count_seconds"] + shard["words_seconds"]) / shard_tokens_measured
    shard_seconds = shard_tokens * per_token
    count_seconds = -(-TARGET_SHARDS // workers) * shard_seconds
    working = min(max(shard["peak_extra_bytes"] - shard["piece_bytes"], 0), 2 << 30)
    count_memory = working + 2 * shard_nnz * 12
    blocks = workers
    moved, tree_seconds, node_memory, pieces, piece_nnz, levels = 0.0, 0.0, 0.0, TARGET_SHARDS, shard_nnz, []
    while pieces > 1:
        nodes = -(-pieces // split_every)
        bytes_in = (pieces - nodes) * piece_nnz * 12
        moved += bytes_in
        per_node = -(-pieces // nodes)
        summed = min(nnz_of(TARGET_TOKENS / nodes), piece_nnz * per_node)
        tasks = nodes * blocks
        # Tasks of a level run side by side; each receives and sums per_node block pieces.
        per_task = per_node * piece_nnz / blocks
        tree_seconds += -(-tasks // workers) * (per_task * shard["sum_seconds_per_count"]
                                                + per_task * 12 / link_bytes_per_s)
        node_memory = max(node_memory, (2 * per_task + summed / blocks) * 12)
        levels.append(nodes)
        pieces, piece_nnz = nodes, summed
    return {"shard_tokens": shard_tokens, "shard_nnz": shard_nnz, "total_nnz": total_nnz, "per_token": per_token,
            "shard_seconds": shard_seconds, "count_seconds": count_seconds, "count_memory": count_memory,
            "levels": levels, "tree_bytes": moved, "tree_seconds": tree_seconds, "node_memory": node_memory,
            "result_bytes": total_nnz * 12, "glove_seconds": GLOVE_SECONDS * TARGET_TOKENS / GLOVE_TOKENS,
            "glove_result_bytes": total_nnz * GLOVE_RECORD_BYTES}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1_500_000, help="tokens per shard")
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--split-every", type=int, default=8)
    parser.add_argument("--folder", help="where the shards are (written there when missing); default a temporary one")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"

    import numpy as np
    from distributed import Client, LocalCluster

    from fastnlp.corpus_files import count_files, vocabulary_from_files
    from fastnlp.distributed import count_shards

    sys.path.insert(0, str(HERE))
    from machine import describe

    temporary = None if args.folder else tempfile.TemporaryDirectory(prefix="dask-count-")
    folder = Path(args.folder or temporary.name)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = write_shards(folder, args.shards, args.tokens, args.vocab)
    print(f"{args.shards} shards of {args.tokens:,} Zipf tokens (V = {args.vocab:,}) in {folder} "
          f"({time.perf_counter() - start:.0f} s to write)", file=sys.stderr)

    clusters = {workers: LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") for workers in (1, 2)}
    clients = {workers: Client(cluster) for workers, cluster in clusters.items()}
    for client in clients.values():
        client.run(lambda: __import__("fastnlp.corpus_files"))

    def single():
        vocabulary = vocabulary_from_files(paths)
        return count_files(paths, vocabulary, window=args.window), vocabulary

    reference, _ = single()  # also compiles the kernels here
    for client in clients.values():  # and on the workers
        count_shards(paths[:1], client, window=args.window)
    times = {"one process": [], "1 worker": [], "2 workers": []}
    stages = {"1 worker": [], "2 workers": []}
    for _ in range(args.repeat):
        start = time.perf_counter()
        counts, _ = single()
        times["one process"].append(time.perf_counter() - start)
        for workers, client in clients.items():
            name = f"{workers} worker{'s' if workers > 1 else ''}"
            timings = {}
            start = time.perf_counter()
            counts, _ = count_shards(paths, client, window=args.window, split_every=args.split_every, timings=timings)
            times[name].append(time.perf_counter() - start)
            stages[name].append(timings)
            same = (counts.indptr.tobytes() == reference.indptr.tobytes() and counts.data.tobytes() ==
                    reference.data.tobytes() and counts.indices.tobytes() == reference.indices.tobytes())
            assert same, f"{name}: the counts differ from one process's"
    for client in clients.values():
        client.close()
    for cluster in clusters.values():
        cluster.close()

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        shard = pool.submit(measure_one_shard, paths, len(paths) // 2, args.window, args.split_every,
                            args.repeat).result()

    corpus_tokens = args.shards * args.tokens
    load = os.getloadavg()
    print(describe())
    print(f"\nLoad average after the runs: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}. {args.shards} shards x "
          f"{args.tokens:,} tokens = {corpus_tokens:,} tokens, generated Zipf text, V = {shard['vocab']:,} seen; "
          f"window {args.window}, uniform; split_every {args.split_every}; medians of {args.repeat} round-robin runs. "
          "Every cluster result equals the one-process counts bit for bit.\n")
    base = statistics.median(times["one process"])
    print("| counting (vocabulary + counts + reduction + gather) | median s | tokens/s | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        seconds = statistics.median(values)
        detail = ""
        if name in stages:
            parts = {k: statistics.median(t[k] for t in stages[name]) for k in ("vocabulary", "cooccurrence")}
            detail = f" (vocabulary {parts['vocabulary']:.1f} s, counts + tree {parts['cooccurrence']:.1f} s)"
        print(f"| {name}{detail} | {seconds:.2f} | {corpus_tokens / seconds:,.0f} | {base / seconds:.2f}x |")

    print(f"\nOne shard ({args.tokens:,} tokens) alone in a fresh process (medians of {args.repeat}): word counts "
          f"{shard['words_seconds']:.2f} s "
          f"({shard['word_counts_pickled'] / 1e6:.1f} MB pickled), co-occurrence {shard['count_seconds']:.2f} s, "
          f"peak memory {shard['peak_extra_bytes'] / 1e6:.0f} MB above the process's baseline, CSR piece "
          f"{shard['piece_nnz']:,} counts = {shard['piece_bytes'] / 1e6:.1f} MB ({shard['piece_pickled'] / 1e6:.1f} MB "
          f"pickled); a tree node sums {1 / shard['sum_seconds_per_count'] / 1e6:.0f}M counts/s. All shards: "
          f"{reference.nnz:,} counts ({_csr_bytes(reference) / 1e6:.1f} MB).")

    growth = float(np.log(reference.nnz / shard["piece_nnz"]) / np.log(args.shards))
    estimates = {w: paper_estimate(shard, args.tokens, growth, w, args.split_every) for w in (100, 25)}
    e = estimates[100]
    print(f"\nEstimate for {TARGET_SHARDS} shards of {e['shard_tokens'] / 1e6:.0f}M tokens (3B, V = 400k), window "
          f"{args.window}: stored counts grow as tokens^{growth:.2f} (fitted here), anchored on GloVe's "
          f"{GLOVE_RESULT_BYTES / GLOVE_RECORD_BYTES / 1e6:.0f}M at 10M tokens: {e['shard_nnz'] / 1e6:.0f}M a shard, "
          f"{e['total_nnz'] / 1e9:.2f}G in all; {1 / e['per_token']:,.0f} tokens/s a worker as measured.\n")
    print("| | " + " | ".join(f"{w} workers" for w in estimates) + " | GloVe cooccur, one machine |")
    print("| --- | " + " | ".join("---:" for _ in estimates) + " | ---: |")
    glove = e["glove_seconds"]
    rows = [
        ("counting (s)", lambda x: f"{x['count_seconds']:,.0f}", f"{glove:,.0f} (linear in tokens)"),
        ("tree reduction (s)", lambda x: f"{x['tree_seconds']:,.0f}", "(its merge of spilled files)"),
        ("total (s)", lambda x: f"{x['count_seconds'] + x['tree_seconds']:,.0f}", f"{glove:,.0f} + merge"),
        ("memory per worker, counting (GB)", lambda x: f"{x['count_memory'] / 1e9:.2f}",
         f"{GLOVE_BYTES / 1e9:.1f} at 10M tokens (its -memory limit, then spills)"),
        ("memory per worker, tree (GB)", lambda x: f"{x['node_memory'] / 1e9:.2f}", ""),
        ("network, tree (GB)", lambda x: f"{x['tree_bytes'] / 1e9:,.0f}", "0"),
        ("result (GB)", lambda x: f"{x['result_bytes'] / 1e9:,.0f} as CSR, in row blocks",
         f"{e['glove_result_bytes'] / 1e9:,.0f} written"),
    ]
    for label, cell, glove_cell in rows:
        print(f"| {label} | " + " | ".join(cell(x) for x in estimates.values()) + f" | {glove_cell} |")
    if temporary is not None:
        temporary.cleanup()


if __name__ == "__main__":
    main()
