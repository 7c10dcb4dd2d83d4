"""fastnlp.FastText against gensim's FastText on PTB: speed and WordSim-353.

    python bench/compare_fasttext.py [--data-dir ../shared/data] [--bucket 2000000] [--sg 0]

PTB train, 1 epoch, 1 thread, vector_size 100, n-grams 3-6, min_count 5, window 5, negative 5.
Times include setup (vocabulary, n-gram tables, the weights' initialisation). WordSim-353's
Spearman rho is given overall (pairs with both words in PTB's vocabulary, as evaluate_word_pairs
counts them) and on the pairs with at least one word out of PTB's vocabulary, scored through the
n-gram vectors (wv[word]) of both libraries.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent


def _pairs(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, score = line.rstrip("\n").split("\t")[:3]
            pairs.append((a.lower(), b.lower(), float(score)))
    return pairs


def _rho(get, pairs):
    got, gold = [], []
    for a, b, score in pairs:
        try:
            x, y = get(a), get(b)
        except KeyError:
            continue
        got.append(float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
        gold.append(score)
    return spearmanr(got, gold).correlation, len(got)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--bucket", type=int, default=2_000_000)
    parser.add_argument("--sg", type=int, default=0)
    args = parser.parse_args(argv)
    data = Path(args.data_dir)
    with open(data / "ptb" / "ptb.train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in f if line.split()]
    n_words = sum(map(len, sentences))
    pairs = _pairs(data / "eval" / "wordsim353.tsv")
    print(f"PTB train: {len(sentences)} sentences, {n_words} words; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores; sg={args.sg}, bucket={args.bucket}")
    common = dict(sg=args.sg, vector_size=100, window=5, negative=5, min_n=3, max_n=6, bucket=args.bucket,
                  min_count=5, epochs=1, workers=1, seed=1)

    import fastnlp
    t = time.perf_counter()
    ours = fastnlp.FastText(sentences, progress=False, **common)
    ours_s = time.perf_counter() - t
    import gensim
    t = time.perf_counter()
    theirs = gensim.models.FastText(sentences, **common)
    theirs_s = time.perf_counter() - t
    vocab = set(ours.vocabulary.id_to_word)
    oov = [p for p in pairs if p[0] not in vocab or p[1] not in vocab]
    inv = [p for p in pairs if p[0] in vocab and p[1] in vocab]
    print(f"{'':10} {'words/s':>10} {'seconds':>8} {'rho in-vocab':>13} {'rho OOV pairs':>14}")
    for name, seconds, get in (("fastnlp", ours_s, lambda w: ours.wv[w]), ("gensim", theirs_s, lambda w: theirs.wv[w])):
        r_in, n_in = _rho(get, inv)
        r_oov, n_oov = _rho(get, oov)
        print(f"{name:10} {n_words / seconds:10.0f} {seconds:8.2f} {r_in:8.3f} ({n_in}) {r_oov:8.3f} ({n_oov})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
