"""Work spread over a Dask cluster: counts of shard files, and one task per configuration of a study.

``count_vectors(paths, client=...)`` lands in :func:`count_vectors_on_cluster`, and
``fastnlp.precision.run_study(..., client=...)`` and ``fastnlp.sweeps.word2vec_grid(...,
client=...)`` in :func:`run_tasks`. Dask (``pip install "fastnlp[dask]"``) is imported only here and
only when a client is given; ``dask.distributed.LocalCluster`` runs the same code on one machine.

Workers read the shard files, data and output folders by the paths they are given, so those
paths must name the same files on every worker (one machine, or a shared filesystem).

The shard count, step by step (every step a Dask task, so the scheduler recomputes what a
killed worker held from the tasks before it):

1. the words of each shard, counted on the worker that reads it, merged in shard order as a tree
   (the merge keeps first appearance, so the vocabulary and its ids are those of
   ``corpus_files.vocabulary_from_files`` over all the shards);
2. each shard's co-occurrence counts (``corpus_files.count_files``) with the last ``window`` ids
   of the shards before it as left context, so pairs that straddle two shards are counted once,
   as the single stream counts them; each count cut into row blocks;
3. each row block summed over the shards as a tree of ``split_every`` pieces a node;
4. the row blocks gathered here, PPMI and SVD as ``fastnlp.count`` does them: the same matrix,
   so the same vectors; or, when the matrix would not fit in ``gather_limit`` bytes here, PPMI
   per row block on the workers and ``dask.array.linalg.svd_compressed`` (randomized, so
   approximate: the singular values within about 1%, see ``fastnlp.svd._DEFAULT_N_ITER``).

Sums of counts in float64 are exact (integers below 2**53), so the counts equal the single
machine's bit for bit whatever the tree; harmonic weights (1/d) are exact while every weight is
a power of two (``window`` 2), and equal to float64 rounding beyond.
"""
from __future__ import annotations

import time
import uuid

import numpy as np

# Times Dask runs a task again after it raised (a worker that died is a separate matter: the
# scheduler moves its tasks to another worker by itself, up to distributed.scheduler.allowed-failures).
DEFAULT_RETRIES = 1


