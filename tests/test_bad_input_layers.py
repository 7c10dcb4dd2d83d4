"""Generated garbage thrown at every public layer and optimizer.

Each case must end in one of two ways: a documented exception (TypeError, ValueError and its
NonFiniteError, IndexError, RuntimeError) whose message names the problem, or a finite answer equal
to a plain float64 NumPy reference. A silent NaN, inf or wrongly shaped result fails.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from fastnlp import layers as L
from fastnlp import optim

SETTINGS = settings(max_examples=40, deadline=None)
D_IN, D_OUT, N_CLASSES, VOCAB = 4, 3, 5, 6
_weights = np.random.default_rng(0)
W_IN_OUT = _weights.standard_normal((D_IN, D_OUT))
BIAS = _weights.standard_normal(D_OUT)
EMBED = _weights.standard_normal((VOCAB, D_OUT))


def _dropout_reference(x, seed=0, ratio=0.4):
    """The layer's generator gives one uint64 per call; element i is kept when the top 32 bits of
    splitmix64 draw i of that stream are below keep * 2**32 (kernels/dropout)."""
    from fastnlp.kernels.sgns.reference import draw

    keep = 1 - ratio
    stream = np.uint64(np.random.default_rng(seed).bit_generator.random_raw())
    draws = draw(stream, np.arange(x.size, dtype=np.uint64)) >> np.uint64(32)
    kept = (draws < np.uint64(round(keep * 2**32))).reshape(x.shape)
    return x * (kept / keep)


def _softmax_loss_reference(x, t, ignore=None):
    labels = t.argmax(axis=-1) if t.shape == x.shape else t
    log_y = special.log_softmax(x.reshape(-1, x.shape[-1]), axis=-1)
    labels = labels.reshape(-1)
    keep = np.ones(labels.shape, bool) if ignore is None else labels != ignore
    picked = -log_y[np.arange(len(labels))[keep], labels[keep]]
    return picked.sum() / max(keep.sum(), 1) if ignore is not None else picked.mean()


@dataclass(frozen=True)
class Spec:
    """How to build one layer, give it valid inputs for a batch shape, and what it must compute.

    ``float_arg`` is the position of the differentiable float input (None: ids only)."""
    name: str
    make: Callable
    inputs: Callable  # (rng, batch shape, float input or None) -> tuple of inputs
    reference: Callable  # float64 inputs -> expected output
    float_arg: int | None = 0
    accepts: str = "iuf"  # dtype kinds the layer takes for that input (ids for Embedding)


def _x(rng, lead, x, width=N_CLASSES):
    return rng.standard_normal(lead + (width,)) * 3 if x is None else x


def _ids(rng, lead, upper, low=0):
    return rng.integers(low, upper, lead)


SPECS = [
    Spec("MatMul", lambda: L.MatMul(W_IN_OUT.copy()), lambda rng, lead, x: (_x(rng, lead, x, D_IN),),
         lambda x: x @ W_IN_OUT),
    Spec("Affine", lambda: L.Affine(W_IN_OUT.copy(), BIAS.copy()), lambda rng, lead, x: (_x(rng, lead, x, D_IN),),
         lambda x: x @ W_IN_OUT + BIAS),
    Spec("Sigmoid", L.Sigmoid, lambda rng, lead, x: (_x(rng, lead, x),), special.expit),
    Spec("ReLU", L.ReLU, lambda rng, lead, x: (_x(rng, lead, x),), lambda x: np.maximum(x, 0)),
    Spec("Softmax", L.Softmax, lambda rng, lead, x: (_x(rng, lead, x),), lambda x: special.softmax(x, axis=-1)),
    Spec("Dropout", lambda: L.Dropout(0.4, seed=0), lambda rng, lead, x: (_x(rng, lead, x),), _dropout_reference,
         accepts="f"),
    Spec("Dropout-eval", lambda: L.Dropout(0.4, seed=0).eval(), lambda rng, lead, x: (_x(rng, lead, x),),
         lambda x: x, accepts="f"),
    Spec("SoftmaxWithLoss", L.SoftmaxWithLoss,
         lambda rng, lead, x: (_x(rng, lead, x), _ids(rng, lead, N_CLASSES)), _softmax_loss_reference),
    Spec("SoftmaxWithLoss-onehot", L.SoftmaxWithLoss,
         lambda rng, lead, x: (_x(rng, lead, x), np.eye(N_CLASSES)[_ids(rng, lead, N_CLASSES)]),
         _softmax_loss_reference),
    Spec("SoftmaxWithLoss-ignore", lambda: L.SoftmaxWithLoss(ignore_label=-1),
         lambda rng, lead, x: (_x(rng, lead, x), _ids(rng, lead, N_CLASSES, low=-1)),
         lambda x, t: _softmax_loss_reference(x, t, ignore=-1)),
    Spec("SigmoidWithLoss", L.SigmoidWithLoss,
         lambda rng, lead, x: (_x(rng, lead, x), rng.random(lead + (N_CLASSES,))),
         lambda x, t: np.mean(np.logaddexp(0, x) - x * t)),
    Spec("Embedding", lambda: L.Embedding(EMBED.copy()), lambda rng, lead, x: (_ids(rng, lead, VOCAB),),
         lambda idx: EMBED[idx], float_arg=None, accepts="iu"),
]
BY_NAME = {spec.name: spec for spec in SPECS}
FLOAT_SPECS = [spec for spec in SPECS if spec.float_arg is not None]
DOCUMENTED = (TypeError, ValueError, IndexError, RuntimeError)

lead_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)
seeds = st.integers(0, 2**32 - 1)


def _reference(spec, inputs):
    """Expected output, or None where the answer is undefined (NumPy raises or gives NaN)."""
    as_float = [a.astype(np.float64) if k == spec.float_arg else a for k, a in enumerate(inputs)]
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            expected = np.asarray(spec.reference(*as_float))
    except (ValueError, IndexError):
        return None
    return expected if np.isfinite(expected).all() else None


def _assert_clean_error(excinfo, *words):
    message = str(excinfo.value)
    assert any(word in message for word in words), f"{type(excinfo.value).__name__}({message!r}) names none of {words}"


TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def _run(spec, inputs, words):
    """Forward must either match the reference (finite) or raise a documented error naming ``words``."""
    expected = _reference(spec, inputs)
    layer = spec.make()
    if expected is None:
        with pytest.raises(DOCUMENTED) as excinfo:
            layer.forward(*inputs)
        _assert_clean_error(excinfo, *words)
        return None
    try:
        out = layer.forward(*inputs)
    except DOCUMENTED as exc:
        message = str(exc)
        assert any(word in message for word in words), f"{type(exc).__name__}({message!r}) names none of {words}"
        return None
    out = np.asarray(out)
    assert out.shape == expected.shape and np.isfinite(out).all()
    assert out.dtype.kind == "f" or spec.name == "ReLU"  # ReLU of integers stays exact
    # As precise as the coarsest float the layer computed in (integers count as float32 or wider).
    computed = [out.dtype] + [a.dtype if a.dtype.kind == "f" else np.result_type(a.dtype, np.float32)
                              for a in inputs if a.dtype.kind in "iuf"]
    tol = max(TOLERANCE.get(np.dtype(d), 0.0) for d in computed if np.dtype(d).kind == "f")
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    return layer, out


# ----- layers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_backward_before_forward(spec):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        spec.make().backward(np.ones((2, N_CLASSES)))


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@SETTINGS
@given(lead=lead_shapes, seed=seeds)
def test_valid_inputs_of_any_batch_shape_give_the_reference_answer(spec, lead, seed):
    """Empty, one-element and 0-d batches included: the answer is right, or (for a mean over
    nothing) a ValueError that says the batch is empty."""
    rng = np.random.default_rng(seed)
    inputs = spec.inputs(rng, lead, None)
    result = _run(spec, inputs, ("empty",))
    if result is None:
        return
    layer, out = result
    dout = 1.0 if out.ndim == 0 else rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    if spec.float_arg is not None:
        assert dx.shape == inputs[spec.float_arg].shape and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in layer.grads)


DTYPES = [np.bool_, np.int8, np.int64, np.uint8, np.float16, np.float32, np.complex128, object, "U8"]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@SETTINGS
@given(dtype=st.sampled_from(DTYPES), lead=lead_shapes, seed=seeds)
def test_a_dtype_is_either_computed_correctly_or_named(spec, dtype, lead, seed):
    """Integers are real numbers (the book feeds one-hot int rows to MatMul); bool, complex,
    object and strings never are. Dropout needs floats, Embedding integer ids."""
    rng = np.random.default_rng(seed)
    inputs = list(spec.inputs(rng, lead, None))
    k = 0 if spec.float_arg is None else spec.float_arg  # the ids of Embedding, else the float input
    inputs[k] = inputs[k].astype(dtype)
    if np.dtype(dtype).kind in spec.accepts:
        _run(spec, tuple(inputs), ("empty",))
    else:
        with pytest.raises(TypeError, match=re.escape(f"dtype {np.dtype(dtype)}")):
            spec.make().forward(*inputs)


@pytest.mark.parametrize("spec", FLOAT_SPECS, ids=[s.name for s in FLOAT_SPECS])
@SETTINGS
@given(data=st.data(), bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       lead=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4), seed=seeds)
def test_nan_or_inf_input_raises_non_finite_error(spec, data, bad, lead, seed):
    rng = np.random.default_rng(seed)
    inputs = list(spec.inputs(rng, lead, None))
    x = inputs[spec.float_arg].copy()
    x.flat[data.draw(st.integers(0, x.size - 1))] = bad
    inputs[spec.float_arg] = x
    with pytest.raises(L.NonFiniteError, match="NaN or inf"):
        spec.make().forward(*inputs)


@pytest.mark.parametrize("spec", FLOAT_SPECS, ids=[s.name for s in FLOAT_SPECS])
@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6), seed=seeds)
def test_any_input_shape_is_either_named_or_computed_correctly(spec, shape, seed):
    """Float input of an arbitrary shape (other inputs built to fit its leading axes; class ids
    drawn for 5 classes, so fewer classes make them out of range)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    lead = shape[:-1] if shape else ()
    inputs = spec.inputs(rng, lead, x)
    _run(spec, inputs, ("shape", "empty", "out of range"))


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@SETTINGS
@given(kind=st.sampled_from(["nan", "inf", "wrong shape", "extra axis", "complex", "object"]),
       lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), seed=seeds)
