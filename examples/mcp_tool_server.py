"""An MCP tool server over stdio whose every tool call runs in the calling agent's run tree.

Started by examples/mcp_stdio_agent.py (``python mcp_tool_server.py LOGFILE``): each
``tools/call`` arrives with the agent's run in its ``_meta`` and runs as a child of it, so the
server's log lines (JSON lines in LOGFILE) carry that run. The standard output is MCP's: the
server logs to a file, never to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

import agent_run_id.logging
from agent_run_id.mcp import RunIdServerMiddleware

logger = logging.getLogger("tools")


class JsonLines(logging.Formatter):
    """One JSON object per record, with the run fields that agent_run_id.logging stamps."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                + f".{int(record.created % 1 * 1_000_000):06d}Z",  # two processes: to the µs
                "service": "tools",
                "level": record.levelname.lower(),
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
            }
        )


server = MCPServer("tools", middleware=[RunIdServerMiddleware()], log_level="WARNING")


@server.tool()
async def search(query: str) -> str:
    """Search the (pretend) web."""
    logger.info("search %r", query)
    return f"3 results for {query!r}"


@server.tool()
async def weather(city: str) -> str:
    """Say the (pretend) weather in a city."""
    logger.info("weather in %s", city)
    if city == "Reykjavik":
        logger.error("weather backend timed out for %s", city)
        raise ToolError("weather backend timed out")  # the client gets isError: true
    return f"sunny in {city}"


if __name__ == "__main__":
    handler = logging.FileHandler(sys.argv[1])
    handler.setFormatter(JsonLines())
    logger.addHandler(handler)  # the SDK has set up the root logger (to stderr) already
    logger.setLevel(logging.INFO)
    logger.propagate = False
    agent_run_id.logging.install()
    server.run("stdio")
