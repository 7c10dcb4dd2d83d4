"""One-run comparison of the embedding ops: every CPU backend against torch, NumPy and the
memory floor, timed by the shared harness (fastnlp.kernels.harness.benchmark_kernel).

    python bench/compare_scatter_add.py [--repeat 7] [--threads 1]

The memory floor is a contiguous ``np.add(a, b, out=a)`` over the same bytes a scatter-add
moves (N rows of D floats read from ``dout``, read and written in ``dW``): no kernel can beat
it. Prints a markdown table of medians and ratios (all in this one process, same data), with
the machine, thread count and versions, ready for bench/README.md.
"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    import fastnlp
    from fastnlp.kernels import dispatch, embedding_gather, registry, scatter_add
    from fastnlp.kernels.harness import benchmark_kernel

    sys.path.insert(0, os.path.dirname(__file__))
    from machine import describe
    from test_bench_scatter_add import SIZES, make_problem

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    def us(fn, *fn_args):
        return benchmark_kernel(fn, *fn_args, repeat=args.repeat) * 1e6

    cpu = [b for b, impl in registry.implementations("scatter_add").items()
           if b in dispatch.CPU_BACKENDS and not isinstance(impl, str)]
    print(describe())
    print()
    print("| op | size | implementation | median us | vs memory floor | vs torch |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for size in SIZES:
        dW, idx, dout = make_problem(size)
        flat, rows = idx.reshape(-1), dout.reshape(-1, dW.shape[1])
        floor_a, floor_b = rows.copy(), rows.copy()
        results = {"memory floor: contiguous np.add of the same bytes": us(np.add, floor_a, floor_b, floor_a)}
        results["np.add.at"] = us(np.add.at, dW, flat, rows)
        if torch is not None:
            t_dW, t_idx, t_rows = torch.from_numpy(dW), torch.from_numpy(flat.astype(np.int64)), torch.from_numpy(rows)
            results["torch index_add_"] = us(t_dW.index_add_, 0, t_idx, t_rows)
        for backend in cpu:
            with fastnlp.use_backend(backend):
                results[f"fastnlp {backend}"] = us(scatter_add, dW, idx, dout)
        for backend in cpu[1:]:  # the compiled loops alone, on inputs the public op has validated
            kernel = registry.implementations("scatter_add")[backend]
            results[f"{backend} kernel only"] = us(kernel, dW, flat.astype(np.int64), rows)
        _print_rows("scatter_add", size, results)

        gathered = {}
        if torch is not None:
            gathered["torch index_select"] = us(torch.index_select, torch.from_numpy(dW), 0,
                                                torch.from_numpy(flat.astype(np.int64)))
        gathered["numpy W[idx]"] = us(dW.take, flat, 0)
        for backend in cpu:
            with fastnlp.use_backend(backend):
                gathered[f"fastnlp {backend}"] = us(embedding_gather, dW, idx)
        for backend in cpu[1:]:
            kernel = registry.implementations("embedding_gather")[backend]
            gathered[f"{backend} kernel only"] = us(kernel, dW, flat.astype(np.int64))
        gathered = {"memory floor: contiguous np.add of the same bytes": results[
            "memory floor: contiguous np.add of the same bytes"], **gathered}
        _print_rows("embedding_gather", size, gathered)


def _print_rows(op, size, results):
    floor = results["memory floor: contiguous np.add of the same bytes"]
    peer = results.get("torch index_add_") or results.get("torch index_select")
    for name, value in results.items():
        vs_peer = f"{peer / value:.2f}x" if peer else "n/a"
        print(f"| {op} | {size} | {name} | {value:.1f} | {value / floor:.2f}x | {vs_peer} |")


if __name__ == "__main__":
    main()