def test_garbage_dout_is_refused(spec, kind, lead, seed):
    """NumPy would broadcast a wrongly shaped dout into a wrong gradient without a word."""
    rng = np.random.default_rng(seed)
    layer = spec.make()
    out = np.asarray(layer.forward(*spec.inputs(rng, lead, None)))
    dout = np.ones(out.shape)
    if kind == "nan" or kind == "inf":
        dout[(0,) * dout.ndim] = np.nan if kind == "nan" else np.inf
        error, words = L.NonFiniteError, ("NaN or inf",)
    elif kind == "wrong shape":
        dout = np.ones(out.shape[:-1] + (out.shape[-1] + 1,)) if out.ndim else np.ones(2)
        error, words = ValueError, ("shape",)
    elif kind == "extra axis":
        dout = dout[None]
        error, words = ValueError, ("shape",)
    else:
        dout = dout.astype(complex if kind == "complex" else object)
        error, words = TypeError, (str(dout.dtype),)
    with pytest.raises(error) as excinfo:
        layer.backward(dout)
    _assert_clean_error(excinfo, *words)


@SETTINGS
@given(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), seed=seeds,
       which=st.sampled_from(["too big", "negative", "float ids", "soft one-hot", "nan one-hot", "bool ids"]))
def test_softmax_with_loss_refuses_garbage_targets(lead, seed, which):
    rng = np.random.default_rng(seed)
    x, t = BY_NAME["SoftmaxWithLoss"].inputs(rng, lead, None)
    index = (0,) * len(lead)
    if which == "too big":
        t[index] = N_CLASSES
        error, words = IndexError, ("out of range",)
    elif which == "negative":
        t[index] = -1
        error, words = IndexError, ("out of range",)
    elif which in ("float ids", "bool ids"):
        t = t.astype(float if which == "float ids" else bool)
        error, words = TypeError, (str(t.dtype),)
    else:
        t = np.eye(N_CLASSES)[t]
        t[index + (0,)] = 0.5 if which == "soft one-hot" else np.nan
        error, words = ValueError, ("one-hot",)
    with pytest.raises(error) as excinfo:
        L.SoftmaxWithLoss().forward(x, t)
    _assert_clean_error(excinfo, *words)


