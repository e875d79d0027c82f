"""The MCP tool server of the stdio tests: ``python -m tests._mcp_stdio_server`` (mcp 1.x, 2.x).

Writes what it sees to the folder in ``$MCP_TEST_OUT``: its log lines (``server.jsonl``, with
the run fields), its spans (``spans.jsonl``, from the real OpenTelemetry SDK) and its runs
(``server.db``, a SQLite run registry). ``$MCP_TEST_INCOMING`` is the ``incoming=`` option.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import agent_run_id.logging
import agent_run_id.mcp
import agent_run_id.otel
from agent_run_id.registry import SQLiteRunRegistry, set_default
from tests._mcp_helpers import build_server


class JsonLines(logging.Formatter):
    """One JSON object per record: the message and the run fields stamped on it."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
            }
        )


class SpanLines(SpanExporter):
    """Write each finished span as a line of JSON: its name, status and attributes."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def export(self, spans: Any) -> SpanExportResult:
        for span in spans:
            assert isinstance(span, ReadableSpan)
            line = {
                "name": span.name,
                "status": span.status.status_code.name,
                "attributes": dict(span.attributes or {}),
            }
            self.file.write(json.dumps(line) + "\n")
        self.file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.file.close()


def main() -> None:
    out = Path(os.environ["MCP_TEST_OUT"])
    handler = logging.FileHandler(out / "server.jsonl")
    handler.setFormatter(JsonLines())
    logging.getLogger("tests.mcp").addHandler(handler)
    logging.getLogger("tests.mcp").setLevel(logging.INFO)
    agent_run_id.logging.install()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanLines(out / "spans.jsonl")))
    trace.set_tracer_provider(provider)
    agent_run_id.otel.install(run_spans=True)
    registry = SQLiteRunRegistry(out / "server.db")
    set_default(registry)
    server = build_server("stdio-tools")
    agent_run_id.mcp.instrument_server(server, incoming=os.environ["MCP_TEST_INCOMING"])
    try:
        server.run("stdio")
    finally:
        registry.close()
        provider.shutdown()
        handler.close()


if __name__ == "__main__":
    main()
