"""Count a benchmark case's instructions per operation with valgrind's callgrind.

Wall-clock medians on a small shared machine swing by more than the differences being measured;
an instruction count does not. A counting module (``count_asgi``, ``count_logging``) runs one
case in a child process when called as ``python -m benchmarks.<module> <case> <operations>``.
Each case runs under callgrind twice, with no operations and with ``operations``: the difference
divided by ``operations`` is the case's count per operation, free of start-up and import costs.
The processes run side by side, one per core: a count does not depend on what else the machine
does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["count_per_operation", "find_valgrind"]


def find_valgrind(module: str) -> str | None:
    """Return valgrind's path, or None after saying that ``module`` counted nothing without it."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(f"{module}: valgrind is not installed (apt install valgrind); nothing counted")
    return valgrind


def _count(valgrind: str, module: str, case: str, operations: int) -> int:
    """Return the instructions callgrind counts for a whole child process of ``case``."""
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    # -B: neither run writes bytecode, so both pay the same compile costs and they cancel out.
    command += [sys.executable, "-B", "-m", f"benchmarks.{module}", case, str(operations)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:  # the case's own traceback is in stderr
        raise RuntimeError(f"counting {case!r} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def count_per_operation(
    valgrind: str, module: str, cases: Iterable[str], operations: int
) -> dict[str, float]:
    """Return each case's instructions per operation, in the order of ``cases``."""

    def per_operation(case: str) -> float:
        whole = _count(valgrind, module, case, operations)
        return (whole - _count(valgrind, module, case, 0)) / operations

    names = list(cases)
    # The cores this process may use (not all the machine has): a valgrind takes a few hundred MB.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(cores) as pool:
        return dict(zip(names, pool.map(per_operation, names), strict=True))
