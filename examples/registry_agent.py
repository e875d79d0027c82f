"""Record runs in the registry, then find the failing one and its log lines from the shell.

Three concurrent agent runs, each calling a tool in a child run; one tool call fails. Every run
goes to a SQLite registry, every log line to a JSON-lines file. Then, as the on-call engineer
would: ``agent-run-id runs list --status error``, ``runs tree`` and ``logs --tree``.

Run: ``python examples/registry_agent.py [FOLDER]`` (a temporary folder by default).
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

import agent_run_id.logging
from agent_run_id import RunContext, current_run_id
from agent_run_id.registry import SQLiteRunRegistry, set_default

logger = logging.getLogger("agent")


class JsonLines(logging.Formatter):
    """One JSON object per record, with the run fields that agent_run_id.logging stamps."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
                "session_id": getattr(record, "session_id", None),
            }
        )


async def call_tool(query: str) -> str:
    async with RunContext(task=f"tool: search {query!r}"):
        logger.info("tool call: search %r", query)
        await asyncio.sleep(0.01)
        if "Reykjavik" in query:
            logger.warning("search backend timed out")
            raise TimeoutError("search backend did not answer")
        return f"results for {query}"


async def agent(user_id: str, question: str) -> str:
    # Each user's chat is a session: the tool's child run inherits it, not the user.
    async with RunContext(user_id=user_id, session_id=f"chat-{user_id}", task=question):
        logger.info("agent started for %s", user_id)
        try:
            answer = await call_tool(question)
        except TimeoutError:
            logger.error("agent failed: tool call failed")
            raise
        logger.info("agent answered")
        return answer


def shell(folder: Path, *argv: str) -> None:
    """Show ``agent-run-id ARGV``, run it in ``folder`` as a user would, print its output."""
    print(f"$ agent-run-id {' '.join(argv)}")
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    print(done.stdout, end="")


async def main(folder: Path) -> None:
    db, log = folder / "runs.db", folder / "agent.jsonl"
    handler = logging.FileHandler(log)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    agent_run_id.logging.install()
    registry = SQLiteRunRegistry(db)
    set_default(registry)  # every run of the process is recorded
    questions = {"alice": "weather in Lisbon", "bob": "weather in Reykjavik", "carol": "news"}
    results = await asyncio.gather(
        *(agent(user, question) for user, question in questions.items()), return_exceptions=True
    )
    assert current_run_id() is None
    registry.close()
    handler.close()
    failed = sum(isinstance(result, BaseException) for result in results)
    print(f"{failed} of {len(results)} runs failed.\n")
    shell(folder, "runs", "list", "--db", db.name, "--status", "error")
    root = SQLiteRunRegistry(db).find(status="error", user_id="bob")[0].run_id
    print()
    shell(folder, "runs", "tree", root[:8], "--db", db.name)
    print()
    shell(folder, "logs", root[:8], "--tree", log.name)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(main(Path(tmp)))