@SETTINGS
@given(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), seed=seeds,
       bad=st.sampled_from([np.nan, np.inf, -0.5, 1.5]))
def test_sigmoid_with_loss_refuses_targets_outside_0_1(lead, seed, bad):
    rng = np.random.default_rng(seed)
    x, t = BY_NAME["SigmoidWithLoss"].inputs(rng, lead, None)
    t[(0,) * t.ndim] = bad
    with pytest.raises(ValueError, match=r"NaN or inf|\[0, 1\]"):
        L.SigmoidWithLoss().forward(x, t)


@pytest.mark.parametrize("make", [
    lambda W: L.MatMul(W), lambda W: L.Affine(W, np.zeros(W.shape[-1] if W.ndim else 1)), lambda W: L.Embedding(W),
], ids=["MatMul", "Affine", "Embedding"])
@SETTINGS
@given(W=hnp.arrays(st.sampled_from([np.int64, np.bool_, np.complex128, np.float64]),
                    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
def test_parameters_must_be_float_matrices(make, W):
    if W.dtype == np.float64 and W.ndim == 2:
        layer = make(W)
        assert layer.params[0] is W and layer.grads[0].shape == W.shape
        return
    with pytest.raises((TypeError, ValueError)) as excinfo:
        make(W)
    _assert_clean_error(excinfo, str(W.dtype), "-D")


# ----- optimizers -----------------------------------------------------------------------------------

def _one_step_reference(name, p, g, hyper):
    """Each optimizer's first step, written out in float64."""
    lr = hyper["lr"]
    if name == "SGD":
        return p - lr * g
    if name == "Momentum":
        return p - lr * g
    if name == "Nesterov":
        m = hyper["momentum"]
        return p - m * m * lr * g - (1 + m) * lr * g
    if name == "AdaGrad":
        return p - lr * g / (np.abs(g) + hyper["eps"])
    if name == "RMSprop":
        return p - lr * g / (np.sqrt((1 - hyper["decay_rate"]) * g * g) + hyper["eps"])
    b1, b2 = hyper["beta1"], hyper["beta2"]
    lr_t = lr * np.sqrt(1 - b2) / (1 - b1)
    return p - lr_t * (1 - b1) * g / (np.sqrt((1 - b2) * g * g) + hyper["eps"])


OPTIMIZERS = {
    "SGD": (optim.SGD, {}),
    "Momentum": (optim.Momentum, {"momentum": "fraction"}),
    "Nesterov": (optim.Nesterov, {"momentum": "fraction"}),
    "AdaGrad": (optim.AdaGrad, {"eps": "positive"}),
    "RMSprop": (optim.RMSprop, {"decay_rate": "fraction", "eps": "positive"}),
    "Adam": (optim.Adam, {"beta1": "fraction", "beta2": "fraction", "eps": "positive"}),
}
GOOD = {"positive": st.floats(1e-8, 10.0), "fraction": st.floats(0.0, 0.999)}
BAD = {"positive": st.sampled_from([0.0, -1.0, np.nan, np.inf, -np.inf]),
       "fraction": st.sampled_from([1.0, 1.5, -0.1, np.nan, np.inf])}
BAD_TYPE = st.sampled_from(["0.1", None, True, [0.1], 1j])


@st.composite
def hyperparameters(draw, name):
    cls, kinds = OPTIMIZERS[name]
    kinds = {"lr": "positive", **kinds}
    return {key: draw(GOOD[kind]) for key, kind in kinds.items()}


@pytest.mark.parametrize("name", OPTIMIZERS)
@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4), seed=seeds)
def test_one_optimizer_step_matches_its_formula(name, data, shape, seed):
    hyper = data.draw(hyperparameters(name))
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(shape), rng.standard_normal(shape)
    expected = _one_step_reference(name, p, g, hyper)
    OPTIMIZERS[name][0](**hyper).update([p], [g])
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
@SETTINGS
@given(data=st.data())
def test_bad_hyperparameters_raise_naming_them(name, data):
    cls, kinds = OPTIMIZERS[name]
    kinds = {"lr": "positive", **kinds}
    key = data.draw(st.sampled_from(sorted(kinds)))
    wrong_type = data.draw(st.booleans())
    value = data.draw(BAD_TYPE if wrong_type else BAD[kinds[key]])
    label = "learning rate" if key == "lr" else key
    with pytest.raises(TypeError if wrong_type else ValueError, match=label):
        cls(**{key: value})


