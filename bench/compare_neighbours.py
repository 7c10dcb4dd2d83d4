"""Nearest neighbours: exact search (gemm + topk) against faiss's exact IndexFlatIP, and the
approximate indexes of WordVectors.build_index (faiss HNSW / IVF), with 1 and 2 threads.

    python bench/compare_neighbours.py                       # PTB vectors and the 1M set
    python bench/compare_neighbours.py --n 200000 --methods ivf --threads 1

Printed per data set and thread count: queries/s (1,000 queries answered as one batch of
``most_similar``, top 10; faiss's search call for faiss's exact index), recall@10 against
fastnlp's exact answer, build time and the resident memory the index added (RSS after build -
before). hnswlib, the other usual peer, is reported "not installed" when it is not.

Data sets:
* PTB: count vectors of the PTB training text (``fastnlp.count_vectors``, window 2, k = 100,
  10,000 words); queries: the vectors of the 1,000 most frequent words as one batch of vectors
  (nothing excluded: each finds itself first).
* synthetic, 1,000,000 x 100 float32, made to look like real embeddings (``make_clustered``):
  3,000 cluster centres drawn from N(0, diag(s)) with a decaying spectrum s_j = (j+1)^-0.6
  (embedding dimensions carry very unequal variance); cluster sizes Zipf-distributed
  (p_c proportional to 1/(c+1), as word frequencies; at 1M the largest cluster holds ~11% of
  the vectors, the median one ~80); each vector = centre + 0.35 * z * a_c * s with z ~ N(0, I)
  and a per-cluster anisotropy a_c = exp(N(0, 0.5^2)) per dimension; seed 0. Queries: 1,000
  vectors of the set (chosen uniformly, seed 1) plus 0.1 * N(0, diag(s)) noise, nothing excluded.

Threads are set with threadpoolctl (BLAS and OpenMP, which faiss uses) for every contender alike.
"""
import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_clustered(n, dim, n_centres=3000, seed=0):
    """See the module docstring; built in chunks straight into one float32 array."""
    import numpy as np

    rng = np.random.default_rng(seed)
    spectrum = (np.arange(dim) + 1.0) ** -0.6
    centres = rng.standard_normal((n_centres, dim)) * np.sqrt(spectrum)
    anisotropy = np.exp(rng.normal(0, 0.5, (n_centres, dim))) * np.sqrt(spectrum)
    p = 1.0 / np.arange(1, n_centres + 1)
    cluster = rng.choice(n_centres, size=n, p=p / p.sum())
    out = np.empty((n, dim), np.float32)
    step = 1 << 17
    for start in range(0, n, step):
        c = cluster[start:start + step]
        z = rng.standard_normal((c.size, dim))
        out[start:start + step] = centres[c] + 0.35 * z * anisotropy[c]
    return out, spectrum, np.bincount(cluster, minlength=n_centres)


def recall(found, truth):
    import numpy as np

    return float(np.mean([len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth)]))


