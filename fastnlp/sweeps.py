"""Hyper-parameter sweeps: one task per configuration, resumable from a folder of results.

``word2vec_grid(sentences, grid, results=FOLDER)`` trains a :class:`fastnlp.Word2Vec` for each
configuration of ``grid`` and writes each result to ``FOLDER/<key>.json`` the moment it exists
(``key``: a hash of everything that decides the result: the settings, the corpus, the evaluation
files). Run again, it trains only the configurations without a file, so a sweep stopped by hand,
by a crash or by a lost cluster carries on where it stopped. With ``client=`` (a
``dask.distributed.Client``) each configuration is one Dask task: a worker killed mid-training
loses only the configuration it was training, which the scheduler starts again on another worker.

Every configuration trains with ``workers=1`` unless told otherwise, so a seed gives the same
vectors bit for bit whether it ran here or on a worker.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import time
from pathlib import Path

from .distributed import DEFAULT_RETRIES, check_client, run_tasks
from .serialization import atomic_write

__all__ = ["config_key", "word2vec_grid"]

# Word2Vec settings a sweep cannot vary or pass: the corpus is the sweep's own argument, and
# these are objects, not values a results file can hold.
_NOT_SETTINGS = ("sentences", "vocabulary", "callbacks")


def config_key(settings: dict) -> str:
    """A stable name for ``settings`` (a dict of JSON values): the same settings give the same
    key in every process and every Python, whatever the order of the dict."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def expand_grid(grid) -> list[dict]:
    """The configurations of ``grid``: a dict of setting -> list of values (every combination,
    the last setting varying fastest), or a list of dicts (taken as they are)."""
    if isinstance(grid, dict):
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise TypeError(f"grid[{name!r}] must be a list of values, got {values!r}")
        names = list(grid)
        value_lists = [list(grid[name]) for name in names]
        for name, values in zip(names, value_lists):
            if not values:
                raise ValueError(f"grid[{name!r}] is empty: a sweep over it has no configurations")
        return [dict(zip(names, combination)) for combination in itertools.product(*value_lists)]
    if isinstance(grid, (list, tuple)):
        for i, config in enumerate(grid):
            if not isinstance(config, dict):
                raise TypeError(f"grid[{i}] must be a dict of settings, got {type(config).__name__}")
        return [dict(config) for config in grid]
    raise TypeError(f"grid must be a dict of setting -> values or a list of dicts, got {type(grid).__name__}")


def _check_settings(settings: dict, allowed, where: str) -> None:
    for name, value in settings.items():
        if name in _NOT_SETTINGS:
            raise ValueError(f"{where} sets {name!r}, which a sweep cannot vary (the corpus is the sweep's "
                             "sentences argument; objects cannot go into a results file)")
        if name not in allowed:
            raise ValueError(f"{where} sets {name!r}, which is not a Word2Vec setting; the settings are "
                             f"{', '.join(sorted(allowed))}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise TypeError(f"{where} sets {name}={value!r}: a setting must be a number, string, bool or "
                            "None, so that its results file can name it") from None


def corpus_fingerprint(sentences) -> dict:
    """What identifies a corpus in a results key: a file by its path, size and modification
    time (so an edited file is trained again), token lists by a hash of their tokens."""
    if isinstance(sentences, (str, os.PathLike)):
        path = Path(sentences)
        try:
            st = path.stat()
        except OSError as exc:
            raise FileNotFoundError(f"the sweep's corpus {path} cannot be read: {exc.strerror}") from exc
        return {"path": str(path.resolve()), "bytes": st.st_size, "modified_ns": st.st_mtime_ns}
    if hasattr(sentences, "__next__"):
        raise TypeError("sentences is an iterator, read once: every configuration reads the corpus again, "
                        "so give a list of token lists or a path to a text file")
    digest = hashlib.sha256()
    count = 0
    for sentence in sentences:
        if isinstance(sentence, str):
            raise TypeError("sentences must be token lists (a list of lists of str), not strings")
        digest.update("\x1f".join(map(str, sentence)).encode("utf-8") + b"\x1e")
        count += 1
    return {"sentences": count, "sha256": digest.hexdigest()}


