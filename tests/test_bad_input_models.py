"""Generated garbage thrown at every model of ``fastnlp.models``.

Every class in ``fastnlp.models.__all__`` has a row in SPECS (how to build a small instance, a
valid batch ``(x, t)``, and what each of the two inputs is) or a reasoned entry in EXCLUDED, and
every exported function a test here or an entry in EXCLUDED: a model added to ``__all__`` without
either fails the first test. For every row, on hypothesis-drawn batches:

* a valid batch gives a finite scalar loss, and backward finite grads of their params' shapes;
* bad input (ids out of range, float or bool ids, ragged lists, a wrong ndim, an empty batch,
  targets that do not fit) raises TypeError, ValueError or IndexError whose message names the
  problem, never anything else, never a silent answer; the params, and the state a model carries
  between calls (hidden state, dropout and negative-sampling generators), stay as they were;
* NaN or inf in a float input raises NonFiniteError (a ValueError); backward before forward
  raises RuntimeError;
* one epoch of ``fastnlp.Trainer`` (``fastnlp.RnnlmTrainer`` for the language models) changes
  every param and keeps it finite, and a second over data with an id out of range is refused
  without changing any;
* ``generate``: bad start ids (and lengths, skip ids) are refused, length 0 gives an empty result;
* ``seq2seq_accuracy`` and ``eval_seq2seq`` refuse bad questions, answers and settings.

Library defects found by these cases are strict xfails (DEFECTS, LIST_DEFECTS, STATE_DEFECTS and
the last column of LM_BAD and EVAL_BAD), each naming the file and line, the input, what happens
and what should; when one is fixed its xfail turns into a failure, to be removed.
"""
from __future__ import annotations

import inspect
import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import fastnlp
from fastnlp import layers as L
from fastnlp import models, optim
from conftest import CPU_AVAILABLE

# No shrinking: the drawn batches are tiny already, and the strict xfails below would spend most of
# the file's time shrinking examples of the defects they document.
SETTINGS = settings(max_examples=6, deadline=None, report_multiple_bugs=False,
                    phases=(Phase.explicit, Phase.reuse, Phase.generate))
V = 7  # the vocabulary of every id model
D, H = 4, 4  # word vectors and hidden units (BetterRnnlm ties them: D == H)
N_IN, N_CLASSES = 4, 3  # TwoLayerNet
CORPUS = np.arange(V)  # every word once: the negative samplers' vocabulary is all V words

seeds = st.integers(0, 2**32 - 1)
batch_sizes = st.integers(1, 4)
lengths = st.integers(1, 4)


# ----- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """One of the two inputs of ``forward(x, t)``."""
    arg: int  # 0 for x, 1 for t
    name: str  # what the model's docstring calls it
    role: str  # "ids"; "onehot" (rows over the vocabulary, any real dtype); "float"
    upper: int = V  # ids: one past the largest valid id
    ignore: int | None = None  # an id documented as padding rather than an error


@dataclass(frozen=True)
class Spec:
    """How to build one model and a valid batch, and what its inputs are.

    ``kind``: "lm" (trained by RnnlmTrainer; ``generate(start_ids, length)``), "seq2seq"
    (``generate(xs, start_id, sample_size)``) or "plain". ``state``: a snapshot of what the model
    carries between calls besides its params, which a refused call must leave alone."""
    name: str
    cls: type
    make: Callable[[], object]
    batch: Callable[[np.random.Generator, int, int], tuple]  # (rng, N, T) -> valid (x, t)
    slots: tuple
    sequence: bool = False  # the inputs have a time axis of T >= 1
    kind: str = "plain"
    state: Callable | None = None


def _ids(rng, shape, upper=V):
    return rng.integers(0, upper, shape)


def _one_hot(ids):
    return np.eye(V, dtype=np.int32)[ids]  # what fastnlp.convert_one_hot makes


def _lm_batch(rng, n, T):
    return _ids(rng, (n, T)), _ids(rng, (n, T))


def _seq2seq_batch(rng, n, T):
    return _ids(rng, (n, T)), _ids(rng, (n, 1 + T))  # answers: the start symbol, then T ids


def _word2vec_batch(rng, n, T):
    return _ids(rng, (n, 2)), _ids(rng, n)  # window 1: two context ids per target


def _lm_state(model):
    carried = [tuple(None if a is None else np.array(a) for a in pair) for pair in model.get_state()]
    return carried, [layer.rng.bit_generator.state for layer in model.dropout_layers]


def _sampler_state(model):
    return model.ns_loss.sampler.counter


LM_SLOTS = (Slot(0, "xs", "ids"), Slot(1, "ts", "ids", ignore=-1))  # -1: TimeSoftmaxWithLoss's padding
SEQ2SEQ_SLOTS = (Slot(0, "questions", "ids"), Slot(1, "answers", "ids"))
WORD2VEC_SLOTS = (Slot(0, "contexts", "ids"), Slot(1, "target", "ids"))