@pytest.mark.parametrize("name", OPTIMIZERS)
@SETTINGS
@given(kind=st.sampled_from(["nan grad", "inf grad", "int param", "bool param", "complex grad", "object grad",
                             "shape", "count", "list"]),
       shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4), seed=seeds)
def test_update_refuses_garbage_and_leaves_params_alone(name, kind, shape, seed):
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(shape), rng.standard_normal(shape)
    params, grads = [p], [g]
    if kind in ("nan grad", "inf grad"):
        g.flat[rng.integers(g.size)] = np.nan if kind == "nan grad" else -np.inf
        error, words = L.NonFiniteError, ("NaN or inf",)
    elif kind in ("int param", "bool param"):
        params = [p.astype(np.int64 if kind == "int param" else np.bool_)]
        error, words = TypeError, (str(params[0].dtype),)
    elif kind in ("complex grad", "object grad"):
        grads = [g.astype(complex if kind == "complex grad" else object)]
        error, words = TypeError, (str(grads[0].dtype),)
    elif kind == "shape":
        grads = [np.ones(shape + (1,))]
        error, words = ValueError, ("shape",)
    elif kind == "count":
        grads = [g, g]
        error, words = ValueError, ("1 params but 2 grads",)
    else:
        params = [p.tolist()]
        error, words = TypeError, ("list",)
    before = [np.array(q, dtype=object, copy=True) for q in params]
    with pytest.raises(error) as excinfo:
        OPTIMIZERS[name][0]().update(params, grads)
    _assert_clean_error(excinfo, *words)
    for q, old in zip(params, before):
        np.testing.assert_array_equal(np.asarray(q, dtype=object), old)


