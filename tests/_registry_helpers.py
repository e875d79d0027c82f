"""Helpers for the registry tests: fresh registries, and work done in other processes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent_run_id import RunContext, RunId
from agent_run_id.registry import SQLiteRunRegistry


def record_runs(path: str, count: int, user_id: str) -> None:
    """Record ``count`` runs in ``path`` (run in a spawned process)."""
    registry = SQLiteRunRegistry(path)
    for _ in range(count):
        with RunContext(registry=registry, user_id=user_id):
            pass
    registry.close()


def start_and_die(path: str) -> None:
    """Start a run, make sure it is written, and die without ending it."""
    registry = SQLiteRunRegistry(path)
    registry.start(RunId.generate(), task="dies")
    registry.flush()
    os._exit(0)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` read-only, even for root (who ignores file modes), for the block."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)
        try:
            yield
        finally:
            path.chmod(mode)
