"""10-fold cross-validated accuracy on the sentence polarity data set (Pang and Lee 2005), fastnlp's
document vectors and text classifiers beside scikit-learn and fastText baselines:

    python bench/compare_polarity.py [--data-dir ../shared/data] [--folds 10] [--quick] [--seed 0]
                                     [--threads 1] [--only mean,lstm,...]

One run prints a Markdown table: per system the mean and standard deviation of the accuracy over
the folds and the wall time summed over the folds (fit and predict; for the rows with word
vectors trained on the reviews, training those vectors in each fold too), with the machine,
threads and versions at the top.

Folds: stratified, shuffled with ``--seed`` (a split written here, so the folds are the same with
or without scikit-learn): each class's documents are shuffled and dealt round-robin to the folds.

Rows:

* majority class (of the training fold);
* scikit-learn ``TfidfVectorizer`` (unigrams + bigrams, on the tokenised text) +
  ``LogisticRegression`` (default C=1), when scikit-learn is installed;
* fastText's supervised classifier (``fasttext`` package: 25 epochs, lr 0.5, bigrams), when installed;
* ``TextClassifier(encoder=mean|tfidf|sif)`` logistic regression on document vectors
  - from word2vec trained on each training fold's reviews (what ``vectors=None`` does: skip-gram,
    100 dimensions, window 5, 20 epochs, min_count 1, seed; trained once per fold here and shared by
    the three rows, each charged its time),
  - from word2vec trained once on PTB train (same settings, 5 epochs; its training time is printed
    apart; PTB's vocabulary coverage of the reviews is printed);
* ``TextClassifier("mean", fine_tune=True, ngrams=2)``: the same average over an embedding
  initialised from the fold's word2vec vectors, with word bigrams, trained end to end (fastText-style);
* ``TextClassifier("lstm" | "bilstm" | "transformer")`` from random embeddings (default settings:
  100-d embedding, 100 hidden units, dropout 0.3, Adam 0.002, early stopping on 10% of the training fold).

``--quick`` runs 3 folds. BLAS and numba threads are set to ``--threads`` (default 1) before
anything is imported: on a shared machine more threads than free cores make the small matrix
products of the recurrent layers orders of magnitude slower.
"""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OURS = ("mean", "tfidf", "sif", "ptb-mean", "ptb-tfidf", "ptb-sif", "finetune", "lstm", "bilstm", "transformer")