def check_client(client):
    """``client`` if it is a connected ``dask.distributed.Client``: a TypeError for anything
    else, a RuntimeError naming the client when it has been closed or lost its scheduler."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError('client= needs Dask\'s distributed scheduler: pip install "fastnlp[dask]"') from exc
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise RuntimeError(_gone(client))
    return client


def _gone(client) -> str:
    return (f"the Dask client {client.id} ({client.scheduler.address if client.scheduler else 'no scheduler'}) "
            f"is {client.status}: it has been closed or has lost its scheduler; connect a new Client")


def shared_input(client, function, *args):
    """``function(*args)`` for tasks to take as an argument: computed here without a client, or
    once on the cluster as a future (each worker then fetches it once, however many tasks use it)."""
    if client is None:
        return function(*args)
    return client.submit(function, *args, pure=False, retries=DEFAULT_RETRIES)


def run_tasks(tasks, on_result, client=None, *, retries=DEFAULT_RETRIES, one_at_a_time=False,
              what="configuration"):
    """Run each ``(name, function, args)`` of ``tasks`` and call ``on_result(name, result)`` here,
    in this process, as each one finishes (in the order of ``tasks`` without a client, in the
    order they finish with one).

    With ``client`` each task is one Dask task: a worker that dies takes only its tasks with it
    (the scheduler runs them again elsewhere), and one that raises runs again ``retries`` times.
    ``one_at_a_time`` sends the next task only when the last has finished (timings that would
    slow each other down). When a task fails the others are cancelled and a RuntimeError names
    ``what`` and the task's name, chained to the task's own error; a client that goes away raises
    a RuntimeError naming it. Either way the results already passed to ``on_result`` are all
    that came back.
    """
    tasks = list(tasks)
    if client is None:
        for name, function, args in tasks:
            on_result(name, function(*args))
        return
    check_client(client)
    if one_at_a_time:
        for task in tasks:
            _run_on_cluster(client, [task], on_result, retries, what)
    else:
        _run_on_cluster(client, tasks, on_result, retries, what)


def _run_on_cluster(client, tasks, on_result, retries, what):
    from distributed import as_completed

    names = {}
    for name, function, args in tasks:
        key = f"fastnlp-{getattr(function, '__name__', 'task')}-{uuid.uuid4().hex}"
        names[client.submit(function, *args, key=key, pure=False, retries=retries)] = name
    try:
        for future in as_completed(list(names)):
            if future.status == "error":
                _raise_task_error(future, names[future], what)
            on_result(names[future], future.result())
    except BaseException as exc:
        _release(names)
        if client.status != "running" and not isinstance(exc, KeyboardInterrupt):
            raise RuntimeError(_gone(client) + f" (while running {what}s; finished ones were kept, "
                               "the others did not run to the end)") from exc
        raise


def _release(futures) -> None:
    """Tell the scheduler this client no longer wants ``futures``: what only they needed stops
    (``Client.cancel`` would do the same, but trips an assertion in the scheduler, 2026.8, on a
    future whose task has already failed, and the client then loses its connection)."""
    for future in futures:
        future.release()


def _raise_task_error(future, name, what):
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        raise RuntimeError(f"{what} {name}: every worker that ran it died ({error}); it may need more memory "
                           "than a worker has") from error
    raise RuntimeError(f"{what} {name} failed: {type(error).__name__}: {error}") from error


# ----- counting shard files --------------------------------------------------------------------

# Pieces summed by one task of a tree reduction (Dask's split_every).
DEFAULT_SPLIT_EVERY = 8
# Bytes the gathered path keeps per stored count: the float64 counts and their int32 column
# (12), ppmi's float64 copy of them (12) and the float32 PPMI (8), all alive at its peak.
_GATHERED_BYTES_PER_COUNT = 32


def count_vectors_on_cluster(corpus_or_paths, words=None, window=2, k=100, power=1.0, alpha=None, boundary_id=None,
                             weighting="uniform", method=None, seed=0, timings=None, memory_budget=None,
                             encoding="utf-8", eos="<eos>", min_count=1, client=None, *,
                             split_every=DEFAULT_SPLIT_EVERY, gather_limit=None, retries=DEFAULT_RETRIES):
    """``fastnlp.count_vectors`` of shard files, counted on the cluster of ``client``: the same
    ``WordVectors`` as without a client (see the module docstring for the steps).

    ``corpus_or_paths``: the shard files, in corpus order. ``words``: the vocabulary (a list of
    words or a ``Vocabulary``); None counts it from the shards (``min_count``). The other
    settings are ``count_vectors``'s. ``split_every``: pieces summed per reduction task.
    ``gather_limit``: bytes the counts may take here for the exact path (32 bytes per stored
    count); None means half of the memory available here when the counts are done; above it
    the SVD is Dask's ``svd_compressed`` on the workers (approximate). ``timings`` (a dict)
    receives the seconds of each stage (vocabulary, cooccurrence, gather, ppmi, svd) and
    ``gathered``, whether the exact path ran.
    """
    from .svd import DEFAULT_SVD_METHOD

    timings = {} if timings is None else timings
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if method is not None and method not in ("arpack", "randomized"):
        raise ValueError(f"unknown method {method!r}; expected one of ('arpack', 'randomized')")
    if alpha is not None and not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    limit = None if gather_limit is None else _check_gather_limit(gather_limit)
    blocks, bounds, vocabulary = _count_blocks(corpus_or_paths, client, words, window, weighting, boundary_id,
                                               memory_budget, encoding, eos, min_count, split_every, retries,
                                               timings, k=int(k))
    vocab_size = len(vocabulary)
    nnz = sum(_wait(client, [client.submit(_stored_counts, block, pure=False) for block in blocks],
                    "measuring the counts"))
    needed = _GATHERED_BYTES_PER_COUNT * nnz + 16 * (vocab_size + 1)
    timings["gathered"] = needed <= (_available_bytes() // 2 if limit is None else limit)
    if timings["gathered"]:
        start = time.perf_counter()
        C = _gather_counts(client, blocks, bounds)
        del blocks  # the workers may free them
        timings["gather"] = time.perf_counter() - start
        return _vectors_from_counts(C, vocabulary, k, power, alpha, DEFAULT_SVD_METHOD if method is None else method,
                                    seed, timings)
    return _compressed_vectors(client, blocks, bounds, vocabulary, k, power, alpha, seed, retries, timings)


def count_shards(paths, client, words=None, window=2, weighting="uniform", boundary_id=None, memory_budget=None,
                 encoding="utf-8", eos="<eos>", min_count=1, *, split_every=DEFAULT_SPLIT_EVERY,
                 retries=DEFAULT_RETRIES, timings=None):
    """The co-occurrence counts of the shard files ``paths`` counted on the cluster of
    ``client``, gathered here: ``(C, vocabulary)``, ``C`` the (V, V) float64 CSR matrix that
    ``corpus_files.count_files(paths, vocabulary, ...)`` gives on one machine, bit for bit
    for uniform counts (harmonic weights: to float64 rounding beyond ``window`` 2)."""
    timings = {} if timings is None else timings
    blocks, bounds, vocabulary = _count_blocks(paths, client, words, window, weighting, boundary_id,
                                               memory_budget, encoding, eos, min_count, split_every, retries, timings)
    return _gather_counts(client, blocks, bounds), vocabulary


def _count_blocks(paths, client, words, window, weighting, boundary_id, memory_budget, encoding, eos, min_count,
                  split_every, retries, timings, k=None):
    """Steps 1-3: ``(blocks, bounds, vocabulary)``: futures of the summed row blocks (block r a
    (V, V) CSR matrix holding rows ``bounds[r]:bounds[r + 1]``, the others empty), and the
    vocabulary (here). ``k``, when given, is checked against the vocabulary before anything is
    counted.

    Only the last futures of each step are kept here: Dask frees a task's result once the
    tasks after it have run and no client holds its future, so the shards' pieces and the
    partial sums leave the workers' memory as the trees climb."""
    from .corpus_files import check_encoding, check_eos
    from .kernels.cooccurrence import MAX_WINDOW
    from .text import Vocabulary

    check_client(client)
    paths = _shard_paths(paths)
    encoding, eos = check_encoding(encoding), check_eos(eos)
    window = _check_int(window, "window", 1, MAX_WINDOW)
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    split_every = _check_int(split_every, "split_every", 2)
    retries = _check_int(retries, "retries", 0)
    if words is not None:
        if isinstance(words, (str, bytes)):
            raise TypeError("words must be a sequence of words (one per id), got a single string")
        words = words if isinstance(words, Vocabulary) else Vocabulary(list(words))
    else:
        min_count = _check_int(min_count, "min_count", 1)
    submit = _submitter(client, retries)
    roots = []  # what this function holds on the cluster, cancelled when something fails
    try:
        start = time.perf_counter()
        if words is None:
            shard_words = [submit(f"words-shard-{i}", _shard_word_counts, str(path), encoding, eos)
                           for i, path in enumerate(paths)]
            merged = _tree(submit, shard_words, _merge_word_counts, split_every, "words")
            del shard_words
            vocabulary_future = submit("vocabulary", _vocabulary_from_counts, merged, min_count, len(paths))
            del merged
        else:
            vocabulary_future = submit("vocabulary", _identity, words)
        roots.append(vocabulary_future)
        vocabulary = _wait(client, vocabulary_future, "counting the words of the shards")
        timings["vocabulary"] = time.perf_counter() - start
        vocab_size = len(vocabulary)
        if k is not None and k >= vocab_size:
            raise ValueError(f"k={k} must be below the vocabulary size, {vocab_size} words")
        if boundary_id is not None:
            boundary_id = _check_int(boundary_id, "boundary_id", 0)
            if boundary_id >= vocab_size:
                raise IndexError(f"boundary_id {boundary_id} is out of range for the {vocab_size} words")

        start = time.perf_counter()
        bounds = _row_bounds(vocabulary, window, max(1, len(client.scheduler_info()["workers"])))
        names = [str(path) for path in paths]
        shards = [submit(f"count-shard-{i}", _count_shard, names, i, vocabulary_future, window, weighting,
                         boundary_id, memory_budget, encoding, eos, bounds) for i in range(len(paths))]
        has_words = [submit(f"has-words-{i}", _has_words, shard) for i, shard in enumerate(shards)]
        roots += has_words
        blocks = [_tree(submit, [submit(f"block-{r}-shard-{i}", _block_of, shard, r) for i, shard in enumerate(shards)],
                        _sum_counts, split_every, f"block-{r}") for r in range(len(bounds) - 1)]
        roots += blocks
        del shards
        if not any(_wait(client, has_words, "counting the shards")):
            raise ValueError(f"empty corpus: no words of the vocabulary in {_shard_names(paths)}")
        _wait(client, blocks, "summing the counts of the shards")
        timings["cooccurrence"] = time.perf_counter() - start
    except BaseException:
        _release(roots)
        raise
    return blocks, bounds, vocabulary


