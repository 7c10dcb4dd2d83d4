"""One-run comparison of scatter-add: every CPU backend against torch and np.add.at.

    python bench/compare_scatter_add.py [--repeat 7] [--threads 1]

Prints a markdown table of medians and ratios (all measured in this one process, same data),
with the machine, thread count and versions, ready for bench/README.md.
"""
import argparse
import os
import sys
import timeit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    import fastnlp
    from fastnlp.kernels import scatter_add

    sys.path.insert(0, os.path.dirname(__file__))
    from machine import describe
    from test_bench_scatter_add import SIZES, make_problem

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    def median_us(fn, number):
        runs = timeit.repeat(fn, number=number, repeat=args.repeat)
        return sorted(runs)[len(runs) // 2] / number * 1e6

    print(describe())
    print()
    print("| size | implementation | median us | vs np.add.at | vs torch index_add_ |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size in SIZES:
        dW, idx, dout = make_problem(size)
        rows = {}
        rows["np.add.at (reference)"] = median_us(
            lambda: np.add.at(dW, idx.reshape(-1), dout.reshape(-1, dW.shape[1])), 20)
        if torch is not None:
            t_dW, t_idx = torch.from_numpy(dW), torch.from_numpy(idx.reshape(-1).astype(np.int64))
            t_rows = torch.from_numpy(dout.reshape(-1, dW.shape[1]))
            rows["torch index_add_"] = median_us(lambda: t_dW.index_add_(0, t_idx, t_rows), 200)
        for backend, why in fastnlp.available_backends().items():
            if why is None and backend != "cupy":
                with fastnlp.use_backend(backend):
                    scatter_add(dW, idx, dout)  # compile / warm up
                    rows[f"fastnlp {backend}"] = median_us(lambda: scatter_add(dW, idx, dout),
                                                           20 if backend == "numpy" else 200)
        base, peer = rows["np.add.at (reference)"], rows.get("torch index_add_")
        for name, us in rows.items():
            vs_peer = f"{peer / us:.2f}x" if peer else "n/a"
            print(f"| {size} | {name} | {us:.1f} | {base / us:.1f}x | {vs_peer} |")


if __name__ == "__main__":
    main()