def run(name, wv, queries, excluded_words, threads_list, methods, params, faiss):
    import numpy as np
    from threadpoolctl import threadpool_limits

    print(f"\n### {name}: {len(wv):,} x {wv.vector_size}, {len(queries):,} queries, top 10\n")
    print("| threads | search | queries/s | recall@10 | build s | index MB (RSS) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    ids = {w: i for i, w in enumerate(wv.words)}

    def answer(q):
        if excluded_words is None:
            return wv.most_similar(q, top=10)
        return [wv.most_similar(w, top=10) for w in excluded_words]

    def as_ids(results):
        return [[ids[w] for w, _ in r] for r in results]

    wv.most_similar(queries[:2], top=10)  # unit vectors, compiled kernels
    truth = None
    for threads in threads_list:
        with threadpool_limits(threads):
            if faiss is not None:
                faiss.omp_set_num_threads(threads)
            wv.build_index("exact")
            start = time.perf_counter()
            exact = answer(queries)
            seconds = time.perf_counter() - start
            truth = as_ids(exact) if truth is None else truth
            print(f"| {threads} | fastnlp exact (gemm + topk) | {len(queries) / seconds:,.0f} | "
                  f"{recall(as_ids(exact), truth):.3f} | - | - |", flush=True)
            if faiss is not None:
                unit = np.ascontiguousarray(wv.unit_vectors, dtype=np.float32)
                before = rss_mb()
                start = time.perf_counter()
                flat = faiss.IndexFlatIP(unit.shape[1])
                flat.add(unit)
                build = time.perf_counter() - start
                grown = rss_mb() - before
                unit_q = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), np.float32)
                k = 10 if excluded_words is None else 11
                start = time.perf_counter()
                _, found = flat.search(unit_q, k)
                seconds = time.perf_counter() - start
                if excluded_words is not None:
                    found = [[i for i in row if wv.words[i] != w][:10] for row, w in zip(found, excluded_words)]
                print(f"| {threads} | faiss IndexFlatIP (exact) | {len(queries) / seconds:,.0f} | "
                      f"{recall(found, truth):.3f} | {build:.2f} | {grown:,.0f} |", flush=True)
                del flat, unit
            for method in methods:
                if faiss is None:
                    print(f"| {threads} | fastnlp {method} | faiss not installed | | | |")
                    continue
                before = rss_mb()
                start = time.perf_counter()
                wv.build_index(method, **params[method]["build"])
                build = time.perf_counter() - start
                grown = rss_mb() - before
                for search in params[method]["search"]:
                    wv.set_index_params(**search)
                    start = time.perf_counter()
                    approx = answer(queries)
                    seconds = time.perf_counter() - start
                    shown = ", ".join(f"{k}={v}" for k, v in {**params[method]["build"], **search}.items())
                    print(f"| {threads} | fastnlp {method} ({shown}) | {len(queries) / seconds:,.0f} | "
                          f"{recall(as_ids(approx), truth):.3f} | {build:.1f} | {grown:,.0f} |", flush=True)
                wv.build_index("exact")
    try:
        import hnswlib  # noqa: F401

        print("\nhnswlib: installed but not run by this script")
    except ImportError:
        print("\n| - | hnswlib | not installed | | | |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--methods", default="ivf,hnsw")
    parser.add_argument("--skip-ptb", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args(argv)
    import numpy as np

    sys.path.insert(0, str(HERE))
    from machine import describe

    import fastnlp

    try:
        import faiss
    except ImportError:
        faiss = None
    print(describe())
    print(f"faiss {faiss.__version__ if faiss else 'not installed'}; topk on {fastnlp.kernels.registry.backend_for('topk')}")
    threads_list = [int(t) for t in args.threads.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    if not args.skip_ptb:
        corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=DATA if DATA.exists() else None)
        words = [id_to_word[i] for i in range(len(word_to_id))]
        start = time.perf_counter()
        wv = fastnlp.count_vectors(corpus, words, window=2, k=100)
        print(f"\nPTB count vectors trained in {time.perf_counter() - start:.1f} s")
        frequent = np.argsort(-np.bincount(corpus, minlength=len(words)), kind="stable")[:args.queries]
        query_words = [words[i] for i in frequent]
        queries = np.asarray(wv.vectors[frequent], np.float32)
        params = {"hnsw": {"build": {"M": 16, "ef_construction": 80}, "search": [{"ef_search": 32}, {"ef_search": 64}]},
                  "ivf": {"build": {"nlist": 100}, "search": [{"nprobe": 4}, {"nprobe": 16}]}}
        del query_words
        run("PTB count vectors", wv, queries, None, threads_list, methods, params, faiss)
    if not args.skip_synthetic:
        start = time.perf_counter()
        vectors, spectrum, sizes = make_clustered(args.n, args.dim)
        print(f"\nsynthetic set made in {time.perf_counter() - start:.1f} s: {args.n:,} x {args.dim} float32, "
              f"3,000 Zipf-sized anisotropic clusters (largest {sizes.max():,}, median {int(np.median(sizes)):,} vectors)")
        wv = fastnlp.WordVectors(vectors, [f"v{i}" for i in range(args.n)])
        del vectors
        rng = np.random.default_rng(1)
        picked = rng.choice(args.n, args.queries, replace=False)
        queries = (wv.vectors[picked] + 0.1 * rng.standard_normal((args.queries, args.dim)) * np.sqrt(spectrum)
                   ).astype(np.float32)
        params = {"hnsw": {"build": {"M": 16, "ef_construction": 40}, "search": [{"ef_search": 32}, {"ef_search": 64},
                                                                               {"ef_search": 128}]},
                  "ivf": {"build": {"nlist": 4096}, "search": [{"nprobe": 8}, {"nprobe": 16}, {"nprobe": 32}]}}
        run("synthetic clustered set", wv, queries, None, threads_list, methods, params, faiss)


if __name__ == "__main__":
    main()
