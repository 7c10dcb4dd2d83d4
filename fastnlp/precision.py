"""Precision studies: how much of float32's quality survives in fp16, bf16 and fp8.

The book's advice (chapter 1) is that 16-bit storage is fine for inference, while computing and
learning in 16 bits needs care. ``run_study(name, out_dir)`` measures it on the library's own
ops and models and writes ``<out_dir>/<name>.md`` (tables, the claim and the verdict) with PNG
plots beside it when matplotlib is installed. Every measured row is kept in
``<out_dir>/<name>.json`` as soon as it exists, and trained models in ``<out_dir>/models/``, so
a stopped run carries on where it stopped when started again.

Studies:

``ops``
    Every op of the kernel registry (no hand-written list: a new op appears by registering) on
    every backend that loads here, at the size the models run it (``OpSpec.benchmark_args``),
    in float32 and in each 16-bit storage dtype it takes (float16, bfloat16: the float32
    problem rounded to it), against the float64 reference on the same inputs: largest
    absolute, relative and ULP error of each output (ULPs of the output's format); for 16-bit
    dtypes also the error against the exact answer to the float32 problem.
``storage``
    Trained models whose weights are stored in a low-precision format (rounded with
    ``fastnlp.kernels.round_to_format``) and used in float32: PPMI-SVD and word2vec vectors
    (WordSim-353 Spearman, analogy accuracy), Rnnlm (perplexity) and AttentionSeq2seq (date
    accuracy), each against float32, with the bytes the weights take.

``train``
    Rnnlm (PTB perplexity), AttentionSeq2seq (date accuracy) and CBOW (WordSim-353; the book's
    layer path, or the fused Word2Vec in the quick study) trained from the same seed in fp32 (twice
    more, to show the noise floor: from another seed, and with every initial weight one ulp
    away), bf16-mixed, fp16-mixed with and without loss scaling
    (with the fraction of gradient values that underflow to zero), pure bf16 with
    round-to-nearest and with stochastic rounding, and simulated fp8 (e4m3, e5m2); the quality
    of each against fp32, and the loss curves side by side.
``speed``
    Training tokens/s of Rnnlm and BetterRnnlm in each precision on this CPU, with the bytes
    the parameters take in that format; beside it, PyTorch's ``torch.autocast("cpu",
    dtype=torch.bfloat16)`` on the same model in the same run (bench/compare_rnnlm.py, when the
    source checkout and torch are there).

``quick=True`` trains small models (minutes on two cores); ``quick=False`` the book's settings.

``client=`` (a ``dask.distributed.Client``) runs each configuration (an op, a stored model, a
training run, a speed measurement) as one Dask task and keeps each row here as its task
finishes, so a killed worker loses only its configuration and a rerun resumes as without a
client. The rows are then put in the order a run without a client gives, so the reports read
the same. Workers read ``data_dir`` and write trained models under ``out_dir`` by those paths.
The speed study sends its measurements one at a time (timings taken side by side would slow
each other down).
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from .distributed import check_client, run_tasks, shared_input
from .kernels import harness, registry, round_to_format
from .kernels.rounding import FORMATS
from .kernels.validate import HALF_DTYPES, is_float_dtype
from .serialization import atomic_write

STUDY_HELP = {
    "ops": "every registered op in float32 and each 16-bit dtype it takes, on each backend, against the float64 reference",
    "storage": "trained vectors and models with weights stored in fp16, bf16 and fp8",
    "train": "Rnnlm, AttentionSeq2seq and CBOW trained in fp32, mixed, pure 16-bit and simulated fp8",
    "speed": "training tokens/s and bytes per precision, beside PyTorch's autocast when installed",
}
STUDIES = tuple(STUDY_HELP)
# Storage formats: bytes per value, and whether values are scaled per row into the format's
# range first (fp8's range is narrow: real fp8 storage keeps a float32 scale beside each row).
STORAGE_FORMATS = {"fp32": (4, False), "fp16": (2, False), "bf16": (2, False), "e5m2": (1, False),
                   "e4m3": (1, False), "e4m3+scale": (1, True)}
BOOK_CLAIM = ("Deep Learning from Scratch 2, chapter 1: storing weights in 16 bits (half precision) loses "
              "practically nothing at inference.")


def run_study(name: str, out_dir, quick: bool = True, data_dir=None, progress: bool = True, ops=None,
              client=None) -> Path:
    """Run the study ``name`` (one of ``STUDIES``), resuming what ``out_dir`` already holds;
    returns the path of the Markdown report. ``ops`` limits the ops study to those op names;
    ``client`` (a ``dask.distributed.Client``) runs each configuration as a task on its cluster."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; the studies are {', '.join(STUDIES)}")
    if client is not None:
        check_client(client)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _Rows(out / f"{name}.json", quick, progress)
    if name == "ops":
        _ops_study(rows, registry.ops() if ops is None else [registry.spec(op).name for op in ops], client)
        text = _ops_report(rows.done)
    elif name == "storage":
        _storage_study(rows, out, quick, data_dir, client)
        text = _storage_report(rows.done, out)
    elif name == "train":
        _train_study(rows, quick, data_dir, client)
        text = _train_report(rows.done, out)
    else:
        _speed_study(rows, quick, data_dir, client)
        text = _speed_report(rows.done)
    report = out / f"{name}.md"
    header = (f"# Precision study: {name}{' (quick)' if quick else ''}\n\n{_machine_line()}\n\n")
    atomic_write(report, lambda f: f.write((header + text).encode("utf-8")))
    return report


