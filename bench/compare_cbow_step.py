"""One CBOW training iteration at the book's sizes (batch 100, window 5, hidden 100, 5 negatives,
PTB's V = 10000), the book's NumPy code path against fastnlp on each CPU backend, timed by the
shared harness (fastnlp.kernels.harness.benchmark_kernel) in one process on the same batches.

    python bench/compare_cbow_step.py [--repeat 7] [--threads 1] [--data-dir ../shared/data]

The baseline (``BookCBOW`` below) is the book's chapter-4 code path written out here: one
Embedding layer per context position and one EmbeddingDot per positive/negative, each owning a
dense (V, D) gradient zeroed every step and filled by ``np.add.at``; ``np.random.choice`` per
row for the negatives (the book draws them without replacement, from a renormalised copy of the
distribution); the book's ``remove_duplicate`` summing the 10 + 6 dense gradients of the two
shared matrices; dense Adam over both (10000 x 100) matrices, with the book's float64 ``lr_t``.
Prints a markdown table with the machine, threads and versions, ready for bench/README.md.
"""
import argparse
import os
import sys

import numpy as np

V, HIDDEN, WINDOW, BATCH, SAMPLE_SIZE, POWER = 10000, 100, 5, 100, 5, 0.75


# ----- the book's code path (chapter 4, CPU), the baseline --------------------------------------

class BookEmbedding:
    def __init__(self, W):
        self.params, self.grads, self.idx = [W], [np.zeros_like(W)], None

    def forward(self, idx):
        self.idx = idx
        return self.params[0][idx]

    def backward(self, dout):
        dW = self.grads[0]
        dW[...] = 0  # the whole (V, D) gradient, every step
        np.add.at(dW, self.idx, dout)


class BookEmbeddingDot:
    def __init__(self, W):
        self.embed = BookEmbedding(W)
        self.params, self.grads, self.cache = self.embed.params, self.embed.grads, None

    def forward(self, h, idx):
        rows = self.embed.forward(idx)
        self.cache = (h, rows)
        return np.sum(rows * h, axis=1)

    def backward(self, dout):
        h, rows = self.cache
        dout = dout.reshape(-1, 1)
        self.embed.backward(dout * h)
        return dout * rows


class BookSigmoidWithLoss:
    def forward(self, x, t):
        self.t, self.y = t, 1 / (1 + np.exp(-x))
        p = np.where(t == 1, self.y, 1 - self.y)  # the book's cross_entropy_error on [1 - y, y]
        return -np.sum(np.log(p + 1e-7)) / t.shape[0]

    def backward(self, dout=1):
        return (self.y - self.t) * dout / self.t.shape[0]


def book_negative_sample(word_p, target, sample_size, rng=np.random):
    """The book's UnigramSampler.get_negative_sample (CPU): per row, a renormalised copy of the
    distribution without the target and ``np.random.choice`` without replacement."""
    out = np.zeros((target.shape[0], sample_size), dtype=np.int32)
    for i in range(target.shape[0]):
        p = word_p.copy()
        p[target[i]] = 0
        p /= p.sum()
        out[i, :] = rng.choice(word_p.shape[0], size=sample_size, replace=False, p=p)
    return out


class BookNegativeSamplingLoss:
    def __init__(self, W, corpus, power=POWER, sample_size=SAMPLE_SIZE):
        counts = np.bincount(corpus, minlength=W.shape[0]).astype(np.float64)
        self.word_p = counts ** power / np.sum(counts ** power)
        self.sample_size = sample_size
        self.loss_layers = [BookSigmoidWithLoss() for _ in range(sample_size + 1)]
        self.embed_dot_layers = [BookEmbeddingDot(W) for _ in range(sample_size + 1)]
        self.params = [p for layer in self.embed_dot_layers for p in layer.params]
        self.grads = [g for layer in self.embed_dot_layers for g in layer.grads]

    def forward(self, h, target):
        negatives = book_negative_sample(self.word_p, target, self.sample_size)
        n = target.shape[0]
        loss = self.loss_layers[0].forward(self.embed_dot_layers[0].forward(h, target), np.ones(n, np.int32))
        for i in range(self.sample_size):
            score = self.embed_dot_layers[1 + i].forward(h, negatives[:, i])
            loss += self.loss_layers[1 + i].forward(score, np.zeros(n, np.int32))
        return loss

    def backward(self, dout=1):
        dh = 0
        for loss_layer, dot_layer in zip(self.loss_layers, self.embed_dot_layers):
            dh += dot_layer.backward(loss_layer.backward(dout))
        return dh


class BookCBOW:
    def __init__(self, vocab_size, hidden_size, window_size, corpus, seed=0):
        rng = np.random.RandomState(seed)
        W_in = 0.01 * rng.randn(vocab_size, hidden_size).astype("f")
        W_out = 0.01 * rng.randn(vocab_size, hidden_size).astype("f")
        self.in_layers = [BookEmbedding(W_in) for _ in range(2 * window_size)]
        self.ns_loss = BookNegativeSamplingLoss(W_out, corpus)
        layers = self.in_layers + [self.ns_loss]
        self.params = [p for layer in layers for p in layer.params]
        self.grads = [g for layer in layers for g in layer.grads]

    def forward(self, contexts, target):
        h = 0
        for i, layer in enumerate(self.in_layers):
            h += layer.forward(contexts[:, i])
        h *= 1 / len(self.in_layers)
        return self.ns_loss.forward(h, target)

    def backward(self, dout=1):
        dout = self.ns_loss.backward(dout)
        dout *= 1 / len(self.in_layers)
        for layer in self.in_layers:
            layer.backward(dout)