def word2vec_grid(sentences, grid, client=None, results=None, *, base=None, word_pairs=None, analogies=None,
                  keep_models=False, retries=DEFAULT_RETRIES, progress=False) -> list[dict]:
    """Train one :class:`fastnlp.Word2Vec` per configuration of ``grid`` on ``sentences`` and
    return one result per configuration, in the grid's order.

    ``sentences``: a list of token lists or the path of a text file (one sentence a line); with
    a client the path must name the same file on every worker. ``grid``: a dict of setting ->
    list of values (every combination) or a list of dicts; ``base``: settings every configuration
    shares (``workers=1`` and ``progress=False`` unless set). ``word_pairs`` (a WordSim-353-style
    file) and ``analogies`` (questions-words.txt) score each model.

    Each result is ``{"key", "settings", "loss", "loss_history", "seconds", "vocabulary_size",
    "spearman", "analogy"}`` (the scores when their file was given); a model whose loss turned
    NaN or inf gives ``{"key", "settings", "diverged": message}`` instead, a result like another.

    ``results``: a folder (created when missing) that receives ``<key>.json`` for each finished
    configuration (and ``<key>.npz``, the model, with ``keep_models``), written atomically;
    configurations already there are not trained again. ``client``: a
    ``dask.distributed.Client``, each configuration one task, retried ``retries`` times when it
    raises. Another error stops the sweep with a RuntimeError naming the configuration; the
    finished configurations stay in ``results``.
    """
    from .models import Word2Vec

    if client is not None:
        check_client(client)
    allowed = set(inspect.signature(Word2Vec.__init__).parameters) - {"self"}
    base = dict(base or {})
    _check_settings(base, allowed, "base")
    configs = expand_grid(grid)
    for i, config in enumerate(configs):
        _check_settings(config, allowed, f"configuration {i} of the grid")
    if keep_models and results is None:
        raise ValueError("keep_models=True needs a results folder to keep the models in")
    folder = _results_folder(results)
    corpus = corpus_fingerprint(sentences)
    scoring = {"word_pairs": _evaluation_file(word_pairs, "word_pairs"),
               "analogies": _evaluation_file(analogies, "analogies")}

    settings_of, keys = [], []
    for config in configs:
        settings = {"workers": 1, "progress": False, **base, **config}
        settings_of.append(settings)
        keys.append(config_key({"word2vec": settings, "corpus": corpus, "scoring": scoring}))
    done = {key: _read_result(folder, key) for key in set(keys)} if folder is not None else {}
    done = {key: row for key, row in done.items() if row is not None}

    todo = {}
    for config, settings, key in zip(configs, settings_of, keys):
        if key not in done and key not in todo:
            model_path = str(folder / f"{key}.npz") if keep_models else None
            todo[key] = (config, settings, model_path)
    if todo:
        if isinstance(sentences, os.PathLike):
            sentences = os.fspath(sentences)  # Word2Vec takes a file by its str path
        elif client is not None and not isinstance(sentences, str):
            # One task holds the corpus and each worker fetches it once, not once per
            # configuration; a task, not scattered data, so that a worker that dies with the
            # only copy does not lose it (the scheduler builds it again).
            sentences = client.submit(_Sentences, sentences, pure=False)

        def keep(key, row):
            done[key] = row
            if folder is not None:
                text = json.dumps({"corpus": corpus, "scoring": scoring, "settings": todo[key][1], "result": row},
                                  indent=1)
                atomic_write(folder / f"{key}.json", lambda f: f.write(text.encode("utf-8")))
            if progress:
                shown = row.get("diverged") or f"loss {row['loss']:.6g}, {row['seconds']:.1f} s"
                print(f"  {todo[key][0]}: {shown}", flush=True)

        tasks = [(str(config), _train_one, (key, config, settings, sentences, scoring, model_path))
                 for key, (config, settings, model_path) in todo.items()]
        run_tasks(tasks, lambda name, row: keep(row["key"], row), client, retries=retries, what="configuration")
    return [done[key] for key in keys]


class _Sentences:
    """Token lists sent to the workers inside one object (a bare list of lists crosses between
    processes more slowly: 0.2 s against 0.04 s for 5,000 sentences of 10 words, measured)."""

    __slots__ = ("sentences",)

    def __init__(self, sentences):
        self.sentences = sentences


def _train_one(key, config, settings, sentences, scoring, model_path) -> dict:
    """One configuration: train, score, keep the model when asked (runs on a worker)."""
    from .models import Word2Vec

    if isinstance(sentences, _Sentences):
        sentences = sentences.sentences
    start = time.perf_counter()
    try:
        model = Word2Vec(sentences, **settings)
    except FloatingPointError as exc:  # diverged: a result of the sweep, not a failure
        return {"key": key, "settings": config, "diverged": str(exc).splitlines()[0][:300]}
    seconds = time.perf_counter() - start
    row = {"key": key, "settings": config, "loss": float(model.loss_history[-1]),
           "loss_history": [float(v) for v in model.loss_history], "seconds": seconds,
           "vocabulary_size": len(model.vocabulary)}
    if scoring["word_pairs"]:
        row["spearman"] = float(model.wv.evaluate_word_pairs(scoring["word_pairs"])["spearman"])
    if scoring["analogies"]:
        row["analogy"] = float(model.wv.evaluate_analogies(scoring["analogies"], restrict_vocab=None)["accuracy"])
    if model_path is not None:
        model.save(model_path)
    return row


def _evaluation_file(path, name):
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}={str(path)!r} is not a file")
    return str(path.resolve())


def _results_folder(results):
    if results is None:
        return None
    folder = Path(results)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"results={str(folder)!r} is a file; give a folder for the results")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read_result(folder: Path, key: str):
    path = folder / f"{key}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["result"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a sweep result ({exc}); delete it to train that configuration "
                         "again") from None