def _submitter(client, retries):
    """``submit(name, function, *args)``: a task with a readable, unique key (the scheduler's
    messages and a KilledWorker error then say which shard)."""
    def submit(name, function, *args):
        return client.submit(function, *args, key=f"fastnlp-{name}-{uuid.uuid4().hex[:12]}", pure=False,
                             retries=retries)
    return submit


def _tree(submit, futures, combine, split_every, name):
    """One future of ``combine(*futures)``, combined ``split_every`` adjacent pieces at a time,
    in order (the word merge needs the shard order; sums do not mind)."""
    level = 0
    while len(futures) > 1:
        futures = [submit(f"{name}-level-{level}-{i}", combine, *futures[i:i + split_every]) if
                   len(futures[i:i + split_every]) > 1 else futures[i]
                   for i in range(0, len(futures), split_every)]
        level += 1
    return futures[0]


def _wait(client, futures, what):
    """The results of ``futures``; a task's own error as it raised it (a missing or undecodable
    shard names its file), a RuntimeError when the client went away or a worker kept dying."""
    try:
        return client.gather(futures)
    except Exception as exc:
        if client.status != "running":
            raise RuntimeError(_gone(client) + f" while {what}; nothing was returned") from exc
        if type(exc).__name__ == "KilledWorker":
            raise RuntimeError(f"while {what}: every worker that ran {exc.args[0] if exc.args else 'a task'} died "
                               f"({exc}); a shard may need more memory than a worker has (memory_budget= bounds "
                               "the count's)") from exc
        raise


