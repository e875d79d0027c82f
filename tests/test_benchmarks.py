"""The benchmarks run: every module of benchmarks/ on tiny sizes, its output well formed.

``make bench`` and ``make bench-count`` are not part of the test suite, and a benchmark broke
once without anyone noticing (bench_logs, when the viewer came to require a Host header). Here
each ``bench_*`` module's ``main()`` runs its real code with its size constants cut down to a
few calls (the figures mean nothing; the path they come from is the real one), and its tables
and aim lines are checked. Each counting module's cases run in this process through the entry
point that each of its callgrind child processes runs, its report is checked on made-up counts,
and without valgrind its ``main()`` says it counted nothing. valgrind never runs here. A module
of benchmarks/ named ``bench_*`` or ``count_*`` that no test here covers fails the suite.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import pkgutil
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pytest

import benchmarks
from agent_run_id.testing import reset

Test = TypeVar("Test", bound=Callable[..., None])

#: The modules a test below covers, filled in by :func:`smoke_test_of` as the file is imported.
SMOKED: set[str] = set()


def benchmark_modules() -> list[str]:
    """Return the benchmarks/ modules that ``make bench`` and ``make bench-count`` run."""
    found = pkgutil.iter_modules([str(Path(benchmarks.__file__).parent)])
    return sorted(module.name for module in found if module.name.startswith(("bench_", "count_")))


def smoke_test_of(*names: str) -> Callable[[Test], Test]:
    """Mark a test as the one that runs the benchmark modules ``names``."""
    SMOKED.update(names)

    def mark(test: Test) -> Test:
        return test

    return mark


def benchmark(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def shrink(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **sizes: int) -> None:
    """Set ``module``'s size constants for this test; a constant renamed since fails here."""
    for name, value in sizes.items():
        monkeypatch.setattr(module, name, value)


# --- reading what a benchmark prints ------------------------------------------------------------

_NUMBER = r"-?[\d,]+(\.\d+)?"
_VERDICT = re.compile(rf"  aim: .+ (<=|<|>=) {_NUMBER}(x| ns)?: {_NUMBER}(x| ns)?, (met|missed)")
_ELSEWHERE = re.compile(
    r"  aim: .+: counted in instructions, see `make bench-count` \(too fine for a wall clock\)"
)


def aims(out: str) -> list[str]:
    """Return the kind of each aim line of ``out`` in order: "verdict" or "elsewhere".

    A verdict is ``aim: <what> <sign> <bound>: <figure>, met|missed``; a malformed aim line fails.
    """
    kinds = []
    for line in out.splitlines():
        if not line.startswith("  aim: "):
            continue
        if _VERDICT.fullmatch(line):
            kinds.append("verdict")
        elif _ELSEWHERE.fullmatch(line):
            kinds.append("elsewhere")
        else:
            pytest.fail(f"a malformed aim line: {line!r}")
    return kinds


def rows(out: str, case: str, figures: str) -> int:
    """Return how many lines of ``out`` are a row of ``case``: its name, then ``figures``."""
    row = re.compile(rf"  {re.escape(case)} +{figures}\s*")
    return sum(1 for line in out.splitlines() if row.fullmatch(line))


# --- the library and logging as a fresh process has them ----------------------------------------


def _loggers() -> list[logging.Logger]:
    known = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(found for found in known if isinstance(found, logging.Logger))]


@contextmanager
def logging_kept() -> Iterator[None]:
    """Put every logger's handlers, level and propagation back as they were, on leaving.

    count_logging adds a handler to its logger for each case, and mcp's server gives the root
    logger rich's handler: neither may reach the next case or the next test.
    """
    saved = {
        logger: (list(logger.handlers), logger.level, logger.propagate) for logger in _loggers()
    }
    try:
        yield
    finally:
        for logger in _loggers():
            handlers, level, propagate = saved.get(logger, ([], logging.NOTSET, True))
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    with logging_kept():
        yield


# --- every module has a test -------------------------------------------------------------------


@pytest.mark.parametrize("name", benchmark_modules())
def test_every_benchmark_module_has_a_smoke_test(name: str) -> None:
    if name not in SMOKED:
        pytest.fail(
            f"benchmarks/{name}.py has no smoke test: add one to tests/test_benchmarks.py "
            "(a bench_* module: its main() on tiny sizes; a counting module: its entry point "
            "in COUNTING)"
        )


def test_every_module_a_test_covers_is_found() -> None:
    assert SMOKED  # and so the test above was given the modules found, not none of them
    gone = SMOKED - set(benchmark_modules())
    assert not gone, f"tests cover modules benchmarks/ no longer has: {sorted(gone)}"


# --- bench_* modules: main() on tiny sizes -----------------------------------------------------

#: A row of ``benchmarks._timing.report``: the median, its ratio to the baseline, the cost over it.
_TIMED_ROW = r"\d+ns +\d+\.\d\dx +-?\d+ns"
#: The tiny sizes every ``compare`` call gets: samples of a few calls, one round.
_TINY = {"NUMBER": 10, "ROUNDS": 1}


