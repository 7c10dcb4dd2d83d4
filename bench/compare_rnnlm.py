"""Train the book's LSTM language models on PTB with fastnlp (per backend) and an equal PyTorch model:

    python bench/compare_rnnlm.py                        # Rnnlm, 1 epoch, every CPU backend + torch
    python bench/compare_rnnlm.py --epochs 4             # the book's Rnnlm run (test ppl ~136)
    python bench/compare_rnnlm.py --model better --epochs 1          # BetterRnnlm, 1 epoch each
    python bench/compare_rnnlm.py --model better --epochs 40 --contenders cython --timing-iters 0 \\
        --checkpoint-dir runs/better                     # the book's 40 epochs; the same command resumes
    python bench/compare_rnnlm.py --model better --epochs 0 --contenders cython,torch \\
        --precision fp32,bf16-mixed                      # mixed precision against torch.autocast

Book settings: batch 20, time 35, SGD lr 20, gradient norm clipped to 0.25; Rnnlm 100/100,
BetterRnnlm 650/650, two LSTM layers, dropout 0.5, tied embedding, lr / 4 when the validation
perplexity does not improve. The PyTorch model is nn.Embedding + nn.LSTM + nn.Linear of the same
sizes, starting from the very same initial weights (copied from ours, gates reordered), trained
with the same batches, torch.optim.SGD and clip_grad_norm_, on the same number of threads.

Two measurements, both in this one process:
* speed: every contender trains ``--timing-iters`` iterations in turns of ``--turn`` iterations
  (round robin, so a noisy neighbour slows everyone alike); tokens/s and the ratio to PyTorch;
* quality: every contender trains ``--epochs`` full epochs (``fit``), then the test perplexity
  with the book's eval_perplexity (batch 10, time 35); BetterRnnlm also decays on validation.
``--epochs 0`` skips the training run. The table is markdown with the machine, threads, versions.

``--precision`` runs every contender in each listed precision: ``fp32``, or ``bf16-mixed``:
ours inside ``fastnlp.kernels.gemm.autocast("bf16")`` (every matrix product on bfloat16 operands
with float32 sums, weights and everything else float32) with ``clear_autocast_cache()`` after
each optimizer update (done here by the optimizer, so the trainer is the stock one), PyTorch's
forward and loss inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` (backward outside, as
its documentation says), both with float32 SGD on float32 weights.
"""
import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOK = {"rnnlm": dict(wordvec=100, hidden=100, dropout=0.0),
        "better": dict(wordvec=650, hidden=650, dropout=0.5)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(BOOK), default="rnnlm")
    parser.add_argument("--epochs", type=int, default=1, help="full training epochs per contender (0: timing only)")
    parser.add_argument("--timing-iters", type=int, default=100, help="iterations per contender in the speed phase")
    parser.add_argument("--turn", type=int, default=10, help="iterations per contender per round of the speed phase")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--contenders", default="all",
                        help="comma-separated: fastnlp backends (numpy = the book's NumPy code path) and torch")
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--checkpoint-dir", default=None,
                        help="save a checkpoint per contender there (each epoch and every 200 iterations) "
                             "and resume from it when it exists (fastnlp contenders)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32",
                        help="comma-separated: fp32, bf16-mixed (each contender runs in each)")
    parser.add_argument("--openblas-coretype", default=None,
                        help="set OPENBLAS_CORETYPE for NumPy's OpenBLAS (default: leave the environment as it is; "
                             "'unset' removes it, so OpenBLAS detects the CPU). This VM exports Haswell (AVX2 "
                             "kernels); OpenBLAS's own choice here is SkylakeX, about 2x faster on the GEMMs")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.openblas_coretype == "unset":
        os.environ.pop("OPENBLAS_CORETYPE", None)
    elif args.openblas_coretype is not None:
        os.environ["OPENBLAS_CORETYPE"] = args.openblas_coretype
    if "numpy" in sys.modules:
        raise SystemExit("numpy was imported before the thread and OpenBLAS settings could apply")

    import numpy as np

    import fastnlp
    from fastnlp.kernels import dispatch

    sys.path.insert(0, str(HERE))
    from machine import describe

    train, word_to_id, _ = fastnlp.datasets.load_ptb("train", data_dir=args.data_dir)
    valid, _, _ = fastnlp.datasets.load_ptb("valid", data_dir=args.data_dir)
    test, _, _ = fastnlp.datasets.load_ptb("test", data_dir=args.data_dir)
    V, config = len(word_to_id), BOOK[args.model]
    xs, ts = train[:-1].astype(np.int64), train[1:].astype(np.int64)

    backends = [b for b, why in fastnlp.available_backends().items() if why is None and b in dispatch.CPU_BACKENDS]
    names = backends + ["torch"] if args.contenders == "all" else args.contenders.split(",")
    precisions = args.precision.split(",")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise SystemExit(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    contenders = {}
    for precision in precisions:
        for name in names:
            key = name if len(precisions) == 1 else f"{name} {precision}"
            if name == "torch":
                try:
                    contenders[key] = TorchContender(args, V, config, np, precision)
                except ImportError as exc:
                    print(f"(torch skipped: {exc})")
            elif name in backends:
                contenders[key] = OursContender(name, args, V, config, precision)
            else:
                raise SystemExit(f"unknown or unavailable contender {name!r}; "
                                 f"available: {', '.join(backends + ['torch'])}")

    print(describe())
    print(f"OpenBLAS core: {_openblas_core()} (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    print(f"torch threads: {args.threads}; model {args.model}: V {V}, wordvec {config['wordvec']}, hidden "
          f"{config['hidden']}, dropout {config['dropout']}; batch 20, time 35, SGD lr 20, clip 0.25; "
          f"seed {args.seed}\n")

    # ----- speed: round robin over the same first batches of the corpus
    if args.timing_iters:
        for c in contenders.values():
            c.warm_up(xs, ts)
        done = 0
        while done < args.timing_iters:
            n = min(args.turn, args.timing_iters - done)
            for c in contenders.values():
                c.timed_iterations(xs, ts, n)
            done += n
        print(f"Speed, {args.timing_iters} iterations each ({args.timing_iters * 700:,} tokens), "
              f"in turns of {args.turn}:\n")
        print(f"load average {os.getloadavg()[0]:.1f} after the speed phase. tokens/s: all timed iterations; "
              "median turn: the median of the turns' rates; per CPU s: tokens per second of the process's CPU "
              "time (at 1 thread the steadiest figure on a shared machine; at more, spinning workers count too)\n")
        print("| implementation | precision | tokens/s | vs torch, same precision | vs torch fp32 | vs own fp32 "
              "| median turn | vs torch (median) | per CPU s | vs torch (CPU) | ms / iteration |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

        def figures(c):
            return {"wall": c.timed_tokens / c.timed_seconds, "median": statistics.median(c.turn_rates),
                    "cpu": c.timed_tokens / c.timed_cpu if c.timed_cpu > 0 else float("nan")}

        def rate_of(name, precision, kind="wall"):
            key = name if len(precisions) == 1 else f"{name} {precision}"
            c = contenders.get(key)
            return figures(c)[kind] if c is not None else None

        def ratio(rate, base):
            return f"{rate / base:.2f}x" if base else "n/a"

        for c in contenders.values():
            f = figures(c)
            print(f"| {c.label} | {c.precision} | {f['wall']:,.0f} | {ratio(f['wall'], rate_of('torch', c.precision))} | "
                  f"{ratio(f['wall'], rate_of('torch', 'fp32'))} | {ratio(f['wall'], rate_of(c.name, 'fp32'))} | "
                  f"{f['median']:,.0f} | {ratio(f['median'], rate_of('torch', c.precision, 'median'))} | "
                  f"{f['cpu']:,.0f} | {ratio(f['cpu'], rate_of('torch', c.precision, 'cpu'))} | "
                  f"{1e3 * c.timed_seconds / (c.timed_tokens / 700):.1f} |")
        print(flush=True)

    # ----- quality: full epochs, then perplexity
    if args.epochs:
        print(f"Training {args.epochs} epoch(s) each, then test perplexity (book's eval: batch 10, time 35):\n")
        rows = []
        for name, c in contenders.items():
            c.reset()
            start = time.perf_counter()
            result = c.train(xs, ts, valid, args.epochs)
            wall = time.perf_counter() - start
            test_ppl = c.perplexity(test)
            rows.append((c.label, result, test_ppl, wall))
            print(f"  {c.label}: {result['tokens_per_s']:,.0f} tokens/s in training, final train ppl "
                  f"{result['train_ppl']:.1f}, valid {result.get('valid', [])}, test ppl {test_ppl:.1f}, "
                  f"{wall:.0f} s", flush=True)
        print()
        print("| implementation | epochs | s / epoch | tokens/s | last train ppl | test ppl |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, result, test_ppl, wall in rows:
            print(f"| {label} | {result['epochs']} | {result['seconds'] / max(result['epochs_run'], 1):.0f} | "
                  f"{result['tokens_per_s']:,.0f} | {result['train_ppl']:.1f} | {test_ppl:.1f} |")


def _record_turn(contender, iterations, wall, cpu):
    """Add one turn's wall and CPU seconds to ``contender``'s totals, and its tokens/s to the
    per-turn rates (the median of those shrugs off a turn that a busy neighbour slowed)."""
    contender.timed_seconds = getattr(contender, "timed_seconds", 0.0) + wall
    contender.timed_cpu = getattr(contender, "timed_cpu", 0.0) + cpu
    contender.timed_tokens = getattr(contender, "timed_tokens", 0) + iterations * 700
    contender.turn_rates = getattr(contender, "turn_rates", []) + [iterations * 700 / wall]


def _openblas_core():
    """The kernel family NumPy's OpenBLAS runs (scipy-openblas wheels), or 'unknown'."""
    import ctypes
    import glob

    import numpy

    for lib in glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*")):
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            try:
                function = getattr(ctypes.CDLL(lib), name)
            except (OSError, AttributeError):
                continue
            function.restype = ctypes.c_char_p
            return function().decode()
    return "unknown"


PRECISIONS = ("fp32", "bf16-mixed")


class OursContender:
    def __init__(self, backend, args, V, config, precision="fp32"):
        import contextlib

        import numpy as np

        import fastnlp

        self.fastnlp, self.np, self.backend, self.args, self.V, self.config = fastnlp, np, backend, args, V, config
        self.name, self.precision = backend, precision
        self.label = f"fastnlp {backend}" + (" (the book's NumPy code path)" if backend == "numpy" else "")
        if precision == "bf16-mixed":
            from fastnlp.kernels.gemm import autocast

            self.autocast = lambda: autocast("bf16")
        else:
            self.autocast = contextlib.nullcontext
        self.timed_seconds = self.timed_tokens = self.timed_cpu = 0
        self.turn_rates = []
        self.reset()

    def _optimizer(self):
        """SGD(lr 20); under bf16-mixed one that clears gemm's cache of bf16 weights after each
        update (the weights change in place there)."""
        fastnlp = self.fastnlp
        if self.precision == "fp32":
            return fastnlp.optim.SGD(lr=20.0)
        from fastnlp.kernels.gemm import clear_autocast_cache

        class ClearingSGD(fastnlp.optim.SGD):
            # _update, not update: the Trainer's fast path (clipping rate folded into SGD's pass,
            # no second finite check) goes through Optimizer.update, as for plain SGD
            def _update(self, params, grads, grad_scale=1.0):
                super()._update(params, grads, grad_scale)
                clear_autocast_cache()

            _update.folds_grad_scale = _update.takes_tied_sums = True

        return ClearingSGD(lr=20.0)

    def reset(self):
        fastnlp, args, config = self.fastnlp, self.args, self.config
        if args.model == "rnnlm":
            self.model = fastnlp.models.Rnnlm(self.V, config["wordvec"], config["hidden"], seed=args.seed)
        else:
            self.model = fastnlp.models.BetterRnnlm(self.V, config["wordvec"], config["hidden"], config["dropout"],
                                                    seed=args.seed)
        self.trainer = fastnlp.RnnlmTrainer(self.model, self._optimizer())
        self.position = 0

    def _slice(self, xs, ts, n_iters):
        """The next n_iters x 700 ids: fit over this slice runs exactly n_iters iterations."""
        size = n_iters * 700 + 1
        if self.position + size > len(xs):
            self.position = 0
        a, b = self.position, self.position + size
        self.position += size - 1
        return xs[a:b], ts[a:b]

    def warm_up(self, xs, ts):
        with self.fastnlp.use_backend(self.backend), self.autocast():
            self.trainer.fit(*self._slice(xs, ts, 2), max_epoch=1, max_grad=0.25, progress=False)

    def timed_iterations(self, xs, ts, n):
        x, t = self._slice(xs, ts, n)
        with self.fastnlp.use_backend(self.backend), self.autocast():
            start, cpu_start = time.perf_counter(), time.process_time()
            self.trainer.fit(x, t, max_epoch=1, max_grad=0.25, eval_interval=None, progress=False)
            _record_turn(self, n, time.perf_counter() - start, time.process_time() - cpu_start)

    def train(self, xs, ts, valid, epochs):
        trainer, args = self.trainer, self.args
        checkpoint = None
        if args.checkpoint_dir:
            Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            suffix = "" if self.precision == "fp32" else f"-{self.precision}"
            checkpoint = Path(args.checkpoint_dir) / f"{args.model}-{self.backend}{suffix}.npz"
            if checkpoint.exists():
                trainer.load_checkpoint(checkpoint)
                print(f"  {self.label}: resumed from {checkpoint} (epoch {trainer.current_epoch}, "
                      f"{len(trainer.valid_ppl_list)} validations)", flush=True)
        with self.fastnlp.use_backend(self.backend), self.autocast():
            if args.model == "rnnlm":
                pending = trainer.pending_run
                if pending is not None or trainer.current_epoch < epochs:
                    trainer.fit(xs, ts, max_epoch=pending["max_epoch"] if pending else epochs - trainer.current_epoch,
                                max_grad=0.25, progress=True, checkpoint=checkpoint,
                                checkpoint_interval=200 if checkpoint else None)
                result = {}
            else:
                best = checkpoint.with_suffix(".best.npz") if checkpoint else None
                trainer.fit_with_lr_decay(xs, ts, valid, max_epoch=epochs, max_grad=0.25, progress=True,
                                          checkpoint=checkpoint, checkpoint_interval=200 if checkpoint else None,
                                          best_params=best)
                result = {"valid": [round(p, 1) for p in trainer.valid_ppl_list]}
                if best is not None and best.exists():  # the book tests the best parameters
                    self.fastnlp.load_params(best, into=self.model)
        # Over the whole run, the part before a resume included (the checkpoint keeps both).
        seconds, iters = trainer.elapsed, trainer.current_epoch * (len(xs) // 700)
        result.update(epochs=trainer.current_epoch, epochs_run=trainer.current_epoch, seconds=seconds,
                      tokens_per_s=iters * 700 / seconds if seconds else float("nan"),
                      train_ppl=trainer.ppl_list[-1] if trainer.ppl_list else float("nan"))
        return result

    def perplexity(self, corpus):
        with self.fastnlp.use_backend(self.backend):
            self.model.reset_state()
            return self.fastnlp.eval_perplexity(self.model, corpus)


class TorchContender:
    """nn.Embedding + nn.LSTM + nn.Linear with our model's initial weights."""

    def __init__(self, args, V, config, np, precision="fp32"):
        import contextlib

        import torch

        torch.set_num_threads(args.threads)
        self.torch, self.np, self.args, self.V, self.config = torch, np, args, V, config
        self.name, self.precision = "torch", precision
        self.label = f"PyTorch {torch.__version__} (nn.LSTM)"
        self.autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16-mixed"
                         else contextlib.nullcontext)
        self.timed_seconds = self.timed_tokens = self.timed_cpu = 0
        self.turn_rates = []
        self.reset()

    def reset(self):
        import fastnlp

        torch, np, args, config = self.torch, self.np, self.args, self.config
        nn = torch.nn
        V, D, H = self.V, config["wordvec"], config["hidden"]
        better = args.model == "better"
        ours = (fastnlp.models.BetterRnnlm(V, D, H, config["dropout"], seed=args.seed) if better
                else fastnlp.models.Rnnlm(V, D, H, seed=args.seed))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(V, D)
                self.lstm = nn.LSTM(D, H, num_layers=2 if better else 1, batch_first=True,
                                    dropout=config["dropout"] if better else 0.0)
                self.drop = nn.Dropout(config["dropout"])
                self.fc = nn.Linear(H, V)
                if better:
                    self.fc.weight = self.embed.weight  # tied, as ours

            def forward(self, x, state):
                out, state = self.lstm(self.drop(self.embed(x)), state)
                return self.fc(self.drop(out)), state

        net = Net()
        lstms = [layer for layer in ours.layers if isinstance(layer, fastnlp.layers.TimeLSTM)]

        def torch_gates(M):  # ours: blocks [f, g, i, o] along the last axis; torch: rows [i, f, g, o]
            f, g, i, o = np.split(M, 4, axis=-1)
            return torch.from_numpy(np.ascontiguousarray(np.concatenate([i, f, g, o], axis=-1).T))

        with torch.no_grad():
            net.embed.weight.copy_(torch.from_numpy(ours.layers[0].params[0]))
            for k, layer in enumerate(lstms):
                Wx, Wh, b = layer.params
                getattr(net.lstm, f"weight_ih_l{k}").copy_(torch_gates(Wx))
                getattr(net.lstm, f"weight_hh_l{k}").copy_(torch_gates(Wh))
                getattr(net.lstm, f"bias_ih_l{k}").copy_(torch_gates(b[None, :])[:, 0])
                getattr(net.lstm, f"bias_hh_l{k}").zero_()
            affine = ours.layers[-1]
            if not better:
                net.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(affine.params[0].T)))
            net.fc.bias.copy_(torch.from_numpy(affine.params[1]))
        self.net, self.state = net, None
        self.optimizer = torch.optim.SGD(net.parameters(), lr=20.0)
        self.time_idx, self.position = 0, 0

    def _iterations(self, xs, ts, n_iters, data_size=None):
        torch, np = self.torch, self.np
        data_size = data_size or len(xs)
        jump = data_size // 20
        offsets = np.arange(20) * jump
        self.net.train()
        losses = []
        for _ in range(n_iters):
            idx = (offsets[:, None] + self.time_idx + np.arange(35)) % data_size
            self.time_idx += 35
            bx, bt = torch.from_numpy(xs[idx]), torch.from_numpy(ts[idx])
            if self.state is not None:
                self.state = tuple(s.detach() for s in self.state)
            self.optimizer.zero_grad()
            with self.autocast():
                scores, self.state = self.net(bx, self.state)
                loss = torch.nn.functional.cross_entropy(scores.reshape(-1, self.V), bt.reshape(-1))
            self.state = tuple(s.float() for s in self.state)  # autocast's LSTM state is bf16
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 0.25)
            self.optimizer.step()
            losses.append(loss.item())
        return losses

    def warm_up(self, xs, ts):
        self._iterations(xs, ts, 2)

    def timed_iterations(self, xs, ts, n):
        start, cpu_start = time.perf_counter(), time.process_time()
        self._iterations(xs, ts, n)
        _record_turn(self, n, time.perf_counter() - start, time.process_time() - cpu_start)

    def train(self, xs, ts, valid, epochs):
        max_iters = len(xs) // 700
        best, lr, seconds, valid_ppls, train_ppl = None, 20.0, 0.0, [], float("nan")
        for epoch in range(epochs):
            if self.args.model == "better":  # the book's loop: each epoch a new fit, then validation
                self.time_idx, self.state = 0, None
            start = time.perf_counter()
            losses = []
            for k in range(0, max_iters, 20):
                losses += self._iterations(xs, ts, min(20, max_iters - k))
            seconds += time.perf_counter() - start
            train_ppl = math.exp(sum(losses[-20:]) / len(losses[-20:]))
            if self.args.model == "better":
                ppl = self.perplexity(valid)
                valid_ppls.append(round(ppl, 1))
                if best is None or ppl < best:
                    best = ppl
                    self.best = {k: v.clone() for k, v in self.net.state_dict().items()}
                else:
                    lr /= 4.0
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                self.state = None
            print(f"  {self.label}: epoch {epoch + 1} train ppl {train_ppl:.1f}", flush=True)
        if self.args.model == "better" and best is not None:
            self.net.load_state_dict(self.best)
        result = dict(epochs=epochs, epochs_run=epochs, seconds=seconds,
                      tokens_per_s=epochs * max_iters * 700 / seconds, train_ppl=train_ppl)
        if valid_ppls:
            result["valid"] = valid_ppls
        return result

    def perplexity(self, corpus):
        """The book's eval_perplexity: batch 10, time 35, state carried, dropout off."""
        torch, np = self.torch, self.np
        size = len(corpus)
        max_iters, jump = (size - 1) // 350, (size - 1) // 10
        self.net.eval()
        state, total = None, 0.0
        with torch.no_grad():
            for iters in range(max_iters):
                offsets = iters * 35 + np.arange(10) * jump
                idx = (offsets[:, None] + np.arange(35)) % size
                x = torch.from_numpy(corpus[idx].astype(np.int64))
                t = torch.from_numpy(corpus[(idx + 1) % size].astype(np.int64))
                with self.autocast():
                    scores, state = self.net(x, state)
                total += torch.nn.functional.cross_entropy(scores.reshape(-1, self.V), t.reshape(-1)).item()
        self.net.train()
        return math.exp(total / max_iters)


if __name__ == "__main__":
    main()
