"""Nearest neighbours: exact search (gemm + topk) against faiss's exact IndexFlatIP, and the
approximate indexes of WordVectors.build_index (IVF: fastnlp's list-major scan over faiss's k-means
lists; HNSW: faiss's graph), at 1 and 2 threads.

    python bench/compare_neighbours.py                       # PTB vectors and the 1M set
    python bench/compare_neighbours.py --skip-ptb --configs ivf --threads 1

Printed per data set and thread count, for each contender: queries/s (1,000 queries answered as
one batch call: ``most_similar`` of a (1000, D) array, top 10; faiss's ``search`` for its exact
index), the ratio to fastnlp's exact search, recall@10 against fastnlp's exact answer, the index's
build time and the resident memory it added (RSS after build - before). Every contender of a
thread count is timed once per turn, ``--turns`` turns round robin, so a change in the machine's
load hits all alike; the medians are printed. ``q/s CPU`` (1 thread only) counts the calling
thread's CPU time instead of the wall clock: on a machine shared with other work it is the steadier
figure (at 1 thread every contender computes on the calling thread). Each approximate index is
built once, with the largest thread count, and searched at every thread count.

"ivf" rows are ``build_index("ivf")``: fastnlp's own inverted lists, scanned list-major
(``kernels.ivf_scan``: each probed list read once for all the queries of the batch that probe it).
Beside them, at one nprobe, stand faiss's IndexIVFFlat holding the very same lists (built from the
index's arrays with ``add_preassigned``, no k-means), scanning them query by query with
``search_preassigned`` given the same probes (what build_index("ivf") ran before the list-major
scan), and both answering one query per call (the first 100 queries, one call each of the
index's ``candidates`` / faiss's ``search_preassigned``, the lists chosen the same way): the
small-batch case, without most_similar's own per-call work (the same for both).

faiss's exact IndexFlatIP is shown twice: as faiss runs it by default and with
``faiss.cvar.distance_compute_blas_threshold = 0``. faiss (1.15) sends a batch to its BLAS path
only when queries x dim >= 128,000; 1,000 queries of 100 dimensions fall below, so by default
each query streams the whole matrix from memory on its own (the 11-18 queries/s first measured on
the 1M set). The default path is timed on the first 100 queries only (per query it is the same).

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
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"

# name: (method, build parameters, search parameters tried one after another). The default
# settings of build_index are the configurations named "hnsw" and "ivf" at their first search
# setting; the others show what the parameters buy.
# For "ivf", the last entry is the nprobe at which faiss's scan of the same lists and the
# one-query-per-call rows are shown.
PTB_CONFIGS = {
    "ivf": ("ivf", {"nlist": 100}, [{"nprobe": 4}, {"nprobe": 16}], 16),
    "hnsw": ("hnsw", {"M": 16, "ef_construction": 80}, [{"ef_search": 32}, {"ef_search": 64}], None),
}
MILLION_CONFIGS = {
    # nlist=4000: the default (4 sqrt(n)) at a million words; nprobe=24 the default
    "ivf": ("ivf", {"nlist": 4000}, [{"nprobe": 16}, {"nprobe": 20}, {"nprobe": 24}, {"nprobe": 32}], 24),
    "hnsw": ("hnsw", {"M": 32, "ef_construction": 80}, [{"ef_search": 64}, {"ef_search": 128}], None),
}
# Queries answered one call each in the small-batch rows.
SINGLE_QUERIES = 100


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


def timed(call):
    """(result, wall seconds, calling thread's CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def run(name, wv, queries, threads_list, configs, turns, faiss):
    import numpy as np
    from threadpoolctl import threadpool_limits

    import fastnlp

    print(f"\n### {name}: {len(wv):,} x {wv.vector_size}, {len(queries):,} queries, top 10\n", flush=True)
    ids = wv.key_to_index

    def as_ids(results):
        return [[ids[w] for w, _ in r] for r in results]

    wv.most_similar(queries[:2], top=10)  # unit vectors, compiled kernels
    truth = as_ids(wv.most_similar(queries, top=10))
    unit_q = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), np.float32)
    # Contenders: (label, build seconds, MB added, search(queries) -> ids per query, share of the batch)
    contenders = [("fastnlp exact (gemm + topk)", None, None, lambda: as_ids(wv.most_similar(queries, top=10)), 1)]
    current_threads = [max(threads_list)]  # hnswlib takes its thread count per call
    if faiss is not None:
        before, start = rss_mb(), time.perf_counter()
        flat = faiss.IndexFlatIP(wv.vector_size)
        flat.add(np.ascontiguousarray(wv.unit_vectors, dtype=np.float32))
        build, grown = time.perf_counter() - start, rss_mb() - before
        default_threshold = faiss.cvar.distance_compute_blas_threshold
        few = min(100, len(unit_q))

        def flat_search(threshold, batch):
            faiss.cvar.distance_compute_blas_threshold = threshold
            try:
                return flat.search(batch, 10)[1].tolist()
            finally:
                faiss.cvar.distance_compute_blas_threshold = default_threshold

        contenders.append(("faiss IndexFlatIP, default path", build, grown,
                           lambda: flat_search(default_threshold, unit_q[:few]), few / len(unit_q)))
        contenders.append(("faiss IndexFlatIP, BLAS path (threshold 0)", build, grown,
                           lambda: flat_search(0, unit_q), 1))
    with threadpool_limits(max(threads_list)):
        for config, (method, build_params, searches, reference_nprobe) in configs.items():
            if faiss is None:
                print(f"{config}: faiss not installed")
                continue
            index_wv = fastnlp.WordVectors(wv.vectors, wv.words)
            index_wv.unit_vectors  # the exact search's copy, not counted as the index's memory
            before, start = rss_mb(), time.perf_counter()
            index_wv.build_index(method, **build_params)
            build, grown = time.perf_counter() - start, rss_mb() - before
            print(f"built {config}: {build:.1f} s ({max(threads_list)} threads), +{grown:,.0f} MB", flush=True)
            index_wv.most_similar(queries[:2], top=10)  # compiled kernels
            for search in searches:
                shown = ", ".join(f"{k}={v}" for k, v in {**build_params, **search}.items())

                def approximate(index_wv=index_wv, search=search):
                    index_wv.set_index_params(**search)
                    return as_ids(index_wv.most_similar(queries, top=10))

                contenders.append((f"{method} ({shown})", build, grown, approximate, 1))
            if method == "ivf":
                contenders += faiss_same_lists(faiss, index_wv, queries, unit_q, reference_nprobe, build, grown)
            if method == "hnsw":
                contenders += hnswlib_peer(wv, unit_q, build_params, searches, max(threads_list), current_threads)
    for threads in threads_list:
        current_threads[0] = threads
        timings = {label: [] for label, *_ in contenders}
        found = {}
        with threadpool_limits(threads):
            wv.most_similar(queries[:2], top=10)  # a first call at this thread count may calibrate the ops
            for _ in range(turns):
                for label, _, _, search, _ in contenders:
                    found[label], wall, cpu = timed(search)
                    timings[label].append((wall, cpu))
        print(f"\n{threads} thread(s), median of {turns} turns:\n")
        print("| search | queries/s | x exact | " + ("q/s CPU | x exact (CPU) | " if threads == 1 else "")
              + "recall@10 | build s | index MB (RSS) |")
        print("| --- | ---: | ---: | " + ("---: | ---: | " if threads == 1 else "") + "---: | ---: | ---: |")
        exact_wall = exact_cpu = None
        for label, build, grown, _, share in contenders:
            wall = statistics.median(t[0] for t in timings[label]) / share
            cpu = statistics.median(t[1] for t in timings[label]) / share
            exact_wall, exact_cpu = exact_wall or wall, exact_cpu or cpu
            n_found = len(found[label])
            row = f"| {label} | {len(queries) / wall:,.0f} | {exact_wall / wall:.1f} | "
            if threads == 1:
                row += f"{len(queries) / cpu:,.0f} | {exact_cpu / cpu:.1f} | "
            built = "- | -" if build is None else f"{build:.1f} | {grown:,.0f}"
            row += f"{recall(found[label], truth[:n_found]):.3f} | {built} |"
            print(row, flush=True)
    if "hnsw" in configs and not hnswlib_available():
        print("\nhnswlib: not installed (the bench extra)")