def stratified_folds(y, k, seed):
    """Fold number of every document: per class, shuffled and dealt round-robin."""
    import numpy as np

    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)
    return fold


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 folds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated rows of ours to run (default all): "
                        + ",".join(OURS))
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))

    import numpy as np

    import fastnlp
    from fastnlp import TextClassifier, Word2Vec
    from fastnlp.classify import _WORD2VEC_DEFAULTS
    from fastnlp.datasets import load_polarity
    from fastnlp.datasets._files import find_or_fetch

    folds = 3 if args.quick else args.folds
    only = [s for s in args.only.split(",") if s] or list(OURS)
    unknown = set(only) - set(OURS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {','.join(OURS)}")

    texts, y = load_polarity(args.data_dir)
    fold_of = stratified_folds(y, folds, args.seed)

    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"fastnlp {fastnlp.__version__}"]
    try:
        import sklearn
        versions.append(f"scikit-learn {sklearn.__version__}")
    except ImportError:
        sklearn = None
        versions.append("scikit-learn not installed")
    try:
        import fasttext
        versions.append(f"fasttext {getattr(fasttext, '__version__', 'installed')}")
    except ImportError:
        fasttext = None
        versions.append("fasttext not installed")
    print(f"# Sentence polarity (MR, {len(texts)} snippets), {folds}-fold stratified CV, seed {args.seed}\n")
    print(f"- machine: {cpu_model()} ({os.cpu_count()} logical cores); load average at start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"- threads: BLAS/numba {args.threads}; word2vec workers 1")
    print(f"- versions: {', '.join(versions)}")
    print(f"- command: python bench/compare_polarity.py {' '.join(argv if argv is not None else sys.argv[1:])}\n",
          flush=True)

    w2v_settings = dict(_WORD2VEC_DEFAULTS, vector_size=100, workers=1, progress=False)

    # PTB vectors, trained once
    ptb = None
    if any(r.startswith("ptb-") for r in only):
        path = find_or_fetch("ptb/ptb.train.txt", args.data_dir)
        with open(path, encoding="utf-8") as f:
            sentences = [line.split() for line in f if line.strip()]
        t0 = time.perf_counter()
        ptb = Word2Vec(sentences, **dict(w2v_settings, epochs=5, seed=args.seed)).wv
        ptb_time = time.perf_counter() - t0
        types = {t for doc in texts for t in doc}
        tokens = sum(len(doc) for doc in texts)
        known_tokens = sum(t in ptb for doc in texts for t in doc)
        print(f"- PTB vectors: word2vec on ptb.train.txt ({sum(map(len, sentences)):,} words, {len(ptb):,} types), "
              f"5 epochs, {ptb_time:.1f} s (not in the rows' times). Coverage of the reviews: "
              f"{sum(t in ptb for t in types) / len(types):.1%} of {len(types):,} word types, "
              f"{known_tokens / tokens:.1%} of {tokens:,} tokens\n", flush=True)

    results = {}  # name -> (accuracies, seconds)

    def record(name, fold, acc, seconds):
        accs, secs = results.setdefault(name, ([], []))
        accs.append(acc)
        secs.append(seconds)
        print(f"  fold {fold + 1}/{folds} {name}: {acc:.4f} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    names = {
        "mean": "fastnlp mean of word2vec (trained on the fold) + LR",
        "tfidf": "fastnlp TF-IDF-weighted mean of word2vec (fold) + LR",
        "sif": "fastnlp SIF of word2vec (fold) + LR",
        "ptb-mean": "fastnlp mean of PTB word2vec + LR",
        "ptb-tfidf": "fastnlp TF-IDF-weighted mean of PTB word2vec + LR",
        "ptb-sif": "fastnlp SIF of PTB word2vec + LR",
        "finetune": "fastnlp mean, fine-tuned from word2vec (fold), + bigrams",
        "lstm": "fastnlp LSTM (last state), random embeddings",
        "bilstm": "fastnlp BiLSTM (last states), random embeddings",
        "transformer": "fastnlp Transformer (1 block, 4 heads, mean pool), random embeddings",
    }
    for k in range(folds):
        train = np.flatnonzero(fold_of != k)
        test = np.flatnonzero(fold_of == k)
        X_tr, X_te = [texts[i] for i in train], [texts[i] for i in test]
        y_tr, y_te = y[train], y[test]

        t0 = time.perf_counter()
        values, counts = np.unique(y_tr, return_counts=True)
        record("majority class", k, float(np.mean(y_te == values[counts.argmax()])), time.perf_counter() - t0)

        if sklearn is not None:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline

            t0 = time.perf_counter()
            pipe = make_pipeline(TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False,
                                                 ngram_range=(1, 2)),
                                 LogisticRegression(max_iter=1000))
            pipe.fit([" ".join(d) for d in X_tr], y_tr)
            acc = pipe.score([" ".join(d) for d in X_te], y_te)
            record("scikit-learn TF-IDF (1-2 grams) + LogisticRegression", k, acc, time.perf_counter() - t0)

        if fasttext is not None:
            import tempfile

            t0 = time.perf_counter()
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
                for d, label in zip(X_tr, y_tr):
                    f.write(f"__label__{label} {' '.join(d)}\n")
            model = fasttext.train_supervised(f.name, epoch=25, lr=0.5, wordNgrams=2, seed=args.seed, thread=1,
                                              verbose=0)
            os.unlink(f.name)
            pred = [int(model.predict(" ".join(d))[0][0].replace("__label__", "")) for d in X_te]
            record("fastText supervised (bigrams)", k, float(np.mean(np.asarray(pred) == y_te)),
                   time.perf_counter() - t0)

        fold_wv, wv_time = None, 0.0
        if any(r in only for r in ("mean", "tfidf", "sif", "finetune")):
            t0 = time.perf_counter()
            fold_wv = Word2Vec(X_tr, **dict(w2v_settings, seed=args.seed)).wv
            wv_time = time.perf_counter() - t0

        for row in only:
            if row in ("mean", "tfidf", "sif"):
                clf, extra = TextClassifier(row, vectors=fold_wv, seed=args.seed), wv_time
            elif row.startswith("ptb-"):
                clf, extra = TextClassifier(row[4:], vectors=ptb, seed=args.seed), 0.0
            elif row == "finetune":
                clf, extra = TextClassifier("mean", vectors=fold_wv, fine_tune=True, ngrams=2, seed=args.seed), wv_time
            else:
                clf, extra = TextClassifier(row, seed=args.seed), 0.0
            t0 = time.perf_counter()
            acc = clf.fit(X_tr, y_tr).score(X_te, y_te)
            record(names[row], k, acc, time.perf_counter() - t0 + extra)

    print("| system | accuracy (mean ± sd) | wall time, all folds |")
    print("| --- | --- | --- |")
    if sklearn is None:
        print("| scikit-learn TF-IDF + LogisticRegression | not installed | |")
    if fasttext is None:
        print("| fastText supervised | not installed | |")
    for name, (accs, secs) in results.items():
        a = np.asarray(accs)
        print(f"| {name} | {a.mean():.2%} ± {a.std(ddof=1) if len(a) > 1 else 0:.2%} | {sum(secs):.1f} s |")
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
