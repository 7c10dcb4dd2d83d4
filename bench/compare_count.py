"""One-run comparison of the ch. 2 pipeline on PTB train, window 2, SVD k = 100:

    python bench/compare_count.py [--data-dir ../shared/data] [--repeat 5]

Times co-occurrence (every CPU backend vs the vectorised NumPy bincount count), PPMI, and
the whole pipeline per backend, in one process on the same data, and prints a markdown table
with ratios, the machine, threads and versions.
"""
import argparse
import os
import sys
import time  # the book's loop is timed once, by hand
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--book", action="store_true",
                        help="also time the book's Python-loop create_co_matrix once (about 5 s)")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)


    import fastnlp
    from fastnlp.count import count_vectors
    from fastnlp.kernels import cooccurrence, ppmi
    from fastnlp.kernels import dispatch
    from fastnlp.kernels.harness import benchmark_kernel

    sys.path.insert(0, str(HERE))
    from count_reference import vectorised_cooccurrence
    from machine import describe

    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=args.data_dir)
    vocab = len(word_to_id)
    words = [id_to_word[i] for i in range(vocab)]

    def median_s(fn, repeat=args.repeat):
        return benchmark_kernel(fn, repeat=repeat, min_seconds=0)  # one call per timed block

    backends = [b for b, why in fastnlp.available_backends().items() if why is None and b in dispatch.CPU_BACKENDS]
    print(describe())
    print(f"\nPTB train: {len(corpus):,} tokens, V = {vocab:,}; window 2; SVD k = 100 (ARPACK, the pipeline default)\n")
    print("| stage | implementation | median s | vs vectorised NumPy |")
    print("| --- | --- | ---: | ---: |")
    base = median_s(lambda: vectorised_cooccurrence(corpus, vocab, 2), max(args.repeat // 2, 1))
    if args.book:
        from book_loops import book_create_co_matrix

        start = time.perf_counter()
        book_create_co_matrix(corpus, vocab, 2)
        seconds = time.perf_counter() - start
        print(f"| co-occurrence | the book's create_co_matrix (Python loops, dense, one run) | {seconds:.3f} | "
              f"{base / seconds:.2f}x |")
    print(f"| co-occurrence | vectorised NumPy (bincount on pair codes + CSR) | {base:.3f} | 1.0x |")
    C = None
    for backend in backends:
        with fastnlp.use_backend(backend):
            seconds = median_s(lambda: cooccurrence(corpus, vocab, 2))
            C = cooccurrence(corpus, vocab, 2)
        print(f"| co-occurrence | fastnlp {backend} | {seconds:.3f} | {base / seconds:.1f}x |")
    reference_C = vectorised_cooccurrence(corpus, vocab, 2)
    assert (reference_C != C).nnz == 0, "kernel and vectorised count disagree"
    for backend in backends:
        with fastnlp.use_backend(backend):
            seconds = median_s(lambda: ppmi(C))
        print(f"| PPMI (sparse) | fastnlp {backend} | {seconds:.3f} | |")
    for backend in backends:
        with fastnlp.use_backend(backend):
            timings = {}
            seconds = median_s(lambda: count_vectors(corpus, words, window=2, k=100, timings=timings),
                               max(args.repeat // 2, 1))
        stages = ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        print(f"| whole pipeline | fastnlp {backend} ({stages}) | {seconds:.3f} | |")


if __name__ == "__main__":
    main()
