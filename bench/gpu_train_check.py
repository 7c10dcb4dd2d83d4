"""Training on a lent GPU, end to end, in one time-boxed run (issue 18): what gpu_session.sh runs.

    python bench/gpu_train_check.py --out DIR [--budget 540] [--data-dir DATA] [--parts models,speed]
    python bench/gpu_train_check.py --dry-run --out DIR    # the same code on tiny sizes, no GPU needed

The parts, in this order, each with a share of ``--budget`` (seconds) so that a slow one cannot
eat the rest; a part out of time stops between steps and keeps what it measured:

* ``ops``: every CuPy op against its NumPy reference with the registry's tolerances
  (``pytest tests/test_kernels_registry.py -k cupy``, generated from the registry);
* ``models``: every model trained the same steps on the GPU and on the CPU, from the same initial
  weights on the same batches (the trainers with ``device=``). Compared: the first step's loss
  (same weights, same batch: equal but for rounding; not for models with dropout, whose masks
  come from the device's generator there) and the mean loss of the last tenth of the steps,
  each as a relative difference against the tolerance in its column;
* ``speed``: tokens/s of Rnnlm and BetterRnnlm (the book's sizes, PTB) and of the date task's
  AttentionSeq2seq on the GPU, beside the same model in PyTorch on CUDA (``nn.LSTM``: cuDNN)
  from the same initial weights on the same batches, then the validation perplexity (test
  accuracy for the date task) of both after the same steps: one epoch where the budget allows;
* ``word2vec``: ``Word2Vec(sg=1, device="cuda")`` words/s on PTB beside the CPU's fused trainer
  on every core (guarded: an error is printed and recorded, and the run goes on);
* ``gpu-tests``: the tests marked ``gpu`` (``pytest -m gpu tests``);
* ``ops-speed``: ``bench/compare_gpu.py`` (every op timed on the device, scatter-add beside torch);
* ``ops-bench``: the generated benchmark of every op on ``cupy`` (``pytest bench/test_bench_ops.py
  -k cupy``, into ``DIR/gpu-ops-bench.json``).

``DIR/check.json`` holds everything (machine, versions, every row, each part's status and
seconds) and ``DIR/check.md`` the tables; both are rewritten after every row, so a run killed
at its limit still leaves what it measured. The subprocess parts write their output to
``DIR/ops.txt``, ``DIR/gpu-tests.txt`` and ``DIR/ops-speed.txt`` (both op timings).

``--dry-run`` runs the in-process parts on tiny synthetic data (PyTorch on the CPU where CUDA is
missing) and skips the subprocess parts, so the logic is tested where no GPU is
(tests/test_gpu_train_check.py runs it under the strict stand-in device).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PARTS = ("ops", "models", "speed", "word2vec", "gpu-tests", "ops-speed", "ops-bench")
SUBPROCESS_PARTS = ("ops", "gpu-tests", "ops-speed", "ops-bench")
# The most seconds each part may take, and what each later part is left at least.
SHARE = {"ops": 100, "models": 150, "speed": 170, "word2vec": 45, "gpu-tests": 60, "ops-speed": 40,
         "ops-bench": 45}
FLOOR = 15

FIRST_STEP_TOLERANCE = 1e-4  # relative: the same weights and batch, only the order of sums differs
FINAL_TOLERANCE = 0.02  # relative, on the mean loss of the last tenth of the steps
FINAL_TOLERANCE_DROPOUT = 0.05  # the device draws other dropout masks: two samples of the same training


# ----- time ------------------------------------------------------------------------------------------

class Budget:
    """Seconds left for the whole run, and each part's share of them."""

    def __init__(self, seconds):
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self):
        return self.seconds - (time.perf_counter() - self.start)

    def share(self, part, later):
        """The seconds ``part`` gets: its SHARE at most, leaving FLOOR to each part in ``later``."""
        return max(0.0, min(SHARE[part], self.left() - FLOOR * len(later)))


class Deadline:
    def __init__(self, seconds):
        self.end = time.perf_counter() + seconds

    def left(self):
        return self.end - time.perf_counter()

    def passed(self):
        return self.left() <= 0

    def fraction(self, fraction):
        """A deadline ``fraction`` of the way from now to this one."""
        return Deadline(max(0.0, self.left() * fraction))


# ----- the report --------------------------------------------------------------------------------

class Report:
    """check.json and check.md in ``out``, rewritten (atomically) after every change."""

    def __init__(self, out, machine):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = {"machine": machine, "parts": {}}
        self.save()

    def part(self, name):
        entry = self.data["parts"].setdefault(name, {"status": "running", "seconds": 0.0, "rows": [], "notes": []})
        self.save()
        return entry

    def save(self):
        _write_atomically(self.out / "check.json", json.dumps(self.data, indent=1, default=_jsonable) + "\n")
        _write_atomically(self.out / "check.md", render_markdown(self.data))


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _write_atomically(path, text):
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