def _row_bounds(vocabulary, window, blocks) -> list:
    """Row ranges of about equal stored counts, one per worker: a word seen n times fills at most
    min(V, 2 * window * n) entries of its row (Zipf's frequent words, first in the order of first
    appearance, would otherwise all land in the first block). Without counts, equal ranges."""
    V = len(vocabulary)
    weights = np.minimum(vocabulary.counts.astype(np.float64) * 2 * window, V) + 1
    targets = np.linspace(0, weights.sum(), blocks + 1)[1:-1]
    inner = np.searchsorted(np.cumsum(weights), targets, side="right")
    return np.unique(np.concatenate([[0], inner, [V]])).astype(np.int64).tolist()


def _shard_paths(paths):
    from .corpus_files import corpus_paths

    if hasattr(paths, "shape") or (isinstance(paths, (list, tuple)) and paths
                                   and isinstance(paths[0], (int, np.integer))):
        raise TypeError("client= counts shard files: give their paths (an in-memory corpus of ids is counted "
                        "here, without a client)")
    return corpus_paths(paths)


def _shard_names(paths) -> str:
    return str(paths[0]) if len(paths) == 1 else f"the {len(paths)} shards ({paths[0]}, ...)"


def _check_int(value, name, low, high=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _check_gather_limit(limit) -> int:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer, float)) or not limit >= 0:
        raise ValueError(f"gather_limit must be a number of bytes >= 0 or None, got {limit!r}")
    return int(limit)


def _available_bytes() -> int:
    import psutil  # a dependency of distributed

    return int(psutil.virtual_memory().available)


# The tasks (module-level functions, so workers import them instead of unpickling code).

def _identity(value):
    return value


class _WordCounts:
    """Words in order of first appearance and their counts, inside one object: a plain dict of
    50,000 words took 2.2 s to come back from a worker process, the same dict inside an object
    0.05-0.07 s (measured, distributed 2026.8)."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict):
        self.counts = counts


def _shard_word_counts(path, encoding, eos) -> _WordCounts:
    """The words of one shard with their counts, in order of first appearance."""
    from .corpus_files import vocabulary_from_files

    try:
        vocabulary = vocabulary_from_files([path], encoding=encoding, eos=eos)
    except ValueError as exc:
        if str(exc).startswith("empty corpus"):
            return _WordCounts({})
        raise
    return _WordCounts(dict(zip(vocabulary.id_to_word, vocabulary.counts.tolist())))


def _merge_word_counts(*parts) -> _WordCounts:
    """Counts of adjacent shards merged in order: a word keeps its first shard's position."""
    merged = dict(parts[0].counts)
    for part in parts[1:]:
        for word, count in part.counts.items():
            merged[word] = merged.get(word, 0) + count
    return _WordCounts(merged)


