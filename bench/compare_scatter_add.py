"""One-run comparison of the embedding ops: every CPU backend against torch, NumPy and the
memory floor, timed by the shared harness (fastnlp.kernels.harness.benchmark_kernel).

    python bench/compare_scatter_add.py [--repeat 7] [--threads 1]
    python bench/compare_scatter_add.py --dtypes [--rounds 80] [--threads 1]

The memory floor is a contiguous ``np.add(a, b, out=a)`` over the same bytes a scatter-add
moves (N rows of D floats read from ``dout``, read and written in ``dW``): no kernel can beat
it. Prints a markdown table of medians and ratios (all in this one process, same data), with
the machine, thread count and versions, ready for bench/README.md.

``--dtypes`` compares the storage formats instead: the gather and scatter-add kernels of every CPU
backend at BetterRnnlm's shape (V 10,000 x D 650, 20 x 35 ids) on float32, float16 and bfloat16
copies of one problem. Each round times one block of calls of every (op, backend, dtype) in turn,
so the machine's load hits them alike; each figure is the best round, in thread CPU time (what a
busy neighbour's cores cannot inflate, unlike wall time).
"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtypes", action="store_true", help="float32 against float16 and bfloat16 storage")
    parser.add_argument("--rounds", type=int, default=80, help="rounds of the --dtypes comparison")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.dtypes:
        compare_dtypes(args.rounds)
        return

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


def compare_dtypes(rounds, size="V10000xD650-ids20x35", calls_per_block=20):
    """float32 against float16 / bfloat16 storage for gather and scatter-add, kernels only, the
    (op, backend, dtype) contenders round robin; prints a markdown table of the best rounds."""
    import time

    import numpy as np

    from fastnlp.kernels import dispatch, registry
    from fastnlp.kernels.validate import BFLOAT16

    sys.path.insert(0, os.path.dirname(__file__))
    from machine import describe
    from test_bench_scatter_add import make_problem

    dtypes = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16), "bf16": BFLOAT16}
    dW32, idx, dout = make_problem(size)
    flat = idx.reshape(-1).astype(np.int64)
    rows32 = dout.reshape(flat.size, dW32.shape[1])
    W32 = 0.01 * np.random.default_rng(1).standard_normal(dW32.shape).astype(np.float32)
    contenders = {}  # (op, backend, dtype name) -> a call with no arguments
    for op in ("embedding_gather", "scatter_add"):
        for backend, kernel in registry.implementations(op).items():
            if backend not in dispatch.CPU_BACKENDS or isinstance(kernel, str):
                continue
            for name, dtype in dtypes.items():
                if op == "scatter_add":
                    args = (W32.astype(dtype), flat, rows32.astype(dtype))
                else:
                    args = (W32.astype(dtype), flat)
                contenders[op, backend, name] = (kernel, args)
    for kernel, args in contenders.values():  # compile and warm every contender first
        kernel(*args)
    best = dict.fromkeys(contenders, float("inf"))
    load_before = os.getloadavg()[0]  # the load on the other cores decides how far ratios can be trusted
    for _ in range(rounds):
        for key, (kernel, args) in contenders.items():
            start = time.thread_time()
            for _ in range(calls_per_block):
                kernel(*args)
            best[key] = min(best[key], (time.thread_time() - start) / calls_per_block)
    print(describe())
    print(f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; {rounds} rounds of {calls_per_block} calls; "
          f"best round, thread CPU time; {size}")
    if ("scatter_add", "numba", "bf16") in contenders:  # which of its 16-bit versions Numba compiled here
        from fastnlp.kernels import _numba_half

        float16 = "by conversion instructions" if _numba_half.HARDWARE_F16 else "element-wise"
        bfloat16 = "by vcvtne2ps2bf16" if _numba_half.HARDWARE_BF16 else "by integer code"
        print(f"numba 16-bit passes: float16 {float16}, bfloat16 rounded {bfloat16}")
    print()
    print("| op | backend | f32 | f16 | bf16 | f16 / f32 | bf16 / f32 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for op, backend in dict.fromkeys((op, backend) for op, backend, _ in contenders):
        t = {name: best[op, backend, name] * 1e6 for name in dtypes}
        print(f"| {'gather' if op == 'embedding_gather' else op} | {backend} | {t['f32']:,.0f} us | "
              f"{t['f16']:,.0f} us | {t['bf16']:,.0f} us | {t['f32'] / t['f16']:.2f}x | {t['f32'] / t['bf16']:.2f}x |")


def _print_rows(op, size, results):
    floor = results["memory floor: contiguous np.add of the same bytes"]
    peer = results.get("torch index_add_") or results.get("torch index_select")
    for name, value in results.items():
        vs_peer = f"{peer / value:.2f}x" if peer else "n/a"
        print(f"| {op} | {size} | {name} | {value:.1f} | {value / floor:.2f}x | {vs_peer} |")


if __name__ == "__main__":
    main()
