"""GPU check and timing of every CuPy op, for a session lent a CUDA machine (see gpu_session.sh).

    python bench/compare_gpu.py [--data-dir ../shared/data] [--out results.md]

Each op runs on the device and is compared with the NumPy reference on the same inputs with the
op's own tolerance from the registry (fastnlp.kernels.harness.validate_result; the run stops on a
mismatch), then is timed by the shared harness (benchmark_kernel, device synchronised). Every
op with a CuPy implementation is also checked on generated inputs by the test suite
(tests/test_kernels_registry.py), which gpu_session.sh runs first. Scatter-add is also timed
against torch's CUDA ``index_add_`` when torch sees the GPU.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    import fastnlp
    from fastnlp.kernels import cooccurrence, embedding_gather, ppmi, registry, scatter_add
    from fastnlp.kernels.harness import benchmark_kernel, validate_result

    def median_ms(fn, repeat=20):
        return benchmark_kernel(fn, repeat=repeat, backend="cupy") * 1e3

    def check(op, result, expected, dtype):
        atol, rtol = registry.spec(op).tolerance_for(dtype, "cupy")
        return validate_result(result, expected, atol, rtol, what=f"{op} on the GPU")

    def check_sparse(op, result, expected):
        """Same CSR pattern, values within the op's tolerance (no dense V x V copies)."""
        result.sort_indices()
        expected.sort_indices()
        validate_result(result.indptr.astype(np.int64), expected.indptr.astype(np.int64), 0, 0, f"{op} indptr")
        validate_result(result.indices.astype(np.int64), expected.indices.astype(np.int64), 0, 0, f"{op} indices")
        return check(op, result.data, expected.data, np.float64)

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
        error = check("scatter_add", g_dW.get(), expected, dW.dtype)
        ms = median_ms(lambda: scatter_add(g_dW, g_idx, g_dout))
        peer, peer_ms = "torch index_add_", float("nan")
        if torch_cuda:
            t_dW = torch.as_tensor(dW, device="cuda")
            t_idx = torch.as_tensor(idx.reshape(-1), device="cuda")
            t_rows = torch.as_tensor(dout.reshape(-1, dW.shape[1]), device="cuda")
            peer_ms = median_ms(lambda: t_dW.index_add_(0, t_idx, t_rows))
        lines.append(f"| scatter_add | {size} | {ms:.4f} | {peer} | {peer_ms:.4f} | {error:.2e} |")
        gathered = embedding_gather(g_dW, g_idx)
        error = check("embedding_gather", gathered.get(), g_dW.get()[idx], dW.dtype)
        ms = median_ms(lambda: embedding_gather(g_dW, g_idx))
        lines.append(f"| embedding_gather | {size} | {ms:.4f} | | | {error:.2e} |")

    ptb = Path(args.data_dir) / "ptb"
    if ptb.is_dir():
        corpus, word_to_id, _ = fastnlp.datasets.load_ptb("train", data_dir=args.data_dir)
        vocab = len(word_to_id)
        expected = cooccurrence(corpus, vocab, 2)
        g_corpus = cupy.asarray(corpus)
        result = cooccurrence(g_corpus, vocab, 2).get()
        check_sparse("cooccurrence", result, expected)
        ms = median_ms(lambda: cooccurrence(g_corpus, vocab, 2), repeat=5)
        lines.append(f"| cooccurrence | PTB train, window 2 | {ms:.2f} | | | 0 |")
        from cupyx.scipy import sparse as device_sparse

        g_C = device_sparse.csr_matrix(expected)
        error = check_sparse("ppmi_values", ppmi(g_C, dtype=np.float64).get(), ppmi(expected, dtype=np.float64))
        ms = median_ms(lambda: ppmi(g_C), repeat=5)
        lines.append(f"| ppmi | PTB train, window 2 | {ms:.2f} | | | {error:.2e} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
