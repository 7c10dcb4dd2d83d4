"""``fastnlp train <model>``, ``fastnlp generate``, ``fastnlp eval`` and ``fastnlp attention``:
every chapter's model from the shell.

    fastnlp train rnnlm --save rnnlm.npz           # book ch. 6, then the test perplexity
    fastnlp generate rnnlm.npz --start you         # sampled text (ch. 7)
    fastnlp train attention --save date.npz        # book ch. 8 on the date task
    fastnlp generate date.npz --start "september 27, 1994"
    fastnlp attention date.npz --input "september 27, 1994" --plot map.png
    fastnlp eval date.npz                          # accuracy on the held-out split

Every ``train`` job uses the book's settings unless an option changes them (``--help`` shows
them) and ends by printing the chapter's figure: perplexity for language models, held-out
accuracy for seq2seq models, WordSim-353 and nearest neighbours for word vectors.
``--corpus-size N`` trains on the first N tokens (PTB) or examples (addition/date) and
evaluates on at most N held-out ones: for tests and quick looks.

A saved file holds everything ``generate`` / ``eval`` need: language models and seq2seq models
are saved with their vocabulary (PTB's words, the task's characters); the seq2seq task (date or
addition) is told by those characters (``--task`` overrides); the recurrent seq2seq models read
reversed questions (the book's trick) and the Transformer plain ones. cbow, skipgram and count
save their word vectors (``fastnlp.WordVectors``), word2vec its whole model (so ``--resume``
continues it).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from ._common import UsageError, check_output_file, describe, existing_folder, finite_float, int_at_least
from . import book

# Everything here is imported lazily (inside the jobs) so that `fastnlp --help` stays fast.

LM_SKIP_WORDS = ("N", "<unk>", "$")  # the book's generate_text never produces these
PERPLEXITY_INTERVAL = 20  # the book's eval_interval
LOSS_INTERVAL = 20
EVAL_BATCH, EVAL_TIME = 10, 35  # eval_perplexity's batching (the book's)

# model name -> (task, reversed questions) for the seq2seq models
SEQ2SEQ = {"seq2seq": ("addition", True), "peeky": ("addition", True), "attention": ("date", True),
           "transformer": ("date", False)}


# ---- argument types -----------------------------------------------------------------------------


def _strip_option(message: str, option: str) -> str:
    return message[len(option) + 1:] if message.startswith(option + " ") else message


def output_file(option: str, suffixes=(".npz",)):
    """An argument type: a path that can be written and ends in one of ``suffixes``, checked
    while parsing (so a mistake is found before any work, and named with its option)."""

    def parse(text: str) -> str:
        try:
            check_output_file(text, option)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(_strip_option(describe(exc), option)) from None
        if not text.lower().endswith(tuple(suffixes)):
            raise argparse.ArgumentTypeError(f"{text!r}: the file name must end in {' or '.join(suffixes)}")
        return text

    parse.__name__ = "path"
    return parse


def figure_file(option: str = "--plot"):
    """An argument type: a writable image path whose suffix names a format matplotlib writes."""

    def parse(text: str) -> str:
        try:
            book.check_plot_path(text, option)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(_strip_option(describe(exc), option)) from None
        return text

    parse.__name__ = "path"
    return parse


def existing_file(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return text


positive = int_at_least(1)
positive_float = finite_float(0.0, low_open=True)


# ---- shared pieces -------------------------------------------------------------------------------


def _limit(array, n):
    return array if n is None else array[:n]


def _plot_curve(path, values, xlabel, ylabel, title):
    """A line plot of ``values`` saved atomically to ``path`` (when a trainer has no plot of its own)."""
    import numpy as np

    from fastnlp.plot import new_figure, save_figure

    fig = new_figure("--plot")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(values) + 1), values, marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save_figure(fig, path, "the training curve")


def _trainer_plot(trainer, path, what):
    if hasattr(trainer, "plot"):
        trainer.plot(path)
    else:
        values = getattr(trainer, "ppl_list", None) or getattr(trainer, "loss_list", [])
        _plot_curve(path, values, f"iterations (x{trainer.eval_interval})", what, f"training {what}")
    print(f"{what} curve written to {path}")


def _epochs(n):
    return f"{n} epoch" + ("" if n == 1 else "s")


def _ptb_words(id_to_word):
    return [id_to_word[i] for i in range(len(id_to_word))]


def _init(args):
    return {"init": args.init} if getattr(args, "init", None) else {}


# ---- language models (ch. 5-6) -------------------------------------------------------------------


def _check_lm_sizes(args):
    """The smallest --corpus-size an LM run can use: one training batch and one evaluation batch."""
    need = max(args.batch_size * args.time_size + 1, EVAL_BATCH * args.time_size + 1)
    if args.corpus_size is not None and args.corpus_size < need:
        raise UsageError(f"--corpus-size {args.corpus_size} is too small: a language model needs at least {need} "
                         f"tokens (one batch of --batch-size x --time-size = {args.batch_size} x {args.time_size}, "
                         f"and one evaluation batch of {EVAL_BATCH} x {args.time_size}, plus one)")


def _lm(args) -> int:
    better = args.model == "better-rnnlm"
    if better and args.wordvec != args.hidden:
        raise UsageError(f"better-rnnlm ties its output weight to the embedding: --wordvec ({args.wordvec}) must "
                         f"equal --hidden ({args.hidden})")
    _check_lm_sizes(args)

    import fastnlp
    from fastnlp.datasets import load_ptb
    from fastnlp.models import BetterRnnlm, Rnnlm

    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = _ptb_words(id_to_word)
    corpus = _limit(corpus, args.corpus_size)
    test = _limit(load_ptb("test", data_dir=args.data_dir)[0], args.corpus_size)
    valid = _limit(load_ptb("valid", data_dir=args.data_dir)[0], args.corpus_size) if better else None
    xs, ts = corpus[:-1], corpus[1:]
    cls = BetterRnnlm if better else Rnnlm
    if args.resume:
        model = fastnlp.load(args.resume)
        if type(model) is not cls:
            raise UsageError(f"--resume {args.resume!r} holds a {type(model).__name__}, not a {cls.__name__} "
                             f"checkpoint (train {args.model} --checkpoint PATH writes one)")
        if model.vocab_size != len(words):
            raise UsageError(f"--resume {args.resume!r}: the model has {model.vocab_size} words, PTB {len(words)}")
    elif better:
        model = BetterRnnlm(len(words), args.wordvec, args.hidden, dropout_ratio=args.dropout, seed=args.seed,
                            **_init(args))
    else:
        model = Rnnlm(len(words), args.wordvec, args.hidden, seed=args.seed, **_init(args))
    trainer = fastnlp.RnnlmTrainer(model, fastnlp.optim.SGD(lr=args.lr), **_precision(args))
    pending = None
    if args.resume:
        trainer.load_checkpoint(args.resume)
        pending = None if better else trainer.pending_run
    if pending is not None:  # a run stopped in the middle goes on with its own settings
        if pending["data_size"] != len(xs):
            raise UsageError(f"--resume {args.resume!r}: the checkpoint's run trained on {pending['data_size'] + 1:,} "
                             f"tokens, this one has {len(corpus):,}; give the same --corpus-size")
        args.batch_size, args.time_size = pending["batch_size"], pending["time_size"]
    iterations = len(xs) // (args.batch_size * args.time_size)
    # fit_with_lr_decay fits one epoch at a time: its perplexity is recorded within each epoch.
    interval = min(PERPLEXITY_INTERVAL, iterations if better else iterations * args.epochs)
    print(f"{cls.__name__} on PTB train: {len(corpus):,} tokens, {len(words):,} words, wordvec {model.params[0].shape[1]}, "
          f"batch {args.batch_size} x {args.time_size}, SGD lr {trainer.optimizer.lr:g}, max_grad {args.max_grad:g}")
    fit = dict(batch_size=args.batch_size, time_size=args.time_size, max_grad=args.max_grad,
               eval_interval=interval, progress=not args.quiet)
    start = time.perf_counter()
    if better:
        with tempfile.TemporaryDirectory() as folder:
            best = os.path.join(folder, "best.npz")
            done = len(trainer.valid_ppl_list)
            if args.resume:
                print(f"resuming after epoch {done} (--epochs {args.epochs} is the total)")
                if done >= args.epochs:
                    print(f"the checkpoint has {done} epochs already: raise --epochs to train more")
            trainer.fit_with_lr_decay(xs, ts, valid, max_epoch=args.epochs, lr_decay=args.lr_decay,
                                      eval_batch_size=EVAL_BATCH, best_params=best, checkpoint=args.checkpoint, **fit)
            for epoch, ppl in enumerate(trainer.valid_ppl_list[done:], done + 1):
                print(f"epoch {epoch}: validation perplexity {ppl:.2f}")
            if os.path.exists(best):  # the book tests the parameters of the best validation epoch
                fastnlp.load_params(best, into=model)
    else:
        if pending is not None:
            print(f"continuing the checkpoint's run of {_epochs(pending['max_epoch'])}")
            trainer.fit(xs, ts, max_epoch=pending["max_epoch"], checkpoint=args.checkpoint, **fit)
        else:
            if args.resume:
                print(f"resuming after {_epochs(trainer.current_epoch)}: {args.epochs} more")
            trainer.fit(xs, ts, max_epoch=args.epochs, checkpoint=args.checkpoint, **fit)
        if args.checkpoint:  # the finished run, so that --resume trains --epochs more
            trainer.save_checkpoint(args.checkpoint)
    seconds = time.perf_counter() - start
    if trainer.ppl_list:
        print(f"training: {seconds:.1f} s, last training perplexity {trainer.ppl_list[-1]:.2f}")
    model.reset_state()
    ppl = fastnlp.eval_perplexity(model, test, batch_size=EVAL_BATCH, time_size=args.time_size)
    print(f"test perplexity: {ppl:.2f} ({len(test):,} tokens of PTB test)")
    if args.checkpoint:
        print(f"checkpoint written to {args.checkpoint}")
    if args.plot:
        _trainer_plot(trainer, args.plot, "perplexity")
    if args.save:
        fastnlp.save(args.save, model, vocabulary=words)
        print(f"model saved to {args.save}")
    return 0


# ---- seq2seq models (ch. 7-8) ---------------------------------------------------------------------


def _seq2seq(args) -> int:
    book.refuse_resume(args, args.model)
    import fastnlp
    from fastnlp.datasets import load_sequence
    from fastnlp.models import AttentionSeq2seq, PeekySeq2seq, Seq2seq, Transformer, seq2seq_accuracy

    _, reverse = SEQ2SEQ[args.model]
    (x, t), (x_test, t_test), char_to_id, id_to_char = load_sequence(args.task, args.data_dir, reverse=reverse)
    x, t = _limit(x, args.corpus_size), _limit(t, args.corpus_size)
    x_test, t_test = _limit(x_test, args.corpus_size), _limit(t_test, args.corpus_size)
    V = len(char_to_id)
    if args.model == "transformer":
        model = Transformer(V, d_model=args.d_model, n_heads=args.heads, d_ff=args.d_ff, n_layers=args.layers,
                            seed=args.seed, **_init(args))
        shape = f"d_model {args.d_model}, {args.heads} heads, d_ff {args.d_ff}, {args.layers} layers"
    else:
        cls = {"seq2seq": Seq2seq, "peeky": PeekySeq2seq, "attention": AttentionSeq2seq}[args.model]
        extra = {"bidirectional": True} if getattr(args, "bidirectional", False) else {}
        model = cls(V, args.wordvec, args.hidden, seed=args.seed, **_init(args), **extra)
        shape = f"wordvec {args.wordvec}, hidden {args.hidden}"
    trainer = fastnlp.Trainer(model, fastnlp.optim.Adam(lr=args.lr), seed=args.seed, **_precision(args))
    print(f"{type(model).__name__} on the {args.task} task: {len(x):,} training and {len(x_test):,} held-out "
          f"questions{' (reversed)' if reverse else ''}, {shape}, batch {args.batch_size}, Adam lr {args.lr:g}")
    iterations = max(len(x) // min(args.batch_size, len(x)), 1)
    accuracy = None
    for epoch in range(1, args.epochs + 1):
        decay_from = getattr(args, "halve_lr_from", 0)
        if decay_from and epoch >= decay_from:
            trainer.optimizer.lr /= 2
        start = time.perf_counter()
        trainer.fit(x, t, max_epoch=1, batch_size=args.batch_size, max_grad=args.max_grad,
                    eval_interval=min(LOSS_INTERVAL, iterations), progress=not args.quiet)
        seconds = time.perf_counter() - start
        last = epoch == args.epochs
        accuracy = seq2seq_accuracy(model, x_test, t_test, id_to_char, is_reverse=reverse, show_wrong=3 if last else 0)
        print(f"epoch {epoch}: loss {trainer.loss_list[-1]:.4f}, held-out accuracy {accuracy:.2%} ({seconds:.1f} s)",
              flush=True)
    print(f"accuracy on {len(x_test):,} held-out {args.task} questions: {accuracy:.2%}")
    if args.plot:
        _trainer_plot(trainer, args.plot, "loss")
    if args.save:
        fastnlp.save(args.save, model, vocabulary=[id_to_char[i] for i in range(V)])
        print(f"model saved to {args.save}")
    return 0


# ---- word vectors (ch. 3-4, and the fused word2vec) ------------------------------------------------


def _book_word2vec(args) -> int:
    book.refuse_resume(args, args.model)
    import fastnlp
    from fastnlp.datasets import load_ptb
    from fastnlp.models import CBOW, SkipGram
    from fastnlp.serialization import to_host

    corpus, word_to_id, id_to_word = load_ptb("train", data_dir=args.data_dir)
    words = _ptb_words(id_to_word)
    corpus = _limit(corpus, args.corpus_size)
    if len(corpus) < 2 * args.window + 1:
        raise UsageError(f"--corpus-size {len(corpus)} is too small for --window {args.window}: "
                         f"one window needs {2 * args.window + 1} tokens")
    contexts, target = fastnlp.create_contexts_target(corpus, window_size=args.window)
    cls = CBOW if args.model == "cbow" else SkipGram
    model = cls(len(words), args.hidden, args.window, corpus, sample_size=args.negative, seed=args.seed,
                **_init(args))
    trainer = fastnlp.Trainer(model, fastnlp.optim.Adam(lr=args.lr, lazy=args.lazy_adam), seed=args.seed,
                              **_precision(args))
    print(f"{cls.__name__} on PTB train: {len(corpus):,} tokens, {len(words):,} words, window {args.window}, "
          f"hidden {args.hidden}, {args.negative} negatives, batch {args.batch_size}, Adam lr {args.lr:g}")
    iterations = args.epochs * max(len(target) // min(args.batch_size, len(target)), 1)
    start = time.perf_counter()
    history = trainer.fit(contexts, target, max_epoch=args.epochs, batch_size=args.batch_size,
                          eval_interval=min(LOSS_INTERVAL, iterations), progress=not args.quiet)
    print(f"training: {time.perf_counter() - start:.1f} s, final loss {history[-1]:.4f}")
    vectors = fastnlp.WordVectors(to_host(model.word_vecs), words)
    book.report_vectors(vectors, args.data_dir, args.queries)
    if args.plot:
        _trainer_plot(trainer, args.plot, "loss")
    if args.save:
        book.save_vectors(vectors, args.save)
    return 0


def _ptb_sentences(corpus, id_to_word):
    """PTB ids as sentences of words, cut at <eos> (which is left out, as in the text files)."""
    sentences, current = [], []
    for i in corpus.tolist():
        word = id_to_word[i]
        if word == "<eos>":
            if current:
                sentences.append(current)
            current = []
        else:
            current.append(word)
    if current:
        sentences.append(current)
    return sentences


def _word2vec(args) -> int:
    """The fused trainers on PTB: Word2Vec, and FastText (Word2Vec plus character n-grams)."""
    import fastnlp
    from fastnlp.datasets import load_ptb

    cls = fastnlp.FastText if args.model == "fasttext" else fastnlp.Word2Vec
    corpus, _, id_to_word = load_ptb("train", data_dir=args.data_dir)
    sentences = _ptb_sentences(_limit(corpus, args.corpus_size), id_to_word)
    if not sentences:
        raise UsageError(f"--corpus-size {args.corpus_size} leaves no words to train on")
    start = time.perf_counter()
    if args.resume:
        model = fastnlp.load(args.resume)
        if not isinstance(model, cls):
            raise UsageError(f"--resume {args.resume!r} holds {_what(model)}, not a {cls.__name__} model "
                             f"(train {args.model} --save PATH writes one)")
        before = model.epochs_trained
        # A schedule that a run stopped part way (Word2Vec.train(stop_after=...)) is continued as it
        # was planned; otherwise --epochs more epochs.
        unfinished = getattr(model, "_schedule_epochs", 0) - getattr(model, "_schedule_done", 0)
        print(f"resuming a {cls.__name__} model trained for {_epochs(before)} (its settings: sg={model.sg}, "
              f"vector_size {model.vector_size}, window {model.window})")
        if unfinished > 0:
            model.train(sentences, progress=not args.quiet)
        else:
            model.train(sentences, epochs=args.epochs, progress=not args.quiet)
    else:
        settings = dict(sg=int(args.sg), vector_size=args.hidden, window=args.window, negative=args.negative,
                        sample=args.sample, min_count=args.min_count, alpha=args.alpha, epochs=args.epochs,
                        workers=args.workers, seed=args.seed, progress=not args.quiet)
        if cls is fastnlp.FastText:
            settings.update(min_n=args.min_n, max_n=args.max_n, bucket=args.bucket)
        else:
            settings.update(hs=int(args.hs), **_precision(args))
        model = cls(**settings)
        model.build_vocab(sentences)
        before = 0
        model.train(sentences)
    words = sum(len(s) for s in sentences)
    print(f"{cls.__name__} ({'skip-gram' if model.sg else 'CBOW'}) on PTB train: {words:,} words in {len(sentences):,} "
          f"sentences, {len(model.vocabulary):,} in the vocabulary; {_epochs(model.epochs_trained - before)} in "
          f"{time.perf_counter() - start:.1f} s, last epoch's loss {model.loss_history[-1]:.4g}")
    book.report_vectors(model.wv, args.data_dir, args.queries)
    if args.plot:
        _plot_curve(args.plot, model.loss_history, "epoch", "loss (sum over the epoch)",
                    f"{args.model} training loss")
        print(f"loss curve written to {args.plot}")
    if args.save:
        fastnlp.save(args.save, model)
        print(f"model saved to {args.save}")
    return 0


# ---- reading saved files ---------------------------------------------------------------------------


def _what(obj) -> str:
    if isinstance(obj, list):
        return "bare arrays (no model class)"
    return f"a {type(obj).__name__}"


def _kind(obj) -> str:
    """'lm', 'seq2seq', 'vectors', 'spiral' or 'other'."""
    import fastnlp
    from fastnlp import models

    if isinstance(obj, (models.SimpleRnnlm, models.Rnnlm, models.BetterRnnlm)):
        return "lm"
    if isinstance(obj, (models.Seq2seq, models.PeekySeq2seq, models.AttentionSeq2seq, models.Transformer)):
        return "seq2seq"
    if isinstance(obj, (fastnlp.WordVectors, fastnlp.Word2Vec, models.CBOW, models.SkipGram, models.SimpleCBOW,
                        models.SimpleSkipGram)):
        return "vectors"
    if isinstance(obj, models.TwoLayerNet):
        return "spiral"
    return "other"


def _load(path, word2vec_format=False):
    """The object in ``path``; with ``word2vec_format``, a file that is no fastnlp file is read
    as word vectors in word2vec's text or binary format."""
    import fastnlp

    try:
        return fastnlp.load(path)
    except ValueError as exc:
        if not word2vec_format or "is not a file written by fastnlp" not in str(exc):
            raise
        try:
            return fastnlp.WordVectors.load_word2vec_format(path)
        except (ValueError, UnicodeDecodeError, IndexError):
            raise ValueError(f"{path} is neither a file written by fastnlp nor word vectors in word2vec "
                             "format") from None


