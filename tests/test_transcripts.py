"""The shell transcripts in the docs are what the commands print (ids and times aside).

The demo's transcripts are checked in test_demo.py, which runs the demo once for everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._transcripts import ROOT, console_blocks, normalized


def test_the_normalized_form_keeps_which_id_is_which() -> None:
    a, b = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908", "9f5d7e7f-6212-45d0-a20c-e533946fe55f"
    text = f"{a}  ok  11.2ms\n  {b}  error  7.0ms\n$ show {b[:8]} at 2026-11-25 17:14:46\n"
    assert normalized(text) == "<id1>  ok  <ms>\n  <id2>  error  <ms>\n$ show <id2:8> at <time>"
    swapped = f"{a}  ok  1.0ms\n  {b}  error  2.0ms\n$ show {a[:8]} at 2026-12-01 01:02:03\n"
    assert normalized(swapped) != normalized(text)
    short = normalized("run abcdef12, then 12345678 under abcdef12")
    assert short == "run <short1>, then <short2> under <short1>"


def test_the_registry_example_prints_what_docs_registry_md_shows(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "registry_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = [block for block in console_blocks(ROOT / "docs" / "registry.md") if "bob" in block]
    assert len(shown) == 1
    assert normalized(shown[0]) == normalized(done.stdout)


@pytest.mark.parametrize(
    ("example", "first_words"),
    [
        ("otel_two_services.py", "planner ran as run "),
        ("celery_app.py", "agent run "),
    ],
)
def test_the_beyond_examples_print_what_docs_beyond_md_shows(
    example: str, first_words: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    blocks = console_blocks(ROOT / "docs" / "beyond.md", language="text")
    (shown,) = [block for block in blocks if block.startswith(first_words)]
    assert normalized(shown) == normalized(done.stdout)
