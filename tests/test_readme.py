"""The README's examples run as written (with the shared data folder) and print what they claim.

Convention (stated in CONTRIBUTING.md): every ``print(...)`` in a README ```python block carries
its expected output in a comment, ``print(x)  # -> 0.81``, on the line where the call ends or on
``# -> ...`` lines right below it (joined by a space). The test runs each block, records what
each print call wrote, and compares:

* whitespace runs count as one space; ``...`` stands for any text;
* a number written with a decimal point or an exponent matches a printed number within one unit
  of its last written digit plus 1% of its size (``0.81`` takes 0.7919 to 0.8281); a number
  written without them (a count, a shape) must be printed exactly;
* ``(±X)`` at the end of the comment widens the tolerance of every number of that line to X.

Bench figures quoted in the README link their table in bench/README.md; the links must land on
a heading there.
"""
import ast
import io
import re
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from conftest import DATA_DIR
from fastnlp.kernels import dispatch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)

_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_TOLERANCE = re.compile(r"\s*\(±\s*(" + _NUMBER + r")\)\s*$")
_PRINT_HOOK = "__readme_print__"


def expected_outputs(code: str) -> dict:
    """{(first line, last line) of each print call: the expected text of its '# ->' comment}."""
    lines = code.splitlines()
    found = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            span = (node.lineno, node.end_lineno)
            parts = []
            for number in range(node.lineno, node.end_lineno + 1):
                if "# ->" in lines[number - 1]:
                    parts.append(lines[number - 1].split("# ->", 1)[1])
            number = node.end_lineno + 1
            while number <= len(lines) and lines[number - 1].lstrip().startswith("# ->"):
                parts.append(lines[number - 1].split("# ->", 1)[1])
                number += 1
            found[span] = " ".join(p.strip() for p in parts) if parts else None
    return found


def _tolerance(written: str) -> float:
    """One unit of the last written digit plus 1% (decimal numbers); 0 for integers."""
    mantissa, _, exponent = written.lower().partition("e")
    if "." not in mantissa and not exponent:
        return 0.0
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    unit = 10.0 ** (-decimals + (int(exponent) if exponent else 0))
    return unit + 0.01 * abs(float(written))


def matches(expected: str, printed: str):
    """None when ``printed`` satisfies ``expected`` (the rules in this module's docstring),
    otherwise why not."""
    fixed = _TOLERANCE.search(expected)
    if fixed:
        expected = expected[:fixed.start()]
    expected, printed = " ".join(expected.split()), " ".join(printed.split())
    pattern, numbers = "", []
    for piece in re.split(r"(\.\.\.|" + _NUMBER + ")", expected):
        if piece == "...":
            pattern += ".*?"
        elif piece and re.fullmatch(_NUMBER, piece):
            pattern += f"({_NUMBER})"
            numbers.append(piece)
        else:
            pattern += re.escape(piece)
    found = re.fullmatch(pattern, printed, flags=re.S)
    if found is None:
        return f"the text differs: expected {expected!r}, printed {printed!r}"
    for written, got in zip(numbers, found.groups()):
        allowed = float(fixed.group(1)) if fixed else _tolerance(written)
        if abs(float(got) - float(written)) > allowed:
            return f"{got} is not {written} (within {allowed:g}): expected {expected!r}, printed {printed!r}"
    return None


class _Recorder(ast.NodeTransformer):
    """print(...) -> __readme_print__((first, last), ...): each call's output kept apart."""

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            span = ast.Tuple([ast.Constant(node.lineno), ast.Constant(node.end_lineno)], ast.Load())
            node.func = ast.copy_location(ast.Name(_PRINT_HOOK, ast.Load()), node.func)
            node.args.insert(0, ast.copy_location(span, node))
        return node


def run_block(code: str) -> dict:
    """Run ``code`` and return {(first, last) line of a print call: what it printed}."""
    printed = {}

    def record(span, *args, **kwargs):
        kwargs.pop("file", None)
        text = io.StringIO()
        print(*args, file=text, **kwargs)
        print(text.getvalue(), end="")
        printed[span] = printed.get(span, "") + text.getvalue()

    tree = ast.fix_missing_locations(_Recorder().visit(ast.parse(code)))
    # One BLAS thread: on a loaded 2-core machine ARPACK's many small products with OpenBLAS's
    # spinning threads took 10-40 s instead of 2-4 (a correctness test, not a benchmark). The
    # limit reaches only libraries loaded before it: SciPy's own OpenBLAS comes with ARPACK.
    import scipy.sparse.linalg  # noqa: F401

    with threadpool_limits(limits=1, user_api="blas"):
        exec(compile(tree, "README block", "exec"), {"__name__": "readme", _PRINT_HOOK: record})
    return printed


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_prints_what_it_claims(index, tmp_path, monkeypatch):
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {DATA_DIR} is not present")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dispatch, "_selected", dispatch._selected)  # blocks may call set_backend
    code = BLOCKS[index].replace("../shared/data", str(DATA_DIR))
    expected = expected_outputs(code)
    assert expected, f"README block {index} prints nothing, so what it shows cannot be checked"
    unmarked = [first for (first, _), text in expected.items() if text is None]
    assert not unmarked, f"README block {index}: the print on line {unmarked[0]} has no '# ->' expected output"
    printed = run_block(code)
    for span, text in sorted(expected.items()):
        assert span in printed, f"README block {index}: the print on line {span[0]} never ran"
        problem = matches(text, printed[span])
        assert problem is None, f"README block {index}, line {span[0]}: {problem}"


def test_matching_rules():
    assert matches("0.81", "0.8066397309303284") is None
    assert matches("0.81", "0.70") is not None
    assert matches("(10000, 100)", "(10000, 100)") is None
    assert matches("(10000, 100)", "(10000, 101)") is not None
    assert matches("[('motor', 0.807), ...]", "[('motor', 0.8066), ('nissan', 0.746)]") is None
    assert matches("[('motor', 0.807), ...]", "[('motors', 0.8066)]") is not None
    assert matches("0.00 (±0.05)", "0.04") is None
    assert matches("0.00 (±0.05)", "0.06") is not None
    assert matches("1e-08", "1.0011718e-08") is None
    assert matches("a b", "a\n   b") is None


def test_readme_starts_with_the_two_commands():
    commands = [line for line in README.read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) >= 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run must run exactly the README's test command"
    first_env = commands[0].split()[3]
    assert first_env != ".venv", "the two recipes must not share one virtual environment"


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md"])
def test_links_to_bench_tables_land_on_a_heading(document):
    path = ROOT / document
    if not path.is_file():
        pytest.skip(f"{document} is not present")
    anchors = {_github_anchor(line.lstrip("#")) for line in (ROOT / "bench" / "README.md").read_text().splitlines()
               if line.startswith("#")}
    links = re.findall(r"\]\(bench/README\.md#([^)]+)\)", path.read_text())
    missing = sorted(set(links) - anchors)
    assert not missing, f"{document} links to sections bench/README.md does not have: {missing}"