def _vocabulary(model, path):
    vocabulary = getattr(model, "vocabulary", None)
    if vocabulary is None:
        raise UsageError(f"{path} holds a {type(model).__name__} saved without its vocabulary; save it with "
                         "fastnlp.save(path, model, vocabulary=...) (fastnlp train --save does)")
    return list(vocabulary.id_to_word)


def _task_of(chars, path, given=None) -> str:
    """The seq2seq task a model's characters belong to: addition ('+' and digits) or date (letters)."""
    if given:
        return given
    if "+" in chars and not any(c.isalpha() for c in chars):
        return "addition"
    if any(c.isalpha() for c in chars):
        return "date"
    raise UsageError(f"{path}: cannot tell the task from the model's characters; give --task addition or --task date")


def _encode_question(model, path, text, task_option):
    """(question ids (1, width), start id, answer length, id_to_char, reversed) for one question."""
    from fastnlp.datasets import encode_questions
    from fastnlp.datasets.sequence import ADDITION_WIDTHS, DATE_WIDTHS, SEPARATOR

    from fastnlp.models import Transformer

    chars = _vocabulary(model, path)
    task = _task_of(chars, path, task_option)
    question_width, answer_width = ADDITION_WIDTHS if task == "addition" else DATE_WIDTHS
    reverse = not isinstance(model, Transformer)
    char_to_id = {c: i for i, c in enumerate(chars)}
    if SEPARATOR not in char_to_id:
        raise UsageError(f"{path}: the model's characters lack the start symbol {SEPARATOR!r}; is it a seq2seq model "
                         "trained by fastnlp train?")
    try:
        x = encode_questions([text], char_to_id, question_width, reverse=reverse)
    except (KeyError, ValueError) as exc:
        raise UsageError(f"question {text!r}: {describe(exc)}") from None
    return x, char_to_id[SEPARATOR], answer_width - 1, dict(enumerate(chars)), reverse