def _vocabulary_from_counts(word_counts: _WordCounts, min_count: int, n_shards: int):
    """``vocabulary_from_files``'s rule on merged counts: the words seen ``min_count`` times,
    in order of first appearance."""
    from .text import Vocabulary

    counts = word_counts.counts
    if not counts:
        raise ValueError(f"empty corpus: no words in the {n_shards} shard files")
    seen = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    kept = np.flatnonzero(seen >= min_count)
    if kept.size == 0:
        raise ValueError(f"no word of the {n_shards} shard files occurs min_count={min_count} times "
                         f"(the most frequent occurs {int(seen.max())} times)")
    words = list(counts)
    return Vocabulary([words[i] for i in kept], counts=seen[kept])


def _left_context(paths, index, vocabulary, window, encoding, eos):
    """The last ``window`` ids before shard ``index``: from the shard before it, and from the
    ones before that when it holds fewer."""
    from .corpus_files import file_tail_ids

    parts, needed = [], window
    for before in range(index - 1, -1, -1):
        tail = file_tail_ids(paths[before], vocabulary.word_to_id, needed, encoding=encoding, eos=eos,
                             unknown=vocabulary.unk_id)
        parts.insert(0, tail)
        needed -= tail.size
        if needed == 0:
            break
    return np.concatenate(parts) if parts else None


def _count_shard(paths, index, vocabulary, window, weighting, boundary_id, memory_budget, encoding, eos, bounds):
    """One shard's counts cut into the row blocks ``bounds``: ``(blocks, has_words)``, each
    block (V, V) with only its rows filled, the shape the ``csr_sum`` kernel sums."""
    import scipy.sparse as sp

    from .corpus_files import count_files

    context = _left_context(paths, index, vocabulary, window, encoding, eos)
    try:
        counts = count_files([paths[index]], vocabulary, window=window, weighting=weighting, boundary_id=boundary_id,
                             memory_budget=memory_budget, encoding=encoding, eos=eos, context_ids=context)
    except ValueError as exc:
        if not str(exc).startswith("empty corpus"):
            raise
        V = len(vocabulary)
        return [sp.csr_matrix((V, V)) for _ in bounds[1:]], False
    return [_rows_only(counts, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])], True


def _rows_only(counts, lo, hi):
    """``counts`` with the rows outside ``lo:hi`` emptied (a view of its arrays, plus an indptr)."""
    import scipy.sparse as sp

    start, stop = counts.indptr[lo], counts.indptr[hi]
    indptr = np.clip(counts.indptr, start, stop) - start
    return sp.csr_matrix((counts.data[start:stop], counts.indices[start:stop], indptr), shape=counts.shape)


def _has_words(shard) -> bool:
    return shard[1]


def _block_of(shard, r):
    return shard[0][r]


def _sum_counts(*pieces):
    """The sum of canonical (V, V) CSR count matrices in one pass, as ``cooccurrence`` merges
    its chunks' counts (adding them two at a time would copy the growing sum once per piece)."""
    from .kernels.cooccurrence import PartialCounts

    partial = PartialCounts(pieces[0].shape[0], np)
    for piece in pieces:
        partial.add((piece.indptr.astype(np.int64, copy=False), piece.indices.astype(np.int32, copy=False),
                     piece.data.astype(np.float64, copy=False)))
    return partial.merge()


def _stored_counts(block) -> int:
    return int(block.nnz)


# ----- from counts to vectors ------------------------------------------------------------------

def _gather_counts(client, blocks, bounds):
    """The row blocks as one canonical (V, V) float64 CSR matrix, here."""
    import scipy.sparse as sp

    parts = _wait(client, blocks, "gathering the counts")
    rows = [part[lo:hi] for part, lo, hi in zip(parts, bounds[:-1], bounds[1:])]
    counts = rows[0] if len(rows) == 1 else sp.vstack(rows, format="csr")
    counts = sp.csr_matrix(counts, dtype=np.float64)
    counts.sort_indices()
    return counts


def _vectors_from_counts(C, vocabulary, k, power, alpha, method, seed, timings):
    """PPMI, truncated SVD and ``U * S**power``, as ``fastnlp.count.count_vectors`` does them."""
    from .kernels import ppmi
    from .svd import truncated_svd, word_vectors_from_svd
    from .wordvectors import WordVectors

    start = time.perf_counter()
    M = ppmi(C, alpha=alpha)
    timings["ppmi"] = time.perf_counter() - start
    start = time.perf_counter()
    U, S, _ = truncated_svd(M, k, method=method, seed=seed)
    vectors = word_vectors_from_svd(U, S, power=power).astype(np.float32)
    timings["svd"] = time.perf_counter() - start
    return WordVectors(vectors, list(vocabulary.id_to_word))


