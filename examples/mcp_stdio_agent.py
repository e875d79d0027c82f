"""An agent calling the tools of an MCP server over stdio; the server's lines under its run.

Three agent runs at once, each calling two tools of one MCP server (a subprocess speaking MCP
over stdio: no HTTP, no headers). ``instrument_client`` puts each call's run in its ``_meta``,
and the server's ``RunIdServerMiddleware`` runs each call as a child of it. Then, as on-call
would, with nothing but the failing run's id: ``agent-run-id logs --tree`` prints the agent's
lines and the tool server's, from both log files, as one tree.

Run: ``python examples/mcp_stdio_agent.py [FOLDER]`` (a temporary folder by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

import agent_run_id.logging
import agent_run_id.mcp
from agent_run_id import RunContext

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("agent")


class JsonLines(logging.Formatter):
    """One JSON object per record, with the run fields that agent_run_id.logging stamps."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                + f".{int(record.created % 1 * 1_000_000):06d}Z",  # two processes: to the µs
                "service": "agent",
                "level": record.levelname.lower(),
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
            }
        )


async def agent(client: Client, city: str) -> str:
    """One agent run: search, then the weather; a tool's failure fails the run."""
    async with RunContext(task=f"trip to {city}") as run:
        logger.info("agent started: trip to %s", city)
        found, weather = await asyncio.gather(
            client.call_tool("search", {"query": f"flights to {city}"}),
            client.call_tool("weather", {"city": city}),
        )
        if weather.is_error:
            logger.error("tool weather failed: %s", weather.content[0].text)
            return run.run_id.value
        logger.info("agent answered: %s, %s", found.content[0].text, weather.content[0].text)
        return ""


def shell(folder: Path, *argv: str) -> None:
    """Show ``agent-run-id ARGV``, run it in ``folder`` as a user would, print its output."""
    print(f"$ agent-run-id {' '.join(argv)}")
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
    )
    print(done.stdout, end="")


async def main(folder: Path) -> None:
    handler = logging.FileHandler(folder / "agent.jsonl")
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    agent_run_id.logging.install()
    server = StdioServerParameters(
        command=sys.executable, args=[str(HERE / "mcp_tool_server.py"), str(folder / "tools.jsonl")]
    )
    async with Client(server) as client:
        agent_run_id.mcp.instrument_client(client)  # every call carries its run in _meta
        results = await asyncio.gather(
            *(agent(client, city) for city in ("Lisbon", "Reykjavik", "Oslo"))
        )
    handler.close()
    failed = [run for run in results if run]
    print(f"{len(failed)} of {len(results)} agent runs failed: run {failed[0]}\n")
    shell(folder, "logs", failed[0][:8], "--tree", "agent.jsonl", "tools.jsonl")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp)))
