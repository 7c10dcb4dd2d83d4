"""The same CBOW trained two ways on PTB train, compared on quality: the book's layer path and the
fused trainer.

    python bench/compare_word2vec_paths.py [--data-dir ../shared/data] [--epochs 3] [--lazy]

* layer path: ``fastnlp.models.CBOW`` (Embedding in, NegativeSamplingLoss out) trained by
  ``fastnlp.Trainer`` with Adam on mini-batches of 100 (window 5, hidden 100, 5 negatives), as the
  book's ch. 4 does; ``--lazy`` uses lazy Adam (only the rows a batch touched are updated).
* fused path: ``fastnlp.Word2Vec(sg=0)`` with the same window, size and negatives, no subsampling
  and min_count 1 (the book has neither), SGD per (context, target) pair with alpha decaying
  linearly 0.025 -> 0.0001, as word2vec.c.

The update rules differ (Adam on the mean loss of 100 windows against plain SGD per window with a
decaying rate; the book's window is fixed where word2vec.c shrinks it at random), so the vectors
differ; the question is whether the quality agrees within seed noise. Prints WordSim-353 Spearman,
Google-analogy accuracy and wall time per path, with the machine, threads and versions.
"""
import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lazy", action="store_true", help="lazy Adam for the layer path")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

    import fastnlp
    from fastnlp import optim
    from fastnlp.models import CBOW

    sys.path.insert(0, str(HERE))
    from machine import describe

    data = Path(args.data_dir)
    wordsim, analogies = data / "eval" / "wordsim353.tsv", data / "eval" / "questions-words.txt"
    corpus, word_to_id, id_to_word = fastnlp.datasets.load_ptb("train", data_dir=data)
    words = [id_to_word[i] for i in range(len(id_to_word))]

    def quality(vectors):
        return (vectors.evaluate_word_pairs(wordsim)["spearman"], vectors.evaluate_analogies(analogies)["accuracy"])

    rows = []
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=5)
    model = CBOW(len(words), 100, 5, corpus, seed=args.seed)
    start = time.perf_counter()
    fastnlp.Trainer(model, optim.Adam(lazy=args.lazy), seed=args.seed).fit(
        contexts, target, max_epoch=args.epochs, batch_size=100, eval_interval=None, progress=False)
    seconds = time.perf_counter() - start
    adam = "lazy Adam" if args.lazy else "Adam"
    rows.append((f"layer path: CBOW + Trainer, {adam}, batch 100", seconds,
                 *quality(fastnlp.WordVectors(model.word_vecs, words))))

    with open(data / "ptb" / "ptb.train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in f]
    fused = fastnlp.Word2Vec(sg=0, vector_size=100, window=5, negative=5, sample=0, min_count=1,
                             epochs=args.epochs, workers=1, seed=args.seed, progress=False)
    fused.build_vocab(sentences)
    start = time.perf_counter()
    fused.train(sentences)
    seconds = time.perf_counter() - start
    rows.append(("fused path: Word2Vec(sg=0), SGD per window", seconds, *quality(fused.wv)))

    print(describe())
    print(f"\nPTB train, {args.epochs} epochs, window 5, hidden 100, 5 negatives, seed {args.seed}\n")
    print("| path | wall s | WordSim-353 Spearman | analogy accuracy |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, rho, accuracy in rows:
        print(f"| {name} | {seconds:.1f} | {rho:.3f} | {accuracy:.4f} |")


if __name__ == "__main__":
    main()
