"""The 3:14am story, end to end, in one process: `make demo` runs this.

Five users ask an agent for something at once. Each request is one run: every log line, the LLM
call and the tool call carry its id. One tool call fails. At the end we take the failing run's id
from its response, as an on-call engineer would from an error report, and find every log line of
that run, and only that run, in the shared log file.

Nothing here talks to the outside world: the LLM and the tool are fakes in this file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

import agent_run_id.logging
from agent_run_id import RunContext, RunId, current_run_id, headers
from agent_run_id.structlog import add_run_id

logger = structlog.get_logger()  # the agent's own logs
tool_log = logging.getLogger("tools.search")  # a library that uses the standard logging module

USERS = [
    ("alice", "find flights from Lisbon to Oslo in May"),
    ("bob", "summarize the Q3 sales report"),
    ("carol", "search the web for the weather in Reykjavik"),
    ("dave", "draft a reply to the landlord"),
    ("erin", "list open pull requests"),
]


async def call_llm(messages: list[dict[str, str]], extra_headers: dict[str, str]) -> dict[str, Any]:
    """Ask a fake LLM API which tool to use; it reports token usage like a real one."""
    await asyncio.sleep(0.01)
    assert extra_headers["X-Run-Id"] == str(current_run_id())  # what the server would receive
    task = messages[-1]["content"]
    tool = "search_web" if "search" in task or "weather" in task else "lookup"
    return {"tool": tool, "query": task, "usage": {"input_tokens": 12 * len(task.split())}}


async def call_tool(name: str, query: str, run_id: RunId | None) -> str:
    """Call a fake tool server, whose search backend times out on questions about weather."""
    await asyncio.sleep(0.01)
    logger.info("tool_call", tool=name, query=query[:40], tool_run_id=str(run_id))
    if name == "search_web" and "weather" in query:
        tool_log.warning("backend timed out after %d ms", 10)
        raise TimeoutError(f"search backend did not answer for {query[:30]!r}")
    return f"{name} result for {query[:20]}"


async def run_agent(task: str) -> str:
    """One agent loop: ask the LLM which tool to use, call it, finish."""
    response = await call_llm([{"role": "user", "content": task}], extra_headers=headers())
    logger.info("llm_response", tool=response["tool"], tokens=response["usage"]["input_tokens"])
    return await call_tool(response["tool"], query=response["query"], run_id=current_run_id())


async def handle_agent_request(user_id: str, task: str) -> dict[str, str]:
    """Handle one user request as one run: the handler from the user's description."""
    run_id = RunId.generate()
    with RunContext(run_id=run_id, user_id=user_id, task=task[:50]):
        logger.info("agent_started", user_id=user_id, task=task[:50])
        try:
            result = await run_agent(task)
            logger.info("agent_completed", result_length=len(str(result)))
            return {"run_id": str(run_id), "result": result}
        except Exception as e:
            logger.error("agent_failed", error=str(e), exc_info=True)
            return {"run_id": str(run_id), "error": str(e)}


class JSONLines(logging.Formatter):
    """Standard logging records as JSON lines, in the same shape as the structlog events."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as one JSON object."""
        return json.dumps(
            {
                "event": record.getMessage(),
                "logger": record.name,
                "level": record.levelname.lower(),
                "run_id": record.run_id,  # type: ignore[attr-defined]  # set by install()
                "timestamp": datetime.fromtimestamp(record.created, timezone.utc)
                .isoformat()
                .replace("+00:00", "Z"),
            }
        )


def configure_logging(path: Path) -> None:
    """JSON lines, one per event, each stamped with the current run, from both log APIs."""
    agent_run_id.logging.install()  # stamps every stdlib record, whatever logger made it
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JSONLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_run_id,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=path.open("a", encoding="utf-8")),
        cache_logger_on_first_use=True,
    )


def show(event: dict[str, Any]) -> str:
    """One log event on one line: time, level, event, then its other fields."""
    skip = {"run_id", "timestamp", "level", "event", "exception"}
    fields = " ".join(f"{k}={v!r}" for k, v in event.items() if k not in skip)
    line = f"{event['timestamp'][11:23]} {event['level']:<7} {event['event']:<32} {fields}"
    for error in event.get("exception", []):
        line += f"\n{'':<23}-> {error['exc_type']}: {error['exc_value']}"
    return line.rstrip()


async def main(log_dir: Path) -> int:
    log_file = log_dir / "agent.jsonl"
    configure_logging(log_file)
    print(f"agent-run-id demo: {len(USERS)} concurrent agent runs, logging to {log_file}\n")

    responses = await asyncio.gather(*(handle_agent_request(u, t) for u, t in USERS))
    for (user, _), response in zip(USERS, responses, strict=True):
        status = "FAILED " + response["error"] if "error" in response else "ok"
        print(f"  run {response['run_id'][:8]}  {user:<6} {status}")

    failed = [r for r in responses if "error" in r]
    print(f"\n{len(failed)} of {len(responses)} runs failed.")
    for response in failed:
        run_id = response["run_id"]
        print(f"The error report names run {run_id}. Every log line of that run:\n")
        with log_file.open(encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event.get("run_id") == run_id:
                    print("  " + show(event))
    return 0 if len(failed) == 1 else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:  # keep the log in the given folder
        sys.exit(asyncio.run(main(Path(sys.argv[1]))))
    with tempfile.TemporaryDirectory(prefix="agent-run-id-demo-") as directory:
        sys.exit(asyncio.run(main(Path(directory))))
