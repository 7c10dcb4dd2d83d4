"""``fastnlp bench``: run the benchmark suites and comparison scripts of bench/, save and compare.

The benchmarks live in the source checkout (``bench/`` beside the ``fastnlp`` package folder), not
in an installed wheel. A run writes into ``--out``: ``benchmarks.json`` (pytest-benchmark's JSON),
one ``compare_<name>.md`` per comparison script, and ``report.md`` (machine, threads, versions,
tables). ``--compare SAVED`` then flags every benchmark more than ``--threshold`` percent slower
than in the saved JSON and exits with status 1 when any is: the regression guard for a kernel
change. ``--compare SAVED --against NEW`` compares two saved runs without running anything.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ._common import UsageError, existing_file, finite_float, int_at_least

DEFAULT_THRESHOLD = 10.0  # percent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Script:
    """A comparison script of bench/: the peers it exists to compare against (skipped without
    them), those it compares against when they are installed, and its arguments for a quick run."""
    name: str
    quick: tuple = ()
    requires: tuple = ()
    optional: tuple = ()
    threads: bool = True  # takes --threads
    data: bool = False  # takes --data-dir


# The comparison scripts a run includes, in order; compare_init and compare_word2vec_paths are
# quality studies of tens of minutes and compare_gpu needs a GPU session (bench/gpu_session.sh).
SCRIPTS = (
    Script("compare_scatter_add", quick=("--repeat", "3"), optional=("torch",)),
    Script("compare_gemm", quick=("--dtypes", "float32", "--seconds", "0.02"), optional=("torch",)),
    Script("compare_count", quick=("--repeat", "1"), data=True),
    Script("compare_count_budget", quick=("--tokens", "1000000", "--vocab", "20000", "--repeat", "1", "--budgets",
                                          "default", "--chunks", "250000")),
    Script("compare_cbow_step", quick=("--repeat", "2"), data=True),
    Script("compare_word2vec", quick=("--epochs", "1", "--seeds", "1", "--workers", "1", "--sg", "1"),
           requires=("gensim",), threads=False, data=True),
    Script("compare_fasttext", quick=("--seeds", "1", "--workers", "1", "--sg", "1", "--bucket", "200000"),
           requires=("gensim",), threads=False, data=True),
    Script("compare_rnnlm", quick=("--epochs", "0", "--timing-iters", "10", "--turn", "5"), requires=("torch",),
           data=True),
    Script("compare_attention_seq2seq", quick=("--batches", "10",), requires=("torch",), threads=False, data=True),
)
SCRIPT_NAMES = tuple(s.name for s in SCRIPTS)

# pytest-benchmark settings of a quick run: short rounds, no calibration warm-up.
QUICK_BENCHMARK_OPTIONS = ("--benchmark-max-time=0.02", "--benchmark-min-rounds=3", "--benchmark-min-time=0.000005")


# ---- where the benchmarks are ---------------------------------------------------------------------


def repository_root() -> Path:
    """The source checkout that holds this fastnlp package (the parent of its folder)."""
    import fastnlp

    return Path(fastnlp.__file__).resolve().parent.parent


def bench_folder() -> Path:
    """``bench/`` of the source checkout; FileNotFoundError when fastnlp runs from an installed
    package (the benchmarks are not installed with it)."""
    folder = repository_root() / "bench"
    if not (folder / "conftest.py").is_file():
        raise FileNotFoundError(
            f"the benchmarks (bench/) are not here: fastnlp runs from {repository_root() / 'fastnlp'}, an "
            "installed package without them; run fastnlp bench from a source checkout (git clone, then "
            "pip install -e '.[bench]')")
    return folder


# ---- machine, threads, versions -----------------------------------------------------------------


def machine_description(threads: int) -> str:
    """CPU model and instruction sets, logical cores, threads, Python and library versions: what
    bench/machine.py says, plus the thread settings of this run."""
    try:
        spec = importlib.util.spec_from_file_location("_fastnlp_bench_machine", bench_folder() / "machine.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        text = module.describe()
    except (OSError, ImportError, AttributeError):
        import platform

        import numpy

        import fastnlp
        from fastnlp.kernels import cpu

        text = "\n".join([f"CPU: {cpu.model_name()} ({os.cpu_count()} logical cores)",
                          f"Python {platform.python_version()}, numpy {numpy.__version__}",
                          f"fastnlp {fastnlp.__version__}",
                          "CPU features: " + (" ".join(cpu.matrix_features()) or "unknown")])
    return text + "\nthreads: " + ", ".join(f"{name}={threads}" for name in THREAD_VARIABLES)


def _environment(threads: int) -> dict:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    root = str(repository_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # pytest-benchmark asks git for the commit; never let that take the repository's index lock.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return env


# ---- reading and comparing pytest-benchmark JSON ------------------------------------------------


def read_benchmarks(path) -> dict:
    """``{fullname: stats}`` of a pytest-benchmark JSON file (``--benchmark-json``); ValueError
    naming the file when it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); expected a pytest-benchmark --benchmark-json file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file; expected a pytest-benchmark --benchmark-json file") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    result = {}
    for entry in data["benchmarks"]:
        try:
            result[entry["fullname"]] = entry["stats"]
        except (KeyError, TypeError):
            raise ValueError(f"{path}: a benchmark entry lacks 'fullname' or 'stats' (not pytest-benchmark JSON)") \
                from None
    return result


