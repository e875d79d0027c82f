"""Record runs from 8 worker processes into PostgreSQL, beside SQLite: runs a second, none lost.

The aim (issue 17) is at least 10,000 runs a second in all on a 2-core machine. Each worker
process enters and leaves real ``RunContext(registry=...)`` runs and then flushes: a run counts
once it is in the database. The server is started here (initdb in a temporary folder, on
127.0.0.1, its durability settings PostgreSQL's defaults), as the tests start theirs; the same
8 processes then record into one SQLite file, for the figure beside it.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agent_run_id import RunContext
from agent_run_id.registry import open_registry

from ._aims import aim

WORKERS = 8
RUNS_PER_WORKER = 5_000
ROUNDS = 3


def _worker(target: str, runs: int, ready: Any, go: Any, done: Any) -> None:
    # ``runs`` from the parent, not RUNS_PER_WORKER: a spawned process imports this module
    # afresh, and would not see a size the parent set (as the smoke test does).
    registry = open_registry(target)
    registry.flush()  # connected (the tables made) before the clock starts
    ready.put(None)
    go.wait()
    for _ in range(runs):
        with RunContext(registry=registry, user_id="bench", task="bench"):
            pass
    registry.flush()
    done.put(time.perf_counter())
    registry.close()


def _round(target: str) -> float:
    spawn = multiprocessing.get_context("spawn")
    ready, done, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    workers = [
        spawn.Process(target=_worker, args=(target, RUNS_PER_WORKER, ready, go, done))
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    start = time.perf_counter()
    go.set()
    ends = [done.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(60)
    total = WORKERS * RUNS_PER_WORKER
    reader = open_registry(target)
    recorded = len(reader.find(status="ok", limit=10 * total))
    reader.close()
    if recorded != total:
        raise SystemExit(f"lost runs: recorded {recorded} of {total}")
    return total / (max(ends) - start)


def main() -> None:
    try:
        from tests._postgres_server import PostgresServer, binaries
    except ImportError:  # pragma: no cover - run from the repository with the dev extra
        print("\nRun registry on PostgreSQL: skipped (run from the repository: make bench)")
        return
    found = binaries()
    if found is None:
        print("\nRun registry on PostgreSQL: skipped, no PostgreSQL server binaries found")
        return
    total = WORKERS * RUNS_PER_WORKER
    server = PostgresServer(found, settings={"fsync": "on"})
    server.start()
    try:
        pg = [_round(server.fresh_dsn()) for _ in range(ROUNDS)]
    finally:
        server.close()
    with tempfile.TemporaryDirectory() as folder:
        lite = [_round(str(Path(folder) / f"runs-{i}.db")) for i in range(ROUNDS)]
    print(f"\nRun registry: start + end of {total} runs from {WORKERS} processes, in all")
    for name, rates in (("PostgreSQL", pg), ("SQLite file", lite)):
        shown = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"  {name:<12} median {statistics.median(rates):>8,.0f} runs/s  (rounds: {shown})")
    print(
        f"  PostgreSQL / SQLite: {statistics.median(pg) / statistics.median(lite):.2f}x, none lost"
    )
    aim("runs a second, 8 processes, PostgreSQL", statistics.median(pg), at_least=10_000, digits=0)


if __name__ == "__main__":
    main()
