"""Print a benchmark's aims beside their figures, each with its verdict: met or missed.

The verdict is worked out from the figure, never written by hand. An aim that a wall clock
cannot settle on a small shared machine (a few hundred nanoseconds, or a few percent of a
microsecond-long call) is counted in instructions instead: :func:`elsewhere` says where.
"""

from __future__ import annotations

__all__ = ["aim", "elsewhere"]


def aim(
    what: str,
    figure: float,
    *,
    at_most: float | None = None,
    below: float | None = None,
    at_least: float | None = None,
    unit: str = "",
    digits: int = 2,
) -> bool:
    """Print ``what`` with its bound, ``figure`` and the verdict; return whether it is met.

    Give exactly one bound: ``at_most`` (figure <= bound), ``below`` (figure < bound) or
    ``at_least`` (figure >= bound). ``unit`` follows each number, shown with ``digits`` decimals.
    """
    bounds = {"<=": at_most, "<": below, ">=": at_least}
    given = [(sign, bound) for sign, bound in bounds.items() if bound is not None]
    if len(given) != 1:
        raise TypeError(f"give exactly one of at_most, below, at_least; got {len(given)}")
    sign, bound = given[0]
    met = figure <= bound if sign == "<=" else figure < bound if sign == "<" else figure >= bound
    shown = f"{figure:,.{digits}f}{unit}"
    print(f"  aim: {what} {sign} {bound:,.{digits}f}{unit}: {shown}, {'met' if met else 'missed'}")
    return met


def elsewhere(what: str, where: str = "make bench-count") -> None:
    """Print an aim this benchmark cannot settle by wall clock, and where it is counted."""
    print(f"  aim: {what}: counted in instructions, see `{where}` (too fine for a wall clock)")
