"""Character-level sequence data of the book's chapter 7: addition and date problems.

A data file holds one problem a line, fixed width: the question padded with spaces, then ``_``
and the answer padded with spaces (``16+75  _91  ``, ``september 27, 1994           _1994-09-27``).
``load_sequence`` reads the book's files as its ``dataset/sequence.py`` does: characters get ids
in order of first appearance (question, then answer, line by line), the problems are shuffled
with NumPy's legacy generator seeded with ``seed`` and the last 10% are the test split. Targets
keep the leading ``_``, which is the decoder's start symbol.

The generators make fresh problems of the same kinds in the same text format, so examples run
without any file and trained models can be tried on problems they never saw.
"""
from __future__ import annotations

import calendar
import datetime
import numbers

import numpy as np

from ._files import find_or_fetch

SEPARATOR = "_"
NAMES = ("addition", "date")
ADDITION_WIDTHS = (7, 5)  # question "999+999", answer "_1998"
DATE_WIDTHS = (29, 11)  # question "WEDNESDAY, SEPTEMBER 30, 2015", answer "_2015-09-30"


def load_sequence(name: str, data_dir=None, seed: int | None = 1984, verify: bool = True, reverse: bool = False):
    """``((x_train, t_train), (x_test, t_test), char_to_id, id_to_char)`` for ``"addition"`` or ``"date"``.

    ``x`` are question ids (N, question width), ``t`` answer ids including the leading ``_``
    (N, 1 + answer width), int32. The split is the book's (shuffle with ``seed``, last 10% for
    test; ``seed=None`` keeps the file's order). ``reverse=True`` reverses every question, the
    book's trick for seq2seq (ids stay C-contiguous). Files come from ``data_dir`` /
    ``$FASTNLP_DATA`` / the user cache as ``seq/<name>.txt`` (downloaded and checked against its
    sha256 when missing); ``verify`` checks a local copy against the same sum.
    """
    if name not in NAMES:
        raise ValueError(f"unknown sequence data set {name!r}; choose one of {', '.join(map(repr, NAMES))}")
    path = find_or_fetch(f"seq/{name}.txt", data_dir, verify=verify)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    char_to_id, id_to_char = build_char_vocabulary(lines)
    x, t = encode_sequences(lines, char_to_id)
    (x_train, t_train), (x_test, t_test) = split_sequences(x, t, seed)
    if reverse:
        x_train, x_test = reverse_questions(x_train), reverse_questions(x_test)
    return (x_train, t_train), (x_test, t_test), char_to_id, id_to_char


def split_sequences(x, t, seed: int | None = 1984):
    """The book's split: shuffle rows with ``np.random.seed(seed)`` + ``np.random.shuffle`` (the
    same permutation, without touching the global generator), the last tenth for test."""
    if len(x) != len(t):
        raise ValueError(f"{len(x)} questions but {len(t)} answers")
    indices = np.arange(len(x))
    if seed is not None:
        np.random.RandomState(seed).shuffle(indices)
    x, t = x[indices], t[indices]
    split_at = len(x) - len(x) // 10
    return (x[:split_at], t[:split_at]), (x[split_at:], t[split_at:])


def reverse_questions(x):
    """Questions reversed along time (the book's ``x[:, ::-1]``), as a C-contiguous copy."""
    return np.ascontiguousarray(np.asarray(x)[:, ::-1])


def build_char_vocabulary(lines):
    """``(char_to_id, id_to_char)``: every character of the lines, ids in order of first appearance
    (a line's question first, then its answer, as the book builds them)."""
    lines = _lines(lines)
    for line in lines:
        _split_line(line)
    # A line is its question then its answer, so first appearance in the joined text is the
    # book's order.
    codes = np.frombuffer("".join(lines).encode("utf-32-le"), dtype=np.uint32)
    distinct, first = np.unique(codes, return_index=True)
    char_to_id = {chr(int(distinct[k])): i for i, k in enumerate(np.argsort(first, kind="stable"))}
    return char_to_id, {i: c for c, i in char_to_id.items()}


def encode_sequences(lines, char_to_id, question_width: int | None = None, answer_width: int | None = None):
    """``(x, t)`` int32 ids of ``question_answer`` lines (answers keep their leading ``_``).

    Questions and answers shorter than the width are padded with spaces; the widths default to
    the longest in ``lines``. Raises ``ValueError`` for a line without ``_`` or longer than its
    width, ``KeyError`` naming a character outside ``char_to_id``.
    """
    lines = _lines(lines)
    pairs = [_split_line(line) for line in lines]
    if question_width is None:
        question_width = max((len(q) for q, _ in pairs), default=0)
    if answer_width is None:
        answer_width = max((len(a) for _, a in pairs), default=1)
    x = encode_questions([q for q, _ in pairs], char_to_id, question_width, what="question")
    t = encode_questions([a for _, a in pairs], char_to_id, answer_width, what="answer")
    return x, t


def encode_questions(questions, char_to_id, width: int, reverse: bool = False, what: str = "question"):
    """Ids (len(questions), width) int32 of strings padded on the right with spaces.

    ``reverse=True`` reverses each padded question, for models trained on reversed input.
    Raises ``ValueError`` for a string longer than ``width`` and ``KeyError`` naming a character
    the vocabulary lacks (and the string it is in).
    """
    if isinstance(questions, str):
        questions = [questions]
    width = _width(width)
    for i, text in enumerate(questions):
        if not isinstance(text, str):
            raise TypeError(f"{what} {i} must be a str, got {type(text).__name__}")
        if len(text) > width:
            raise ValueError(f"{what} {text!r} has {len(text)} characters; the model's width is {width}")
    # One code point array for all strings, then one dictionary lookup per distinct character.
    text = "".join(q.ljust(width) for q in questions)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    distinct, inverse = np.unique(codes, return_inverse=True)
    table = np.empty(len(distinct), dtype=np.int32)
    for k, code in enumerate(distinct.tolist()):
        char = chr(code)
        if char not in char_to_id:
            culprit = next(q for q in questions if char in q.ljust(width))
            raise KeyError(f"character {char!r} of {what} {culprit!r} is not in the vocabulary")
        table[k] = char_to_id[char]
    ids = table[inverse].reshape(len(questions), width)
    return ids[:, ::-1].copy() if reverse else ids


