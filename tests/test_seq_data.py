"""The book's addition and date data: loading, the split, the vocabulary, and fresh generated data."""
import datetime
import shutil

import numpy as np
import pytest

from fastnlp.datasets import (build_char_vocabulary, decode_ids, encode_questions, encode_sequences,
                              generate_additions, generate_dates, load_sequence, reverse_questions)
from fastnlp.datasets._files import ChecksumError
from fastnlp.datasets.sequence import DATE_FORMATS


def book_load_data(path, seed=1984):
    """The book's dataset/sequence.py load_data, as it is (but with a fresh vocabulary)."""
    id_to_char, char_to_id = {}, {}
    questions, answers = [], []
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        idx = line.find("_")
        questions.append(line[:idx])
        answers.append(line[idx:-1])
    for q, a in zip(questions, answers):
        for c in list(q) + list(a):
            if c not in char_to_id:
                char_to_id[c] = len(char_to_id)
                id_to_char[char_to_id[c]] = c
    x = np.array([[char_to_id[c] for c in q] for q in questions])
    t = np.array([[char_to_id[c] for c in a] for a in answers])
    indices = np.arange(len(x))
    np.random.seed(seed)
    np.random.shuffle(indices)
    x, t = x[indices], t[indices]
    split_at = len(x) - len(x) // 10
    return (x[:split_at], t[:split_at]), (x[split_at:], t[split_at:]), char_to_id, id_to_char


@pytest.mark.parametrize("name, shapes, vocab", [("addition", (7, 5), 13), ("date", (29, 11), 59)])
def test_load_sequence_is_the_books_split(data_dir, name, shapes, vocab):
    (x, t), (x_test, t_test), char_to_id, id_to_char = load_sequence(name, data_dir)
    assert x.shape == (45000, shapes[0]) and t.shape == (45000, shapes[1])
    assert x_test.shape == (5000, shapes[0]) and t_test.shape == (5000, shapes[1])
    assert x.dtype == np.int32 and len(char_to_id) == vocab
    assert {i: c for c, i in char_to_id.items()} == id_to_char
    assert (t[:, 0] == char_to_id["_"]).all()  # the decoder's start symbol
    (bx, bt), (bx_test, bt_test), book_char_to_id, _ = book_load_data(data_dir / "seq" / f"{name}.txt")
    assert book_char_to_id == char_to_id
    for ours, book in ((x, bx), (t, bt), (x_test, bx_test), (t_test, bt_test)):
        np.testing.assert_array_equal(ours, book)


def test_load_sequence_options(data_dir):
    (x, _), _, _, _ = load_sequence("addition", data_dir)
    (xr, _), (xr_test, _), _, id_to_char = load_sequence("addition", data_dir, reverse=True)
    np.testing.assert_array_equal(xr, x[:, ::-1])
    assert xr.flags.c_contiguous and xr_test.flags.c_contiguous
    (xs, ts), _, _, id_to_char = load_sequence("addition", data_dir, seed=None)
    assert decode_ids(xs[0], id_to_char) == ["16+75  "] and decode_ids(ts[0], id_to_char) == ["_91  "]
    (x2, _), _, _, _ = load_sequence("addition", data_dir, seed=7)
    assert not np.array_equal(x2, x)
    with pytest.raises(ValueError, match="unknown sequence data set"):
        load_sequence("dates", data_dir)


def test_a_damaged_copy_is_refused(data_dir, tmp_path):
    (tmp_path / "seq").mkdir()
    copy = tmp_path / "seq" / "addition.txt"
    shutil.copy(data_dir / "seq" / "addition.txt", copy)
    copy.write_text(copy.read_text().replace("16+75  _91  ", "16+75  _92  ", 1))
    with pytest.raises(ChecksumError, match="addition.txt"):
        load_sequence("addition", tmp_path)
    (x, t), _, _, _ = load_sequence("addition", tmp_path, verify=False)
    assert x.shape == (45000, 7)


def test_generate_additions():
    lines = generate_additions(2000, seed=0)
    assert len(lines) == 2000 and len(set(lines)) == 2000
    for line in lines:
        assert len(line) == 12 and line[7] == "_"
        a, b = line[:7].split("+")
        assert 0 <= int(a) < 1000 and 0 <= int(b) < 1000 and int(line[8:]) == int(a) + int(b)
    assert generate_additions(50, seed=3) == generate_additions(50, seed=3)
    assert generate_additions(50, seed=3) != generate_additions(50, seed=4)
    assert generate_additions(0) == []
    lengths = {len(line.split("+")[0]) for line in lines}
    assert lengths == {1, 2, 3}
    with pytest.raises(ValueError, match="distinct"):
        generate_additions(101, digits=1)