@SETTINGS
@given(grads=st.lists(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
                                 elements=st.floats(-1e3, 1e3)), max_size=4),
       max_norm=st.one_of(st.floats(1e-6, 1e3), st.sampled_from([0.0, -1.0, np.nan, np.inf, -np.inf])))
def test_clip_grads_never_flips_or_skips(grads, max_norm):
    originals = [g.copy() for g in grads]
    if not (np.isfinite(max_norm) and max_norm > 0):
        with pytest.raises(ValueError, match="max_norm must be positive and finite"):
            optim.clip_grads(grads, max_norm)
        return
    total = optim.clip_grads(grads, max_norm)
    assert total == pytest.approx(optim.global_norm(originals))
    assert optim.global_norm(grads) <= max_norm * (1 + 1e-6)
    scale = min(1.0, max_norm / (total + 1e-6))
    for g, g0 in zip(grads, originals):
        np.testing.assert_allclose(g, g0 * scale, rtol=1e-12, atol=0)  # same direction, never flipped


def test_bfloat16_inputs_are_floats_to_the_layers_and_checked_for_nan():
    # ml_dtypes' bfloat16 has dtype kind 'V': the layers' float check must still take it
    import ml_dtypes

    from fastnlp.layers.base import FLOAT, NonFiniteError, check_input

    x = np.ones((2, 3), ml_dtypes.bfloat16)
    assert check_input(x, "Layer.forward", FLOAT) is x
    x[0, 1] = np.nan
    with pytest.raises(NonFiniteError, match="Layer.forward: input contains NaN or inf"):
        check_input(x, "Layer.forward", FLOAT)
    with pytest.raises(TypeError, match="got dtype bool"):
        check_input(np.ones(3, bool), "Layer.forward", FLOAT)
