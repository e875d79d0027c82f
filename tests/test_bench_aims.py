"""benchmarks._aims: each aim is printed with the verdict its figure earns, met or missed."""

from __future__ import annotations

import pytest

from benchmarks._aims import aim, elsewhere


@pytest.mark.parametrize(
    ("figure", "bounds", "met"),
    [
        (0.85, {"at_most": 1.0}, True),
        (1.0, {"at_most": 1.0}, True),
        (1.01, {"at_most": 1.0}, False),
        (0.99, {"below": 1.0}, True),
        (1.0, {"below": 1.0}, False),
        (5_000, {"at_least": 5_000}, True),
        (4_999, {"at_least": 5_000}, False),
    ],
)
def test_the_verdict_follows_the_figure(
    figure: float, bounds: dict[str, float], met: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert aim("cost", figure, unit="x", **bounds) is met
    line = capsys.readouterr().out
    assert line.startswith("  aim: cost ")
    assert line.endswith(", met\n" if met else ", missed\n")
    assert f"{figure:,.2f}x" in line


@pytest.mark.parametrize("bounds", [{}, {"at_most": 1.0, "at_least": 0.5}])
def test_an_aim_needs_exactly_one_bound(bounds: dict[str, float]) -> None:
    with pytest.raises(TypeError, match="exactly one of at_most, below, at_least"):
        aim("cost", 1.0, **bounds)


def test_an_aim_settled_elsewhere_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere("ours <= theirs")
    assert capsys.readouterr().out == (
        "  aim: ours <= theirs: counted in instructions, see `make bench-count`"
        " (too fine for a wall clock)\n"
    )