# ---- generate ---------------------------------------------------------------------------------------


def _generate(args) -> int:
    model = _load(args.model_file)
    kind = _kind(model)
    if kind == "lm":
        import fastnlp

        words = _vocabulary(model, args.model_file)
        word_to_id = {w: i for i, w in enumerate(words)}
        start = args.start if args.start is not None else "you"
        tokens = start.split()
        if not tokens:
            raise UsageError("--start is empty: give one or more start words")
        for word in tokens:
            if word not in word_to_id:
                raise UsageError(f"--start: the word {word!r} is not in the model's vocabulary")
        if args.top_k is not None and args.top_k > len(words):
            raise UsageError(f"--top-k {args.top_k} is larger than the vocabulary ({len(words):,} words)")
        skip = [w for w in LM_SKIP_WORDS if w in word_to_id and w not in tokens]
        text = fastnlp.generate_text(model, tokens, word_to_id, dict(enumerate(words)), length=args.length,
                                     skip_words=skip, sampling="sample", temperature=args.temperature,
                                     top_k=args.top_k, seed=args.seed)
        print(text)
        return 0
    if kind == "seq2seq":
        if args.start is None:
            raise UsageError("--start: give the question for a seq2seq model, e.g. --start \"16+75\"")
        x, start_id, length, id_to_char, _ = _encode_question(model, args.model_file, args.start, args.task)
        answer = model.generate(x, start_id, length)
        answer = answer.get() if hasattr(answer, "get") else answer
        print("".join(id_to_char[int(i)] for i in answer[0]).strip())
        return 0
    raise UsageError(f"{args.model_file} holds {_what(model)}; generate needs a language model (train rnnlm, "
                     "better-rnnlm) or a seq2seq model (train seq2seq, peeky, attention, transformer)")