def _lm(name, make):
    return Spec(name, getattr(models, name), make, _lm_batch, LM_SLOTS, sequence=True, kind="lm", state=_lm_state)


def _seq2seq(name, cls, make):
    return Spec(name, cls, make, _seq2seq_batch, SEQ2SEQ_SLOTS, sequence=True, kind="seq2seq")


SPECS = [
    Spec("TwoLayerNet", models.TwoLayerNet, lambda: models.TwoLayerNet(N_IN, 5, N_CLASSES, seed=0),
         lambda rng, n, T: (rng.standard_normal((n, N_IN)), _ids(rng, n, N_CLASSES)),
         (Slot(0, "x", "float"), Slot(1, "t", "ids", upper=N_CLASSES))),
    _lm("SimpleRnnlm", lambda: models.SimpleRnnlm(V, D, H, seed=0)),
    _lm("Rnnlm", lambda: models.Rnnlm(V, D, H, seed=0)),
    _lm("BetterRnnlm", lambda: models.BetterRnnlm(V, H, H, dropout_ratio=0.5, seed=0)),
    Spec("SimpleCBOW", models.SimpleCBOW, lambda: models.SimpleCBOW(V, H, window_size=1, seed=0),
         lambda rng, n, T: (_one_hot(_ids(rng, (n, 2))), _ids(rng, n)),
         (Slot(0, "contexts", "onehot"), Slot(1, "target", "ids"))),
    Spec("SimpleSkipGram", models.SimpleSkipGram, lambda: models.SimpleSkipGram(V, H, window_size=1, seed=0),
         lambda rng, n, T: (_ids(rng, (n, 2)), _one_hot(_ids(rng, n))),
         (Slot(0, "contexts", "ids"), Slot(1, "target", "onehot"))),
    Spec("CBOW", models.CBOW, lambda: models.CBOW(V, H, 1, CORPUS, sample_size=2, seed=0), _word2vec_batch,
         WORD2VEC_SLOTS, state=_sampler_state),
    Spec("SkipGram", models.SkipGram, lambda: models.SkipGram(V, H, 1, CORPUS, sample_size=2, seed=0),
         _word2vec_batch, WORD2VEC_SLOTS, state=_sampler_state),
    _seq2seq("Seq2seq", models.Seq2seq, lambda: models.Seq2seq(V, D, H, seed=0)),
    _seq2seq("PeekySeq2seq", models.PeekySeq2seq, lambda: models.PeekySeq2seq(V, D, H, seed=0)),
    _seq2seq("AttentionSeq2seq", models.AttentionSeq2seq, lambda: models.AttentionSeq2seq(V, D, H, seed=0)),
    _seq2seq("AttentionSeq2seq-bidirectional", models.AttentionSeq2seq,
             lambda: models.AttentionSeq2seq(V, D, H, seed=0, bidirectional=True)),
    _seq2seq("Transformer", models.Transformer,
             lambda: models.Transformer(V, d_model=8, n_heads=2, d_ff=8, n_layers=1, seed=0)),
    _seq2seq("Transformer-pad", models.Transformer,
             lambda: models.Transformer(V, d_model=8, n_heads=2, d_ff=8, n_layers=1, pad_id=0, seed=0)),
]
BY_NAME = {spec.name: spec for spec in SPECS}
SPEC_IDS = [spec.name for spec in SPECS]

# Exported classes without a row, and why (a new model must get a row or a reason here).
EXCLUDED = {
    "Word2Vec": "gensim-style trainer, not a forward(x, t) model: its bad-input suite is tests/test_word2vec.py",
    "FastText": "Word2Vec with n-grams, not a forward(x, t) model: its bad-input suite is tests/test_fasttext.py",
    "FastTextVectors": "word vectors, not a model: queries and unknown words are tested in tests/test_fasttext.py",
    "Encoder": "part of Seq2seq and PeekySeq2seq: every bad input reaches it through their rows",
    "Decoder": "part of Seq2seq: reached through its row",
    "PeekyDecoder": "part of PeekySeq2seq: reached through its row",
    "AttentionEncoder": "part of AttentionSeq2seq: reached through its rows (one per direction setting)",
    "AttentionDecoder": "part of AttentionSeq2seq: reached through its rows",
}
# Exported functions with bad-input tests at the end of this file.
FUNCTIONS_TESTED = {"eval_seq2seq", "seq2seq_accuracy", "fasttext_hash"}


# ----- library defects these cases found (strict xfails) --------------------------------------

# A silent answer, an error message that names nothing, or a changed state fails through pytest.fail
# without a traceback: formatting the tracebacks of the strict xfails would otherwise take most of
# the file's run time.
BAD_ANSWER = pytest.fail.Exception


def _fail(message):
    pytest.fail(message, pytrace=False)


