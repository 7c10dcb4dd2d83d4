"""Matrix products at the models' shapes: every gemm implementation, the calibrated choice and PyTorch.

    python bench/compare_gemm.py                  # 1 thread, float32 and bfloat16, a markdown table
    python bench/compare_gemm.py --threads 2
    python bench/compare_gemm.py --dtypes float32 --shapes step,softmax

Each row is one product the library's models run (named in SHAPES); each column one way to run
it: every host implementation of the registry's ``gemm`` op (``registry.implementations``), the
public ``fastnlp.kernels.gemm`` (the library the calibration picked for that shape class, plus
the wrapper's validation), for the per-step shapes ``repeated``: the product a recurrent layer's
time loop makes, ``gemm.repeated_product`` (the weight prepared once, packed on MKL) and
``torch.matmul`` when PyTorch is installed (the ``bench`` extra).
GFLOP/s are the best of several timed blocks, measured back to back in one process on the same
arrays; ``within`` is the public gemm's share of the fastest column. bfloat16 inputs accumulate
in float32 everywhere (PyTorch's bf16 matmul writes bf16; that is the only difference).
"""
import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: (batch, M, K, N, trans_a, trans_b), at the sizes of Rnnlm / BetterRnnlm (batch 20, time 35)
# and AttentionSeq2seq (batch 128, 29 encoder states, hidden 256).
SHAPES = {
    "step": (None, 20, 650, 2600, False, False),  # BetterRnnlm: h @ Wh, one time step
    "step-back": (None, 20, 2600, 650, False, True),  # BetterRnnlm: dh += dA @ Wh.T, one step back
    "projection": (None, 700, 650, 2600, False, False),  # BetterRnnlm: the input projection of 35 steps
    "softmax": (None, 700, 650, 10000, False, False),  # BetterRnnlm: the output projection
    "rnnlm-softmax": (None, 700, 100, 10000, False, False),  # Rnnlm: the output projection
    "rnnlm-step": (None, 20, 100, 400, False, False),  # Rnnlm: h @ Wh
    "weight-grad": (None, 650, 700, 2600, True, False),  # BetterRnnlm: dWx = x.T @ dA
    "tied-weight-grad": (None, 10000, 700, 650, True, False),  # BetterRnnlm: the tied dW.T = dout.T @ x
    "input-grad": (None, 700, 2600, 650, False, True),  # BetterRnnlm: dx = dA @ Wx.T
    "attention": (128, 1, 256, 29, False, True),  # one decoder step's scores: h against 29 states
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one timed block")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    sys.path.insert(0, str(HERE))
    from machine import describe

    import fastnlp
    from fastnlp.kernels import dispatch, gemm, harness, registry
    from fastnlp.kernels.gemm import BFLOAT16, STEP_ROWS, calibration, repeated_product, variant_of

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    implementations = {b: f for b, f in registry.implementations("gemm").items()
                       if b in dispatch.HOST_BACKENDS and not isinstance(f, str)}
    columns = list(implementations) + ["fastnlp.gemm", "repeated"] + (["torch"] if torch else [])
    print(describe())
    print(f"threads {args.threads}; FASTNLP_CALIBRATION={os.environ.get(calibration.ENV_VAR, 'unset')}\n")
    print("| shape | M x K x N | dtype | " + " | ".join(columns) + " | picked | within |")
    print("| --- | --- | --- |" + " ---: |" * len(columns) + " --- | ---: |")
    for dtype_name in args.dtypes.split(","):
        dtype = BFLOAT16 if dtype_name == "bfloat16" else np.dtype(dtype_name)
        for name in args.shapes.split(","):
            batch, M, K, N, trans_a, trans_b = SHAPES[name]
            rng = np.random.default_rng(0)
            lead = () if batch is None else (batch,)
            a = rng.standard_normal(lead + ((K, M) if trans_a else (M, K))).astype(dtype)
            b = rng.standard_normal(lead + ((N, K) if trans_b else (K, N))).astype(dtype)
            out = np.empty(lead + (M, N), np.float64 if dtype == np.float64 else np.float32)
            flops = 2.0 * (batch or 1) * M * K * N
            calls = {backend: (lambda f=f: f(a, b, out, trans_a, trans_b, False))
                     for backend, f in implementations.items()}
            calls["fastnlp.gemm"] = lambda: gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)
            if batch is None and not trans_a and M <= STEP_ROWS:
                step = repeated_product(b, M, trans_b=trans_b)
                calls["repeated"] = lambda: step(a, out)
            if torch is not None:
                calls["torch"] = _torch_call(torch, np, a, b, trans_a, trans_b, dtype == BFLOAT16)
            speed = {column: flops / harness.best_seconds(call, min_seconds=args.seconds) / 1e9
                     for column, call in calls.items()}
            fastest = max(v for k, v in speed.items() if k not in ("torch", "repeated"))
            variant = variant_of(a.dtype, batch, M, N, K, trans_a, trans_b)
            picked = registry.backend_for("gemm", variant=variant)
            cells = " | ".join(f"{speed[c]:.0f}" if c in speed else "" for c in columns)
            batched = f"{batch} x " if batch else ""
            print(f"| {name} | {batched}"
                  f"{M} x {K} x {N} | {dtype_name} | {cells} | {picked} | {speed['fastnlp.gemm'] / fastest:.0%} |",
                  flush=True)
    print("\ncalibration:", ", ".join(f"{v}: {r[0][0]}" for v, r in sorted(calibration.measurements().items())))
    del fastnlp


def _torch_call(torch, np, a, b, trans_a, trans_b, bf16):
    def tensor(x):
        return torch.from_numpy(np.ascontiguousarray(x).view(np.uint16)).view(torch.bfloat16) if bf16 \
            else torch.from_numpy(x)

    ta, tb = tensor(a), tensor(b)
    ta = ta.transpose(-1, -2) if trans_a else ta
    tb = tb.transpose(-1, -2) if trans_b else tb
    out = torch.empty(torch.matmul(ta, tb).shape, dtype=ta.dtype)
    return lambda: torch.matmul(ta, tb, out=out)


if __name__ == "__main__":
    main()