# ---- eval ---------------------------------------------------------------------------------------------


def _eval(args) -> int:
    import fastnlp

    model = _load(args.model_file, word2vec_format=True)
    kind = _kind(model)
    if kind == "lm":
        from fastnlp.datasets import load_ptb

        corpus, word_to_id, id_to_word = load_ptb(args.split, data_dir=args.data_dir)
        words = _ptb_words(id_to_word)
        saved = getattr(model, "vocabulary", None)
        if saved is not None and list(saved.id_to_word) != words:
            raise ValueError(f"{args.model_file}: the model's vocabulary is not PTB's, so PTB cannot measure it")
        if model.vocab_size != len(words):
            raise ValueError(f"{args.model_file}: the model has {model.vocab_size} words, PTB {len(words)}")
        corpus = _limit(corpus, args.corpus_size)
        if len(corpus) < EVAL_BATCH * EVAL_TIME + 1:
            raise UsageError(f"--corpus-size {len(corpus)} is too small: perplexity needs at least "
                             f"{EVAL_BATCH * EVAL_TIME + 1} tokens")
        model.reset_state()
        ppl = fastnlp.eval_perplexity(model, corpus, batch_size=EVAL_BATCH, time_size=EVAL_TIME)
        print(f"{type(model).__name__}: perplexity {ppl:.2f} on PTB {args.split} ({len(corpus):,} tokens)")
        return 0
    if kind == "seq2seq":
        from fastnlp.datasets import load_sequence
        from fastnlp.models import Transformer, seq2seq_accuracy

        chars = _vocabulary(model, args.model_file)
        task = _task_of(chars, args.model_file, args.task)
        reverse = not isinstance(model, Transformer)
        _, (x, t), _, id_to_char = load_sequence(task, args.data_dir, reverse=reverse)
        if [id_to_char[i] for i in range(len(id_to_char))] != chars:
            raise ValueError(f"{args.model_file}: the model's characters are not those of the {task} task")
        x, t = _limit(x, args.corpus_size), _limit(t, args.corpus_size)
        accuracy = seq2seq_accuracy(model, x, t, id_to_char, is_reverse=reverse, show_wrong=args.show_wrong)
        print(f"{type(model).__name__}: accuracy {accuracy:.2%} on {len(x):,} held-out {task} questions")
        return 0
    if kind == "vectors":
        from fastnlp.datasets._files import find_or_fetch

        vectors = _as_vectors(model, args.model_file)
        pairs = vectors.evaluate_word_pairs(find_or_fetch("eval/wordsim353.tsv", args.data_dir))
        print(f"{len(vectors):,} word vectors of {vectors.vector_size} dimensions")
        print(f"WordSim-353: Spearman {pairs['spearman']:.3f}, Pearson {pairs['pearson']:.3f} over {pairs['pairs']} "
              f"pairs ({pairs['oov_ratio']:.1%} out of vocabulary)")
        try:
            analogies = vectors.evaluate_analogies(find_or_fetch("eval/questions-words.txt", args.data_dir))
        except ValueError as exc:
            if "no analogy question" not in str(exc):
                raise
            print("analogies: no question has all four words in the vocabulary")
        else:
            print(f"analogies (questions-words.txt): accuracy {analogies['accuracy']:.2%} "
                  f"({analogies['correct']:,} of {analogies['total']:,}; {analogies['skipped']:,} skipped, "
                  "a word outside the vocabulary)")
        return 0
    if kind == "spiral":
        from fastnlp.datasets import load_spiral

        x, t = load_spiral()
        print(f"TwoLayerNet: accuracy {model.accuracy(x, t):.1%} on the spiral data ({len(x)} points)")
        return 0
    raise UsageError(f"{args.model_file} holds {_what(model)}, which eval does not know how to measure")


