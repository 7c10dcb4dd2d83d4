"""Rounding to simulated number formats: any float format studied on any CPU.

``round_to_format(x, fmt)`` rounds each float32/float64 value of ``x`` to the nearest value of
the format ``fmt`` and returns it in ``x``'s dtype, so a model can run in float32 while every
number it keeps is one the format could hold. Formats:

    name    exponent bits  fraction bits  largest finite  beyond it (and inf)
    fp16    5              10             65504           inf (IEEE half)
    bf16    8              7              3.39e38         inf (bfloat16)
    tf32    8              10             3.40e38         inf (NVIDIA TensorFloat-32)
    e4m3    4              3              448             NaN (OCP FP8 E4M3FN: no inf)
    e5m2    5              2              57344           inf (OCP FP8 E5M2)
    (e, m)  e in 2..11     m in 0..52     IEEE-like       inf

with subnormals unless ``subnormals=False`` (then values below the smallest normal go to 0 or
to that normal). ``saturate=True`` sends overflow and inf to the largest finite value instead
(what NVIDIA's ``.satfinite`` conversions do). NaN stays NaN and zeros keep their sign.

``rounding="nearest"`` rounds half to even, bit for bit what ``ml_dtypes`` casts give (tested
for every format it has, ties, subnormals, overflow, NaN and signed zeros included).
``rounding="stochastic"`` rounds up with probability equal to the distance from the value below
(unbiased), drawing element i's uniform number from the counter-based splitmix64 stream
``seed`` at counter i: reproducible, and the same on every backend and thread count.

The backend-level op (every file in this folder implements it), on C-contiguous float32 or
float64 ``x``, returning a new array of ``x``'s dtype and shape:

    round_to_format(x, man_bits, emin, max_finite, subnormals, overflow, stochastic, seed)

``emin`` is the exponent of the smallest normal, ``max_finite`` the largest finite value and
``overflow`` what lies beyond it (0 inf, 1 NaN, 2 the largest finite value).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .. import dispatch, registry
from ..validate import FLOAT_DTYPES
from .reference import OVERFLOW_SATURATES, OVERFLOW_TO_INF, OVERFLOW_TO_NAN

ROUNDING_MODES = ("nearest", "stochastic")
# What each input dtype can hold exactly: a format wider than it would need more than one rounding.
_INPUT_LIMITS = {np.dtype(np.float32): (8, 23), np.dtype(np.float64): (11, 52)}


@dataclass(frozen=True)
class NumberFormat:
    """A binary floating-point format: ``exp_bits`` exponent bits, ``man_bits`` fraction bits."""

    name: str
    exp_bits: int
    man_bits: int
    has_inf: bool = True  # False: the all-ones exponent holds numbers, overflow is NaN (E4M3FN)

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def max_finite(self) -> float:
        if self.has_inf:
            return float(np.ldexp(2.0 - 2.0 ** -self.man_bits, self.bias))
        # Without inf the top exponent is usable, but its all-ones fraction is NaN.
        return float(np.ldexp(2.0 - 2.0 ** (1 - self.man_bits), self.bias + 1))

    @property
    def smallest_subnormal(self) -> float:
        return float(np.ldexp(1.0, self.emin - self.man_bits))


FORMATS = {
    "fp16": NumberFormat("fp16", 5, 10),
    "bf16": NumberFormat("bf16", 8, 7),
    "tf32": NumberFormat("tf32", 8, 10),
    "e4m3": NumberFormat("e4m3", 4, 3, has_inf=False),
    "e5m2": NumberFormat("e5m2", 5, 2),
}


def number_format(fmt) -> NumberFormat:
    """The format named ``fmt`` (a key of ``FORMATS``) or given as ``(exp_bits, man_bits)``."""
    if isinstance(fmt, NumberFormat):
        return fmt
    if isinstance(fmt, str):
        try:
            return FORMATS[fmt.strip().lower()]
        except KeyError:
            raise ValueError(f"round_to_format: unknown format {fmt!r}; the formats are {', '.join(FORMATS)}, "
                             "or (exponent bits, mantissa bits)") from None
    if isinstance(fmt, (tuple, list)) and len(fmt) == 2 and all(
            isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in fmt):
        exp_bits, man_bits = int(fmt[0]), int(fmt[1])
        if not 2 <= exp_bits <= 11:
            raise ValueError(f"round_to_format: exponent bits must be 2 to 11, got {exp_bits}")
        if not 0 <= man_bits <= 52:
            raise ValueError(f"round_to_format: mantissa bits must be 0 to 52, got {man_bits}")
        return NumberFormat(f"e{exp_bits}m{man_bits}", exp_bits, man_bits)
    raise TypeError(f"round_to_format: fmt must be a format name ({', '.join(FORMATS)}) or (exponent bits, "
                    f"mantissa bits), got {fmt!r}")


def round_to_format(x, fmt, rounding: str = "nearest", seed: int = 0, *, subnormals: bool = True,
                    saturate: bool = False):
    """``x`` (float32 or float64, NumPy or CuPy, any shape) rounded to the format ``fmt``, in
    ``x``'s dtype; see the module docstring for the formats and rounding modes."""
    xp = dispatch.array_module(x)
    if not (hasattr(x, "dtype") and hasattr(x, "shape")):
        x = np.asarray(x)
    if x.dtype not in _INPUT_LIMITS:
        raise TypeError(f"round_to_format takes float32 or float64 arrays, got dtype {x.dtype} "
                        "(round float16/bfloat16 data after converting it to float32)")
    spec = number_format(fmt)
    exp_limit, man_limit = _INPUT_LIMITS[x.dtype]
    if spec.exp_bits > exp_limit or spec.man_bits > man_limit:
        raise ValueError(f"round_to_format: {spec.name} (e{spec.exp_bits}m{spec.man_bits}) is wider than the "
                         f"{x.dtype} input (e{exp_limit}m{man_limit}): it cannot hold the rounded values")
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"round_to_format: rounding must be one of {ROUNDING_MODES}, got {rounding!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2 ** 64:
        raise ValueError(f"round_to_format: seed must be an integer in [0, 2**64), got {seed!r}")
    if saturate:
        overflow = OVERFLOW_SATURATES
    else:
        overflow = OVERFLOW_TO_INF if spec.has_inf else OVERFLOW_TO_NAN
    x = xp.ascontiguousarray(x)
    return registry.kernel("round_to_format", x)(
        x, spec.man_bits, spec.emin, spec.max_finite, bool(subnormals), overflow, rounding == "stochastic", int(seed))