COLUMNS = {
    "models": [("model", "model"), ("data", "data"), ("steps", "steps"), ("cpu first loss", "cpu_first"),
               ("gpu first loss", "gpu_first"), ("rel. diff", "first_diff"), ("cpu final loss", "cpu_final"),
               ("gpu final loss", "gpu_final"), ("rel. diff", "final_diff"), ("tolerance", "tolerance"),
               ("cpu s/step", "cpu_seconds_per_step"), ("gpu s/step", "gpu_seconds_per_step"), ("result", "result")],
    "speed": [("model", "model"), ("data", "data"), ("steps", "steps"), ("PyTorch steps", "torch_steps"),
              ("fastnlp tokens/s", "ours_tokens_per_s"),
              ("PyTorch tokens/s", "torch_tokens_per_s"), ("ours / PyTorch", "ratio"), ("metric", "metric"),
              ("fastnlp", "ours_metric"), ("PyTorch", "torch_metric"), ("PyTorch on", "torch_device")],
    "word2vec": [("trainer", "trainer"), ("device", "device"), ("words", "words"), ("seconds", "seconds"),
                 ("words/s", "words_per_s"), ("error", "error")],
    "ops": [("command", "command"), ("exit", "exit"), ("passed", "passed"), ("failed", "failed"),
            ("skipped", "skipped"), ("output", "output")],
}
COLUMNS["gpu-tests"] = COLUMNS["ops-speed"] = COLUMNS["ops"]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{value:.2e}"
    return str(value).replace("|", "/").replace("\n", " ")


def render_markdown(data):
    machine = data["machine"]
    lines = ["# GPU training check" + (" (dry run: tiny synthetic sizes, not a measurement)" if machine.get("dry_run")
                                       else ""), ""]
    lines += [f"- {key}: {value}" for key, value in machine.items() if key != "dry_run"]
    for name, part in data["parts"].items():
        lines += ["", f"## {name}: {part['status']} ({part['seconds']:.0f} s)", ""]
        lines += [f"- {note}" for note in part["notes"]]
        if part["rows"]:
            columns = COLUMNS.get(name) or [(k, k) for k in part["rows"][0]]
            lines += ["", "| " + " | ".join(title for title, _ in columns) + " |",
                      "| " + " | ".join("---" for _ in columns) + " |"]
            lines += ["| " + " | ".join(_cell(row.get(key)) for _, key in columns) + " |" for row in part["rows"]]
    return "\n".join(lines) + "\n"


# ----- the machine -------------------------------------------------------------------------------

