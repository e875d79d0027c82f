"""An integration whose package is missing fails with an ImportError naming the extra."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

import agent_run_id


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("structlog", "structlog", "structlog"),
        ("loguru", "loguru", "loguru"),
        ("httpx", "httpx", "httpx"),
        ("httpx2", "httpx2", "httpx2"),
        ("requests", "requests", "requests"),
        ("aiohttp", "aiohttp", "aiohttp"),
        ("otel", "opentelemetry", "otel"),
        ("sentry", "sentry_sdk", "sentry"),
        ("celery", "celery", "celery"),
        ("mcp", "mcp", "mcp"),
        ("langchain", "langchain_core", "langchain"),
        ("openai_agents", "agents", "openai-agents"),
        ("pydantic_ai", "pydantic_ai", "pydantic-ai"),
    ],
)
def test_missing_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str, extra: str
) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes "import package..." fail
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, f"agent_run_id.{module}", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module(f"agent_run_id.{module}")
    message = str(info.value)
    assert message.startswith(f"agent_run_id.{module} needs the ")
    # The command names a requirement pip resolves today: the extra, from the git repository.
    quoted = re.search(r'pip install "([^"]+)"', message)
    assert quoted is not None, message
    requirement = Requirement(quoted.group(1))
    assert requirement.name == "agent-run-id"
    assert requirement.extras == {extra}
    assert requirement.url == "git+https://github.com/MukundaKatta/agent-run-id"
    assert isinstance(info.value.__cause__, ImportError)


def test_the_package_root_imports_no_integration() -> None:
    assert agent_run_id.__name__ == "agent_run_id"
    code = (
        "import sys, agent_run_id\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'structlog', 'loguru', 'httpx', 'httpx2', 'requests', 'aiohttp', 'opentelemetry',"
        " 'sentry_sdk', 'celery', 'starlette', 'fastapi', 'mcp', 'langchain_core', 'langgraph',"
        " 'agents', 'pydantic_ai', 'psycopg', 'jinja2', 'uvicorn'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