# (row, input, case) -> (reason, the exception the defect shows up as); empty while no defect is known.
# The twelve recorded here before (lists refused with AttributeError, one-hot inputs cast before
# their dtype was checked, ids taken for one-hot rows, CBOW's 2-D target, the empty
# negative-sampling batch, refused calls that moved the language models' hidden state or the
# negative sampler, generate's float/bool/str start and skip ids, eval_seq2seq's unchecked
# answers) are fixed in the library; their cases below now pass.
DEFECTS = {}
LIST_DEFECTS = {}
# Refused calls that change the state a model carries into its next call.
STATE_DEFECTS = {}


def _param(*values, key, defects, id):
    found = defects.get(key)
    marks = [pytest.mark.xfail(strict=True, reason=found[0], raises=found[1])] if found else []
    return pytest.param(*values, id=id, marks=marks)


# ----- helpers ----------------------------------------------------------------------------------

def _refused(call, errors, words):
    """``call()`` must raise one of ``errors`` with a message naming one of ``words``; anything
    else propagates, and returning at all fails the test (a silent answer)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. NumPy's ComplexWarning on the way to a silent answer
            result = call()
    except errors as exc:
        message = str(exc)
        if not any(word in message for word in words):  # an empty message names nothing either
            _fail(f"{type(exc).__name__}({message!r}) names none of {words}")
        return exc
    _fail(f"no error: returned {result!r}")


def _copies(model):
    return [np.array(p, copy=True) for p in model.params]


def _assert_unchanged(model, before):
    assert len(model.params) == len(before)
    for k, (p, old) in enumerate(zip(model.params, before)):
        assert p.shape == old.shape and p.dtype == old.dtype and np.array_equal(p, old, equal_nan=True), \
            f"param {k} changed by a refused call"


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
            and np.array_equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _backend(name):
    return nullcontext() if name is None else fastnlp.use_backend(name)


# ----- every export has a row ------------------------------------------------------------------

def test_every_exported_model_has_a_row_or_a_reasoned_exclusion():
    exported = {name for name in models.__all__ if inspect.isclass(getattr(models, name))}
    covered = {spec.cls.__name__ for spec in SPECS}
    missing = exported - covered - EXCLUDED.keys()
    assert not missing, (f"models exported without a bad-input row: {sorted(missing)}; add a Spec to SPECS in "
                         f"{__file__} (or a reasoned entry in EXCLUDED)")
    assert not covered & EXCLUDED.keys(), "a class is both in SPECS and in EXCLUDED"
    assert EXCLUDED.keys() <= exported, f"stale exclusions: {sorted(EXCLUDED.keys() - exported)}"
    for spec in SPECS:
        assert getattr(models, spec.cls.__name__) is spec.cls and isinstance(spec.make(), spec.cls), spec.name
    functions = {name for name in models.__all__
                 if callable(getattr(models, name)) and not inspect.isclass(getattr(models, name))}
    untested = functions - FUNCTIONS_TESTED - EXCLUDED.keys()
    assert not untested, f"functions exported without bad-input tests here: {sorted(untested)}"
    assert FUNCTIONS_TESTED <= functions


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_a_row_declares_the_generation_api_its_model_has(spec):
    """A model with ``generate`` gets the generation tests (its row says which signature)."""
    assert hasattr(spec.cls, "generate") == (spec.kind in ("lm", "seq2seq"))
    if spec.kind == "lm":
        assert list(inspect.signature(spec.cls.generate).parameters)[1:3] == ["start_ids", "length"]
    elif spec.kind == "seq2seq":
        assert list(inspect.signature(spec.cls.generate).parameters)[1:4] == ["xs", "start_id", "sample_size"]


# ----- valid batches ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@SETTINGS
@given(n=batch_sizes, T=lengths, seed=seeds)
def test_valid_batch_gives_finite_loss_and_grads_of_param_shapes(spec, n, T, seed):
    model = spec.make()
    x, t = spec.batch(np.random.default_rng(seed), n, T)
    loss = model.forward(x, t)
    assert np.ndim(loss) == 0 and math.isfinite(float(loss))
    model.backward()
    assert len(model.grads) == len(model.params)
    for k, (p, g) in enumerate(zip(model.params, model.grads)):
        assert g.shape == p.shape, f"grad {k} has shape {g.shape}, its param {p.shape}"
        assert np.isfinite(g).all(), f"grad {k} is not finite"


LIST_CASES = [_param(spec, slot, key=(spec.name, slot.name), defects=LIST_DEFECTS, id=f"{spec.name}-{slot.name}")
              for spec in SPECS for slot in spec.slots]


@pytest.mark.parametrize("spec, slot", LIST_CASES)
@SETTINGS
@given(n=batch_sizes, T=lengths, seed=seeds)
def test_a_rectangular_list_works_as_the_array(spec, slot, n, T, seed):
    """Lists of ints are accepted wherever id arrays are (kernels.validate.as_id_array)."""
    args = list(spec.batch(np.random.default_rng(seed), n, T))
    expected = spec.make().forward(*args)
    args[slot.arg] = args[slot.arg].tolist()
    assert float(spec.make().forward(*args)) == pytest.approx(float(expected), rel=1e-6)


# ----- bad batches ------------------------------------------------------------------------------

OUT_OF_RANGE = ("negative id", "id == vocab size", "huge id")
ID_KINDS = OUT_OF_RANGE + ("float ids", "bool ids", "ragged list", "extra axis", "missing axis")
DENSE_KINDS = ("bool dtype", "complex dtype", "str dtype", "object dtype", "wrong width", "ragged list", "extra axis")
SHAPE_WORDS = ("shape", "columns", "questions but")


def _batch_kinds(spec):
    kinds = ["empty batch", "one more target row"]
    if spec.sequence:
        kinds.append("empty sequence")
    if spec.kind == "lm":
        kinds.append("targets one step longer")
    return kinds


def _ragged(a):
    """A list that NumPy cannot make rectangular: one more top-level entry whose depth or length
    differs from the others."""
    rows = a.tolist()
    first = rows[0]
    return rows + [first + [first[0]] if isinstance(first, list) else [first, first]]


def _bad_input(spec, slot, kind, rng, n, T, draw):
    """(args, exceptions, words): a batch spoiled as ``kind`` says, and how it must be refused."""
    if slot is None:  # the batch as a whole
        if kind == "empty batch":
            return spec.batch(rng, 0, T), ValueError, ("empty",)
        if kind == "empty sequence":
            return spec.batch(rng, n, 0), ValueError, ("empty", "T >= 1")
        x, t = spec.batch(rng, n, T)
        if kind == "one more target row":
            return (x, np.concatenate([t, t[:1]])), ValueError, SHAPE_WORDS
        if kind == "targets one step longer":
            return (x, spec.batch(rng, n, T + 1)[1]), ValueError, SHAPE_WORDS
        raise AssertionError(kind)
    args = list(spec.batch(rng, n, T))
    a = args[slot.arg]
    if kind in OUT_OF_RANGE:
        a = np.array(a, dtype=np.int64)
        if kind == "negative id":
            bad = draw(st.integers(-2**62, -1).filter(lambda v: v != slot.ignore))
        elif kind == "id == vocab size":
            bad = slot.upper
        else:
            bad = draw(st.integers(slot.upper + 1, 2**63 - 1))
        a.flat[draw(st.integers(0, a.size - 1))] = bad
        errors, words = IndexError, ("id", "label", "out of range", "outside")
    elif kind in ("float ids", "bool ids", "bool dtype", "complex dtype", "str dtype", "object dtype"):
        dtype = {"float ids": np.float64, "bool ids": bool, "bool dtype": bool, "complex dtype": np.complex128,
                 "str dtype": str, "object dtype": object}[kind]
        a = (a % 2 if kind == "bool ids" else a).astype(dtype)
        errors, words = TypeError, (str(a.dtype),)
    elif kind == "ragged list":
        a = _ragged(a)
        errors, words = (TypeError, ValueError), ("ragged", "rectangular", "inhomogeneous")
    elif kind == "extra axis":
        a = a[..., None]
        errors, words = ValueError, SHAPE_WORDS
    elif kind == "missing axis":
        a = a.reshape(-1) if a.ndim > 1 else a[0]
        errors, words = ValueError, SHAPE_WORDS
    elif kind == "wrong width":
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,), a.dtype)], axis=-1)
        errors, words = ValueError, SHAPE_WORDS
    else:
        raise AssertionError(kind)
    args[slot.arg] = a
    return tuple(args), errors, words


BAD_CASES = [(spec, slot, kind) for spec in SPECS for slot in spec.slots
             for kind in (ID_KINDS if slot.role == "ids" else DENSE_KINDS)]
BAD_CASES += [(spec, None, kind) for spec in SPECS for kind in _batch_kinds(spec)]


def _case_id(spec, slot, kind):
    return f"{spec.name}-{slot.name if slot else 'batch'}-{kind.replace(' ', '_')}"


@pytest.mark.parametrize("spec, slot, kind", [
    _param(spec, slot, kind, key=(spec.name, slot and slot.name, kind), defects=DEFECTS,
           id=_case_id(spec, slot, kind)) for spec, slot, kind in BAD_CASES])
@SETTINGS
@given(data=st.data(), n=batch_sizes, T=lengths, seed=seeds)
def test_bad_batch_is_refused_naming_the_problem_and_changes_no_param(spec, slot, kind, data, n, T, seed):
    """Out-of-range ids go through every CPU backend: the range check is each backend's kernel."""
    args, errors, words = _bad_input(spec, slot, kind, np.random.default_rng(seed), n, T, data.draw)
    for backend in CPU_AVAILABLE if kind in OUT_OF_RANGE else [None]:
        model = spec.make()
        before = _copies(model)
        with _backend(backend):
            _refused(lambda: model.forward(*args), errors, words)
        _assert_unchanged(model, before)
        with pytest.raises(RuntimeError, match="before forward"):  # nothing half-done to backpropagate
            model.backward()