def _cpu_of(path) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f).get("machine_info", {})
        return info.get("cpu", {}).get("brand_raw") or info.get("processor") or None
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class Comparison:
    """What ``compare`` found: rows of (fullname, saved, now, change) with change = now / saved - 1."""
    stat: str
    threshold: float
    rows: list
    regressed: list
    improved: list
    missing: list  # in the saved run only
    added: list  # in the current run only

    def report(self, saved_name: str = "saved", current_name: str = "now") -> str:
        lines = [f"Comparison on the {self.stat} time, threshold {self.threshold:g}% "
                 f"({saved_name} -> {current_name})", "",
                 f"| benchmark | {saved_name} us | {current_name} us | change | |",
                 "| --- | ---: | ---: | ---: | --- |"]
        for name, old, new, change in self.rows:
            flag = "SLOWER" if name in self.regressed else ("faster" if name in self.improved else "")
            lines.append(f"| {name} | {old * 1e6:.3f} | {new * 1e6:.3f} | {change:+.1%} | {flag} |")
        if self.missing:
            lines += ["", f"Missing now ({len(self.missing)}, in the saved run only): " + ", ".join(self.missing)]
        if self.added:
            lines += ["", f"New ({len(self.added)}, not in the saved run): " + ", ".join(self.added)]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def summary(self) -> str:
        if self.regressed:
            return (f"{len(self.regressed)} of {len(self.rows)} benchmarks are more than {self.threshold:g}% slower "
                    f"({self.stat}): " + ", ".join(self.regressed))
        return f"no regression: none of {len(self.rows)} benchmarks is more than {self.threshold:g}% slower ({self.stat})"


def compare(saved: dict, current: dict, threshold: float = DEFAULT_THRESHOLD, stat: str = "min") -> Comparison:
    """Compare two ``read_benchmarks`` results by fullname on ``stat`` (``"min"`` or ``"median"``):
    a benchmark more than ``threshold`` percent slower now is a regression, one more than that
    faster an improvement; those in only one run are listed as missing or new."""
    rows, regressed, improved = [], [], []
    for name in sorted(saved.keys() & current.keys()):
        old, new = float(saved[name][stat]), float(current[name][stat])
        change = new / old - 1 if old > 0 else 0.0
        rows.append((name, old, new, change))
        if change * 100 > threshold:
            regressed.append(name)
        elif -change * 100 > threshold:
            improved.append(name)
    return Comparison(stat, threshold, rows, regressed, improved,
                      missing=sorted(saved.keys() - current.keys()), added=sorted(current.keys() - saved.keys()))


