"""Where word2vec's second worker goes: one epoch of PTB trained several ways, side by side.

    python bench/compare_word2vec_threads.py [--data-dir ../shared/data] [--sg 0] [--turns 5] [--gensim]

Each turn runs every variant once, in turn (round robin), on the PTB sentences already turned
into the model's jobs (10,000 words each), from the same initial weights:

* ``kernel x1``: the compiled step over every job, on one thread;
* ``kernel x2 shared``: two threads taking jobs from one counter, updating one set of weights
  without locks (Hogwild, what ``workers=2`` does);
* ``kernel x2 private``: the same two threads, each on its own copy of the weights, so no row
  is written by both: the difference from ``shared`` is what the rows the threads share cost
  (cache lines of frequent words' rows passed between the cores);
* ``kernel x2 private rows``: ``shared``, each job keeping its own copies of the most frequent
  words' rows (what ``workers=2`` does: ``fastnlp.kernels.word2vec.private_rows_for``), synced
  every ``SYNC_TOKENS`` tokens;
* ``model x1`` / ``model x2``: ``Word2Vec.train`` for one epoch with 1 and 2 workers (its jobs'
  ids reused, as from the second epoch on): the difference from the kernel rows is the Python
  around the kernel (job queue, checks, the GIL);
* ``model x2 no private rows``: ``model x2`` with ``private_rows=0`` (plain Hogwild);
* ``gensim x1`` / ``gensim x2`` (``--gensim``): gensim's ``train`` for one epoch;
* ``kernel x1 <level>`` (``--simd``): the 1-thread kernel with each other float step this CPU
  runs (``_cython_impl.SIMD_LEVELS``: the 4-lane AVX2 step beside the default AVX-512 one).

Prints, per variant, the median wall time, words/s, the speed-up of its 2-thread form over its
1-thread form (median of the per-turn ratios) and the CPU seconds the threads used (thread CPU
time; the model and gensim rows: the process's), with the load average: on a machine shared
with other jobs, compare the rows of one table only.
"""
import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_word2vec import SETTINGS  # noqa: E402  the task compare_word2vec.py times, not a copy of it


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--sg", type=int, default=0, help="1: skip-gram, 0: CBOW")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--gensim", action="store_true", help="add gensim's train with 1 and 2 workers")
    parser.add_argument("--simd", action="store_true", help="add the 1-thread kernel at every other SIMD level")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

    import fastnlp
    from fastnlp.kernels import registry
    from fastnlp.kernels import word2vec as kernel_ops
    from fastnlp.models.word2vec import _group_into_jobs

    from machine import describe

    with open(Path(args.data_dir) / "ptb" / "ptb.train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    n_words = sum(map(len, sentences))
    model = fastnlp.Word2Vec(sg=args.sg, workers=1, seed=1, epochs=1, progress=False, **SETTINGS)
    model.build_vocab(sentences)
    encode = registry.kernel("word2vec_encode")
    jobs = [encode(batch, model.vocabulary.word_to_id) for batch, _ in _group_into_jobs(sentences, 10_000)]

    def kernel_epoch(threads, shared, private_rows=0):
        copies = [tuple(w.copy() for w in (model.syn0, model.syn1neg, model.syn1))
                  for _ in range(1 if shared else threads)]
        kernels = [kernel_ops.TrainingKernel(*w, model._tables, sg=bool(args.sg), window=model.window,
                                             negative=model.negative, private_rows=private_rows) for w in copies]
        taken, lock, cpu = [0], threading.Lock(), []

        def work(kernel):
            start = time.thread_time()
            while True:
                with lock:
                    number = taken[0]
                    taken[0] += 1
                if number >= len(jobs):
                    break
                kernel(*jobs[number], model.alpha, model.alpha, number)
            cpu.append(time.thread_time() - start)

        workers = [threading.Thread(target=work, args=(kernels[i % len(kernels)],)) for i in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start, sum(cpu)

    def model_epoch(workers, private_rows=None):
        # One call of two epochs, timed from the end of the first (which encodes the jobs; a
        # call's later epochs reuse their ids) to the end of the second.
        ends = []
        trained = fastnlp.Word2Vec(sg=args.sg, workers=workers, seed=1, epochs=2, progress=False,
                                   private_rows=private_rows,
                                   callbacks=[lambda *_: ends.append((time.perf_counter(), time.process_time()))],
                                   **SETTINGS)
        trained.build_vocab(sentences)
        trained.train(sentences)
        (wall0, cpu0), (wall1, cpu1) = ends
        return wall1 - wall0, cpu1 - cpu0

    def gensim_epoch(workers):
        import gensim

        trained = gensim.models.Word2Vec(sg=args.sg, workers=workers, seed=1, epochs=1, **SETTINGS)
        trained.build_vocab(sentences)
        cpu, start = time.process_time(), time.perf_counter()
        trained.train(sentences, total_examples=len(sentences), epochs=1)
        return time.perf_counter() - start, time.process_time() - cpu

    hot_rows = kernel_ops.private_rows_for(2, model.vector_size, model.syn0.itemsize)
    variants = {"kernel x1": lambda: kernel_epoch(1, True), "kernel x2 shared": lambda: kernel_epoch(2, True),
                "kernel x2 private": lambda: kernel_epoch(2, False),
                "kernel x2 private rows": lambda: kernel_epoch(2, True, hot_rows), "model x1": lambda: model_epoch(1),
                "model x2": lambda: model_epoch(2), "model x2 no private rows": lambda: model_epoch(2, 0)}
    if args.gensim:
        variants.update({"gensim x1": lambda: gensim_epoch(1), "gensim x2": lambda: gensim_epoch(2)})

    def kernel_epoch_at(level):
        from fastnlp.kernels.word2vec import _cython_impl

        default = _cython_impl.SIMD
        _cython_impl.use_simd(level)
        try:
            return kernel_epoch(1, True)
        finally:
            _cython_impl.use_simd(default)

    if args.simd:
        from fastnlp.kernels.word2vec import _cython_impl

        for level in _cython_impl.SIMD_LEVELS[1:]:
            variants[f"kernel x1 {level}"] = lambda level=level: kernel_epoch_at(level)
    one_thread = {"kernel x2 shared": "kernel x1", "kernel x2 private": "kernel x1",
                  "kernel x2 private rows": "kernel x1", "model x2": "model x1", "model x2 no private rows": "model x1",
                  "gensim x2": "gensim x1"}
    load_before = os.getloadavg()
    results = {name: [] for name in variants}
    for _ in range(args.turns):
        for name, run in variants.items():
            results[name].append(run())

    print(describe())
    print("load average (1, 5, 15 min) before / after: " + " / ".join(
        ", ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())) + f" on {os.cpu_count()} cores")

    backend = model._training_kernel(10_000).backend
    if backend == "cython":
        from fastnlp.kernels.word2vec import _cython_impl

        backend += f" (step {_cython_impl.SIMD})"
    print(f"\nPTB train, {n_words:,} words, one epoch, {'skip-gram' if args.sg else 'CBOW'}, "
          f"{len(jobs)} jobs; backend {backend}; private rows with 2 threads {hot_rows}; "
          f"{args.turns} turns, medians\n")
    print("| variant | wall s | words/s | 2 threads / 1 thread | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        base = one_thread.get(name)
        speedup = f"{statistics.median(b[0] / r[0] for r, b in zip(runs, results[base])):.2f}x" if base else ""
        print(f"| {name} | {wall:.3f} | {n_words / wall / 1e6:.2f}M | {speedup} | "
              f"{statistics.median(r[1] for r in runs):.3f} |")


if __name__ == "__main__":
    main()