def timed_cases(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType
) -> list[tuple[list[str], dict[str, int]]]:
    """Record the cases and sizes of each ``compare`` call of ``module``, which still times them."""
    calls: list[tuple[list[str], dict[str, int]]] = []
    compare = module.compare

    def spy(cases: Mapping[str, Callable[[], object]], **sizes: int) -> dict[str, float]:
        calls.append((list(cases), sizes))
        medians: dict[str, float] = compare(cases, **sizes)
        return medians

    monkeypatch.setattr(module, "compare", spy)
    return calls


#: The benchmarks that print ``benchmarks._timing.report`` tables, with the aim lines they print.
TIMED = {
    "bench_core": ["verdict", "elsewhere"],
    "bench_httpx": ["elsewhere", "elsewhere"],
    "bench_otel": [],
    "bench_run_id_v7": [],
}


@smoke_test_of(*TIMED)
@pytest.mark.parametrize("name", sorted(TIMED))
def test_a_timed_benchmark_reports_every_case_it_times(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = benchmark(name)
    shrink(monkeypatch, module, **_TINY)
    timed = timed_cases(monkeypatch, module)
    module.main()
    out = capsys.readouterr().out
    assert timed, "nothing was timed"
    assert all(sizes == {"number": 10, "rounds": 1} for _, sizes in timed)
    headers = re.findall(r"^  case +median +ratio +over base$", out, re.MULTILINE)
    assert len(headers) == len(timed)  # a table for each comparison
    for case, tables in Counter(case for cases, _ in timed for case in cases).items():
        assert rows(out, case, _TIMED_ROW) == tables, case
    assert aims(out) == TIMED[name]


@smoke_test_of("bench_asgi")
def test_bench_asgi_reports_each_middleware_case_for_both_apps(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_asgi

    shrink(monkeypatch, bench_asgi, BATCH=2, NUMBER=2, ROUNDS=1)
    timed = timed_cases(monkeypatch, bench_asgi)
    bench_asgi.main()
    out = capsys.readouterr().out
    assert [sizes for _, sizes in timed] == [{"number": 2, "rounds": 1}] * 2
    assert out.count(" (2 requests a batch)\n") == 2
    for case in bench_asgi.CASES:  # the median, the overhead, ours over theirs for our cases
        ratio = r"-?\d+\.\d{3}" if case in bench_asgi.PEERS else ""
        assert rows(out, case, rf"\d+ns +-?\d+ns +{ratio}") == 2, case
    assert aims(out) == ["elsewhere"]


@smoke_test_of("bench_registry")
def test_bench_registry_records_every_run_from_its_threads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_registry

    shrink(monkeypatch, bench_registry, RUNS_PER_THREAD=10, ROUNDS=1)
    bench_registry.main()  # a lost run ends it with SystemExit
    out = capsys.readouterr().out
    assert f"start + end of {10 * bench_registry.THREADS} runs from" in out
    assert rows(out, "median", r"[\d,]+ runs/s  \(rounds: [\d,]+\), none lost") == 1
    assert aims(out) == ["verdict"]


@smoke_test_of("bench_registry_pg")
def test_bench_registry_pg_records_every_run_into_postgresql_and_sqlite(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_registry_pg
    from tests._postgres_server import require_binaries

    require_binaries()  # skips without PostgreSQL, fails when AGENT_RUN_ID_REQUIRE names postgres
    shrink(monkeypatch, bench_registry_pg, WORKERS=2, RUNS_PER_WORKER=10, ROUNDS=1)
    bench_registry_pg.main()  # a lost run ends it with SystemExit
    out = capsys.readouterr().out
    assert "start + end of 20 runs from 2 processes, in all" in out
    for store in ("PostgreSQL", "SQLite file"):
        assert rows(out, store, r"median +[\d,]+ runs/s  \(rounds: [\d,]+\)") == 1, store
    assert re.search(r"^  PostgreSQL / SQLite: \d+\.\d\dx, none lost$", out, re.MULTILINE)
    assert aims(out) == ["verdict"]


@smoke_test_of("bench_logs")
def test_bench_logs_searches_a_few_megabytes_and_opens_the_viewer_pages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_logs

    shrink(
        monkeypatch,
        bench_logs,
        MEGABYTES=1,  # at least a block of other runs' lines a file: a few MB, not 1 GB
        DESCENDANTS=20,
        TREE_LINES=100,
        RUNS=300,
        ROUNDS=1,
        REQUESTS=2,
    )
    bench_logs.main()
    out = capsys.readouterr().out
    scanned = re.search(r"^  in ([\d,]+) MB of JSON lines, 3 files, median of 1:$", out, re.M)
    assert scanned is not None, out
    assert int(scanned[1].replace(",", "")) <= 10
    speed = r"\d+\.\d\d s +[\d,]+ MB/s +\(CPU \d+\.\d\d s: [\d,]+ MB/s.*\)"
    for search in ("agent-run-id logs --tree", "agent-run-id logs <run>", "grep -F -c"):
        assert rows(out, search, speed) == 1, search
    assert re.search(r"^  ratio to grep -F: \d+\.\dx the time$", out, re.MULTILINE)
    assert len(re.findall(r"^  list, .+ +\d+\.\d ms$", out, re.MULTILINE)) == 4
    page = re.search(
        r"^  run page: 20 descendants, ([\d,]+) lines of [\d,]+ MB in 3 files: "
        r"\d+\.\d\d s first, \d+\.\d\d s opened again$",
        out,
        re.MULTILINE,
    )
    assert page is not None, out
    assert int(page[1].replace(",", "")) >= 100  # the tree's lines, found and shown
    assert aims(out) == ["verdict"] * 3


# --- counting modules: each case in process, the report on made-up counts -----------------------

_FAKE_VALGRIND = "/nonexistent/bin/valgrind"


def valgrind_at(monkeypatch: pytest.MonkeyPatch, path: str | None) -> None:
    """Make ``shutil.which("valgrind")``, find_valgrind's look-up, answer ``path``."""
    which = shutil.which

    def found(command: str, *args: Any, **kwargs: Any) -> str | None:
        return path if command == "valgrind" else which(command, *args, **kwargs)

    monkeypatch.setattr(shutil, "which", found)


@dataclass(frozen=True)
class Counting:
    """A module that counts its cases' instructions, each case in a callgrind process of its own.

    ``entry`` is what each such process runs, ``entry(case, operations)``; ``verdicts`` the aims
    ``main()`` settles from the counts; ``sizes`` cut down what ``main()`` times before counting.
    """

    entry: str
    verdicts: int
    sizes: Mapping[str, int] = field(default_factory=dict)


COUNTING = {
    "count_asgi": Counting("_serve", verdicts=2),
    "count_core": Counting("_call", verdicts=1),
    "count_httpx": Counting("_serve", verdicts=1),
    "count_logging": Counting("_log", verdicts=3),
    "bench_mcp": Counting("_serve", verdicts=1, sizes={"CALLS": 3, "ROUNDS": 1}),
}


class FakeCallgrind:
    """``count_per_operation`` without valgrind: each case runs here as its process would.

    The process runs ``python -m benchmarks.<module> <case> <operations>``: the module's entry
    point on the case. Here it runs on 3 operations, in a context of its own, and the library
    and logging are put back after it as a process of its own would leave them. The counts are
    made up, each case's 100 more than the one before: every ratio the report takes is defined.
    """

    def __init__(self, module: str, entry: Callable[[str, int], object]) -> None:
        self.module = module
        self.entry = entry
        self.counts: dict[str, float] = {}

    def __call__(
        self, valgrind: str, module: str, cases: Iterable[str], operations: int
    ) -> dict[str, float]:
        assert valgrind == _FAKE_VALGRIND
        assert module == self.module  # what the processes run: python -m benchmarks.<module>
        assert operations > 0
        for case in cases:
            with logging_kept():
                try:
                    contextvars.copy_context().run(self.entry, case, 3)
                finally:
                    reset()
            self.counts[case] = 10_000.0 + 100.0 * len(self.counts)
        return dict(self.counts)


@smoke_test_of(*COUNTING)
@pytest.mark.parametrize("name", sorted(COUNTING))
def test_a_counting_module_runs_each_case_here_and_reports_its_counts(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module, counting = benchmark(name), COUNTING[name]
    shrink(monkeypatch, module, **counting.sizes)
    valgrind_at(monkeypatch, _FAKE_VALGRIND)
    callgrind = FakeCallgrind(name, getattr(module, counting.entry))
    monkeypatch.setattr(module, "count_per_operation", callgrind)
    module.main()
    out = capsys.readouterr().out
    assert callgrind.counts, "main() counted no case"
    if hasattr(module, "CASES"):
        assert list(callgrind.counts) == list(module.CASES)
    for case, count in callgrind.counts.items():
        assert rows(out, case, rf"{count:,.0f}( .*)?") == 1, case
    assert aims(out) == ["verdict"] * counting.verdicts


def _no_counting(*args: object) -> NoReturn:
    raise AssertionError(f"counted without valgrind: {args!r}")


@pytest.mark.parametrize("name", sorted(name for name in COUNTING if name.startswith("count_")))
def test_a_counting_module_without_valgrind_says_it_counted_nothing(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = benchmark(name)
    valgrind_at(monkeypatch, None)
    monkeypatch.setattr(module, "count_per_operation", _no_counting)
    module.main()
    assert capsys.readouterr().out == (
        f"{name}: valgrind is not installed (apt install valgrind); nothing counted\n"
    )


def test_bench_mcp_without_valgrind_settles_its_aim_in_cpu_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import bench_mcp

    shrink(monkeypatch, bench_mcp, CALLS=3, ROUNDS=1)
    valgrind_at(monkeypatch, None)
    monkeypatch.setattr(bench_mcp, "count_per_operation", _no_counting)
    bench_mcp.main()
    out = capsys.readouterr().out
    assert rows(out, bench_mcp.BARE, r"\d+\.\dus +1\.000x") == 1
    assert rows(out, bench_mcp.OURS, r"\d+\.\dus +\d+\.\d{3}x") == 1
    assert "bench_mcp: valgrind is not installed (apt install valgrind); nothing counted\n" in out
    assert aims(out) == ["verdict"]