def decode_ids(ids, id_to_char) -> list[str]:
    """Rows of ids back to strings (``id_to_char`` a dict or a sequence)."""
    ids = np.asarray(ids)
    if ids.ndim == 1:
        ids = ids[None]
    return ["".join(id_to_char[int(i)] for i in row) for row in ids]


# ---- generators ------------------------------------------------------------------------------

def generate_additions(n: int, seed: int | None = None, digits: int = 3) -> list[str]:
    """``n`` distinct addition problems as lines of the book's file (``"16+75  _91  "``).

    Each operand has 1 to ``digits`` digits (length drawn first, then the digits, as the book's
    data were made); question and answer are padded to ``2 * digits + 1`` and ``digits + 2``.
    """
    n, digits = _count(n, "n", allow_zero=True), _count(digits, "digits")
    if n > (10 ** digits) ** 2:
        raise ValueError(f"only {(10 ** digits) ** 2} distinct problems have operands of up to {digits} digits")
    rng = np.random.default_rng(seed)
    question_width, answer_width = 2 * digits + 1, digits + 2
    seen: set[tuple[int, int]] = set()
    lines = []
    while len(lines) < n:
        a, b = (int("".join(map(str, rng.integers(0, 10, rng.integers(1, digits + 1))))) for _ in range(2))
        if (a, b) in seen:
            continue
        seen.add((a, b))
        lines.append(f"{a}+{b}".ljust(question_width) + (SEPARATOR + str(a + b)).ljust(answer_width))
    return lines


_WEEKDAYS = tuple(calendar.day_name)
_MONTHS = tuple(calendar.month_name)  # [0] is ''
_MONTHS_SHORT = tuple(calendar.month_abbr)

# The renderings of date.txt (each about a quarter of it) and a few more that use no new character.
DATE_FORMATS = {
    "long": lambda d: f"{_MONTHS[d.month]} {d.day}, {d.year}",                        # September 27, 1994
    "medium": lambda d: f"{_MONTHS_SHORT[d.month]} {d.day}, {d.year}",                # Sep 27, 1994
    "short": lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}",                        # 9/27/94
    "full": lambda d: f"{_WEEKDAYS[d.weekday()]}, {_MONTHS[d.month]} {d.day}, {d.year}",  # Tuesday, September 27, 1994
    "day_month_year": lambda d: f"{d.day} {_MONTHS[d.month]} {d.year}",               # 27 September 1994
    "day_mon_year": lambda d: f"{d.day} {_MONTHS_SHORT[d.month]} {d.year}",           # 27 Sep 1994
    "month_day_year": lambda d: f"{_MONTHS[d.month]} {d.day} {d.year}",                # September 27 1994
    "iso": lambda d: d.isoformat(),                                                     # 1994-09-27
}
BOOK_DATE_FORMATS = ("long", "medium", "short", "full")
DATE_RANGE = (datetime.date(1970, 1, 1), datetime.date(2017, 12, 31))


def generate_dates(n: int, seed: int | None = None, formats=BOOK_DATE_FORMATS, start=None, end=None) -> list[str]:
    """``n`` dates as lines of the book's ``date.txt``: a human rendering padded to 29
    characters, then ``_`` and the ISO date (``"Sep 27, 1994                 _1994-09-27"``).

    Days are drawn uniformly from ``start``..``end`` (default 1970-01-01..2017-12-31, the span
    of date.txt), the rendering uniformly from ``formats`` (names of ``DATE_FORMATS``; the
    default, the four of date.txt, uses its vocabulary only), and words are written as is (half
    the time), upper-case or lower-case, as in date.txt.
    """
    n = _count(n, "n", allow_zero=True)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in DATE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown date formats {unknown}; choose from {', '.join(DATE_FORMATS)}")
    start = DATE_RANGE[0] if start is None else start
    end = DATE_RANGE[1] if end is None else end
    span = (end - start).days + 1
    if span < 1:
        raise ValueError(f"empty date range {start}..{end}")
    rng = np.random.default_rng(seed)
    days = rng.integers(0, span, n)
    chosen = rng.integers(0, len(formats), n)
    cases = rng.random(n)
    lines = []
    for day, f, case in zip(days.tolist(), chosen.tolist(), cases.tolist()):
        date = start + datetime.timedelta(days=day)
        text = DATE_FORMATS[formats[f]](date)
        text = text if case < 0.5 else text.upper() if case < 0.75 else text.lower()
        lines.append(text.ljust(DATE_WIDTHS[0]) + SEPARATOR + date.isoformat())
    return lines


# ---- helpers ---------------------------------------------------------------------------------

def _lines(lines) -> list[str]:
    if isinstance(lines, str):
        lines = lines.splitlines()
    return [line for line in lines if line.strip()]


def _split_line(line: str):
    at = line.find(SEPARATOR)
    if at < 0:
        raise ValueError(f"line {line!r} has no {SEPARATOR!r} between question and answer")
    return line[:at], line[at:]


def _count(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    return int(value)


def _width(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"width must be a non-negative integer, got {value!r}")
    return int(value)