def _as_vectors(model, path):
    import fastnlp
    from fastnlp.serialization import to_host

    if isinstance(model, fastnlp.WordVectors):
        return model
    if isinstance(model, fastnlp.Word2Vec):
        return model.wv
    return fastnlp.WordVectors(to_host(model.word_vecs), _vocabulary(model, path))


# ---- attention maps ------------------------------------------------------------------------------------


def _attention(args) -> int:
    import fastnlp
    from fastnlp.models import AttentionSeq2seq, Transformer

    model = _load(args.model_file)
    if not isinstance(model, (AttentionSeq2seq, Transformer)):
        raise UsageError(f"{args.model_file} holds {_what(model)}, which has no attention; attention maps need a "
                         "model from 'train attention' or 'train transformer'")
    root, suffix = os.path.splitext(args.plot)
    for n, text in enumerate(args.input, 1):
        x, start_id, length, id_to_char, reverse = _encode_question(model, args.model_file, text, args.task)
        path = args.plot if len(args.input) == 1 else f"{root}-{n}{suffix}"
        path, answer, _ = fastnlp.plot_attention(model, x, path, id_to_char=id_to_char, start_id=start_id,
                                                 sample_size=length, is_reverse=reverse)
        print(f"{text!r} -> {answer.strip()!r}: attention map written to {path}")
    return 0