class _Rows:
    """Measured rows by key, written to disk after each one (so a stopped study resumes)."""

    def __init__(self, path: Path, quick: bool, progress: bool):
        self.path, self.progress = path, progress
        self.done = {}
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("quick") == quick:
                self.done = saved["rows"]
        self.quick = quick

    def has(self, key: str) -> bool:
        return key in self.done

    def add(self, key: str, row: dict) -> None:
        self.done[key] = row
        self._save()
        if self.progress:
            shown = {k: v for k, v in row.items() if not isinstance(v, list) and k not in ("model", "text")}
            print(f"  {key}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items()), flush=True)

    def put_in_order(self, keys) -> None:
        """Rows of ``keys`` in that order, after the rows that are not among them (as a run that
        measured ``keys`` one after another would have left them)."""
        keys = [key for key in keys if key in self.done]
        listed = set(keys)
        ordered = {key: row for key, row in self.done.items() if key not in listed}
        ordered.update((key, self.done[key]) for key in keys)
        if list(ordered) != list(self.done):
            self.done = ordered
            self._save()

    def _save(self) -> None:
        text = json.dumps({"quick": self.quick, "rows": self.done}, indent=1, allow_nan=True)
        atomic_write(self.path, lambda f: f.write(text.encode("utf-8")))


class _TaskRows:
    """The rows one task measures on a worker, sent back as its result (``has`` also knows the
    rows measured before, so the task skips them as it would here)."""

    progress = False

    def __init__(self, done_keys):
        self.done_keys = set(done_keys)
        self.new = {}

    def has(self, key: str) -> bool:
        return key in self.done_keys or key in self.new

    def add(self, key: str, row: dict) -> None:
        self.new[key] = row


def _measure_rows(function, done_keys, *args) -> dict:
    """A configuration's task on a worker: ``function(rows, *args)`` into rows of its own."""
    rows = _TaskRows(done_keys)
    function(rows, *args)
    return rows.new


def _run_configurations(rows: _Rows, tasks, client, one_at_a_time: bool = False) -> None:
    """Run each ``(name, keys, function, args)`` of ``tasks`` whose rows ``keys`` are not all
    measured yet: ``function(rows, *args)`` measures them and adds each with ``rows.add``. With
    a client each is one task on the cluster, its rows added here as it finishes, then put in
    the order of ``tasks``."""
    todo = [task for task in tasks if not all(rows.has(key) for key in task[1])]
    if client is None:
        for _, _, function, args in todo:
            function(rows, *args)
        return

    def keep(name, new_rows):
        for key, row in new_rows.items():
            rows.add(key, row)

    cluster_tasks = [(name, _measure_rows, (function, [k for k in keys if rows.has(k)], *args))
                     for name, keys, function, args in todo]
    try:
        run_tasks(cluster_tasks, keep, client, one_at_a_time=one_at_a_time, what="study configuration")
    finally:
        rows.put_in_order([key for task in tasks for key in task[1]])


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _machine_line() -> str:
    from .kernels import cpu

    import numpy

    return (f"Machine: {cpu.model_name()}, {_threads()} threads; Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}.")


def _threads() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ----- ops: every storage dtype against the float64 reference ---------------------------------

_FLOAT32 = np.dtype(np.float32)
# Mantissa bits and smallest normal exponent of each storage dtype, for ULPs of the format.
_FORMAT_BITS = {"float32": (23, -126), "float16": (10, -14), "bfloat16": (7, -126)}


def _as_float64(value):
    """Float arrays of any storage dtype as float64 (exact: every format widens without rounding)."""
    if isinstance(value, np.ndarray) and value.dtype != np.float64 and is_float_dtype(value.dtype):
        return value.astype(np.float64)
    return value


def _study_dtypes(op: str, backend: str) -> list:
    """float32 and each 16-bit storage dtype the op takes and ``backend`` computes itself (a
    backend that falls back for a dtype is the fallback's row, not its own)."""
    spec = registry.spec(op)
    return [_FLOAT32] + [d for d in spec.dtypes if d in HALF_DTYPES
                         and not isinstance(registry.implementation_for(op, backend, d), str)]


def _op_key(op: str, backend: str, dtype) -> str:
    return f"{op}/{backend}" if dtype == _FLOAT32 else f"{op}/{backend}/{dtype.name}"


def _ops_study(rows: _Rows, ops, client=None) -> None:
    tasks = []
    for op in ops:
        spec = registry.spec(op)
        if np.dtype(np.float64) not in spec.dtypes or _FLOAT32 not in spec.dtypes:
            continue
        keys = [_op_key(op, backend, dtype) for backend, function in registry.implementations(op).items()
                if not isinstance(function, str) for dtype in _study_dtypes(op, backend)]
        tasks.append((op, keys, _op_rows, (op,)))
    _run_configurations(rows, tasks, client)


def _op_rows(rows, op: str) -> None:
    """One op on every backend that loads, in every storage dtype it takes, against float64
    reference runs: on the same (rounded) inputs, which measures the kernel and the rounding of
    its result, and for 16-bit dtypes also on the float32 problem, which adds what storing the
    inputs in the format costs."""
    spec = registry.spec(op)
    todo = {(backend, dtype): None for backend, function in registry.implementations(op).items()
            if not isinstance(function, str) for dtype in _study_dtypes(op, backend)
            if not rows.has(_op_key(op, backend, dtype))}
    if not todo:
        return
    problem32 = harness.benchmark_problem(op)
    if spec.dtype_of(problem32) != _FLOAT32:
        return
    exact32 = harness.run_implementation(op, registry.REFERENCE, tuple(_as_float64(a) for a in problem32))
    problems = {_FLOAT32: (problem32, exact32)}  # per dtype: (arguments, float64 answer), made once
    for backend, dtype in todo:  # in the order of the task's keys, as a run on a cluster reports them
        if dtype not in problems:
            args = harness.benchmark_problem(op, dtype)
            problems[dtype] = (args, harness.run_implementation(op, registry.REFERENCE,
                                                                tuple(_as_float64(a) for a in args)))
        args, exact = problems[dtype]
        key = _op_key(op, backend, dtype)
        row = {"op": op, "backend": backend, "dtype": dtype.name}
        try:
            outputs = harness.run_implementation(op, backend, args)
        except Exception as exc:  # a backend that loads but cannot take these inputs
            rows.add(key, {**row, "error": f"{type(exc).__name__}: {exc}"})
            continue
        row.update(_errors(outputs, exact, dtype))
        if dtype != _FLOAT32:
            row["max_rel_vs_float32_inputs"] = _errors(outputs, exact32, dtype)["max_rel"]
        rows.add(key, row)


def _format_ulps(values, dtype) -> np.ndarray:
    """The spacing of ``dtype``'s numbers at each of ``values`` (float64), subnormals included."""
    mantissa_bits, min_exponent = _FORMAT_BITS.get(np.dtype(dtype).name, _FORMAT_BITS["float32"])
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.where(magnitude > 0, magnitude, 1.0)))
    exponent = np.maximum(np.where(magnitude > 0, exponent, min_exponent), min_exponent)
    return np.ldexp(1.0, (exponent - mantissa_bits).astype(np.int64))