def hnswlib_available():
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


def hnswlib_peer(wv, unit_q, build_params, searches, build_threads, current_threads):
    """hnswlib's HNSW (inner product) with the faiss HNSW configuration's M and ef_construction,
    searched at the same ef values, the whole batch in one knn_query on the current thread count."""
    if not hnswlib_available():
        return []
    import hnswlib
    import numpy as np

    before, start = rss_mb(), time.perf_counter()
    index = hnswlib.Index(space="ip", dim=wv.vector_size)
    index.init_index(max_elements=len(wv), M=build_params["M"], ef_construction=build_params["ef_construction"],
                     random_seed=0)
    index.add_items(np.ascontiguousarray(wv.unit_vectors, dtype=np.float32), num_threads=build_threads)
    build, grown = time.perf_counter() - start, rss_mb() - before
    print(f"built hnswlib: {build:.1f} s ({build_threads} threads), +{grown:,.0f} MB", flush=True)
    contenders = []
    for search in searches:
        ef = search["ef_search"]

        def query(ef=ef):
            index.set_ef(ef)
            return index.knn_query(unit_q, k=10, num_threads=current_threads[0])[0].tolist()

        contenders.append((f"hnswlib (M={build_params['M']}, ef_construction={build_params['ef_construction']}, "
                           f"ef={ef})", build, grown, query, 1))
    return contenders


