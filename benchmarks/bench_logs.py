"""The log search and the viewer with real volumes: 1 GB of JSON lines, 100,000 runs.

Aims (issue 18), on this machine:

- ``agent-run-id logs <root> --tree`` scans at least 1 GB/s of JSON log lines for one run's
  tree (the command as a user runs it, startup included), printed beside ``grep -F -c`` on the
  same files in the same run, and their ratio; ``logs <run>`` of one run without ``--tree``
  (one of the tree's runs) is printed too, for information;
- the viewer's list page of a registry of 100,000 runs answers in under 300 ms (the first
  page, failed runs only, and a page deep down the list by its keyset cursor);
- the run page of a run with 1,000 descendants and 20,000 matching lines across 1 GB of log
  files answers in under 2 s.

The data is generated in a temporary folder (``AGENT_RUN_ID_BENCH_LOG_MB`` sets the size of
the logs, 1,000 MB by default) and read from the page cache, as grep reads it.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from agent_run_id import RunId
from agent_run_id.registry import SQLiteRunRegistry

from ._aims import aim

MEGABYTES = int(os.environ.get("AGENT_RUN_ID_BENCH_LOG_MB", "1000"))
FILES = ("agent.jsonl", "llm.jsonl", "tool.jsonl")
DESCENDANTS = 1_000
TREE_LINES = 20_000
RUNS = 100_000
ROUNDS = 3
REQUESTS = 10  # the median of this many requests for each list page


# The viewer answers requests naming this machine only (its guard against DNS rebinding).
_LOCAL = "http://127.0.0.1:8765"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _line(rng: random.Random, run: str, parent: str | None, root: str, n: int) -> bytes:
    record = {
        "timestamp": f"2026-12-06T12:{n // 60_000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
        "service": "agent",
        "level": "error" if n % 97 == 0 else "info",
        "message": f"step {n} of the agent loop: calling a tool with a short argument",
        "run_id": run,
        "parent_run_id": parent,
        "root_run_id": root,
        "session_id": "chat-bench",
    }
    return json.dumps(record).encode() + b"\n"


def _write_logs(folder: Path, tree: list[tuple[str, str | None]], root: str) -> list[Path]:
    """Write the logs: other runs' lines, and the tree's TREE_LINES spread evenly among them."""
    rng = random.Random(18)
    others = []
    for n in range(4_000):
        other = _uuid(rng)
        others.append(_line(rng, other, None, other, n))
    chunk = b"".join(others)
    per_file = MEGABYTES * 1_000_000 // len(FILES)
    chunks = -(-per_file // len(chunk))  # per file
    per_chunk_tree = -(-TREE_LINES // (chunks * len(FILES)))  # at least TREE_LINES in all
    paths = []
    n = 0
    for name in FILES:
        path = folder / name
        written = 0
        with path.open("wb") as f:
            while written < per_file:
                lines = []
                for _ in range(per_chunk_tree):
                    run, parent = tree[n % len(tree)]
                    lines.append(_line(rng, run, parent, root, n))
                    n += 1
                block = chunk + b"".join(lines)
                f.write(block)
                written += len(block)
        paths.append(path)
    return paths


def _write_registry(path: Path, tree: list[tuple[str, str | None]], root: str) -> None:
    """Record RUNS runs (the tree among them), one in fifty failed, over the last day."""
    first = SQLiteRunRegistry(path)  # the schema, and one run of its own
    first.start(RunId.generate())
    first.close()
    rng = random.Random(6)
    now = int(time.time() * 1e6)
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    rows = []
    for i in range(RUNS - len(tree)):
        run = _uuid(rng)
        started = now - 86_400_000_000 + i * 800_000
        failed = i % 50 == 0
        values = {
            "run_id": run,
            "parent_id": None,
            "root_id": run,
            "status": "error" if failed else "ok",
            "started_at": started,
            "ended_at": started + 120_000,
            "duration": 0.12,
            "user_id": f"u-{i % 300}",
            "session_id": f"chat-{i % 3000}",
            "task": f"answer question {i}",
            "error": "ToolFailed: search failed with 503" if failed else None,
            "host": "bench",
            "pid": 1,
            "metadata": "{}",
        }
        rows.append(tuple(values.get(name) for name in columns))
    for i, (run, parent) in enumerate(tree):
        started = now - 60_000_000 + i * 1_000
        values = {
            "run_id": run,
            "parent_id": parent,
            "root_id": root,
            "status": "ok",
            "started_at": started,
            "ended_at": started + 50_000,
            "duration": 0.05,
            "task": f"step {i}",
            "host": "bench",
            "pid": 1,
            "metadata": "{}",
        }
        rows.append(tuple(values.get(name) for name in columns))
    marks = ", ".join("?" * len(columns))
    with db:
        db.executemany(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({marks})", rows)
    db.close()


def _median_seconds(work: Callable[[], object], rounds: int | None = None) -> float:
    times = []
    for _ in range(ROUNDS if rounds is None else rounds):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _child_cpu(work: Callable[[], object]) -> float:
    """Return the median CPU seconds (user + system) of the subprocesses ``work`` runs.

    Printed beside the wall clock: on a machine shared with other work, the wall clock counts
    the time a process waited for a core; its CPU time does not.
    """
    times = []
    for _ in range(ROUNDS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        work()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def _scan(folder: Path, paths: list[Path], root: str, one: str) -> None:
    size = sum(path.stat().st_size for path in paths) / 1e6
    names = [str(path) for path in paths]

    def logs(*argv: str) -> Callable[[], None]:
        def run() -> None:
            subprocess.run(
                [sys.executable, "-m", "agent_run_id", "logs", *argv, *names],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )

        return run

    ours = logs(root, "--tree")
    single = logs(one)

    grep = shutil.which("grep")

    def theirs() -> None:
        assert grep is not None
        done = subprocess.run([grep, "-F", "-c", root, *names], capture_output=True, check=True)
        assert (
            sum(int(line.rsplit(b":", 1)[1]) for line in done.stdout.splitlines())
            >= TREE_LINES // 2
        )

    for path in paths:  # into the page cache, for both
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass
    seconds = _median_seconds(ours)
    cpu = _child_cpu(ours)
    print(f"\nLog search: one run's tree ({DESCENDANTS:,} descendants, {TREE_LINES:,} lines)")
    print(f"  in {size:,.0f} MB of JSON lines, {len(paths)} files, median of {ROUNDS}:")
    print(
        f"  agent-run-id logs --tree  {seconds:6.2f} s  {size / seconds:8,.0f} MB/s"
        f"   (CPU {cpu:.2f} s: {size / cpu:,.0f} MB/s)"
    )
    one_seconds = _median_seconds(single)
    one_cpu = _child_cpu(single)
    print(
        f"  agent-run-id logs <run>   {one_seconds:6.2f} s  {size / one_seconds:8,.0f} MB/s"
        f"   (CPU {one_cpu:.2f} s: {size / one_cpu:,.0f} MB/s; one run of the tree, no --tree)"
    )
    if grep is not None:
        grep_seconds = _median_seconds(theirs)
        grep_cpu = _child_cpu(theirs)
        speed = size / grep_seconds
        print(
            f"  grep -F -c                {grep_seconds:6.2f} s  {speed:8,.0f} MB/s"
            f"   (CPU {grep_cpu:.2f} s: {size / grep_cpu:,.0f} MB/s)"
        )
        print(f"  ratio to grep -F: {seconds / grep_seconds:.1f}x the time")
    aim("agent-run-id logs --tree scans MB/s", size / seconds, at_least=1000, digits=0)


def _pages(db: Path, paths: list[Path], root: str) -> None:
    from starlette.testclient import TestClient

    from agent_run_id._cli._registry import open_registry
    from agent_run_id._viewer._app import create_app

    registry = open_registry(str(db))
    client = TestClient(create_app(registry, [str(path) for path in paths]), base_url=_LOCAL)
    deep = registry.find(limit=50_001)[-1]
    cursor = f"{int(deep.started_at.timestamp() * 1e6)}:{deep.run_id}"
    print(f"\nViewer, a registry of {RUNS:,} runs (median of {REQUESTS} requests each):")
    worst = 0.0
    for what, url in (
        ("list, first page", "/"),
        ("list, failed runs", "/?status=error"),
        ("list, page 500 by cursor", f"/?before={cursor}"),
        ("list, one user", "/?user=u-7"),
    ):
        seconds = _median_seconds(lambda url=url: client.get(url).raise_for_status(), REQUESTS)
        worst = max(worst, seconds)
        print(f"  {what:<28} {seconds * 1000:7.1f} ms")
    aim("the slowest list page, ms", worst * 1000, below=300, digits=1)
    size = sum(path.stat().st_size for path in paths) / 1e6
    names = [str(path) for path in paths]

    def first_load() -> None:  # a fresh app: nothing scanned before
        TestClient(create_app(registry, names), base_url=_LOCAL).get(
            f"/runs/{root}"
        ).raise_for_status()

    page = client.get(f"/runs/{root}")
    page.raise_for_status()
    shown = page.text.count('<tr class="line ')
    seconds = _median_seconds(first_load)
    again = _median_seconds(lambda: client.get(f"/runs/{root}").raise_for_status())
    print(
        f"  run page: {DESCENDANTS:,} descendants, {shown:,} lines of {size:,.0f} MB "
        f"in {len(paths)} files: {seconds:.2f} s first, {again:.2f} s opened again"
    )
    aim("the run page, first load, s", seconds, below=2, digits=2)
    registry.close()


def main() -> None:
    rng = random.Random(1)
    root = str(RunId(_uuid(rng)))
    tree: list[tuple[str, str | None]] = [(root, None)]
    for _ in range(DESCENDANTS):
        parent = rng.choice(tree[-50:])[0]
        tree.append((_uuid(rng), parent))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        paths = _write_logs(folder, tree, root)
        _scan(folder, paths, root, tree[len(tree) // 2][0])
        db = folder / "runs.db"
        _write_registry(db, tree, root)
        _pages(db, paths, root)


if __name__ == "__main__":
    main()