def describe_machine(device, dry_run):
    import fastnlp
    from fastnlp.kernels import cpu

    info = {"dry_run": dry_run, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cpu": f"{cpu.model_name()} ({os.cpu_count()} logical cores)",
            "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "python": platform.python_version(), "numpy": np.__version__, "fastnlp": fastnlp.__version__,
            "backends": ", ".join(n for n, why in fastnlp.available_backends().items() if why is None),
            "device": device}
    for module in ("numba", "scipy", "cupy"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = "not installed"
        except AttributeError:  # the tests' stand-in device
            info[module] = "unknown version"
    if device != "cpu":
        info.update(_gpu_description())
    try:
        import torch

        info["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN " \
                        f"{torch.backends.cudnn.version() if torch.cuda.is_available() else 'n/a'}, " \
                        f"GPU {'seen' if torch.cuda.is_available() else 'not seen'})"
    except ImportError:
        info["torch"] = "not installed"
    return info


def _gpu_description():
    """Name, driver and runtime versions of device 0, as CuPy reads them ('unknown' where it cannot)."""
    info = {}
    try:
        import cupy

        runtime = cupy.cuda.runtime
        name = runtime.getDeviceProperties(0)["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        info["cuda driver"] = _cuda_version(runtime.driverGetVersion())
        info["cuda runtime"] = _cuda_version(runtime.runtimeGetVersion())
    except Exception as exc:  # the stand-in device, or a CuPy that cannot say
        info.setdefault("gpu", f"unknown ({type(exc).__name__}: {exc})")
    return info


def _cuda_version(number):
    return f"{number // 1000}.{number % 1000 // 10}"


def synchronize(device):
    """Wait for the device's queued work (timers read after it)."""
    if device != "cpu":
        import cupy

        cupy.cuda.Device().synchronize()


# ----- data -----------------------------------------------------------------------------------------

class Data:
    """PTB and the book's sequence tasks from ``data_dir`` when there (never downloaded),
    synthetic stand-ins of the same shape otherwise; ``dry_run`` shrinks everything."""

    def __init__(self, data_dir, dry_run):
        self.dir = Path(data_dir) if data_dir else None
        self.dry_run = dry_run
        self.rng = np.random.default_rng(0)

    def _has(self, relative):
        return not self.dry_run and self.dir is not None and (self.dir / relative).is_file()

    def ptb(self):
        """(train, valid, vocabulary size, label)."""
        import fastnlp

        if self._has("ptb/ptb.train.txt") and self._has("ptb/ptb.valid.txt"):
            train, word_to_id, _ = fastnlp.datasets.load_ptb("train", data_dir=self.dir)
            valid, _, _ = fastnlp.datasets.load_ptb("valid", data_dir=self.dir)
            return train.astype(np.int64), valid.astype(np.int64), len(word_to_id), "PTB"
        V, n = (40, 6000) if self.dry_run else (10000, 300_000)
        ids = np.minimum(self.rng.zipf(1.3, n + n // 10) - 1, V - 1).astype(np.int64)  # word frequencies' shape
        return ids[:n], ids[n:], V, "synthetic Zipf ids"

    def ptb_sentences(self):
        if self._has("ptb/ptb.train.txt"):
            with open(self.dir / "ptb" / "ptb.train.txt") as f:
                return [line.split() for line in f if line.strip()], "PTB"
        n, length = (60, 12) if self.dry_run else (40000, 21)
        words = np.minimum(self.rng.zipf(1.3, (n, length)) - 1, 999)
        return [[f"w{i}" for i in row] for row in words], "synthetic Zipf words"

    def sequence(self, name, reverse=False):
        """((x, t), (x_test, t_test), vocabulary size, label) of the book's addition / date task."""
        import fastnlp

        if self._has(f"seq/{name}.txt"):
            (x, t), (x_test, t_test), char_to_id, _ = fastnlp.datasets.load_sequence(name, self.dir, reverse=reverse)
            return (x, t), (x_test, t_test), len(char_to_id), name
        n, width_in, width_out, V = (96, 6, 5, 12) if self.dry_run else (45000, 29, 11, 59)
        x = self.rng.integers(1, V, (n, width_in)).astype(np.int32)
        t = np.concatenate([np.zeros((n, 1), np.int32), (x[:, :width_out - 1] + 1) % V], axis=1)  # learnable
        cut = n * 9 // 10
        return (x[:cut], t[:cut]), (x[cut:], t[cut:]), V, f"synthetic {name}"

    def spiral(self):
        import fastnlp

        x, t = fastnlp.datasets.load_spiral(n_per_class=10 if self.dry_run else 100)
        return x, t, "spiral"


# ----- part: models, CPU against GPU ----------------------------------------------------------------------

def model_cases(data, dry_run):
    """(name, data label, build() -> a new model, optimizer() -> a new optimizer, settings) for
    every model: the same seed in every build, so both devices start from the same weights."""
    import fastnlp
    from fastnlp import models, optim

    small = dry_run
    steps = 6 if small else 300
    cases = []
    x, t, label = data.spiral()
    cases.append(("TwoLayerNet", label, lambda: models.TwoLayerNet(2, 10, 3, seed=0), lambda: optim.SGD(1.0),
                  dict(kind="trainer", x=x, t=t, batch_size=30 if not small else 10, steps=steps)))
    train, _, V, label = data.ptb()
    corpus = train[:2000 if small else 100_000]
    window = 2 if small else 5
    contexts, target = fastnlp.create_contexts_target(corpus, window)
    hidden = 8 if small else 100
    for name in ("CBOW", "SkipGram"):
        cls = getattr(models, name)
        cases.append((name, label, lambda cls=cls, V=V: cls(V, hidden, window, corpus, seed=0), lambda: optim.Adam(),
                      dict(kind="trainer", x=contexts, t=target, batch_size=100, steps=steps)))
    rnn = dict(kind="rnnlm", corpus=train, batch_size=4 if small else 20, time_size=5 if small else 35,
               max_grad=0.25)
    cases.append(("Rnnlm", label, lambda V=V: models.Rnnlm(V, hidden, hidden, seed=0), lambda: optim.SGD(20.0),
                  dict(rnn, steps=steps)))
    better = 8 if small else 256
    cases.append(("BetterRnnlm", label,
                  lambda V=V: models.BetterRnnlm(V, better, better, dropout_ratio=0.5, seed=0), lambda: optim.SGD(20.0),
                  dict(rnn, steps=steps if small else 200, dropout=True)))
    hidden = 8 if small else 128
    batch = 16 if small else 128
    for name, reverse in (("Seq2seq", False), ("PeekySeq2seq", True)):
        (x, t), _, V, label = data.sequence("addition", reverse=reverse)
        cls = getattr(models, name)
        cases.append((name, label + (", reversed" if reverse else ""),
                      lambda cls=cls, V=V: cls(V, 16, hidden, seed=0), lambda: optim.Adam(),
                      dict(kind="trainer", x=x, t=t, batch_size=batch, steps=steps, max_grad=5.0)))
    (x, t), _, V, label = data.sequence("date", reverse=True)
    attention = 8 if small else 256
    cases.append(("AttentionSeq2seq", label + ", reversed",
                  lambda V=V: models.AttentionSeq2seq(V, 16, attention, seed=0), lambda: optim.Adam(),
                  dict(kind="trainer", x=x, t=t, batch_size=batch, steps=steps if small else 200, max_grad=5.0)))
    (x, t), _, V, label = data.sequence("date")
    width = dict(d_model=8, n_heads=2, d_ff=16, n_layers=1) if small else {}
    cases.append(("Transformer", label, lambda V=V: models.Transformer(V, seed=0, **width), lambda: optim.Adam(),
                  dict(kind="trainer", x=x, t=t, batch_size=batch, steps=steps if small else 200, max_grad=5.0)))
    return cases


def train_steps(build, make_optimizer, setup, device, steps, deadline=None, chunk=25):
    """(loss of every step, seconds) of ``steps`` steps on ``device`` (fewer when ``deadline``
    passes; checked every ``chunk`` steps). Each chunk is one ``fit`` over the next rows (or ids):
    with the same seed, every device gets the same batches."""
    import fastnlp

    model = build()
    losses, done, seconds = [], 0, 0.0
    if setup["kind"] == "rnnlm":
        trainer = fastnlp.RnnlmTrainer(model, make_optimizer(), device=device)
        corpus, B, T = setup["corpus"], setup["batch_size"], setup["time_size"]
        while done < steps and not (deadline and deadline.passed()):
            n = min(chunk, steps - done)
            ids = np.take(corpus, np.arange(done * B * T, (done + n) * B * T + 1), mode="wrap")
            start = time.perf_counter()
            trainer.fit(ids[:-1], ids[1:], max_epoch=1, batch_size=B, time_size=T, max_grad=setup["max_grad"],
                        eval_interval=1, progress=False)
            synchronize(device)
            seconds += time.perf_counter() - start
            done += n
        losses = [math.log(p) for p in trainer.ppl_list]
    else:
        trainer = fastnlp.Trainer(model, make_optimizer(), seed=0, device=device)
        x, t, B = setup["x"], setup["t"], setup["batch_size"]
        while done < steps and not (deadline and deadline.passed()):
            n = min(chunk, steps - done)
            rows = np.arange(done * B, (done + n) * B) % len(x)
            start = time.perf_counter()
            trainer.fit(x[rows], t[rows], max_epoch=1, batch_size=B, max_grad=setup.get("max_grad"),
                        eval_interval=1, progress=False)
            synchronize(device)
            seconds += time.perf_counter() - start
            done += n
        losses = list(trainer.loss_list)
    return losses, seconds


def relative_difference(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compare_losses(cpu_losses, gpu_losses, dropout):
    """The row's comparison: first step (when both ran it without dropout), the mean of the
    last tenth, pass/fail."""
    steps = min(len(cpu_losses), len(gpu_losses))
    tail = max(1, steps // 10)
    row = {"steps": steps}
    if steps == 0:
        return dict(row, result="no steps")
    cpu_final = float(np.mean(cpu_losses[steps - tail:steps]))
    gpu_final = float(np.mean(gpu_losses[steps - tail:steps]))
    tolerance = FINAL_TOLERANCE_DROPOUT if dropout else FINAL_TOLERANCE
    row.update(cpu_final=cpu_final, gpu_final=gpu_final, final_diff=relative_difference(gpu_final, cpu_final))
    ok = math.isfinite(gpu_final) and row["final_diff"] <= tolerance
    if dropout:
        row["tolerance"] = f"final {tolerance:g} (dropout: first step not compared)"
    else:
        row.update(cpu_first=cpu_losses[0], gpu_first=gpu_losses[0],
                   first_diff=relative_difference(gpu_losses[0], cpu_losses[0]),
                   tolerance=f"first {FIRST_STEP_TOLERANCE:g}, final {tolerance:g}")
        ok = ok and row["first_diff"] <= FIRST_STEP_TOLERANCE
    row["result"] = "pass" if ok else "FAIL"
    return row


def part_models(report, entry, data, device, deadline, dry_run):
    cases = model_cases(data, dry_run)
    entry["notes"].append(f"CPU and {device}, the same initial weights and batches; first step: same weights and "
                          "batch; final: mean loss of the last tenth of the steps")
    for index, (name, label, build, make_optimizer, setup) in enumerate(cases):
        # Each model its share of what is left; the CPU side first (its steps are the row's),
        # with half of that share, as the slower side.
        share = deadline.fraction(1.0 / (len(cases) - index))
        row = {"model": name, "data": label}
        try:
            cpu_losses, cpu_seconds = train_steps(build, make_optimizer, setup, "cpu", setup["steps"],
                                                  share.fraction(0.5))
            gpu_losses, gpu_seconds = train_steps(build, make_optimizer, setup, device, len(cpu_losses), share)
            row.update(compare_losses(cpu_losses, gpu_losses, setup.get("dropout", False)))
            row.update(cpu_seconds_per_step=cpu_seconds / max(len(cpu_losses), 1),
                       gpu_seconds_per_step=gpu_seconds / max(len(gpu_losses), 1))
            if row["steps"] < setup["steps"]:
                row["result"] += f" ({row['steps']} of {setup['steps']} steps: out of time)"
        except Exception as exc:
            row["result"] = f"error: {type(exc).__name__}: {exc}"
            traceback.print_exc()
        entry["rows"].append(row)
        report.save()
        print(f"models: {row}", flush=True)
    failed = [r["model"] for r in entry["rows"] if not str(r.get("result", "")).startswith("pass")]
    return "passed" if not failed else f"failed: {', '.join(failed)}"


# ----- part: speed against PyTorch on CUDA -----------------------------------------------------------------

def torch_device(torch, dry_run):
    """'cuda' where PyTorch sees the GPU, 'cpu' in a dry run, else None (no peer)."""
    if torch.cuda.is_available():
        return "cuda"
    return "cpu" if dry_run else None


def _torch_gates(torch, M):
    """Our LSTM weights (gate blocks f, g, i, o along the last axis) as PyTorch's (rows i, f, g, o)."""
    f, g, i, o = np.split(np.asarray(M), 4, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(np.concatenate([i, f, g, o], axis=-1).T))


def torch_language_model(torch, ours, dropout):
    """nn.Embedding + nn.LSTM (cuDNN on CUDA) + nn.Linear with ``ours``' weights (a host model)."""
    import fastnlp

    nn = torch.nn
    lstms = [layer for layer in ours.layers if isinstance(layer, fastnlp.layers.TimeLSTM)]
    V, D = ours.layers[0].params[0].shape
    H = lstms[0].params[1].shape[0]
    tied = isinstance(ours, fastnlp.models.BetterRnnlm)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, D)
            self.lstm = nn.LSTM(D, H, num_layers=len(lstms), batch_first=True,
                                dropout=dropout if len(lstms) > 1 else 0.0)
            self.drop = nn.Dropout(dropout)
            self.fc = nn.Linear(H, V)
            if tied:
                self.fc.weight = self.embed.weight

        def forward(self, x, state):
            out, state = self.lstm(self.drop(self.embed(x)), state)
            return self.fc(self.drop(out)), state

    net = Net()
    with torch.no_grad():
        net.embed.weight.copy_(torch.from_numpy(ours.layers[0].params[0]))
        for k, layer in enumerate(lstms):
            Wx, Wh, b = layer.params
            getattr(net.lstm, f"weight_ih_l{k}").copy_(_torch_gates(torch, Wx))
            getattr(net.lstm, f"weight_hh_l{k}").copy_(_torch_gates(torch, Wh))
            getattr(net.lstm, f"bias_ih_l{k}").copy_(_torch_gates(torch, b[None, :])[:, 0])
            getattr(net.lstm, f"bias_hh_l{k}").zero_()
        affine = ours.layers[-1]
        if not tied:
            net.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(affine.params[0].T)))
        net.fc.bias.copy_(torch.from_numpy(affine.params[1]))
    return net


def book_batches(xs, ts, batch_size, time_size):
    """The batches RnnlmTrainer.fit trains on for ``xs``/``ts`` (one call: one pass)."""
    data_size = len(xs)
    jump = data_size // batch_size
    offsets = np.arange(batch_size) * jump
    for it in range(data_size // (batch_size * time_size)):
        idx = (offsets[:, None] + it * time_size + np.arange(time_size)) % data_size
        yield xs[idx], ts[idx]


def torch_perplexity(torch, net, corpus, device, batch_size=10, time_size=35):
    """The book's eval_perplexity for the PyTorch model: state carried, dropout off."""
    net.eval()
    corpus_size = len(corpus)
    iters = (corpus_size - 1) // (batch_size * time_size)
    jump = (corpus_size - 1) // batch_size
    total, state = 0.0, None
    with torch.no_grad():
        for it in range(iters):
            offsets = it * time_size + np.arange(batch_size) * jump
            idx = (offsets[:, None] + np.arange(time_size)) % corpus_size
            x = torch.from_numpy(corpus[idx]).to(device)
            t = torch.from_numpy(corpus[(idx + 1) % corpus_size]).to(device)
            scores, state = net(x, state)
            total += float(torch.nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), t.reshape(-1)))
    net.train()
    return math.exp(total / max(iters, 1))


def speed_language_model(name, data, device, deadline, dry_run, torch):
    """Our model on ``device`` then PyTorch's, the same steps on the same batches; tokens/s over
    the steps after the first chunk (compiles, first allocations), then validation perplexity."""
    import fastnlp
    from fastnlp import models, optim

    train, valid, V, label = data.ptb()
    B, T = (4, 5) if dry_run else (20, 35)
    if name == "Rnnlm":
        size, dropout = (8, 0.0) if dry_run else (100, 0.0)
        build = lambda: models.Rnnlm(V, size, size, seed=0)  # noqa: E731
    else:
        size, dropout = (8, 0.5) if dry_run else (650, 0.5)
        build = lambda: models.BetterRnnlm(V, size, size, dropout_ratio=dropout, seed=0)  # noqa: E731
    chunk = 5 if dry_run else 25
    epoch = 2 * chunk if dry_run else len(train) // (B * T)
    valid = valid[:400] if dry_run else valid
    row = {"model": f"{name} ({size}/{size})", "data": label, "metric": "valid perplexity"}

    def slices():
        for done in range(0, epoch - epoch % chunk, chunk):
            ids = train[done * B * T:(done + chunk) * B * T + 1]
            yield ids[:-1], ids[1:]

    # ours: until one epoch is done or our share (60% of the model's) is spent
    ours_deadline = deadline.fraction(0.6)
    model = build()
    trainer = fastnlp.RnnlmTrainer(model, optim.SGD(20.0), device=device)
    steps, timed_steps, timed_seconds = 0, 0, 0.0
    for xs, ts in slices():
        start = time.perf_counter()
        trainer.fit(xs, ts, max_epoch=1, batch_size=B, time_size=T, max_grad=0.25, progress=False)
        synchronize(device)
        if steps:  # the first chunk warms up (kernel compiles, the memory pool)
            timed_seconds += time.perf_counter() - start
            timed_steps += chunk
        steps += chunk
        if ours_deadline.passed():
            break
    row["steps"] = steps
    row["ours_tokens_per_s"] = timed_steps * B * T / timed_seconds if timed_seconds else float("nan")
    model.reset_state()
    row["ours_metric"] = fastnlp.eval_perplexity(model, valid, batch_size=10, time_size=35)
    where = torch_device(torch, dry_run) if torch is not None else None
    row["torch_device"] = where or "no PyTorch with CUDA"
    if where is not None:
        net = torch_language_model(torch, build(), dropout).to(where)
        sgd = torch.optim.SGD(net.parameters(), lr=20.0)
        state, done, timed_seconds = None, 0, 0.0
        for xs, ts in slices():
            if done >= steps or deadline.passed():
                break
            start = time.perf_counter()
            for bx, bt in book_batches(xs, ts, B, T):
                bx, bt = torch.from_numpy(bx).to(where), torch.from_numpy(bt).to(where)
                if state is not None:
                    state = tuple(s.detach() for s in state)
                sgd.zero_grad()
                scores, state = net(bx, state)
                loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), bt.reshape(-1))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.25)
                sgd.step()
                loss.item()  # the loss read every step, as ours is
            if where == "cuda":
                torch.cuda.synchronize()
            if done:
                timed_seconds += time.perf_counter() - start
            done += chunk
        row["torch_steps"] = done
        row["torch_tokens_per_s"] = (done - chunk) * B * T / timed_seconds if timed_seconds else float("nan")
        row["ratio"] = row["ours_tokens_per_s"] / row["torch_tokens_per_s"]
        row["torch_metric"] = torch_perplexity(torch, net, valid, where)
    if steps >= epoch - epoch % chunk and not dry_run:
        row["metric"] += " after one epoch"
    return row


