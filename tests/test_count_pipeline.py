"""Ch. 2 end to end on PTB: the book's functions reproduced on a slice, and vectors that are
as good as the issue demands on WordSim-353."""
import numpy as np
import pytest

import fastnlp
from fastnlp.cli import main as cli_main
from fastnlp.count import count_vectors, create_co_matrix, ppmi_dense
from fastnlp.kernels import cooccurrence, ppmi
from test_kernels_count import book_create_co_matrix, book_ppmi


@pytest.fixture(scope="module")
def data_dir():
    """Module-scoped twin of conftest's data_dir, so PTB is loaded once for the module."""
    from conftest import DATA_DIR

    if not (DATA_DIR / "ptb").is_dir():
        pytest.skip(f"PTB not found under {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="module")
def ptb(data_dir):
    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=data_dir)
    return corpus, word_to_id, [id_to_word[i] for i in range(len(id_to_word))]


def test_book_functions_reproduced_on_a_ptb_slice(ptb):
    corpus, _, _ = ptb
    part = corpus[:1500]  # ids are in order of first appearance, so the slice uses ids < V'
    vocab = int(part.max()) + 1
    expected_C = book_create_co_matrix(part, vocab, 2)
    np.testing.assert_array_equal(create_co_matrix(part, vocab, 2), expected_C)
    np.testing.assert_array_equal(cooccurrence(part, vocab, 2).toarray(), expected_C)
    expected_M = book_ppmi(expected_C)
    np.testing.assert_allclose(ppmi_dense(expected_C), expected_M, rtol=1e-6)
    np.testing.assert_allclose(ppmi(cooccurrence(part, vocab, 2)).toarray(), expected_M, rtol=1e-6)


def test_ppmi_svd_vectors_on_ptb_reach_the_wordsim_target(ptb, data_dir):
    corpus, word_to_id, words = ptb
    vectors = count_vectors(corpus, words, window=2, k=100)
    assert len(vectors) == 10000 and vectors.vector_size == 100
    result = vectors.evaluate_word_pairs(data_dir / "eval" / "wordsim353.tsv")
    assert result["spearman"] >= 0.22
    assert 0.3 < result["oov_ratio"] < 0.35
    neighbours = [w for w, _ in vectors.most_similar("toyota", top=10)]
    assert {"nissan", "honda"} & set(neighbours)


def test_sentence_boundaries_change_the_counts(ptb):
    corpus, word_to_id, _ = ptb
    part = corpus[:20000]
    eos = word_to_id["<eos>"]
    across = cooccurrence(part, 10000, 2)
    within = cooccurrence(part, 10000, 2, boundary_id=eos)
    assert within.sum() < across.sum()
    assert within[eos].sum() < across[eos].sum()


def test_cli_count_job(data_dir, capsys, tmp_path):
    out_file = tmp_path / "vectors.bin"
    assert cli_main(["count", "--data-dir", str(data_dir), "--queries", "you", "nosuchword",
                     "--save", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "[query] you" in printed and "nosuchword: not in the vocabulary" in printed
    assert "WordSim-353: Spearman" in printed
    loaded = fastnlp.WordVectors.load_word2vec_format(out_file, binary=True)
    assert len(loaded) == 10000


def test_cli_spiral_and_backends(capsys):
    assert cli_main(["spiral", "--quiet", "--epochs", "20"]) == 0
    assert cli_main(["backends"]) == 0
    printed = capsys.readouterr().out
    assert "training accuracy" in printed and "active:" in printed