def faiss_same_lists(faiss, index_wv, queries, unit_q, nprobe, build, grown):
    """Contenders at ``nprobe``: faiss's IndexIVFFlat holding the lists of ``index_wv``'s IVF
    index, scanning them query by query (``search_preassigned``, the same probes), for the batch
    and one query per call; and the list-major index one query per call."""
    import numpy as np
    from faiss.contrib.ivf_tools import add_preassigned

    index = index_wv._index
    before, start = rss_mb(), time.perf_counter()
    quantizer = faiss.IndexFlatIP(index.centroids.shape[1])
    quantizer.add(index.centroids)
    reference = faiss.IndexIVFFlat(quantizer, index.centroids.shape[1], index.nlist, faiss.METRIC_INNER_PRODUCT)
    reference.is_trained = True
    add_preassigned(reference, index.vectors, np.repeat(np.arange(index.nlist), np.diff(index.offsets)), index.ids)
    reference.nprobe = min(nprobe, index.nlist)
    copied, copy_grown = time.perf_counter() - start, rss_mb() - before
    print(f"faiss IndexIVFFlat of the same lists: {copied:.1f} s to fill, +{copy_grown:,.0f} MB", flush=True)
    few = min(SINGLE_QUERIES, len(queries))

    def faiss_scan(batch):
        probes = index.probes(batch, reference.nprobe)  # the lists build_index("ivf") probes
        return reference.search_preassigned(batch, 10, probes, np.zeros(probes.shape, np.float32))[1].tolist()

    def ours_one_by_one():
        index.set_params(nprobe=nprobe)
        return [index.candidates(unit_q[q:q + 1], 10)[0][0].tolist() for q in range(few)]

    def faiss_one_by_one():
        return [faiss_scan(unit_q[q:q + 1])[0] for q in range(few)]

    scan = f"nprobe={nprobe}"
    # faiss's rows: the build time includes the k-means (shared), the memory is faiss's own copy.
    return [(f"faiss IVF scan of the same lists, query by query ({scan})", build + copied, copy_grown,
             lambda: faiss_scan(unit_q), 1),
            (f"ivf ({scan}), one query per call", build, grown, ours_one_by_one, few / len(queries)),
            (f"faiss IVF scan of the same lists, one query per call ({scan})", build + copied, copy_grown,
             faiss_one_by_one, few / len(queries))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--configs", default=",".join(MILLION_CONFIGS),
                        help=f"approximate indexes on the synthetic set, of {', '.join(MILLION_CONFIGS)}")
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
    unknown = set(args.configs.split(",")) - set(MILLION_CONFIGS) - {""}
    if unknown:
        parser.error(f"unknown --configs {sorted(unknown)}; choose from {', '.join(MILLION_CONFIGS)}")
    if not args.skip_ptb:
        corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=DATA if DATA.exists() else None)
        words = [id_to_word[i] for i in range(len(word_to_id))]
        start = time.perf_counter()
        wv = fastnlp.count_vectors(corpus, words, window=2, k=100)
        print(f"\nPTB count vectors trained in {time.perf_counter() - start:.1f} s")
        frequent = np.argsort(-np.bincount(corpus, minlength=len(words)), kind="stable")[:args.queries]
        queries = np.asarray(wv.vectors[frequent], np.float32)
        run("PTB count vectors", wv, queries, threads_list, PTB_CONFIGS, args.turns, faiss)
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
        configs = {name: MILLION_CONFIGS[name] for name in args.configs.split(",") if name}
        run("synthetic clustered set", wv, queries, threads_list, configs, args.turns, faiss)


if __name__ == "__main__":
    main()
