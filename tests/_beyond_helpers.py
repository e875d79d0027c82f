"""Helpers shared by the OpenTelemetry, Sentry and Celery tests."""

from __future__ import annotations

import importlib
import sys

import pytest


def assert_missing_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str, extra: str
) -> None:
    """Import ``agent_run_id.<module>`` with ``package`` missing: the error names the extra."""
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes "import package..." fail
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, f"agent_run_id.{module}", raising=False)
    with pytest.raises(ImportError, match=rf'pip install "agent-run-id\[{extra}\]"') as info:
        importlib.import_module(f"agent_run_id.{module}")
    assert isinstance(info.value.__cause__, ImportError)