# ---- the parser ------------------------------------------------------------------------------------------


DATA_HELP = "folder holding ptb/, seq/ and eval/ (default: $FASTNLP_DATA, then the user cache, downloading when missing)"
CORPUS_HELP = ("train on the first N tokens (PTB) or examples (addition/date) and evaluate on at most the first N "
               "held-out ones: small runs for tests and quick looks (default: everything)")


def _common(parser, *, epochs=None, data=True, resume="", plot=True, save_suffixes=(".npz",),
            save_help="write the trained model (.npz) with its vocabulary: what generate and eval read"):
    """The options every train job has (those that apply to it)."""
    if data:
        parser.add_argument("--data-dir", type=existing_folder, help=DATA_HELP)
        parser.add_argument("--corpus-size", type=positive, metavar="N", help=CORPUS_HELP)
    if epochs is not None:
        parser.add_argument("--epochs", type=positive, default=epochs, help="training epochs (default: %(default)s)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        _precision_option(parser)
    parser.add_argument("--save", type=output_file("--save", save_suffixes), metavar="PATH", help=save_help)
    parser.add_argument("--resume", type=existing_file, metavar="PATH",
                        help=resume or "not supported for this model (only rnnlm, better-rnnlm and word2vec resume)")
    if plot:
        parser.add_argument("--plot", type=figure_file(), metavar="PATH",
                            help="write the training curve to this image (.png, .pdf, .svg; needs matplotlib)")


def _precision_name(text: str) -> str:
    from fastnlp.amp import Precision

    try:
        Precision(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(describe(exc)) from None
    return text


def _precision_option(parser):
    from fastnlp.amp import PRECISIONS

    parser.add_argument("--precision", type=_precision_name, default="fp32", metavar="NAME",
                        help=f"number format of training: {', '.join(PRECISIONS)} (default: %(default)s)")
    parser.add_argument("--rounding", choices=("nearest", "stochastic"), default="nearest",
                        help="how pure low-precision weights are rounded after each update (default: %(default)s)")


def _precision(args) -> dict:
    """The trainers' precision keywords from --precision/--rounding (not every job has them)."""
    if getattr(args, "precision", "fp32") == "fp32":
        return {}
    return {"precision": args.precision, "rounding": args.rounding}


def _init_option(parser, default):
    parser.add_argument("--init", choices=("book", "scaled"), default=None,
                        help=f"initial weights: the book's or scaled to the layer sizes (default: {default})")


def _seed_option(parser):
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of the initial weights and the shuffling (default: %(default)s)")


def _register_train(models) -> None:
    lr = positive_float

    spiral = models.add_parser("spiral", help="the two-layer net on the spiral data (ch. 1)",
                               description="Book ch. 1: TwoLayerNet on the spiral data, SGD; prints the training "
                                           "accuracy.")
    book.add_spiral_options(spiral)
    _common(spiral, data=False, save_help="write the trained model (.npz); 'fastnlp eval' measures it")
    spiral.set_defaults(run=book._spiral)

    count = models.add_parser("count", help="PPMI + SVD word vectors on PTB or text files (ch. 2)",
                              description="Book ch. 2: co-occurrence counts, PPMI and truncated SVD on PTB (or on "
                                          "text files with --corpus, streamed); prints nearest neighbours and the "
                                          "WordSim-353 correlation.")
    book.add_count_options(count)
    _common(count, plot=False, save_suffixes=(".npz", ".bin", ".txt", ".vec"),
            save_help="write the vectors: .npz in fastnlp's format (what eval reads), .bin/.txt/.vec in "
                      "word2vec's binary/text format")
    count.set_defaults(run=book._count)

    for name, what in (("cbow", "CBOW"), ("skipgram", "skip-gram")):
        p = models.add_parser(name, help=f"{what} with negative sampling on PTB (ch. 4), the layer API",
                              description=f"Book ch. 4: {what} with negative sampling on PTB, trained by the "
                                          "Trainer with Adam; prints nearest neighbours and WordSim-353.")
        p.add_argument("--window", type=positive, default=5, help="context words on each side (default: %(default)s)")
        p.add_argument("--hidden", type=positive, default=100, help="vector size (default: %(default)s)")
        p.add_argument("--negative", type=positive, default=5, help="negative samples per target (default: %(default)s)")
        p.add_argument("--batch-size", type=positive, default=100, help="mini-batch size (default: %(default)s)")
        p.add_argument("--lr", type=lr, default=0.001, help="Adam learning rate (default: %(default)s)")
        p.add_argument("--lazy-adam", action="store_true",
                       help="update only the rows a batch touched (much faster; not the book's)")
        p.add_argument("--queries", nargs="*", default=list(book.BOOK_QUERIES), metavar="WORD",
                       help="words whose nearest neighbours are printed (default: %(default)s)")
        _init_option(p, "book")
        _seed_option(p)
        _common(p, epochs=10, save_help="write the word vectors (.npz, a fastnlp.WordVectors) that eval reads")
        p.set_defaults(run=_book_word2vec)

    for name, cls_name, description in (
            ("word2vec", "Word2Vec", "fused word2vec (skip-gram or CBOW, compiled loop) on PTB"),
            ("fasttext", "FastText", "fastText: word2vec plus character n-grams (vectors for unseen words) on PTB")):
        p = models.add_parser(name, help=description,
                              description=f"fastnlp.{cls_name} on PTB's sentences (gensim's defaults); prints nearest "
                                          "neighbours and WordSim-353.")
        p.add_argument("--sg", action="store_true", help="skip-gram (default: CBOW)")
        if name == "word2vec":
            p.add_argument("--hs", action="store_true", help="hierarchical softmax as well")
        else:
            p.add_argument("--min-n", type=positive, default=3, help="shortest character n-gram (default: %(default)s)")
            p.add_argument("--max-n", type=positive, default=6, help="longest character n-gram (default: %(default)s)")
            p.add_argument("--bucket", type=positive, default=2_000_000,
                           help="rows the n-grams are hashed into (default: %(default)s)")
        p.add_argument("--hidden", type=positive, default=100, help="vector size (default: %(default)s)")
        p.add_argument("--window", type=positive, default=5, help="context words on each side (default: %(default)s)")
        p.add_argument("--negative", type=int_at_least(0 if name == "word2vec" else 1), default=5,
                       help="negative samples per target" + (", 0 with --hs" if name == "word2vec" else "")
                            + " (default: %(default)s)")
        p.add_argument("--sample", type=finite_float(0.0), default=1e-3,
                       help="subsampling threshold of frequent words, 0 for none (default: %(default)s)")
        p.add_argument("--min-count", type=positive, default=1,
                       help="drop rarer words (PTB is already cut to 10,000 words) (default: %(default)s)")
        p.add_argument("--alpha", type=lr, default=0.025, help="initial learning rate (default: %(default)s)")
        p.add_argument("--workers", type=positive, default=1,
                       help="training threads; above 1 is faster but not reproducible bit for bit "
                            "(default: %(default)s)")
        p.add_argument("--queries", nargs="*", default=list(book.BOOK_QUERIES), metavar="WORD",
                       help="words whose nearest neighbours are printed (default: %(default)s)")
        _seed_option(p)
        _common(p, epochs=5, resume=f"continue training the {cls_name} model saved in PATH (its own settings)",
                save_help=f"write the whole {cls_name} model (.npz): eval reads it, --resume continues it")
        p.set_defaults(run=_word2vec)

    for name, cls, wordvec, hidden, epochs, default_init, description in (
            ("rnnlm", "Rnnlm", 100, 100, 4, "book",
             "Book ch. 6 (train_rnnlm.py): an LSTM language model on PTB, SGD, gradient clipping; prints the test "
             "perplexity."),
            ("better-rnnlm", "BetterRnnlm", 650, 650, 40, "book",
             "Book ch. 6.5 (train_better_rnnlm.py): two LSTM layers, dropout, weight tying; the learning rate is "
             "divided by --lr-decay whenever the validation perplexity gets worse; prints the test perplexity of the "
             "best epoch.")):
        p = models.add_parser(name, help=f"{cls} language model on PTB (ch. 6)", description=description)
        p.add_argument("--wordvec", type=positive, default=wordvec, help="word vector size (default: %(default)s)")
        p.add_argument("--hidden", type=positive, default=hidden, help="LSTM size (default: %(default)s)")
        p.add_argument("--batch-size", type=positive, default=20, help="parallel streams (default: %(default)s)")
        p.add_argument("--time-size", type=positive, default=35,
                       help="truncated BPTT length (default: %(default)s)")
        p.add_argument("--lr", type=lr, default=20.0, help="SGD learning rate (default: %(default)s)")
        p.add_argument("--max-grad", type=lr, default=0.25, help="gradient norm clipping (default: %(default)s)")
        if name == "better-rnnlm":
            p.add_argument("--dropout", type=finite_float(0.0, 1.0), default=0.5,
                           help="dropout ratio (default: %(default)s)")
            p.add_argument("--lr-decay", type=lr, default=4.0,
                           help="divide the learning rate by this when validation gets worse (default: %(default)s)")
        _init_option(p, default_init)
        _seed_option(p)
        _common(p, epochs=epochs,
                resume="continue from a checkpoint written by --checkpoint (an interrupted run goes on with its own "
                       "settings; after a finished one, " + ("--epochs is the total)" if name == "better-rnnlm"
                                                             else "--epochs more)"))
        p.add_argument("--checkpoint", type=output_file("--checkpoint"), metavar="PATH",
                       help="write a checkpoint (.npz) after every epoch, for --resume")
        p.set_defaults(run=_lm)

    for name, cls, task, defaults, description in (
            ("seq2seq", "Seq2seq", "addition", (16, 128, 25),
             "Book ch. 7: encoder-decoder LSTMs on the addition task, questions reversed; prints the held-out "
             "accuracy after every epoch."),
            ("peeky", "PeekySeq2seq", "addition", (16, 128, 25),
             "Book ch. 7.5: Peeky seq2seq (the encoder's state fed to every decoder step) on the addition task, "
             "questions reversed; prints the held-out accuracy after every epoch."),
            ("attention", "AttentionSeq2seq", "date", (16, 256, 10),
             "Book ch. 8: seq2seq with attention on the date task, questions reversed; prints the held-out "
             "accuracy after every epoch. 'fastnlp attention' draws its attention maps.")):
        wordvec, hidden, epochs = defaults
        p = models.add_parser(name, help=f"{cls} on the {task} task (ch. {7 if task == 'addition' else 8})",
                              description=description)
        p.add_argument("--task", choices=("addition", "date"), default=task, help="data set (default: %(default)s)")
        p.add_argument("--wordvec", type=positive, default=wordvec, help="character vector size (default: %(default)s)")
        p.add_argument("--hidden", type=positive, default=hidden, help="LSTM size (default: %(default)s)")
        if name == "attention":
            p.add_argument("--bidirectional", action="store_true", help="a bidirectional LSTM encoder")
        _seq2seq_training_options(p, epochs, 0)
        _init_option(p, "scaled")
        _seed_option(p)
        p.set_defaults(run=_seq2seq)

    p = models.add_parser("transformer", help="Transformer on the date task (beyond the book)",
                          description="fastnlp.Transformer on the date task (plain questions); Adam's learning rate "
                                      "halves every epoch from --halve-lr-from; prints the held-out accuracy after "
                                      "every epoch.")
    p.add_argument("--task", choices=("addition", "date"), default="date", help="data set (default: %(default)s)")
    p.add_argument("--d-model", type=positive, default=64, help="model width (default: %(default)s)")
    p.add_argument("--heads", type=positive, default=4, help="attention heads, dividing --d-model (default: %(default)s)")
    p.add_argument("--d-ff", type=positive, default=128, help="feed-forward width (default: %(default)s)")
    p.add_argument("--layers", type=positive, default=2, help="encoder and decoder blocks (default: %(default)s)")
    _seq2seq_training_options(p, 5, 3)
    _init_option(p, "scaled")
    _seed_option(p)
    p.set_defaults(run=_seq2seq)


def _seq2seq_training_options(p, epochs, halve_from):
    p.add_argument("--batch-size", type=positive, default=128, help="mini-batch size (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=0.001, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--max-grad", type=positive_float, default=5.0, help="gradient norm clipping (default: %(default)s)")
    if halve_from:
        p.add_argument("--halve-lr-from", type=int_at_least(0), default=halve_from, metavar="EPOCH",
                       help="halve the learning rate before every epoch from this one on, 0 never "
                            "(default: %(default)s)")
    _common(p, epochs=epochs)


def register(jobs) -> None:
    train = jobs.add_parser(
        "train", help="train one of the book's models, then print its chapter's figure",
        description="Train a model with the book's settings (each option shows its default), print what its "
                    "chapter measures, and optionally --save it for generate/eval. --corpus-size N makes a small "
                    "run (the first N tokens or examples) for tests and quick looks.")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL",
                                  title="models (fastnlp train MODEL --help for each)")
    _register_train(models)

    generate = jobs.add_parser(
        "generate", help="sample text from a language model, or answer a question with a seq2seq model",
        description="Language models (rnnlm, better-rnnlm): words drawn one by one from the model's distribution "
                    "after --start. Seq2seq models: the greedy answer to the question --start.")
    generate.add_argument("model_file", type=existing_file, metavar="MODEL", help="a file written by train --save")
    generate.add_argument("--start", metavar="TEXT",
                          help="start words (language models; default: you) or the question (seq2seq models)")
    generate.add_argument("--length", type=int_at_least(0), default=100,
                          help="words to generate (language models) (default: %(default)s)")
    generate.add_argument("--temperature", type=positive_float, default=1.0,
                          help="below 1 sharpens the distribution, above 1 flattens it (default: %(default)s)")
    generate.add_argument("--top-k", type=positive, default=None, metavar="K",
                          help="draw among the K most probable words only (default: all)")
    generate.add_argument("--seed", type=int_at_least(0), default=None,
                          help="seed of the sampling (default: a different text each run)")
    generate.add_argument("--task", choices=("addition", "date"), default=None,
                          help="seq2seq task (default: told by the model's characters)")
    generate.set_defaults(run=_generate)

    evaluate = jobs.add_parser(
        "eval", help="measure a saved model: perplexity, accuracy, or WordSim-353 and analogies",
        description="Language models: perplexity on a PTB split. Seq2seq models: accuracy on their task's "
                    "held-out questions. Word vectors (train cbow/skipgram/count/word2vec, or word2vec-format "
                    "files): WordSim-353 correlation and analogy accuracy. TwoLayerNet: spiral accuracy.")
    evaluate.add_argument("model_file", type=existing_file, metavar="MODEL", help="a file written by train --save")
    evaluate.add_argument("--data-dir", type=existing_folder, help=DATA_HELP)
    evaluate.add_argument("--split", choices=("valid", "test"), default="test",
                          help="PTB split for language models (default: %(default)s)")
    evaluate.add_argument("--corpus-size", type=positive, metavar="N",
                          help="evaluate on the first N tokens or questions only (default: all)")
    evaluate.add_argument("--task", choices=("addition", "date"), default=None,
                          help="seq2seq task (default: told by the model's characters)")
    evaluate.add_argument("--show-wrong", type=int_at_least(0), default=0, metavar="N",
                          help="print the first N wrong answers of a seq2seq model (default: %(default)s)")
    evaluate.set_defaults(run=_eval)

    attention = jobs.add_parser(
        "attention", help="draw where an attention model looked while answering questions (ch. 8)",
        description="The attention weights of AttentionSeq2seq or Transformer answering each --input, as a heat "
                    "map: input characters along x, output characters along y (the book's figure 8-26).")
    attention.add_argument("model_file", type=existing_file, metavar="MODEL",
                           help="a file written by train attention/transformer --save")
    attention.add_argument("--input", action="append", required=True, metavar="TEXT",
                           help="a question, e.g. \"september 27, 1994\"; repeat for several maps")
    attention.add_argument("--plot", type=figure_file(), required=True, metavar="PATH",
                           help="image to write (.png, .pdf, .svg); with several --input, PATH-1.png, PATH-2.png, ...")
    attention.add_argument("--task", choices=("addition", "date"), default=None,
                           help="the model's task (default: told by the model's characters)")
    attention.set_defaults(run=_attention)
