"""The book's ch. 2 pipeline on PTB train (window 2): co-occurrence, PPMI, SVD k = 100, per
backend, against the vectorised NumPy/SciPy count.

    pytest bench/test_bench_count.py
"""
import sys
from pathlib import Path

import pytest

import fastnlp
from fastnlp.kernels import cooccurrence, ppmi

sys.path.insert(0, str(Path(__file__).parent))
from count_reference import vectorised_cooccurrence  # noqa: E402
from machine import cpu_backend_params  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def ptb():
    if not (DATA_DIR / "ptb").is_dir():
        pytest.skip(f"PTB not found under {DATA_DIR}")
    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=DATA_DIR)
    return corpus, len(word_to_id), [id_to_word[i] for i in range(len(id_to_word))]


@pytest.mark.benchmark(group="cooccurrence")
@pytest.mark.parametrize("backend", cpu_backend_params("cooccurrence"))
def test_cooccurrence(benchmark, ptb, backend):
    corpus, vocab, _ = ptb
    with fastnlp.use_backend(backend):
        benchmark.pedantic(cooccurrence, (corpus, vocab, 2), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="cooccurrence")
def test_cooccurrence_vectorised_numpy(benchmark, ptb):
    corpus, vocab, _ = ptb
    benchmark.pedantic(vectorised_cooccurrence, (corpus, vocab, 2), rounds=3, warmup_rounds=1)


@pytest.mark.benchmark(group="ppmi")
@pytest.mark.parametrize("backend", cpu_backend_params("ppmi_values"))
def test_ppmi(benchmark, ptb, backend):
    corpus, vocab, _ = ptb
    C = cooccurrence(corpus, vocab, 2)
    with fastnlp.use_backend(backend):
        benchmark.pedantic(ppmi, (C,), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="pipeline")
@pytest.mark.parametrize("backend", cpu_backend_params("cooccurrence"))
def test_whole_pipeline(benchmark, ptb, backend):
    from fastnlp.count import count_vectors

    corpus, _, words = ptb
    with fastnlp.use_backend(backend):
        benchmark.pedantic(count_vectors, (corpus, words), kwargs=dict(window=2, k=100), rounds=3,
                           warmup_rounds=1)