def book_remove_duplicate(params, grads):
    """The book's helper: shared parameters listed once, their (dense) gradients summed."""
    params, grads = params[:], grads[:]
    while True:
        found = False
        for i in range(len(params) - 1):
            for j in range(i + 1, len(params)):
                if params[i] is params[j]:
                    grads[i] += grads[j]
                    found = True
                    params.pop(j)
                    grads.pop(j)
                    break
            if found:
                break
        if not found:
            return params, grads


class BookAdam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.iter, self.m, self.v = lr, beta1, beta2, 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m += (1 - self.beta1) * (g - m)
            v += (1 - self.beta2) * (g ** 2 - v)
            p -= lr_t * m / (np.sqrt(v) + 1e-7)


# ----- the comparison ------------------------------------------------------------------------------

def ptb_or_synthetic(data_dir, n_words=200_000):
    """PTB train (V = 10000) when the data folder has it, else a Zipf corpus of the same size."""
    try:
        from fastnlp.datasets import load_ptb

        corpus, word_to_id, _ = load_ptb("train", data_dir=data_dir)
        return corpus, len(word_to_id), "PTB train"
    except Exception as exc:  # noqa: BLE001 - any failure: fall back, and say so
        print(f"(PTB not available: {exc}; a synthetic Zipf corpus stands in)", file=sys.stderr)
        rng = np.random.default_rng(0)
        corpus = np.minimum(rng.zipf(1.2, n_words) - 1, V - 1).astype(np.int32)
        return corpus, V, "synthetic Zipf corpus"


class Stepper:
    """One training iteration per call, cycling over pre-cut batches (different rows each call)."""

    def __init__(self, step, contexts, target, n_batches=50):
        self.step, self.i = step, 0
        self.batches = [(contexts[k * BATCH:(k + 1) * BATCH], target[k * BATCH:(k + 1) * BATCH])
                        for k in range(n_batches)]

    def __call__(self):
        x, t = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.step(x, t)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import fastnlp
    from fastnlp import optim
    from fastnlp.kernels import dispatch, registry
    from fastnlp.kernels.harness import benchmark_kernel
    from fastnlp.models import CBOW

    sys.path.insert(0, os.path.dirname(__file__))
    from machine import describe

    corpus, vocab_size, source = ptb_or_synthetic(args.data_dir)
    contexts, target = fastnlp.create_contexts_target(corpus[:100_000], WINDOW)

    def ms(fn):
        return benchmark_kernel(fn, repeat=args.repeat) * 1e3

    results = {}
    book = BookCBOW(vocab_size, HIDDEN, WINDOW, corpus)
    book_adam = BookAdam()

    def book_step(x, t):
        book.forward(x, t)
        book.backward()
        book_adam.update(*book_remove_duplicate(book.params, book.grads))

    results["book NumPy path (dense grads, dense Adam, np.random.choice, np.add.at)"] = ms(
        Stepper(book_step, contexts, target))

    def ours(optimizer, backend):
        model = CBOW(vocab_size, HIDDEN, WINDOW, corpus, seed=0)
        trainer = fastnlp.Trainer(model, optimizer)

        def step(x, t):
            with fastnlp.use_backend(backend):
                trainer._step(x, t, None)  # what Trainer.fit runs per batch

        return Stepper(step, contexts, target)

    cpu = [b for b in dispatch.CPU_BACKENDS
           if all(not isinstance(registry.implementations(op)[b], str)
                  for op in ("gather_dot", "gather_dot_backward", "sample_negatives", "scatter_add"))]
    for backend in cpu:
        results[f"fastnlp {backend} (row-sparse grads, lazy Adam)"] = ms(ours(optim.Adam(lazy=True), backend))
    best = registry.backend_for("gather_dot")  # the default: the op's fastest backend here
    results[f"fastnlp {best}, dense Adam (the default, lazy=False)"] = ms(ours(optim.Adam(), best))
    results[f"fastnlp {best}, row-sparse SGD"] = ms(ours(optim.SGD(), best))

    print(describe())
    print(f"data: {source}, V = {vocab_size}; batch {BATCH}, window {WINDOW}, hidden {HIDDEN}, "
          f"{SAMPLE_SIZE} negatives, float32")
    print()
    print("| implementation | median ms / iteration | target words / s | vs book |")
    print("| --- | ---: | ---: | ---: |")
    base = next(iter(results.values()))
    for name, value in results.items():
        print(f"| {name} | {value:.3f} | {BATCH / value * 1e3:,.0f} | {base / value:.1f}x |")


if __name__ == "__main__":
    main()