def torch_attention_seq2seq(torch, ours):
    """The date model in PyTorch (embeddings, nn.LSTM encoder and decoder, dot-product attention,
    nn.Linear over [context, h]) with ``ours``' weights (a host AttentionSeq2seq)."""
    enc_embed, enc_Wx, enc_Wh, enc_b, dec_embed, dec_Wx, dec_Wh, dec_b, W, b = ours.params
    V, D = enc_embed.shape
    H = enc_Wh.shape[0]
    from torch_peers import attention_seq2seq

    net = attention_seq2seq(torch, V, D, H)
    with torch.no_grad():
        for embed, weights in ((net.enc_embed, enc_embed), (net.dec_embed, dec_embed)):
            embed.weight.copy_(torch.from_numpy(weights))
        for lstm, (Wx, Wh, bias) in ((net.encoder, (enc_Wx, enc_Wh, enc_b)), (net.decoder, (dec_Wx, dec_Wh, dec_b))):
            lstm.weight_ih_l0.copy_(_torch_gates(torch, Wx))
            lstm.weight_hh_l0.copy_(_torch_gates(torch, Wh))
            lstm.bias_ih_l0.copy_(_torch_gates(torch, bias[None, :])[:, 0])
            lstm.bias_hh_l0.zero_()
        net.affine.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        net.affine.bias.copy_(torch.from_numpy(b))
    return net