def suite_table(benchmarks: dict) -> str:
    lines = ["| benchmark | min us | median us | mean us | rounds |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, stats in sorted(benchmarks.items()):
        lines.append(f"| {name} | {stats['min'] * 1e6:.3f} | {stats['median'] * 1e6:.3f} | "
                     f"{stats['mean'] * 1e6:.3f} | {stats['rounds']} |")
    return "\n".join(lines)


# ---- running ----------------------------------------------------------------------------------------


def _is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _run_suites(args, out: Path, env: dict) -> Path | None:
    json_path = out / "benchmarks.json"
    command = [sys.executable, "-m", "pytest", "bench/", "--benchmark-only", f"--benchmark-json={json_path}",
               "-p", "no:cacheprovider", "-q", "--benchmark-columns=min,median,mean,rounds"]
    if args.quick:
        command += QUICK_BENCHMARK_OPTIONS
    if args.k:
        command += ["-k", args.k]
    print(f"\n## pytest-benchmark suites\n\n$ python {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=repository_root(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    (out / "pytest-bench.log").write_text(done.stdout, encoding="utf-8")
    tail = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"{tail[0]} ({time.perf_counter() - start:.1f} s; full log: {out / 'pytest-bench.log'})", flush=True)
    if done.returncode == 5:
        raise UsageError(f"-k {args.k!r} selects no benchmark in bench/" if args.k else "bench/ holds no benchmark")
    if done.returncode != 0 or not json_path.is_file():
        raise RuntimeError(f"the benchmark suites failed (pytest exit status {done.returncode}): {tail[0]}; "
                           f"see {out / 'pytest-bench.log'}")
    return json_path


def _selected_scripts(text: str) -> list:
    if text == "none":
        return []
    if text == "all":
        return list(SCRIPTS)
    names = [name.strip().removesuffix(".py") for name in text.split(",") if name.strip()]
    unknown = [n for n in names if n not in SCRIPT_NAMES and f"compare_{n}" not in SCRIPT_NAMES]
    if unknown:
        raise UsageError(f"--scripts: unknown script {unknown[0]!r}; expected all, none or some of "
                         + ", ".join(SCRIPT_NAMES))
    return [s for s in SCRIPTS if s.name in names or s.name.removeprefix("compare_") in names]


def _run_scripts(args, scripts, out: Path, env: dict, bench: Path) -> tuple[list, list]:
    """Runs each script; returns (sections for the report, failures)."""
    sections, failures = [], []
    for script in scripts:
        title = f"## {script.name}"
        missing = [m for m in script.requires if not _is_installed(m)]
        if missing:
            line = f"skipped: {', '.join(missing)} not installed (pip install 'fastnlp[bench]')"
            print(f"\n{title}\n\n{line}", flush=True)
            sections.append(f"{title}\n\n{line}")
            continue
        command = [sys.executable, str(bench / f"{script.name}.py")]
        if script.threads:
            command += ["--threads", str(args.threads)]
        if script.data and args.data_dir:
            command += ["--data-dir", args.data_dir]
        if args.quick:
            command += list(script.quick)
        note = "".join(f"\n({m} not installed: its columns are left out)" for m in script.optional
                       if not _is_installed(m))
        shown = " ".join(["python", f"bench/{script.name}.py", *command[2:]])
        print(f"\n{title}\n\n$ {shown}{note}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, cwd=repository_root(), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        output = done.stdout.rstrip()
        (out / f"{script.name}.md").write_text(output + "\n", encoding="utf-8")
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            (out / f"{script.name}.stderr.txt").write_text(done.stderr, encoding="utf-8")
            failures.append(f"{script.name} (exit status {done.returncode}: {last})")
            output += f"\n\nFAILED (exit status {done.returncode}): {last}"
        print(output + f"\n({time.perf_counter() - start:.1f} s)", flush=True)
        sections.append(f"{title}\n\n$ {shown}{note}\n\n{output}")
    return sections, failures


def _prepare_out(path: str | None) -> Path:
    if path is None:
        path = f"fastnlp-bench-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out = Path(path).absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".fastnlp-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {path!r}: cannot write there ({exc.strerror or exc})") from None
    return out


def _report_comparison(saved_path: str, current_path, args, out: Path | None) -> int:
    saved = read_benchmarks(saved_path)
    current = read_benchmarks(current_path)
    result = compare(saved, current, args.threshold, args.stat)
    text = result.report("saved", "now")
    cpus = {_cpu_of(saved_path), _cpu_of(current_path)} - {None}
    if len(cpus) > 1:
        text = "Note: the two runs are from different CPUs (" + " / ".join(sorted(cpus)) + "): speeds differ " \
               "for that reason too.\n\n" + text
    print(f"\n## Against {saved_path}\n\n{text}", flush=True)
    if out is not None:
        (out / "comparison.md").write_text(text + "\n", encoding="utf-8")
    if result.regressed:
        print(f"fastnlp bench: regression: {result.summary()}", file=sys.stderr)
        return 1
    return 0


def _bench(args) -> int:
    if args.against is not None:
        if args.compare is None:
            raise UsageError("--against needs --compare SAVED (the run to compare it with)")
        return _report_comparison(args.compare, args.against, args, None)
    if args.compare is not None:
        read_benchmarks(args.compare)  # a bad file fails now, not after the run
    bench = bench_folder()
    scripts = [] if args.no_scripts else _selected_scripts(args.scripts)
    if args.no_suites and not scripts:
        raise UsageError("nothing to run: --no-suites and no comparison script")
    if args.no_suites and args.compare:
        raise UsageError("--compare needs the suites' timings: leave out --no-suites")
    if not _is_installed("pytest_benchmark") and not args.no_suites:
        raise UsageError("the suites need pytest-benchmark: pip install 'fastnlp[bench]' (or --no-suites)")
    out = _prepare_out(args.out)
    env = _environment(args.threads)
    header = f"# fastnlp bench, {datetime.datetime.now():%Y-%m-%d %H:%M}{' (quick)' if args.quick else ''}\n\n" \
             f"```\n{machine_description(args.threads)}\n```"
    print(header, flush=True)
    sections = [header]
    json_path = None
    if not args.no_suites:
        json_path = _run_suites(args, out, env)
        table = suite_table(read_benchmarks(json_path))
        print("\n" + table, flush=True)
        sections.append(f"## pytest-benchmark suites\n\n{table}\n\nJSON: {json_path}")
    script_sections, failures = _run_scripts(args, scripts, out, env, bench)
    sections += script_sections
    report = out / "report.md"
    report.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"\nreport: {report}" + (f"\nJSON: {json_path} (fastnlp bench --compare {json_path} checks a later run "
                                     "against it)" if json_path else ""), flush=True)
    status = 0
    if args.compare is not None:
        status = _report_comparison(args.compare, json_path, args, out)
    if failures:
        raise RuntimeError(f"{len(failures)} comparison script{'s' if len(failures) > 1 else ''} failed: "
                           + "; ".join(failures))
    return status


def register(jobs) -> None:
    bench = jobs.add_parser(
        "bench", help="run the benchmarks of bench/ (source checkout), save them, compare with a saved run",
        description="Run the pytest-benchmark suites of bench/ and the comparison scripts (bench/compare_*.py) "
                    "that the installed peers allow (gensim, torch), print their tables with the machine, threads "
                    "and versions, and save them under --out. With --compare SAVED, flag every benchmark more "
                    "than --threshold percent slower than in SAVED (a benchmarks.json of an earlier run) and exit "
                    "with status 1 if any is. Needs the source checkout: bench/ is not installed with the package.")
    bench.add_argument("--quick", action="store_true",
                       help="short timing rounds and the scripts' short settings (minutes, not tens of minutes)")
    bench.add_argument("--out", metavar="DIR",
                       help="folder for benchmarks.json, the scripts' tables and report.md "
                            "(default: ./fastnlp-bench-DATE-TIME)")
    bench.add_argument("--compare", metavar="SAVED", type=existing_file,
                       help="a saved benchmarks.json: flag benchmarks slower than in it and exit 1 if any")
    bench.add_argument("--against", metavar="CURRENT", type=existing_file,
                       help="with --compare: compare this saved benchmarks.json instead of running the benchmarks")
    bench.add_argument("--threshold", metavar="PCT", type=finite_float(0.0), default=DEFAULT_THRESHOLD,
                       help="percent slower that counts as a regression")
    bench.add_argument("--stat", choices=("min", "median"), default="min",
                       help="the statistic compared (min is the steadiest on a shared machine)")
    bench.add_argument("-k", metavar="EXPRESSION", help="run only the benchmarks matching this pytest -k expression")
    bench.add_argument("--scripts", default="all",
                       help="comparison scripts to run: all, none, or a comma-separated list of "
                            + ", ".join(SCRIPT_NAMES))
    bench.add_argument("--no-scripts", action="store_true", help="run no comparison script (as --scripts none)")
    bench.add_argument("--no-suites", action="store_true", help="run only the comparison scripts")
    bench.add_argument("--threads", type=int_at_least(1), default=1,
                       help="threads of every library (OMP/MKL/OpenBLAS/Numba, torch) in the runs")
    bench.add_argument("--data-dir", metavar="DIR",
                       help="data folder for the scripts that read PTB (default: each script's own, ../shared/data)")
    bench.set_defaults(run=_bench)