def _errors(outputs, reference, dtype=_FLOAT32) -> dict:
    """The worst errors over every float output: absolute, relative (to the largest reference
    magnitude of that output) and in ULPs of the storage dtype at the reference value (float32
    ULPs for outputs the op keeps in float32, like 16-bit gemm's)."""
    worst = {"max_abs": 0.0, "max_rel": 0.0, "median_ulp": 0.0, "max_ulp": 0.0}
    for got, want in zip(outputs, reference):
        got, want = np.asarray(got), np.asarray(want)
        if not is_float_dtype(want.dtype) or got.size == 0:
            continue
        got64 = got.astype(np.float64)
        finite = np.isfinite(want) & np.isfinite(got64)
        error = np.abs(got64 - want)[finite]
        if error.size == 0:
            continue
        scale = float(np.abs(want[finite]).max()) or 1.0
        ulps = error / _format_ulps(want[finite], got.dtype if got.dtype != np.float64 else dtype)
        worst["max_abs"] = max(worst["max_abs"], float(error.max()))
        worst["max_rel"] = max(worst["max_rel"], float(error.max()) / scale)
        worst["median_ulp"] = max(worst["median_ulp"], float(np.median(ulps)))
        worst["max_ulp"] = max(worst["max_ulp"], float(ulps.max()))
    return worst