# ----- spec: what the generated tests and benchmarks draw ------------------------------------

def _special_values(fmt: NumberFormat) -> list:
    """Values where rounding goes wrong first: ties, subnormals, the overflow edge, NaN, zeros."""
    top, tiny = fmt.max_finite, fmt.smallest_subnormal
    ulp_one = 2.0 ** -fmt.man_bits
    return [0.0, -0.0, np.inf, -np.inf, np.nan, top, -top, top * (1 + 2.0 ** -(fmt.man_bits + 1)), top * 2,
            tiny, tiny / 2, tiny * 1.5, -tiny / 2, 1.0 + ulp_one / 2, 1.0 + 1.5 * ulp_one, -(1.0 + ulp_one / 2),
            np.ldexp(1.0, fmt.emin) * (1 - ulp_one / 2), 1e-45, 3e38]


def _problems(formats):
    from hypothesis import strategies as st

    @st.composite
    def problems(draw):
        dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
        fmt = draw(st.sampled_from(formats))
        if dtype == np.float32 and (fmt.exp_bits > 8 or fmt.man_bits > 23):
            fmt = FORMATS["bf16"]
        n = draw(st.sampled_from([0, 1, 3, 17, 300]))
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        scale = draw(st.sampled_from([1.0, 1e-6, 1e4, fmt.max_finite, fmt.smallest_subnormal]))
        with np.errstate(over="ignore"):
            values = (rng.standard_normal(n) * scale).astype(dtype)
            specials = np.array(_special_values(fmt), dtype=np.float64).astype(dtype)
        x = np.concatenate([values, specials[: min(n, len(specials))]]) if n else values
        subnormals = draw(st.booleans())
        overflow = draw(st.sampled_from([OVERFLOW_TO_INF if fmt.has_inf else OVERFLOW_TO_NAN, OVERFLOW_SATURATES]))
        stochastic = draw(st.booleans())
        seed = draw(st.sampled_from([0, 1, 2 ** 64 - 1]))
        return (np.ascontiguousarray(x), fmt.man_bits, fmt.emin, fmt.max_finite, subnormals, overflow, stochastic,
                seed)

    return problems()


def _examples():
    custom = [NumberFormat("e3m2", 3, 2), NumberFormat("e6m9", 6, 9), NumberFormat("e11m40", 11, 40),
              NumberFormat("e2m0", 2, 0)]
    return _problems(list(FORMATS.values()) + custom)


def _benchmark():
    """bf16 simulation of one BetterRnnlm weight matrix (650 x 2600, float32), stochastic rounding."""
    x = np.random.default_rng(0).standard_normal((650, 2600)).astype(np.float32)
    bf16 = FORMATS["bf16"]
    return x, bf16.man_bits, bf16.emin, bf16.max_finite, True, OVERFLOW_TO_INF, True, 0


registry.register(registry.OpSpec(
    name="round_to_format", family="rounding", doc="x rounded to a simulated float format (nearest or stochastic)",
    # Counter-based draws per element and one float64 rounding: the same bits on every backend.
    dtypes=FLOAT_DTYPES, deterministic=registry.EVERY_BACKEND, exact=True,
    tolerance={dtype: (0.0, 0.0) for dtype in FLOAT_DTYPES},
    examples=_examples, benchmark_args=_benchmark, dtype_of=lambda args: args[0].dtype))
