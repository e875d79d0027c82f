"""Time cases side by side in one process and print medians and ratios.

Each case is timed in rounds that interleave all the cases, so a noisy neighbour slows them
alike; the median of the rounds is what is reported, with each case's ratio to the baseline.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["compare", "report"]


def compare(
    cases: Mapping[str, Callable[[], object]],
    *,
    number: int = 20_000,
    rounds: int = 15,
) -> dict[str, float]:
    """Return the median seconds per call of each case, timed in interleaved rounds.

    The garbage collector is off while a sample is timed, as ``timeit`` has it: a collection
    falls on whichever case happens to cross the threshold, not on the one that made the garbage.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm up
        for _ in range(min(number, 1_000)):
            fn()
    enabled = gc.isenabled()
    try:
        for _ in range(rounds):
            for name, fn in cases.items():
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - start) / number)
                if enabled:
                    gc.enable()
    finally:
        if enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: Mapping[str, float], *, baseline: str) -> None:
    """Print each case's median, its ratio to ``baseline`` and its cost over it."""
    base = medians[baseline]
    print(f"\n{title}")
    print(f"  {'case':<48} {'median':>10} {'ratio':>7} {'over base':>10}")
    for name, value in medians.items():
        over = (value - base) * 1e9
        print(f"  {name:<48} {value * 1e9:>8.0f}ns {value / base:>6.2f}x {over:>8.0f}ns")