def speed_attention_seq2seq(data, device, deadline, dry_run, torch):
    """The date task's AttentionSeq2seq (16/256, batch 128, Adam, clip 5): ours on ``device``,
    then PyTorch's on the same batches (Trainer's shuffles, replayed); tokens counted in the
    questions and answers; test accuracy (greedy) after the same steps."""
    import fastnlp
    from fastnlp import models, optim

    (x, t), (x_test, t_test), V, label = data.sequence("date", reverse=True)
    hidden, B, chunk = (8, 16, 2) if dry_run else (256, 128, 25)
    epoch = len(x) // B
    tokens_per_row = x.shape[1] + t.shape[1] - 1
    row = {"model": f"AttentionSeq2seq (16/{hidden})", "data": label + ", reversed", "metric": "test accuracy"}
    build = lambda: models.AttentionSeq2seq(V, 16, hidden, seed=0)  # noqa: E731

    def slices():
        for done in range(0, epoch - epoch % chunk, chunk):
            yield x[done * B:(done + chunk) * B], t[done * B:(done + chunk) * B]

    ours_deadline = deadline.fraction(0.6)
    model = build()
    trainer = fastnlp.Trainer(model, optim.Adam(), seed=0, device=device)
    steps, timed_seconds = 0, 0.0
    for xs, ts in slices():
        start = time.perf_counter()
        trainer.fit(xs, ts, max_epoch=1, batch_size=B, max_grad=5.0, progress=False)
        synchronize(device)
        if steps:
            timed_seconds += time.perf_counter() - start
        steps += chunk
        if ours_deadline.passed():
            break
    row["steps"] = steps
    row["ours_tokens_per_s"] = (steps - chunk) * B * tokens_per_row / timed_seconds if timed_seconds else float("nan")
    row["ours_metric"] = fastnlp.seq2seq_accuracy(model, x_test, t_test)
    where = torch_device(torch, dry_run) if torch is not None else None
    row["torch_device"] = where or "no PyTorch with CUDA"
    if where is not None:
        net = torch_attention_seq2seq(torch, build()).to(where)
        adam = torch.optim.Adam(net.parameters(), lr=0.001, eps=1e-7)
        shuffles = np.random.default_rng(0)  # Trainer(seed=0): one permutation per fit call
        done, timed_seconds = 0, 0.0
        for xs, ts in slices():
            if done >= steps or deadline.passed():
                break
            order = shuffles.permutation(len(xs))
            xs_all = torch.from_numpy(xs.astype(np.int64)).to(where)
            ts_all = torch.from_numpy(ts.astype(np.int64)).to(where)
            start = time.perf_counter()
            for it in range(len(xs) // B):
                batch = torch.from_numpy(order[it * B:(it + 1) * B]).to(where)
                adam.zero_grad()
                loss = net(xs_all[batch], ts_all[batch])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                adam.step()
                loss.item()
            if where == "cuda":
                torch.cuda.synchronize()
            if done:
                timed_seconds += time.perf_counter() - start
            done += chunk
        row["torch_steps"] = done
        timed_tokens = (done - chunk) * B * tokens_per_row
        row["torch_tokens_per_s"] = timed_tokens / timed_seconds if timed_seconds else float("nan")
        row["ratio"] = row["ours_tokens_per_s"] / row["torch_tokens_per_s"]
        xt = torch.from_numpy(x_test.astype(np.int64)).to(where)
        tt = torch.from_numpy(t_test.astype(np.int64)).to(where)
        guess = net.generate(xt, tt[:, :1], tt.shape[1] - 1)
        row["torch_metric"] = float((guess == tt[:, 1:]).all(dim=1).float().mean())
    if steps >= epoch - epoch % chunk and not dry_run:
        row["metric"] += " after one epoch"
    return row


def part_speed(report, entry, data, device, deadline, dry_run):
    try:
        import torch
    except ImportError as exc:
        torch = None
        entry["notes"].append(f"PyTorch not importable ({exc}): fastnlp alone")
    else:
        if not torch.cuda.is_available():
            entry["notes"].append("PyTorch does not see a GPU" + ("; dry run: PyTorch on the CPU" if dry_run else
                                                                  ": fastnlp alone"))
    entry["notes"].append("tokens/s over the steps after the first chunk of 25 (compiles, first allocations); both "
                          "read the loss every step; PyTorch from our initial weights, on our batches")
    runs = [("Rnnlm", lambda d: speed_language_model("Rnnlm", data, device, d, dry_run, torch)),
            ("BetterRnnlm", lambda d: speed_language_model("BetterRnnlm", data, device, d, dry_run, torch)),
            ("AttentionSeq2seq", lambda d: speed_attention_seq2seq(data, device, d, dry_run, torch))]
    # BetterRnnlm, the target, gets half of the part; the others a quarter each.
    fractions = {"Rnnlm": 0.25, "BetterRnnlm": 2 / 3, "AttentionSeq2seq": 1.0}
    errors = []
    for name, run in runs:
        try:
            row = run(deadline.fraction(fractions[name]))
        except Exception as exc:
            row = {"model": name, "metric": f"error: {type(exc).__name__}: {exc}"}
            errors.append(name)
            traceback.print_exc()
        entry["rows"].append(row)
        report.save()
        print(f"speed: {row}", flush=True)
    return "done" if not errors else f"errors: {', '.join(errors)}"


# ----- part: word2vec words/s ---------------------------------------------------------------------------

def part_word2vec(report, entry, data, device, deadline, dry_run):
    import fastnlp

    sentences, label = data.ptb_sentences()
    words = sum(len(s) for s in sentences)
    entry["notes"].append(f"{label}: {len(sentences):,} sentences, {words:,} words; sg=1, vector_size 100, window 5, "
                          "negative 5, one epoch; seconds of train() alone (the vocabulary built before, the CUDA kernel "
                          "compiled by a warm-up run)")
    errors = []
    for trainer, where, workers in (("fastnlp.Word2Vec", device, 1), ("fastnlp.Word2Vec", "cpu", os.cpu_count())):
        if deadline.passed():
            entry["notes"].append(f"out of time before the {where} run")
            break
        row = {"trainer": f"{trainer} (workers {workers})", "device": where, "words": words}
        try:
            if where != "cpu":  # compile word2vec.cu before the clock starts (NVRTC takes seconds)
                fastnlp.Word2Vec(sentences[:200], sg=1, min_count=1, epochs=1, progress=False, device=where)
            model = fastnlp.Word2Vec(sg=1, vector_size=100, window=5, negative=5, min_count=1, epochs=1,
                                     workers=workers, seed=1, progress=False, device=where)
            model.build_vocab(sentences)
            start = time.perf_counter()
            model.train(sentences, total_examples=len(sentences), epochs=1)
            synchronize(where)
            row["seconds"] = time.perf_counter() - start
            row["words_per_s"] = words / row["seconds"]
        except Exception as exc:  # another helper's Word2Vec(device=) may not be there yet: go on
            row["error"] = f"{type(exc).__name__}: {exc}"
            errors.append(where)
            print(f"word2vec on {where} failed:", file=sys.stderr)
            traceback.print_exc()
        entry["rows"].append(row)
        report.save()
        print(f"word2vec: {row}", flush=True)
    return "done" if not errors else f"errors on {', '.join(errors)}"


# ----- the subprocess parts ----------------------------------------------------------------------------

def pytest_counts(text):
    """{'passed': n, 'failed': n, 'skipped': n, ...} from pytest's summary line (the last line
    that counts outcomes and says how long the run took)."""
    for line in reversed(text.splitlines()):
        counts_part, _, duration = line.strip("= ").rpartition(" in ")
        if not duration:
            continue
        counts = {}
        for item in counts_part.split(","):
            number, _, word = item.strip().partition(" ")
            if number.isdigit() and word:
                counts[word] = int(number)
        if counts:
            return counts
    return {}


def run_command(report, entry, out, name, command, seconds, append=False):
    """``command`` with at most ``seconds``, its output in ``out/<name>`` (after what is there
    with ``append``); one row."""
    path = Path(out) / name
    row = {"command": " ".join(command), "output": name}
    with open(path, "a" if append else "w") as log:
        try:
            result = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=max(seconds, 1))
            row["exit"] = result.returncode
        except subprocess.TimeoutExpired:
            row["exit"] = f"stopped after {seconds:.0f} s"
    counts = pytest_counts(path.read_text(errors="replace"))
    row.update({k: counts.get(k, 0) for k in ("passed", "failed", "skipped")})
    entry["rows"].append(row)
    report.save()
    if row["exit"] != 0:
        return f"exit {row['exit']}"
    return "nothing ran: every test skipped" if counts and not row["passed"] else "passed"


