"""The OpenTelemetry, Sentry and Celery examples run as the docs show them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
SHORT = r"[0-9a-f]{8}"

pytestmark = pytest.mark.demo


def _run(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sentry_example_prints_an_event_tagged_with_its_run() -> None:
    out = _run("sentry_errors.py")
    tag = re.search(r"tags=\{'run_id': '([0-9a-f-]{36})'\}", out)
    assert tag is not None, out
    assert f"'id': '{tag.group(1)}'" in out
    assert "'parent_id'" in out


def test_celery_example_chain_keeps_the_lineage() -> None:
    out = _run("celery_app.py")
    sender = re.search(rf"agent run ({SHORT}) sends", out)
    assert sender is not None, out
    steps = re.findall(rf"run=({SHORT}) parent=({SHORT}) root=({SHORT})", out)
    assert len(steps) == 3
    parents = [sender.group(1)] + [run for run, _, _ in steps[:2]]
    assert [parent for _, parent, _ in steps] == parents
    assert {root for _, _, root in steps} == {sender.group(1)}


def test_two_services_example_prints_one_run_per_service_with_lineage() -> None:
    out = _run("otel_two_services.py")
    runs = re.search(rf"planner ran as run ({SHORT}), search as run ({SHORT})", out)
    assert runs is not None, out
    planner, search = runs.groups()
    spans = re.findall(rf"\[(planner|search)\] +run=({SHORT}) parent_run=({SHORT}|-)", out)
    assert len(spans) >= 8
    for service, run, parent in spans:
        expected = (planner, "-") if service == "planner" else (search, planner)
        assert (run, parent) == expected
