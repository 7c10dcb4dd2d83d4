"""One training epoch of the date task's AttentionSeq2seq (wordvec 16, hidden 256, batch 128, Adam,
max_grad 5, reversed questions) per kernel backend, beside an equal PyTorch CPU model trained the
same way in the same run: nn.Embedding + nn.LSTM encoder and decoder, the same dot-product
attention (torch.bmm + softmax), nn.Linear over [context, h], cross-entropy, torch.optim.Adam,
clip_grad_norm_(5), the same batches in the same order, the same number of threads.

    python bench/compare_attention_seq2seq.py               # one full epoch (351 batches) each
    python bench/compare_attention_seq2seq.py --batches 60  # a shorter run, time scaled to an epoch

Prints a Markdown table: seconds per epoch, ms per batch, test accuracy after the epoch.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import fastnlp  # noqa: E402
from fastnlp import optim  # noqa: E402
from fastnlp.datasets import load_sequence  # noqa: E402
from fastnlp.models import AttentionSeq2seq, seq2seq_accuracy  # noqa: E402
from torch_peers import attention_seq2seq  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
WORDVEC, HIDDEN, BATCH = 16, 256, 128


def ours(backend, x, t, x_test, t_test, V, batches):
    """Seconds for ``batches`` Trainer steps on ``backend`` (after one warm-up step), accuracy."""
    with fastnlp.use_backend(backend):
        model = AttentionSeq2seq(V, WORDVEC, HIDDEN, seed=0)
        trainer = fastnlp.Trainer(model, optim.Adam(), seed=0)
        trainer.fit(x[:BATCH], t[:BATCH], max_epoch=1, batch_size=BATCH, progress=False)  # JIT, first touches
        n = batches * BATCH
        start = time.perf_counter()
        trainer.fit(x[:n], t[:n], max_epoch=1, batch_size=BATCH, max_grad=5.0, progress=False, eval_interval=None)
        seconds = time.perf_counter() - start
        return seconds, seq2seq_accuracy(model, x_test, t_test)


def torch_model(torch, V):
    return attention_seq2seq(torch, V, WORDVEC, HIDDEN)


def theirs(torch, x, t, x_test, t_test, V, batches):
    torch.manual_seed(0)
    model = torch_model(torch, V)
    adam = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
    order = np.random.default_rng(0).permutation(len(x))
    xs_all, ts_all = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(t.astype(np.int64))

    def step(batch):
        adam.zero_grad()
        loss = model(xs_all[batch], ts_all[batch])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        adam.step()

    step(torch.from_numpy(order[:BATCH]))  # warm-up, as for ours
    start = time.perf_counter()
    for i in range(batches):
        step(torch.from_numpy(order[i * BATCH:(i + 1) * BATCH]))
    seconds = time.perf_counter() - start
    xt, tt = torch.from_numpy(x_test.astype(np.int64)), torch.from_numpy(t_test.astype(np.int64))
    guess = model.generate(xt, tt[:, :1], tt.shape[1] - 1)
    return seconds, float((guess == tt[:, 1:]).all(dim=1).float().mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=None, help="batches to time (default: one epoch, 351)")
    parser.add_argument("--backends", default=None, help="comma-separated (default: every CPU backend here)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from machine import describe

    (x, t), (x_test, t_test), char_to_id, _ = load_sequence("date", DATA, reverse=True)
    V = len(char_to_id)
    per_epoch = len(x) // BATCH
    batches = min(args.batches or per_epoch, per_epoch)
    cpu = fastnlp.kernels.dispatch.CPU_BACKENDS
    backends = args.backends.split(",") if args.backends else [
        b for b, why in fastnlp.available_backends().items() if why is None and b in cpu]
    rows = []
    for backend in backends:
        seconds, accuracy = ours(backend, x, t, x_test, t_test, V, batches)
        rows.append((f"fastnlp AttentionSeq2seq, {backend} kernels", seconds, accuracy))
        print(rows[-1], flush=True)
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch==2.13.0 (the bench extra)")
    else:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        seconds, accuracy = theirs(torch, x, t, x_test, t_test, V, batches)
        rows.append((f"PyTorch {torch.__version__} CPU, same model", seconds, accuracy))
        print(rows[-1], flush=True)
    print()
    print(describe())
    print(f"\n{batches} batches of {BATCH} timed (an epoch is {per_epoch}); accuracy on the 5000 test questions "
          f"after those batches\n")
    print("| implementation | s / epoch | ms / batch | test accuracy | vs PyTorch |")
    print("| --- | ---: | ---: | ---: | ---: |")
    reference = rows[-1][1] if rows and rows[-1][0].startswith("PyTorch") else None
    for name, seconds, accuracy in rows:
        ratio = f"{reference / seconds:.2f}x" if reference else "-"
        print(f"| {name} | {seconds * per_epoch / batches:.1f} | {1000 * seconds / batches:.1f} | "
              f"{100 * accuracy:.2f}% | {ratio} |")


if __name__ == "__main__":
    main()