def part_subprocess(report, entry, name, out, seconds, data_dir):
    python = sys.executable
    if name == "ops":
        command = [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_kernels_registry.py",
                   "-k", "cupy"]
        return run_command(report, entry, out, "ops.txt", command, seconds)
    if name == "gpu-tests":
        command = [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu", "tests"]
        return run_command(report, entry, out, "gpu-tests.txt", command, seconds)
    if name == "ops-speed":
        command = [python, str(HERE / "compare_gpu.py")]  # its table is on stdout
        if data_dir is not None:
            command += ["--data-dir", data_dir]
        return run_command(report, entry, out, "ops-speed.txt", command, seconds)
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "bench/test_bench_ops.py", "-k", "cupy",
               "--benchmark-max-time=0.2", f"--benchmark-json={Path(out) / 'gpu-ops-bench.json'}"]
    return run_command(report, entry, out, "ops-speed.txt", command, seconds, append=True)  # the tool returns 8 files


# ----- main ---------------------------------------------------------------------------------------------

def default_data_dir():
    for candidate in (os.environ.get("FASTNLP_DATA"), ROOT / "build" / "gpu-data", ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate, "ptb").is_dir():
            return str(candidate)
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for check.json, check.md and the parts' outputs")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for every part together")
    parser.add_argument("--data-dir", default=None, help="folder with ptb/ and seq/ (default: $FASTNLP_DATA, "
                                                         "build/gpu-data, ../shared/data; else synthetic data)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--device", default=None, help="where the GPU side runs (default: cuda; cpu in a dry run "
                                                       "without a GPU)")
    parser.add_argument("--dry-run", action="store_true", help="tiny synthetic sizes, no subprocess parts")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")

    import fastnlp

    device = args.device
    if device is None:
        device = "cuda" if not args.dry_run or fastnlp.available_backends()["cupy"] is None else "cpu"
    budget = Budget(args.budget)
    try:
        device, unavailable = fastnlp.device.require(device), None
    except fastnlp.kernels.BackendUnavailableError as exc:  # recorded; the subprocess parts still say why
        unavailable = str(exc)
    data_dir = args.data_dir or default_data_dir()
    data_dir = data_dir and str(Path(data_dir).resolve())
    report = Report(args.out, describe_machine(device if unavailable is None else "cpu", args.dry_run))
    report.data["machine"]["device"] = device if unavailable is None else unavailable
    report.data["machine"]["data"] = data_dir or "none found: synthetic data"
    data = Data(data_dir, args.dry_run)
    runners = {"models": part_models, "speed": part_speed, "word2vec": part_word2vec}
    for index, name in enumerate(parts):
        entry = report.part(name)
        seconds = budget.share(name, parts[index + 1:])
        start = time.perf_counter()
        print(f"== {name}: up to {seconds:.0f} s", flush=True)
        try:
            if seconds <= 0:
                entry["status"] = "skipped: no time left"
            elif unavailable is not None and name not in SUBPROCESS_PARTS:
                entry["status"] = "skipped: the device is not available"
            elif name in SUBPROCESS_PARTS:
                if args.dry_run:
                    entry["status"] = "skipped: dry run"
                else:
                    entry["status"] = part_subprocess(report, entry, name, args.out, seconds, data_dir)
            else:
                entry["status"] = runners[name](report, entry, data, device, Deadline(seconds), args.dry_run)
        except Exception as exc:  # a part's failure is recorded; the next part still runs
            entry["status"] = f"error: {type(exc).__name__}: {exc}"
            traceback.print_exc()
        entry["seconds"] = time.perf_counter() - start
        report.save()
        print(f"== {name}: {entry['status']} ({entry['seconds']:.0f} s)", flush=True)
    print(render_markdown(report.data))
    return report.data


if __name__ == "__main__":
    main()