def test_generated_additions_encode_with_the_books_vocabulary(data_dir):
    _, _, char_to_id, id_to_char = load_sequence("addition", data_dir)
    x, t = encode_sequences(generate_additions(100, seed=1), char_to_id)
    assert x.shape == (100, 7) and t.shape == (100, 5)
    assert decode_ids(t[:1], id_to_char)[0].startswith("_")


def _parse(question):
    """The date a rendering of DATE_FORMATS names (any case)."""
    text = question.strip().lower()
    if "/" in text:
        month, day, year = map(int, text.split("/"))
        return datetime.date(1900 + year if year >= 70 else 2000 + year, month, day)
    if text[:4].isdigit() and "-" in text:
        return datetime.date.fromisoformat(text)
    for fmt in ("%A, %B %d, %Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%B %d %Y"):
        try:
            return datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise AssertionError(f"cannot parse {question!r}")


def test_generate_dates_renders_the_iso_answer(data_dir):
    lines = generate_dates(3000, seed=0, formats=tuple(DATE_FORMATS))
    assert len(lines) == 3000
    for line in lines:
        assert len(line) == 40 and line[29] == "_"
        answer = datetime.date.fromisoformat(line[30:])
        assert datetime.date(1970, 1, 1) <= answer <= datetime.date(2017, 12, 31)
        assert _parse(line[:29]) == answer
    cases = {("upper" if q.isupper() else "lower" if q.islower() else "title") for q in (line[:29] for line in lines)
             if any(c.isalpha() for c in q)}
    assert cases == {"upper", "lower", "title"}
    assert generate_dates(20, seed=5) == generate_dates(20, seed=5)


def test_default_date_formats_use_the_books_vocabulary_only(data_dir):
    _, _, char_to_id, _ = load_sequence("date", data_dir)
    x, t = encode_sequences(generate_dates(2000, seed=1), char_to_id, 29, 11)  # KeyError if a char were new
    assert x.shape == (2000, 29) and t.shape == (2000, 11)
    seen = {line.split("_")[0].strip() for line in (data_dir / "seq" / "date.txt").read_text().splitlines()}
    layouts = {q.replace(",", "").count(" ") for q in (line[:29].strip() for line in generate_dates(200, seed=2))}
    assert layouts == {0, 2, 3}  # 9/27/94; Sep 27 1994; Tuesday September 27 1994
    assert any(line[:29].strip() in seen for line in generate_dates(500, seed=3))  # same distribution


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="unknown date formats"):
        generate_dates(3, formats=["rfc2822"])
    with pytest.raises(TypeError):
        generate_dates(2.5)
    with pytest.raises(ValueError, match="empty date range"):
        generate_dates(3, start=datetime.date(2000, 1, 2), end=datetime.date(2000, 1, 1))


def test_encoding_errors_are_clear(data_dir):
    _, _, char_to_id, _ = load_sequence("date", data_dir)
    with pytest.raises(KeyError, match="'!' of question 'May 1, 2000!'"):
        encode_questions(["May 1, 2000!"], char_to_id, 29)
    with pytest.raises(ValueError, match="has 30 characters; the model's width is 29"):
        encode_questions(["x" * 30], char_to_id, 29)
    with pytest.raises(ValueError, match="no '_'"):
        encode_sequences(["May 1, 2000 2000-05-01"], char_to_id)
    ids = encode_questions("May 1, 2000", char_to_id, 29, reverse=True)
    assert ids.shape == (1, 29) and ids[0, -1] == char_to_id["M"]


def test_vocabulary_and_helpers():
    char_to_id, id_to_char = build_char_vocabulary(["ab_c", "ba_d"])
    assert char_to_id == {"a": 0, "b": 1, "_": 2, "c": 3, "d": 4}
    assert id_to_char[4] == "d"
    x, t = encode_sequences(["ab_c", "ba_d"], char_to_id)
    assert decode_ids(x, id_to_char) == ["ab", "ba"] and decode_ids(t, id_to_char) == ["_c", "_d"]
    np.testing.assert_array_equal(reverse_questions(x), x[:, ::-1])