STATE_CASES = [(spec, slot, kind) for spec, slot, kind in BAD_CASES if spec.state]


@pytest.mark.parametrize("spec, slot, kind", [
    _param(spec, slot, kind, key=(spec.name, slot and slot.name, kind), defects=STATE_DEFECTS,
           id=_case_id(spec, slot, kind)) for spec, slot, kind in STATE_CASES])
@settings(SETTINGS, max_examples=4)
@given(data=st.data(), n=batch_sizes, T=lengths, seed=seeds)
def test_refused_batch_leaves_the_carried_state_alone(spec, slot, kind, data, n, T, seed):
    """After a valid batch, a refused one: the state the next batch starts from (hidden state,
    dropout generators, the negative sampler's counter) must still be the valid batch's."""
    rng = np.random.default_rng(seed)
    model = spec.make()
    model.forward(*spec.batch(rng, n, T))
    args, _, _ = _bad_input(spec, slot, kind, rng, n, T, data.draw)
    before = spec.state(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.forward(*args)
    except (TypeError, ValueError, IndexError, AttributeError):
        if not _same(spec.state(model), before):
            _fail("a refused call changed the carried state")
    # else: a silent answer, which the bad-batch test reports


RAGGED_WORDING_DEFECTS = {}  # none left: every model names a ragged list alike


@pytest.mark.parametrize("spec, slot", [
    _param(spec, slot, key=(spec.name, slot.name), defects=RAGGED_WORDING_DEFECTS, id=f"{spec.name}-{slot.name}")
    for spec in SPECS for slot in spec.slots])
def test_a_ragged_list_raises_type_error_saying_ragged(spec, slot):
    """The bad-batch test also lets NumPy's ValueError through; every model should say the same."""
    args = list(spec.batch(np.random.default_rng(0), 3, 2))
    args[slot.arg] = _ragged(args[slot.arg])
    model = spec.make()
    before = _copies(model)
    try:
        model.forward(*args)
    except TypeError as exc:
        assert "ragged" in str(exc), str(exc)
    except ValueError as exc:
        _fail(f"ValueError({str(exc)!r}), not TypeError")
    else:
        _fail("no error")
    _assert_unchanged(model, before)


@pytest.mark.parametrize("name", ["SimpleCBOW", "SimpleSkipGram"])
def test_simple_word2vec_takes_the_books_one_hot_and_ids_alike(name):
    """The book passes contexts (N, 2, V) and target (N, V), both one-hot; the loss layer's
    other input may be ids instead, with the same loss."""
    rng = np.random.default_rng(0)
    contexts, target = _ids(rng, (5, 2)), _ids(rng, 5)
    book = BY_NAME[name].make().forward(_one_hot(contexts), _one_hot(target))
    if name == "SimpleCBOW":
        other = BY_NAME[name].make().forward(_one_hot(contexts), target)
    else:
        other = BY_NAME[name].make().forward(contexts, _one_hot(target))
    assert float(other) == pytest.approx(float(book), rel=1e-6)


FLOAT_CASES = [(spec, slot) for spec in SPECS for slot in spec.slots if slot.role != "ids"]


@pytest.mark.parametrize("spec, slot", FLOAT_CASES, ids=[f"{s.name}-{slot.name}" for s, slot in FLOAT_CASES])
@SETTINGS
@given(data=st.data(), bad=st.sampled_from([np.nan, np.inf, -np.inf]), n=batch_sizes, seed=seeds)
def test_nan_or_inf_in_a_float_input_raises_non_finite_error(spec, slot, data, bad, n, seed):
    args = list(spec.batch(np.random.default_rng(seed), n, 2))
    x = args[slot.arg].astype(np.float64)
    x.flat[data.draw(st.integers(0, x.size - 1))] = bad
    args[slot.arg] = x
    model = spec.make()
    before = _copies(model)
    exc = _refused(lambda: model.forward(*args), ValueError, ("NaN or inf",))
    assert isinstance(exc, L.NonFiniteError)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("spec", [
    pytest.param(BY_NAME[name], id=name) for name in ("SimpleCBOW", "SimpleSkipGram")])
@SETTINGS
@given(seed=seeds, row=st.integers(0, V - 1))
def test_ids_where_one_hot_rows_are_expected_are_refused(spec, seed, row):
    """With N == V an id vector has the length of one one-hot row: the shape must still be named.
    The other input is drawn so that it passes as the loss layer's target."""
    rng = np.random.default_rng(seed)
    model = spec.make()
    if spec.name == "SimpleCBOW":  # contexts ids (V, 2); target, read as one one-hot row of V scores
        contexts, target = _ids(rng, (V, 2)), np.eye(V, dtype=np.int64)[row]
    else:  # target ids (V,); each contexts column, read as one one-hot row of V scores
        contexts, target = np.eye(V, dtype=np.int64)[[row, row]].T.copy(), _ids(rng, V)
    before = _copies(model)
    _refused(lambda: model.forward(contexts, target), ValueError, ("shape", "one-hot"))
    _assert_unchanged(model, before)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_backward_before_forward_raises(spec):
    with pytest.raises(RuntimeError, match="before forward"):
        spec.make().backward()


# ----- training -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_one_epoch_changes_every_param_keeps_it_finite_and_bad_data_changes_none(spec):
    rng = np.random.default_rng(0)
    model = spec.make()
    before = _copies(model)
    if spec.kind == "lm":
        corpus = _ids(rng, 31)
        trainer = fastnlp.RnnlmTrainer(model, optim.SGD(lr=0.5))
        history = trainer.fit(corpus[:-1], corpus[1:], max_epoch=1, batch_size=2, time_size=3, eval_interval=1,
                              progress=False)
        bad = corpus[1:].copy()
        bad[-1] = V
        refit = lambda: trainer.fit(corpus[:-1], bad, max_epoch=1, batch_size=2, time_size=3,  # noqa: E731
                                    progress=False)
    else:
        data = spec.batch(rng, 4, 3)
        trainer = fastnlp.Trainer(model, optim.SGD(lr=0.5), seed=0)
        history = trainer.fit(*data, max_epoch=1, batch_size=4, progress=False)
        slot = next(slot for slot in spec.slots if slot.role == "ids")
        bad = list(data)
        bad[slot.arg] = np.array(bad[slot.arg], copy=True)
        bad[slot.arg].flat[-1] = slot.upper
        refit = lambda: trainer.fit(*bad, max_epoch=1, batch_size=4, progress=False)  # noqa: E731
    assert history and all(math.isfinite(v) for v in history)
    for k, (p, old) in enumerate(zip(model.params, before)):
        assert np.isfinite(p).all(), f"param {k} is not finite after one epoch"
        assert not np.array_equal(p, old), f"param {k} did not change in one epoch"
    trained = _copies(model)
    _refused(refit, IndexError, ("id", "label", "out of range", "outside"))
    _assert_unchanged(model, trained)


# ----- generation -------------------------------------------------------------------------------

SEQ2SEQ = [spec for spec in SPECS if spec.kind == "seq2seq"]
LMS = [spec for spec in SPECS if spec.kind == "lm"]


@pytest.mark.parametrize("spec", SEQ2SEQ, ids=[s.name for s in SEQ2SEQ])
@SETTINGS
@given(n=batch_sizes, T=lengths, seed=seeds, size=st.integers(0, 3), start=st.integers(0, V - 1))
def test_seq2seq_generate_gives_ids_of_shape_n_by_sample_size(spec, n, T, seed, size, start):
    xs, _ = spec.batch(np.random.default_rng(seed), n, T)
    out = spec.make().generate(xs, start, size)  # size 0: an empty (N, 0) answer
    assert out.shape == (n, size) and out.dtype.kind in "iu"
    assert ((0 <= out) & (out < V)).all()


SEQ2SEQ_BAD = ("negative start id", "start id == vocab size", "huge start id", "float start id", "bool start id",
               "start ids for other rows", "negative sample_size", "float sample_size")


@pytest.mark.parametrize("spec, which", [(s, w) for s in SEQ2SEQ for w in SEQ2SEQ_BAD],
                         ids=[f"{s.name}-{w.replace(' ', '_')}" for s in SEQ2SEQ for w in SEQ2SEQ_BAD])
@SETTINGS
@given(data=st.data(), n=batch_sizes, T=lengths, seed=seeds)
def test_seq2seq_generate_refuses_bad_start_and_sample_size(spec, which, data, n, T, seed):
    xs, _ = spec.batch(np.random.default_rng(seed), n, T)
    start, size = 0, 2
    if which == "negative start id":
        start, errors, words = data.draw(st.integers(-2**62, -1)), IndexError, ("negative",)
    elif which == "start id == vocab size":
        start, errors, words = V, IndexError, ("out of range",)
    elif which == "huge start id":
        start, errors, words = data.draw(st.integers(V + 1, 2**63 - 1)), IndexError, ("out of range",)
    elif which in ("float start id", "bool start id"):
        start = float(data.draw(st.integers(0, V - 1))) if which == "float start id" else True
        errors, words = (TypeError, ValueError), ("start_id",)
    elif which == "start ids for other rows":
        start, errors, words = np.zeros(n + 1, dtype=np.int64), ValueError, ("start_id",)
    elif which == "negative sample_size":
        size, errors, words = data.draw(st.integers(-2**62, -1)), ValueError, ("sample_size",)
    else:
        size, errors, words = 2.0, (TypeError, ValueError), ("sample_size",)
    model = spec.make()
    before = _copies(model)
    _refused(lambda: model.generate(xs, start, size), errors, words)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("spec", LMS, ids=[s.name for s in LMS])
@SETTINGS
@given(start=st.lists(st.integers(0, V - 1), min_size=1, max_size=3), length=st.integers(0, 3),
       n=batch_sizes, T=lengths, seed=seeds)
def test_lm_generate_continues_the_start_and_restores_the_state(spec, start, length, n, T, seed):
    model = spec.make()
    model.forward(*spec.batch(np.random.default_rng(seed), n, T))  # a carried state to restore
    state = _lm_state(model)
    ids = model.generate(start, length)  # length 0: the start ids and nothing more
    assert ids[:len(start)] == start and len(ids) == len(start) + length
    assert all(isinstance(i, int) and 0 <= i < V for i in ids)
    assert _same(_lm_state(model), state)


LM_BAD = {
    "negative start id": (IndexError, ("start id",), None),
    "start id == vocab size": (IndexError, ("start id",), None),
    "huge start id": (IndexError, ("start id",), None),
    "no start id": (ValueError, ("start id",), None),
    "negative length": (ValueError, ("length",), None),
    "float length": ((TypeError, ValueError), ("length",), None),
    "skip id == vocab size": (IndexError, ("skip_ids",), None),
    "float start id": (TypeError, ("float64",), None),
    "bool start id": (TypeError, ("bool",), None),
    "numeric str start id": (TypeError, ("<U1", "str"), None),
    "float skip id": (TypeError, ("float64",), None),
    "bool skip id": (TypeError, ("bool",), None),
}


@pytest.mark.parametrize("spec, which", [
    _param(s, w, key=w, defects={w: (LM_BAD[w][2], BAD_ANSWER)} if LM_BAD[w][2] else {},
           id=f"{s.name}-{w.replace(' ', '_')}") for s in LMS for w in LM_BAD])
@SETTINGS
@given(data=st.data(), n=batch_sizes, T=lengths, seed=seeds)
def test_lm_generate_refuses_bad_start_length_and_skip_ids(spec, which, data, n, T, seed):
    errors, words, _ = LM_BAD[which]
    start, kwargs = [data.draw(st.integers(0, V - 1))], {"length": 2}
    if which == "negative start id":
        start = start + [data.draw(st.integers(-2**62, -1))]
    elif which == "start id == vocab size":
        start = [V] + start
    elif which == "huge start id":
        start = start + [data.draw(st.integers(V + 1, 2**63 - 1))]
    elif which == "no start id":
        start = []
    elif which == "negative length":
        kwargs["length"] = data.draw(st.integers(-2**62, -1))
    elif which == "float length":
        kwargs["length"] = 2.0
    elif which == "skip id == vocab size":
        kwargs["skip_ids"] = [V]
    elif which == "float start id":
        start = np.array(start, dtype=np.float64) + 0.5
    elif which == "bool start id":
        start = np.array([True])
    elif which == "numeric str start id":
        start = str(start[0])
    elif which == "float skip id":
        kwargs["skip_ids"] = [data.draw(st.integers(0, V - 1)) + 0.5]
    else:
        kwargs["skip_ids"] = [True]
    model = spec.make()
    model.forward(*spec.batch(np.random.default_rng(seed), n, T))
    before, state = _copies(model), _lm_state(model)
    _refused(lambda: model.generate(start, **kwargs), errors, words)
    _assert_unchanged(model, before)
    assert _same(_lm_state(model), state)


@pytest.mark.parametrize("spec", LMS, ids=[s.name for s in LMS])
@pytest.mark.parametrize("start", ["a", None, 2.0, [1, 2.0], [[1, 2], [3]]],
                         ids=["str", "None", "float", "mixed", "ragged"])
def test_lm_generate_names_the_type_of_bad_start_ids(spec, start):
    model = spec.make()
    words = ("str", "NoneType", "float64", "ragged")
    _refused(lambda: model.generate(start, 2), TypeError, words)
    if start is not None:  # skip_ids=None: nothing skipped
        _refused(lambda: model.generate([1], 2, skip_ids=start), TypeError, words)


@pytest.mark.parametrize("spec", LMS, ids=[s.name for s in LMS])
def test_lm_forward_takes_padding_and_one_hot_labels(spec):
    """-1 is TimeSoftmaxWithLoss's padding label; one-hot labels give the loss of their ids."""
    rng = np.random.default_rng(0)
    xs, ts = spec.batch(rng, 2, 3)
    ids_loss = spec.make().forward(xs, ts, **({"train_flg": False} if spec.name == "BetterRnnlm" else {}))
    one_hot = spec.make().forward(xs, _one_hot(ts), **({"train_flg": False} if spec.name == "BetterRnnlm" else {}))
    assert float(one_hot) == pytest.approx(float(ids_loss), rel=1e-6)
    padded = ts.copy()
    padded[0, 0] = -1
    assert math.isfinite(float(spec.make().forward(xs, padded)))


# ----- the exported functions -------------------------------------------------------------------

ACCURACY_BAD = {
    "batch_size 0": (ValueError, ("batch_size",)),
    "bool batch_size": (ValueError, ("batch_size",)),
    "1-D questions": (ValueError, ("shape",)),
    "answers of the start symbol only": (ValueError, ("start symbol",)),
    "one more answer row": (ValueError, ("questions but",)),
    "no questions": (ValueError, ("no questions",)),
    "question id out of range": (IndexError, ("outside the vocabulary",)),
    "start id out of range": (IndexError, ("out of range",)),
    "float questions": (TypeError, ("float64",)),
    "show_wrong without id_to_char": (ValueError, ("id_to_char",)),
}


@pytest.mark.parametrize("spec, which", [(s, w) for s in SEQ2SEQ for w in ACCURACY_BAD],
                         ids=[f"{s.name}-{w.replace(' ', '_')}" for s in SEQ2SEQ for w in ACCURACY_BAD])
@SETTINGS
@given(n=batch_sizes, T=lengths, seed=seeds)
def test_seq2seq_accuracy_refuses_bad_input(spec, which, n, T, seed):
    rng = np.random.default_rng(seed)
    x, t = spec.batch(rng, n, T)
    model = spec.make()
    assert 0.0 <= models.seq2seq_accuracy(model, x, t, batch_size=2) <= 1.0
    kwargs = {}
    if which == "batch_size 0":
        kwargs["batch_size"] = 0
    elif which == "bool batch_size":
        kwargs["batch_size"] = True
    elif which == "1-D questions":
        x = x[0]
    elif which == "answers of the start symbol only":
        t = t[:, :1]
    elif which == "one more answer row":
        t = np.concatenate([t, t[:1]])
    elif which == "no questions":
        x, t = x[:0], t[:0]
    elif which == "question id out of range":
        x = x.copy()
        x[-1, -1] = V
    elif which == "start id out of range":
        t = t.copy()
        t[0, 0] = V
    elif which == "float questions":
        x = x.astype(np.float64)
    else:
        kwargs["show_wrong"] = 1
    before = _copies(model)
    errors, words = ACCURACY_BAD[which]
    _refused(lambda: models.seq2seq_accuracy(model, x, t, **kwargs), errors, words)
    _assert_unchanged(model, before)


EVAL_BAD = {
    "question id out of range": (IndexError, ("outside the vocabulary",), None),
    "float question": (TypeError, ("float64",), None),
    "start id out of range": (IndexError, ("out of range",), None),
    "correct answer of the start symbol only": (ValueError, ("start symbol",), None),
    "float correct answer": (TypeError, ("float64",), None),
    "correct id out of range": (IndexError, ("out of range", "outside"), None),
}


@pytest.mark.parametrize("spec, which", [
    _param(s, w, key=w, defects={w: (EVAL_BAD[w][2], BAD_ANSWER)} if EVAL_BAD[w][2] else {},
           id=f"{s.name}-{w.replace(' ', '_')}") for s in SEQ2SEQ for w in EVAL_BAD])
@SETTINGS
@given(T=lengths, seed=seeds, start=st.integers(0, V - 1))
def test_eval_seq2seq_refuses_bad_input(spec, which, T, seed, start):
    """The correct answers are built from the model's own guess, so that only the defect decides."""
    rng = np.random.default_rng(seed)
    question = _ids(rng, T)
    model = spec.make()
    chars = "abcdefg"[:V]  # id_to_char may be any sequence (the book uses a dict)
    guess = model.generate(question[None], start, 2)[0]
    correct = np.concatenate([[start], guess])
    assert models.eval_seq2seq(model, question, correct, chars) == 1
    if which == "question id out of range":
        question = question.copy()
        question[0] = V
    elif which == "float question":
        question = question.astype(np.float64)
    elif which == "start id out of range":
        correct[0] = V
    elif which == "correct answer of the start symbol only":
        correct = correct[:1]
    elif which == "float correct answer":
        correct = correct + 0.5
    else:
        correct[1] -= V  # the same character, read from the end of chars
    before = _copies(model)
    _refused(lambda: models.eval_seq2seq(model, question, correct, chars), EVAL_BAD[which][0], EVAL_BAD[which][1])
    _assert_unchanged(model, before)


@pytest.mark.parametrize("bad", [3, 2.5, None, ["ab"], np.array([1, 2])])
def test_fasttext_hash_takes_only_text(bad):
    with pytest.raises(TypeError, match="takes a str"):
        models.fasttext_hash(bad)
