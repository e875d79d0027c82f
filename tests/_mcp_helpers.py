"""What the MCP tests share across mcp 1.x and 2.x: the tool server, what it saw, real servers.

Imports only what both test environments have (the main ``.venv`` with mcp 2.x, and
``.venv-mcp1`` with mcp 1.27): the tools are registered the same way on mcp 2.x's
``MCPServer`` and mcp 1.x's ``FastMCP``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import agent_run_id.logging
import agent_run_id.otel
import agent_run_id.registry
from agent_run_id import current_run, current_run_id
from agent_run_id.registry import SQLiteRunRegistry
from tests._uvicorn_helpers import uvicorn_serving

MCP_MAJOR = int(version("mcp").split(".")[0])
HERE = Path(__file__).parent
log = logging.getLogger("tests.mcp.tool")


def build_server(name: str = "tools") -> Any:
    """Return a tool server (``MCPServer`` on mcp 2.x, ``FastMCP`` on 1.x), not instrumented.

    Tools: ``echo(n)`` logs a line and returns what it saw of its run as JSON; ``fail()`` raises
    (the SDK reports it as a result with ``isError: true``); ``slow(n)`` waits for ``n`` ms.
    A prompt ``greet`` and a resource ``res://run`` return their run id.
    """
    if MCP_MAJOR >= 2:
        from mcp.server.mcpserver import MCPServer

        server: Any = MCPServer(name)
    else:
        from mcp.server.fastmcp import FastMCP

        server = FastMCP(name)

    @server.tool()
    async def echo(n: int) -> str:
        log.info("tool echo %s", n)
        return seen()

    @server.tool()
    def echo_sync(n: int) -> str:
        log.info("tool echo_sync %s", n)
        return seen()

    @server.tool()
    def fail() -> str:
        log.info("tool fail")
        raise RuntimeError("the tool failed")

    @server.prompt()
    def greet(who: str) -> str:
        return seen()

    @server.resource("res://run")
    def resource() -> str:
        return seen()

    return server


def seen() -> str:
    """Return what the caller sees of its run, as JSON: id, parent, root, session, name."""
    run = current_run()
    if run is None:
        return json.dumps(None)
    run_id = current_run_id()
    assert run_id is not None
    return json.dumps(
        {
            "run": run_id.value,
            "parent": None if run_id.parent is None else run_id.parent.value,
            "root": run_id.root.value,
            "session": run.session_id,
            "name": run.name,
        }
    )


def text_of(result: Any) -> str:
    """Return the text of a tool, prompt or resource result (mcp 1.x or 2.x)."""
    if hasattr(result, "messages"):  # a prompt
        content = result.messages[0].content
        return str(content.text)
    if hasattr(result, "contents"):  # a resource
        return str(result.contents[0].text)
    return str(result.content[0].text)


class Records(logging.Handler):
    """Keep each record's message and the run fields ``agent_run_id.logging`` stamped."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "parent_run_id": getattr(record, "parent_run_id", None),
        }
        with self._lock2:
            self.lines.append(line)

    def run_of(self, message: str) -> dict[str, Any]:
        """Return the one line with ``message``."""
        found = [line for line in self.lines if line["message"] == message]
        assert len(found) == 1, (message, self.lines)
        return found[0]


class Spans(SpanExporter):
    """Keep finished spans in memory (the SDK's in-memory exporter, thread safe)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Any) -> SpanExportResult:
        with self._lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def named(self, name: str) -> list[ReadableSpan]:
        """Return the finished spans called ``name``."""
        with self._lock:
            return [span for span in self.spans if span.name == name]


@dataclass
class Observed:
    """Where one test sees its runs: log records, spans, the registry."""

    records: Records
    spans: Spans
    provider: TracerProvider
    registry: SQLiteRunRegistry

    def row(self, run: str) -> Any:
        """Return the registry row of ``run`` (the registry written so far)."""
        self.registry.flush()
        return self.registry.get(run)


@contextmanager
def observed(folder: Path) -> Iterator[Observed]:
    """Capture log records, spans (run spans too) and registry rows of every run in this process."""
    records = Records()
    root = logging.getLogger("tests.mcp")
    root.addHandler(records)
    root.setLevel(logging.INFO)
    agent_run_id.logging.install()
    spans = Spans()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    agent_run_id.otel.install(tracer_provider=provider, run_spans=True)
    registry = SQLiteRunRegistry(folder / "runs.db")
    agent_run_id.registry.set_default(registry)
    try:
        yield Observed(records, spans, provider, registry)
    finally:
        agent_run_id.registry.set_default(None)
        registry.close()
        root.removeHandler(records)
        provider.shutdown()


@contextmanager
def uvicorn_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1, yield its MCP URL (lifespan on: MCP's sessions start there)."""
    with uvicorn_serving(app, lifespan="on") as base:
        yield f"{base}/mcp"


def stdio_command(folder: Path, incoming: str = "child") -> dict[str, Any]:
    """Return how to start the stdio tool server: command, args, env and cwd."""
    env = {**os.environ, "MCP_TEST_OUT": str(folder), "MCP_TEST_INCOMING": incoming}
    args = ["-m", "tests._mcp_stdio_server"]
    return {"command": sys.executable, "args": args, "env": env, "cwd": str(HERE.parent)}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def by_message(lines: list[dict[str, Any]], message: str) -> Mapping[str, Any]:
    """Return the one line with ``message``."""
    found = [line for line in lines if line["message"] == message]
    assert len(found) == 1, (message, lines)
    return found[0]