def _compressed_vectors(client, blocks, bounds, vocabulary, k, power, alpha, seed, retries, timings):
    """PPMI of each row block on its worker from the global sums, then Dask's randomized
    ``svd_compressed`` of the row-blocked matrix: nothing of size nnz comes here."""
    import dask
    import dask.array as da
    import scipy.sparse as sp

    from .svd import _DEFAULT_N_ITER, _fix_signs, word_vectors_from_svd
    from .wordvectors import WordVectors

    submit = _submitter(client, retries)
    ppmi_blocks = []
    try:
        start = time.perf_counter()
        stats = _wait(client, [submit(f"ppmi-sums-{r}", _block_sums, block) for r, block in enumerate(blocks)],
                      "summing the counts for PPMI")
        largest = max(largest for largest, _, _ in stats)
        if not largest > 0:
            raise ValueError("co-occurrence matrix is all zeros")
        scaled_total = sum(total for _, total, _ in stats) / largest
        column_sums = sum(columns for _, _, columns in stats) / largest
        log_context_weights = _log_context_weights(column_sums, scaled_total, alpha)
        ppmi_blocks = [submit(f"ppmi-{r}", _block_ppmi, block, lo, hi, largest, log_context_weights,
                              float(np.log2(scaled_total)))
                       for r, (block, lo, hi) in enumerate(zip(blocks, bounds[:-1], bounds[1:]))]
        timings["ppmi"] = time.perf_counter() - start
        start = time.perf_counter()
        meta = sp.csr_matrix((0, 0), dtype=np.float32)
        matrix = da.concatenate([da.from_delayed(dask.delayed(future), shape=(hi - lo, len(vocabulary)),
                                                 dtype=np.float32, meta=meta)
                                 for future, lo, hi in zip(ppmi_blocks, bounds[:-1], bounds[1:])], axis=0)
        # QR between power iterations: plain powers of a float32 matrix overflow after a few.
        u, sigma, v = da.linalg.svd_compressed(matrix, k, iterator="QR", n_power_iter=_DEFAULT_N_ITER, seed=seed,
                                               compute=False)
        U, S, Vt = _wait(client, client.compute([u, sigma, v]), "the compressed SVD")
        U, Vt = _fix_signs(np.ascontiguousarray(U, dtype=np.float32), np.ascontiguousarray(Vt, dtype=np.float32))
        vectors = word_vectors_from_svd(U, S.astype(np.float32), power=power).astype(np.float32)
        timings["svd"] = time.perf_counter() - start
    except BaseException:
        _release(blocks + ppmi_blocks)
        raise
    return WordVectors(vectors, list(vocabulary.id_to_word))


def _block_sums(block):
    """(largest count, total, column sums) of one row block."""
    data = block.data
    return float(data.max()) if data.size else 0.0, float(data.sum()), np.asarray(block.sum(axis=0)).ravel()


def _log_context_weights(column_sums, total, alpha):
    """``fastnlp.kernels.ppmi``'s context weights from the global column sums (scaled counts)."""
    with np.errstate(divide="ignore"):
        log_col_sums = np.log2(column_sums)
    if alpha is None:
        return log_col_sums
    smoothed = alpha * log_col_sums
    peak = float(smoothed.max())
    log_norm = peak + float(np.log2(np.exp2(smoothed - peak).sum()))
    return np.log2(total) + smoothed - log_norm


def _block_ppmi(block, lo, hi, largest, log_context_weights, log_total, eps=1e-8):
    """The float32 PPMI of the rows ``lo:hi`` of one block, (hi - lo, V) (``fastnlp.kernels.ppmi``'s
    formula, with the sums of the whole matrix)."""
    import scipy.sparse as sp

    from .kernels import registry

    counts = sp.csr_matrix(block[lo:hi], dtype=np.float64, copy=True)
    counts.data /= largest
    with np.errstate(divide="ignore"):
        log_row_sums = np.log2(np.asarray(counts.sum(axis=1)).ravel())
    values = registry.kernel("ppmi_values", counts.data)(
        counts.indptr.astype(np.int64), counts.indices.astype(np.int32), counts.data, log_row_sums,
        np.ascontiguousarray(log_context_weights, dtype=np.float64), log_total, float(np.log2(eps)))
    result = sp.csr_matrix((values.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)
    result.eliminate_zeros()
    return result