def _ops_report(done: dict) -> str:
    lines = ["Every registered op on each backend, in float32 and in each 16-bit storage dtype it takes, against "
             "the float64 reference on the same inputs (the size the models run each op at; 16-bit problems are "
             "the float32 one rounded to the format). Relative error is to the largest reference magnitude of "
             "the output; ULPs are of the output's own format at the reference value (the maximum is large where a "
             "sum cancels to nearly zero; the median is the typical element). *vs float32 inputs*: the same "
             "16-bit result against the exact answer to the float32 problem, so it adds what storing the inputs "
             "in 16 bits costs.", "",
             "| op | backend | dtype | max abs error | max relative | median ULP | max ULP | max relative vs float32 inputs |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in done.values():
        dtype = row.get("dtype", "float32")
        if "error" in row:
            lines.append(f"| {row['op']} | {row['backend']} | {dtype} | {row['error']} | | | | |")
        else:
            versus = row.get("max_rel_vs_float32_inputs")
            lines.append(f"| {row['op']} | {row['backend']} | {dtype} | {row['max_abs']:.3g} | {row['max_rel']:.3g} | "
                         f"{row['median_ulp']:.3g} | {row['max_ulp']:.3g} | "
                         f"{'' if versus is None else f'{versus:.3g}'} |")
    return "\n".join(lines) + "\n"


# ----- storage: trained weights kept in a low-precision format --------------------------------

def stored_as(array, fmt: str):
    """``array`` (float32) as it reads back after storage in ``fmt`` (a key of STORAGE_FORMATS)."""
    if fmt == "fp32":
        return array
    name, scaled = fmt.split("+")[0], STORAGE_FORMATS[fmt][1]
    if not scaled:
        return round_to_format(np.asarray(array), name)
    # One float32 scale per row maps the row's largest magnitude to the format's largest value.
    rows = np.asarray(array).reshape(array.shape[0], -1) if np.ndim(array) > 1 else np.asarray(array)[None]
    peak = np.abs(rows).max(axis=1, keepdims=True)
    scale = np.where(peak > 0, peak / FORMATS[name].max_finite, 1.0).astype(np.float32)
    restored = round_to_format(rows / scale, name) * scale
    return restored.reshape(np.shape(array)).astype(np.float32)


def _stored_bytes(arrays, fmt: str) -> int:
    per_value, scaled = STORAGE_FORMATS[fmt]
    total = sum(a.size * per_value for a in arrays)
    if scaled:
        total += sum(4 * (a.shape[0] if a.ndim > 1 else 1) for a in arrays)
    return total


STORAGE_MODELS = ("PPMI-SVD", "word2vec skip-gram", "Rnnlm", "AttentionSeq2seq")


def _storage_study(rows: _Rows, out: Path, quick: bool, data_dir, client=None) -> None:
    models = out / "models"
    models.mkdir(exist_ok=True)
    tasks = [(model_name, [f"{model_name}/{fmt}" for fmt in STORAGE_FORMATS], _storage_rows,
              (model_name, models, quick, data_dir)) for model_name in STORAGE_MODELS]
    _run_configurations(rows, tasks, client)


def _storage_rows(rows, model_name: str, models: Path, quick: bool, data_dir) -> None:
    """One model trained in float32 (or read from ``models``, where it is kept) and measured
    with its weights stored in each format."""
    from . import load, save
    from .datasets import load_ptb
    from .datasets._files import find_or_fetch

    def cached(name, train):
        path = models / f"{name}.npz"
        if path.exists():
            return load(path)
        if rows.progress:
            print(f"training {name} ...", flush=True)
        obj = train()
        save(path, obj)
        return obj

    from .count import count_vectors
    from .models import Word2Vec

    def ppmi_svd():
        corpus, _, id_to_word = load_ptb("train", data_dir=data_dir)
        return count_vectors(corpus, [id_to_word[i] for i in range(len(id_to_word))], window=2, k=100)

    vector_models = {
        "PPMI-SVD": lambda: cached("ppmi_svd", ppmi_svd),
        "word2vec skip-gram": lambda: cached("word2vec", lambda: Word2Vec(
            str(find_or_fetch("ptb/ptb.train.txt", data_dir)), sg=1, vector_size=100, window=5, negative=5,
            min_count=1, epochs=1 if quick else 5, workers=2, seed=1, progress=False)),
    }
    if model_name in vector_models:
        wordsim = find_or_fetch("eval/wordsim353.tsv", data_dir)
        analogies = find_or_fetch("eval/questions-words.txt", data_dir)
        vectors = vector_models[model_name]()
        vectors = getattr(vectors, "wv", vectors)
        for fmt in STORAGE_FORMATS:
            key = f"{model_name}/{fmt}"
            if rows.has(key):
                continue
            from .vectors import WordVectors

            stored = WordVectors(stored_as(np.asarray(vectors.vectors, dtype=np.float32), fmt), list(vectors.words))
            pairs = stored.evaluate_word_pairs(wordsim)
            analogy = stored.evaluate_analogies(analogies, restrict_vocab=None)
            rows.add(key, {"model": model_name, "format": fmt, "metric": "WordSim-353 Spearman",
                           "value": float(pairs["spearman"]), "analogy": float(analogy["accuracy"]),
                           "bytes": _stored_bytes([vectors.vectors], fmt)})

    elif model_name == "Rnnlm":
        corpus, word_to_id, _ = load_ptb("train", data_dir=data_dir)
        rnnlm = cached("rnnlm", lambda: _train_rnnlm(corpus, len(word_to_id), quick))
        valid, _, _ = load_ptb("valid", data_dir=data_dir)
        valid = valid[:20000] if quick else valid
        _weights_study(rows, "Rnnlm", rnnlm, "perplexity (PTB valid)",
                       lambda m: _perplexity(m, valid))

    else:
        from .datasets import load_sequence
        from .models import seq2seq_accuracy

        (x_train, t_train), (x_test, t_test), char_to_id, id_to_char = load_sequence(
            "date", data_dir=data_dir, reverse=True)
        model = cached("attention_seq2seq", lambda: _train_seq2seq(x_train, t_train, len(char_to_id), quick))
        x_eval, t_eval = (x_test[:1000], t_test[:1000]) if quick else (x_test, t_test)
        _weights_study(rows, "AttentionSeq2seq", model, "date accuracy",
                       lambda m: float(seq2seq_accuracy(m, x_eval, t_eval, id_to_char, is_reverse=True)))


def _weights_study(rows, model_name, model, metric, evaluate) -> None:
    original = [p.copy() for p in model.params]
    for fmt in STORAGE_FORMATS:
        key = f"{model_name}/{fmt}"
        if rows.has(key):
            continue
        for p, kept in zip(model.params, original):
            p[...] = stored_as(kept, fmt)
        unique = list({id(p): p for p in original}.values())
        rows.add(key, {"model": model_name, "format": fmt, "metric": metric, "value": evaluate(model),
                       "bytes": _stored_bytes(unique, fmt)})
    for p, kept in zip(model.params, original):
        p[...] = kept


def _train_rnnlm(corpus, vocab_size, quick):
    from . import RnnlmTrainer, optim
    from .models import Rnnlm

    tokens = corpus[:200_000] if quick else corpus
    model = Rnnlm(vocab_size, 100, 100, seed=0)
    RnnlmTrainer(model, optim.SGD(lr=20.0)).fit(tokens[:-1], tokens[1:], max_epoch=1 if quick else 4,
                                                batch_size=20, time_size=35, max_grad=0.25, progress=False)
    return model


def _perplexity(model, corpus) -> float:
    from .lm import eval_perplexity

    model.reset_state()
    return float(eval_perplexity(model, corpus, batch_size=10, time_size=35))


def _train_seq2seq(x_train, t_train, vocab_size, quick):
    from . import Trainer, optim
    from .models import AttentionSeq2seq

    n = 10_000 if quick else len(x_train)
    model = AttentionSeq2seq(vocab_size, wordvec_size=16, hidden_size=256, seed=0)
    Trainer(model, optim.Adam()).fit(x_train[:n], t_train[:n], max_epoch=1 if quick else 3, batch_size=128,
                                     max_grad=5.0, progress=False)
    return model


def _storage_report(done: dict, out: Path) -> str:
    by_model = _rows_by_model(done)
    lines = [f"**The claim.** {BOOK_CLAIM}", "",
             "Each model is trained once in float32; its weights are then rounded to the format (round to "
             "nearest even, `fastnlp.kernels.round_to_format`) and used in float32. `+scale` keeps one float32 "
             "scale per row, as real fp8 storage does.", ""]
    verdicts = []
    for model_name, model_rows in by_model.items():
        base = next((r for r in model_rows if r["format"] == "fp32"), None)
        metric = model_rows[0]["metric"]
        extra = "analogy" in model_rows[0]
        lines += [f"## {model_name}", "", f"| format | {metric} | change | " + ("analogy accuracy | " if extra else "")
                  + "bytes | of fp32 |", "| --- | ---: | ---: | " + ("---: | " if extra else "") + "---: | ---: |"]
        for r in model_rows:
            change = _relative_change(r["value"], base["value"]) if base else float("nan")
            lines.append(f"| {r['format']} | {r['value']:.4g} | {change:+.2%} | "
                         + (f"{r['analogy']:.3f} | " if extra else "")
                         + f"{r['bytes']:,} | {r['bytes'] / base['bytes']:.2f} |" if base else "")
        half = next((r for r in model_rows if r["format"] == "fp16"), None)
        if base and half:
            change = abs(_relative_change(half["value"], base["value"]))
            verdicts.append((model_name, change))
        lines.append("")
        _plot_storage(out, model_name, model_rows)
    if verdicts:
        worst_model, worst = max(verdicts, key=lambda v: v[1])
        holds = worst <= 0.01
        lines += ["## Verdict", "",
                  f"fp16 storage changes the measured quality by at most {worst:.2%} ({worst_model}): the claim "
                  + ("**holds** (within 1%)." if holds else "**does not hold** at the 1% level."), ""]
    return "\n".join(lines)


def _rows_by_model(done: dict) -> dict:
    """The measured rows of each model, in the order they were measured."""
    by_model = {}
    for row in done.values():
        if "model" in row:
            by_model.setdefault(row["model"], []).append(row)
    return by_model


def _relative_change(value, base) -> float:
    return (value - base) / abs(base) if base else float("nan")


def _plot_storage(out: Path, model_name: str, model_rows: list) -> None:
    try:
        from .plot import new_figure, save_figure
    except ImportError:
        return
    try:
        fig = new_figure("precision study")
    except ImportError:
        return
    ax = fig.add_subplot()
    ax.bar([r["format"] for r in model_rows], [r["value"] for r in model_rows])
    ax.set_xlabel("storage format")
    ax.set_ylabel(model_rows[0]["metric"])
    ax.set_title(f"{model_name}: weights stored in low precision")
    save_figure(fig, out / f"storage-{model_name.replace(' ', '_').lower()}.png", "the storage plot")



# ----- train: the same models trained in each precision -----------------------------------------

# (label, precision, trainer keywords). One seed for all, so fp32 is each row's twin. Two float32
# rows show how far runs differ by chance alone, the noise floor of a change: another seed, and
# the same seed and steps with every initial weight one ulp away (what any rounding difference
# does to a chaotic training: a changed summation order moves a run as far).
TRAINING_RUNS = (
    ("fp32", "fp32", {}),
    ("fp32, another seed", "fp32", {"seed": 1}),
    ("fp32, weights 1 ulp apart", "fp32", {"perturb": "ulp"}),
    ("bf16-mixed", "bf16-mixed", {}),
    ("fp16-mixed", "fp16-mixed", {}),
    ("fp16-mixed, no loss scaling", "fp16-mixed", {"loss_scaling": False}),
    ("bf16, nearest", "bf16", {"rounding": "nearest"}),
    ("bf16, stochastic", "bf16", {"rounding": "stochastic"}),
    ("e5m2 (simulated), stochastic", "simulate:e5m2", {"rounding": "stochastic"}),
    ("e4m3 (simulated), stochastic", "simulate:e4m3", {"rounding": "stochastic"}),
)
TRAIN_CLAIM = ("Deep Learning from Scratch 2, chapter 1: learning in 16 bits needs care; mixed precision "
               "(16-bit products, 32-bit master weights and loss) is meant to keep float32's quality.")


TRAINED_MODELS = ("Rnnlm", "AttentionSeq2seq", "CBOW")


def _train_study(rows: _Rows, quick: bool, data_dir, client=None) -> None:
    tasks = [(f"{model_name}/{label}", [f"{model_name}/{label}"], _train_row,
              (model_name, label, (precision, keywords), quick, data_dir))
             for model_name in TRAINED_MODELS for label, precision, keywords in TRAINING_RUNS]
    if any(not rows.has(keys[0]) for _, keys, _, _ in tasks):
        # Loaded once: here, or once on the cluster and fetched once by each worker.
        data = shared_input(client, _train_data, data_dir)
        tasks = [(name, keys, function, (*args, data)) for name, keys, function, args in tasks]
    _run_configurations(rows, tasks, client)


def _train_data(data_dir):
    from .datasets import load_ptb, load_sequence

    corpus, word_to_id, _ = load_ptb("train", data_dir=data_dir)
    valid, _, _ = load_ptb("valid", data_dir=data_dir)
    return corpus, valid, len(word_to_id), load_sequence("date", data_dir=data_dir, reverse=True)


def _train_row(rows, model_name: str, label: str, run, quick: bool, data_dir, data) -> None:
    """One model trained in one precision (``run``: the precision and trainer keywords)."""
    corpus, valid, vocab_size, dates = data
    if rows.progress:
        print(f"training {model_name} in {label} ...", flush=True)
    try:
        if model_name == "Rnnlm":
            row = _train_rnnlm_in(run, corpus, valid, vocab_size, quick)
        elif model_name == "AttentionSeq2seq":
            row = _train_seq2seq_in(run, dates, quick)
        else:
            row = _train_cbow_in(run, corpus, vocab_size, data_dir, quick)
    except FloatingPointError as exc:  # diverged, or the loss scale collapsed: a result too
        row = {"metric": None, "value": None, "curve": [], "diverged": str(exc).splitlines()[0][:200]}
    rows.add(f"{model_name}/{label}", {"model": model_name, "run": label, **row})


def _seed_of(run) -> int:
    return run[1].get("seed", 0)


def _trainer_keywords(run):
    precision, keywords = run
    return {"precision": precision, **{k: v for k, v in keywords.items() if k not in ("seed", "perturb")}}


_PERTURB_SEED = 12345


def _perturbed(model, run):
    """``model``, its float initial weights each moved one ulp up or down (at random, the same
    draws every time) when ``run`` asks for it ("perturb": "ulp")."""
    if run[1].get("perturb") != "ulp":
        return model
    from .optim import TiedParams

    rng = np.random.default_rng(_PERTURB_SEED)
    for p in TiedParams(model.params).params:  # a tied weight moves once
        up = rng.random(p.shape) < 0.5
        p[...] = np.where(up, np.nextafter(p, p.dtype.type(np.inf)), np.nextafter(p, p.dtype.type(-np.inf)))
    return model


def _amp_results(trainer) -> dict:
    return {"underflow": float(trainer.grad_underflow), "skipped": len(trainer.skipped_steps)}


def _train_rnnlm_in(run, corpus, valid, vocab_size, quick) -> dict:
    from . import RnnlmTrainer, optim
    from .models import Rnnlm

    tokens = corpus[:100_000] if quick else corpus
    model = _perturbed(Rnnlm(vocab_size, 100, 100, seed=_seed_of(run)), run)
    trainer = RnnlmTrainer(model, optim.SGD(lr=20.0), seed=_seed_of(run), **_trainer_keywords(run))
    trainer.fit(tokens[:-1], tokens[1:], max_epoch=1, batch_size=20, time_size=35, max_grad=0.25,
                eval_interval=10 if quick else 100, progress=False)
    ppl = _perplexity(model, valid[:20_000] if quick else valid)
    return {"metric": "perplexity (PTB valid)", "value": ppl, "curve": [float(p) for p in trainer.ppl_list],
            "curve_label": "training perplexity", **_amp_results(trainer)}


def _train_seq2seq_in(run, dates, quick) -> dict:
    from . import Trainer, optim
    from .models import AttentionSeq2seq, seq2seq_accuracy

    (x_train, t_train), (x_test, t_test), char_to_id, id_to_char = dates
    # Quick: a small model with more, smaller steps learns the task in one pass over 8,000 dates.
    n, epochs, hidden, batch, lr = (8_000, 1, 64, 32, 0.005) if quick else (len(x_train), 3, 256, 128, 0.001)
    model = _perturbed(AttentionSeq2seq(len(char_to_id), wordvec_size=16, hidden_size=hidden, seed=_seed_of(run)),
                       run)
    trainer = Trainer(model, optim.Adam(lr=lr), seed=_seed_of(run), **_trainer_keywords(run))
    history = trainer.fit(x_train[:n], t_train[:n], max_epoch=epochs, batch_size=batch, max_grad=5.0,
                          eval_interval=10, progress=False)
    x_eval, t_eval = (x_test[:1000], t_test[:1000]) if quick else (x_test, t_test)
    accuracy = float(seq2seq_accuracy(model, x_eval, t_eval, id_to_char, is_reverse=True))
    return {"metric": "date accuracy", "value": accuracy, "curve": [float(v) for v in history],
            "curve_label": "training loss", **_amp_results(trainer)}


def _train_cbow_in(run, corpus, vocab_size, data_dir, quick) -> dict:
    """The book's CBOW (layer path, Trainer) on all of PTB; in the quick study the fused Word2Vec's
    CBOW (minutes instead of hours for a WordSim score above noise), which takes only the pure and
    simulated formats: it has no separate forward, backward and products to run mixed."""
    from .datasets._files import find_or_fetch
    from .vectors import WordVectors

    wordsim = find_or_fetch("eval/wordsim353.tsv", data_dir)
    metric = "WordSim-353 Spearman"
    precision, keywords = run
    if quick:
        from .models import Word2Vec

        if precision.endswith("-mixed"):
            return {"metric": metric, "value": None, "curve": [],
                    "not_applicable": "the fused Word2Vec has no matrix products to run mixed"}
        if keywords.get("perturb"):
            return {"metric": metric, "value": None, "curve": [],
                    "not_applicable": "the fused Word2Vec initialises its weights inside its training"}
        model = Word2Vec(str(find_or_fetch("ptb/ptb.train.txt", data_dir)), sg=0, vector_size=100, window=5,
                         negative=5, min_count=1, epochs=1, workers=1, seed=1 + _seed_of(run), progress=False,
                         precision=precision, rounding=keywords.get("rounding", "nearest"))
        rho = float(model.wv.evaluate_word_pairs(wordsim)["spearman"])
        return {"metric": metric, "value": rho, "curve": [float(v) for v in model.loss_history],
                "curve_label": "training loss", "underflow": 0.0, "skipped": 0}
    from . import Trainer, create_contexts_target, optim
    from .datasets import load_ptb
    from .models import CBOW

    contexts, target = create_contexts_target(corpus, window_size=5)
    model = _perturbed(CBOW(vocab_size, 100, 5, corpus, seed=_seed_of(run)), run)
    trainer = Trainer(model, optim.Adam(lazy=True), seed=_seed_of(run), **_trainer_keywords(run))
    history = trainer.fit(contexts, target, max_epoch=3, batch_size=100, eval_interval=100, progress=False)
    _, _, id_to_word = load_ptb("train", data_dir=data_dir)
    vectors = WordVectors(model.word_vecs.copy(), [id_to_word[i] for i in range(vocab_size)])
    rho = float(vectors.evaluate_word_pairs(wordsim)["spearman"])
    return {"metric": metric, "value": rho, "curve": [float(v) for v in history],
            "curve_label": "training loss", **_amp_results(trainer)}


def _train_report(done: dict, out: Path) -> str:
    by_model = _rows_by_model(done)
    lines = [f"**The claim.** {TRAIN_CLAIM}", "",
             "Every run starts from the same seed and data; only the precision differs. The rows 'fp32, another "
             "seed' and 'fp32, weights 1 ulp apart' (the same seed and steps, every initial weight one ulp away) "
             "show how much float32 runs differ by chance: changes smaller than they are noise. *underflow* is the "
             "fraction of gradient values that rounding to the format turned from non-zero to zero; *skipped* "
             "the steps skipped for inf/NaN by the loss scaler. fp16 and fp8 are simulated (values rounded with "
             "`round_to_format` at every layer boundary; fp16-mixed leaves the layers that gather rows, embeddings, "
             "in float32, as autocast does); bf16-mixed runs the products in bf16 on this CPU.", ""]
    verdicts, base_of = [], {}
    for model_name, model_rows in by_model.items():
        base = next((r for r in model_rows if r["run"] == "fp32" and r.get("value") is not None), None)
        if base:
            base_of[model_name] = base["value"]
        metric = next((r["metric"] for r in model_rows if r.get("metric")), "")
        lines += [f"## {model_name}", "", f"| precision | {metric} | change | underflow | skipped |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in model_rows:
            if r.get("value") is None:
                why = f"n/a: {r['not_applicable']}" if r.get("not_applicable") else f"diverged: {r.get('diverged', '')}"
                lines.append(f"| {r['run']} | {why} | | | |")
                continue
            change = _relative_change(r["value"], base["value"]) if base else float("nan")
            lines.append(f"| {r['run']} | {r['value']:.4g} | {change:+.2%} | {r.get('underflow', 0):.2g} | "
                         f"{r.get('skipped', 0)} |")
            if base and r["run"] in ("bf16-mixed", "fp16-mixed"):
                verdicts.append((model_name, r["run"], abs(change)))
        lines.append("")
        _plot_curves(out, model_name, model_rows)
    if verdicts:
        worst = max(verdicts, key=lambda v: v[2])
        lines += ["## Verdict", "",
                  f"Mixed precision changes the measured quality by at most {worst[2]:.2%} ({worst[0]}, {worst[1]}): "
                  + ("**within 1%** of float32." if worst[2] <= 0.01 else "**more than 1%** from float32.")]
        for model_name, run, change in verdicts:
            chance = [(abs(_relative_change(r["value"], base_of[model_name])), r["run"][len("fp32, "):])
                      for r in by_model[model_name] if r["run"].startswith("fp32, ") and r.get("value") is not None
                      and base_of.get(model_name)]
            if chance:
                noise = max(n for n, _ in chance)
                lines.append(f"- {model_name}, {run}: {change:.2%} against up to {noise:.2%} between float32 runs "
                             f"that differ by chance ({', '.join(why for _, why in chance)})"
                             + (" (beyond chance)" if change > noise else " (within chance)"))
        lines.append("")
    return "\n".join(lines)


def _plot_curves(out: Path, model_name: str, model_rows: list) -> None:
    try:
        from .plot import new_figure, save_figure

        fig = new_figure("precision study")
    except ImportError:
        return
    ax = fig.add_subplot()
    for r in model_rows:
        if r.get("curve"):
            ax.plot(range(1, len(r["curve"]) + 1), r["curve"], label=r["run"])
    label = next((r.get("curve_label") for r in model_rows if r.get("curve_label")), "loss")
    ax.set_xlabel("evaluation interval")
    ax.set_ylabel(label)
    ax.set_title(f"{model_name}: {label} by precision")
    ax.legend(fontsize="small")
    save_figure(fig, out / f"train-{model_name.lower()}.png", "the training plot")


# ----- speed: tokens/s and bytes per precision --------------------------------------------------

SPEED_PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed", "bf16", "simulate:e4m3")
_BYTES_PER_VALUE = {"fp32": 4, "bf16-mixed": 4, "fp16-mixed": 4, "bf16": 2, "simulate:e4m3": 1}


SPEED_MODELS = ("Rnnlm", "BetterRnnlm")


def _speed_study(rows: _Rows, quick: bool, data_dir, client=None) -> None:
    tasks = [(f"{model_name}/{precision}", [f"{model_name}/{precision}"], _speed_row,
              (model_name, precision, quick, data_dir))
             for model_name in SPEED_MODELS for precision in SPEED_PRECISIONS]
    tasks.append(("torch-comparison", ["torch-comparison"], _torch_row, (quick, data_dir)))
    _run_configurations(rows, tasks, client, one_at_a_time=True)


def _speed_row(rows, model_name: str, precision: str, quick: bool, data_dir) -> None:
    """Training tokens/s of one model in one precision."""
    import time

    from . import RnnlmTrainer, optim
    from .datasets import load_ptb
    from .models import BetterRnnlm, Rnnlm

    corpus, word_to_id, _ = load_ptb("train", data_dir=data_dir)
    V = len(word_to_id)
    models = {"Rnnlm": lambda: Rnnlm(V, 100, 100, seed=0),
              "BetterRnnlm": lambda: BetterRnnlm(V, 650, 650, seed=0)}
    iterations = {"Rnnlm": 20 if quick else 100, "BetterRnnlm": 3 if quick else 20}
    model = models[model_name]()
    trainer = RnnlmTrainer(model, optim.SGD(lr=20.0), precision=precision)
    tokens = 20 * 35
    warm = corpus[: 2 * tokens + 1]
    trainer.fit(warm[:-1], warm[1:], max_epoch=1, batch_size=20, time_size=35, progress=False)
    n = iterations[model_name]
    data = corpus[: n * tokens + 1]
    start = time.perf_counter()
    trainer.fit(data[:-1], data[1:], max_epoch=1, batch_size=20, time_size=35, max_grad=0.25,
                progress=False)
    seconds = time.perf_counter() - start
    unique = list({id(p): p for p in model.params}.values())
    rows.add(f"{model_name}/{precision}", {"model": model_name, "precision": precision,
                                           "tokens_per_s": n * tokens / seconds,
                                           "param_bytes": sum(p.size for p in unique) * _BYTES_PER_VALUE[precision]})


def _torch_row(rows, quick: bool, data_dir) -> None:
    rows.add("torch-comparison", {"text": _torch_comparison(quick, data_dir)})


def _speed_report(done: dict) -> str:
    lines = ["Training tokens/s (batch 20 x 35, SGD, one process, this CPU's threads as set by the environment). "
             "*bytes* is what the parameters take in the run's storage format: the mixed runs keep float32 "
             "masters; pure bf16 stores 2 bytes a value; simulated fp8 would store 1 (here it is held in "
             "float32 and rounded, so its speed is not fp8's).", "",
             "| model | precision | tokens/s | of fp32 | parameter bytes |", "| --- | --- | ---: | ---: | ---: |"]
    for row in done.values():
        if "tokens_per_s" not in row:
            continue
        base = done.get(f"{row['model']}/fp32")
        ratio = row["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        lines.append(f"| {row['model']} | {row['precision']} | {row['tokens_per_s']:,.0f} | {ratio:.2f}x | "
                     f"{row['param_bytes']:,} |")
    lines += ["", "## Against PyTorch's autocast", "", done.get("torch-comparison", {}).get("text", "Not run."), ""]
    return "\n".join(lines)


def _torch_comparison(quick: bool, data_dir) -> str:
    """bench/compare_rnnlm.py's table for BetterRnnlm in fp32 and bf16-mixed, ours beside
    PyTorch in one run."""
    import importlib.util
    import subprocess
    import sys

    from .cli.bench import repository_root

    script = repository_root() / "bench" / "compare_rnnlm.py"
    if not script.is_file():
        return "Not run: bench/compare_rnnlm.py is not here (fastnlp runs from an installed package)."
    if importlib.util.find_spec("torch") is None:
        return "Not run: PyTorch is not installed (the bench extra; see the README for its CPU build)."
    command = [sys.executable, str(script), "--model", "better", "--epochs", "0", "--timing-iters",
               "6" if quick else "30", "--turn", "3", "--contenders", "cython,torch", "--precision",
               "fp32,bf16-mixed"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return f"bench/compare_rnnlm.py failed: {result.stderr[-500:]}"
    return result.stdout.strip()
