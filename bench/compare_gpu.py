"""GPU check and timing of every CuPy op, for a session lent a CUDA machine (see gpu_session.sh).

    python bench/compare_gpu.py [--data-dir ../shared/data] [--out results.md]

Each op runs on the device, is compared with the NumPy reference on the same inputs (the run
stops with an error on a mismatch), then is timed with CUDA events (median of 20 after warm-up).
Scatter-add is also timed against torch's CUDA ``index_add_`` when torch sees the GPU.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def median_ms(fn, repeat=20):
    import cupy

    fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    import fastnlp
    from fastnlp.kernels import cooccurrence, embedding_gather, ppmi, scatter_add

    sys.path.insert(0, str(HERE))
    from machine import describe
    from test_bench_scatter_add import SIZES, make_problem

    reason = fastnlp.available_backends()["cupy"]
    if reason is not None:
        raise SystemExit(f"cupy backend unavailable: {reason}")
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    lines = [describe(), f"GPU: {props['name'].decode()}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}", "",
             "| op | size | fastnlp cupy ms | peer | peer ms | max abs error vs NumPy |",
             "| --- | --- | ---: | --- | ---: | ---: |"]
    try:
        import torch

        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch_cuda = False

    for size in SIZES:
        dW, idx, dout = make_problem(size)
        expected = dW.copy()
        with fastnlp.use_backend("numpy"):
            scatter_add(expected, idx, dout)
        g_dW, g_idx, g_dout = cupy.asarray(dW), cupy.asarray(idx), cupy.asarray(dout)
        scatter_add(g_dW, g_idx, g_dout)
        error = float(np.abs(g_dW.get() - expected).max())
        if error > 1e-4:
            raise SystemExit(f"scatter_add mismatch on {size}: {error}")
        ms = median_ms(lambda: scatter_add(g_dW, g_idx, g_dout))
        peer, peer_ms = "torch index_add_", float("nan")
        if torch_cuda:
            t_dW = torch.as_tensor(dW, device="cuda")
            t_idx = torch.as_tensor(idx.reshape(-1), device="cuda")
            t_rows = torch.as_tensor(dout.reshape(-1, dW.shape[1]), device="cuda")
            peer_ms = median_ms(lambda: t_dW.index_add_(0, t_idx, t_rows))
        lines.append(f"| scatter_add | {size} | {ms:.4f} | {peer} | {peer_ms:.4f} | {error:.2e} |")
        gathered = embedding_gather(g_dW, g_idx)
        error = float(np.abs(gathered.get() - g_dW.get()[idx]).max())
        ms = median_ms(lambda: embedding_gather(g_dW, g_idx))
        lines.append(f"| embedding_gather | {size} | {ms:.4f} | | | {error:.2e} |")

    ptb = Path(args.data_dir) / "ptb"
    if ptb.is_dir():
        corpus, word_to_id, _ = fastnlp.datasets.load_ptb("train", data_dir=args.data_dir)
        vocab = len(word_to_id)
        expected = cooccurrence(corpus, vocab, 2)
        g_corpus = cupy.asarray(corpus)
        result = cooccurrence(g_corpus, vocab, 2).get()
        if (result != expected).nnz:
            raise SystemExit("cooccurrence mismatch on PTB")
        ms = median_ms(lambda: cooccurrence(g_corpus, vocab, 2), repeat=5)
        lines.append(f"| cooccurrence | PTB train, window 2 | {ms:.2f} | | | 0 |")
        from cupyx.scipy import sparse as device_sparse

        g_C = device_sparse.csr_matrix(expected)
        error = float(abs(ppmi(g_C).get() - ppmi(expected)).max())
        ms = median_ms(lambda: ppmi(g_C), repeat=5)
        lines.append(f"| ppmi | PTB train, window 2 | {ms:.2f} | | | {error:.2e} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
