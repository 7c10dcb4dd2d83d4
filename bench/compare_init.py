"""The book's initialisation against the scaled one (``init="book"`` / ``init="scaled"``), measured.

    python bench/compare_init.py all               # everything below, one process (40-60 min on 2 busy cores)
    python bench/compare_init.py date              # Seq2seq, PeekySeq2seq, AttentionSeq2seq (uni, bi): date task
    python bench/compare_init.py addition          # Seq2seq, PeekySeq2seq: addition, reversed questions
    python bench/compare_init.py ptb               # Rnnlm: perplexity after a short PTB run

Both inits take the same random draws for a seed; "scaled" gives the embedding tables N(0, 1)
instead of the book's N(0, 0.01^2) (see fastnlp/models/seq2seq.py). Seq2seq training is the
book's (wordvec 16; hidden 128 for addition, 256 for date; batch 128; Adam; max_grad 5; questions
reversed), one Trainer per run, test accuracy (exact match, batched greedy decoding) after every
epoch. The language model is the book's chapter-6 Rnnlm (wordvec 100, hidden 100, SGD lr 20,
batch 20, time 35, max_grad 0.25) on the first ``--ptb-tokens`` words of PTB's training set;
its perplexity is measured on the first 20000 words of the validation set. Single-threaded, like
every bench here; results print as Markdown tables.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import fastnlp  # noqa: E402
from fastnlp import optim  # noqa: E402
from fastnlp.datasets import load_ptb, load_sequence  # noqa: E402
from fastnlp.models import AttentionSeq2seq, PeekySeq2seq, Rnnlm, Seq2seq, seq2seq_accuracy  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
INITS = ("book", "scaled")

DATE_MODELS = [
    ("Seq2seq", lambda V, init: Seq2seq(V, 16, 256, seed=0, init=init)),
    ("PeekySeq2seq", lambda V, init: PeekySeq2seq(V, 16, 256, seed=0, init=init)),
    ("AttentionSeq2seq", lambda V, init: AttentionSeq2seq(V, 16, 256, seed=0, init=init)),
    ("AttentionSeq2seq (bidirectional)", lambda V, init: AttentionSeq2seq(V, 16, 256, seed=0, init=init,
                                                                          bidirectional=True)),
]
ADDITION_MODELS = [
    ("Seq2seq", lambda V, init: Seq2seq(V, 16, 128, seed=0, init=init)),
    ("PeekySeq2seq", lambda V, init: PeekySeq2seq(V, 16, 128, seed=0, init=init)),
]


def train(model, data, epochs, label):
    """Test accuracies after each of ``epochs`` epochs (one Trainer, one ``fit`` call per epoch)."""
    (x, t), (x_test, t_test) = data
    trainer = fastnlp.Trainer(model, optim.Adam(), seed=0)
    accuracies = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainer.fit(x, t, max_epoch=1, batch_size=128, max_grad=5.0, progress=False, eval_interval=None)
        accuracies.append(seq2seq_accuracy(model, x_test, t_test))
        print(f"  {label}: epoch {epoch} loss {trainer.loss_list[-1]:.4f} test accuracy {100 * accuracies[-1]:.2f}% "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return accuracies


def seq2seq_table(task, models, epochs):
    (x, t), (x_test, t_test), char_to_id, _ = load_sequence(task, DATA, reverse=True)
    data = (x, t), (x_test, t_test)
    rows = []
    for name, build in models:
        for init in INITS:
            rows.append((name, init, train(build(len(char_to_id), init), data, epochs, f"{task} {name} {init}")))
    print(f"\n{task} task ({len(x)} training, {len(x_test)} test questions, reversed), test accuracy after each "
          f"epoch:\n")
    print("| model | init | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in range(epochs)) + " |")
    for name, init, accuracies in rows:
        print(f"| {name} | {init} | " + " | ".join(f"{100 * a:.2f}%" for a in accuracies) + " |")
    sys.stdout.flush()


def ptb_table(tokens, epochs):
    corpus, word_to_id, _ = load_ptb("train", DATA)
    valid, _, _ = load_ptb("valid", DATA)
    xs, ts = corpus[:-1][:tokens], corpus[1:][:tokens]
    rows = []
    for init in INITS:
        model = Rnnlm(len(word_to_id), wordvec_size=100, hidden_size=100, seed=0, init=init)
        trainer = fastnlp.RnnlmTrainer(model, optim.SGD(lr=20.0))
        perplexities = []
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            trainer.fit(xs, ts, max_epoch=1, batch_size=20, time_size=35, max_grad=0.25, progress=False,
                        eval_interval=None)
            model.reset_state()
            perplexities.append(fastnlp.eval_perplexity(model, valid[:20000], batch_size=10, time_size=35))
            model.reset_state()
            print(f"  ptb Rnnlm {init}: epoch {epoch} valid perplexity {perplexities[-1]:.1f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        rows.append((init, perplexities))
    print(f"\nRnnlm (wordvec 100, hidden 100) on the first {len(xs)} words of PTB train, perplexity of the first "
          f"20000 words of PTB valid after each epoch:\n")
    print("| model | init | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in range(epochs)) + " |")
    for init, perplexities in rows:
        print(f"| Rnnlm | {init} | " + " | ".join(f"{p:.1f}" for p in perplexities) + " |")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["date", "addition", "ptb", "all"])
    parser.add_argument("--date-epochs", type=int, default=2)
    parser.add_argument("--addition-epochs", type=int, default=10)
    parser.add_argument("--ptb-epochs", type=int, default=2)
    parser.add_argument("--ptb-tokens", type=int, default=400000, help="training words of PTB (default 400000)")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names to keep (e.g. 'AttentionSeq2seq (bidirectional)')")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from machine import describe

    print(describe(), flush=True)
    keep = None if args.models is None else {name.strip() for name in args.models.split(",")}

    def chosen(models):
        return [m for m in models if keep is None or m[0] in keep]

    if args.task in ("date", "all"):
        seq2seq_table("date", chosen(DATE_MODELS), args.date_epochs)
    if args.task in ("addition", "all"):
        seq2seq_table("addition", chosen(ADDITION_MODELS), args.addition_epochs)
    if args.task in ("ptb", "all"):
        ptb_table(args.ptb_tokens, args.ptb_epochs)


if __name__ == "__main__":
    main()
