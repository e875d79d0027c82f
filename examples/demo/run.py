"""The whole story: a burst of agent requests, one fails, and its run tells everything.

Starts three services on 127.0.0.1 (an agent API, a fake OpenAI-compatible LLM, a search tool;
see ``services.py``), each logging JSON lines to a folder of its own. Sends eight concurrent user
requests; the agent calls the LLM through the openai SDK and the tool through requests, and the
run id travels with every call. One tool call fails. Then, as on-call would: the failing run's
id from its 500 response, its record and its tree in the run registry, and every log line of it
and its child runs across the three services.

    python examples/demo/run.py [FOLDER]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
QUESTIONS = {
    "alice": "weather in Lisbon",
    "bob": "flights from Oslo to Rome",
    "carol": "weather in Reykjavik",
    "dave": "open pull requests",
    "erin": "train times to Porto",
    "frank": "museum hours in Madrid",
    "grace": "exchange rate EUR to NOK",
    "heidi": "ferry to Helsinki",
}


@contextmanager
def service(name: str, folder: Path, *options: str) -> Iterator[str]:
    """Run one service in a subprocess; yield its URL; stop it (gracefully) on the way out."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "services.py"), name, "--log-dir", str(folder), *options],
        stdout=subprocess.PIPE,
        stderr=(folder / f"{name}.stderr").open("wb"),
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the {name} service did not start: see {folder}/{name}.stderr")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # uvicorn stops on SIGTERM; the registry writes what is queued
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def burst(agent: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=agent, timeout=20) as client:
        return await asyncio.gather(
            *(client.post("/ask", json={"user": u, "question": q}) for u, q in QUESTIONS.items())
        )


def command(*argv: str) -> str:
    """Run ``agent-run-id`` as a user would, return its output."""
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv], capture_output=True, text=True, check=True
    )
    return done.stdout


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "runs.db"
    with (
        service("llm", folder) as llm,
        service("tool", folder) as tool,
        service("agent", folder, "--llm", llm, "--tool", tool, "--db", str(db)) as agent,
    ):
        responses = asyncio.run(burst(agent))
    failed = [r for r in responses if r.status_code == 500]
    print(f"{len(failed)} of {len(responses)} runs failed.")
    run = failed[0].headers["X-Run-Id"]
    print(f"The failing request's 500 response says X-Run-Id: {run}\n")

    print(f"$ agent-run-id runs show {run[:8]}")
    print(command("runs", "show", run[:8], "--db", str(db)))
    print(f"$ agent-run-id runs tree {run[:8]}")
    print(command("runs", "tree", run[:8], "--db", str(db)))
    logs = [str(folder / f"{name}.jsonl") for name in ("agent", "llm", "tool")]
    print(f"$ agent-run-id logs {run[:8]} --tree agent.jsonl llm.jsonl tool.jsonl")
    for line in command("logs", run[:8], "--tree", "--json", *logs).splitlines():
        found = json.loads(line)
        record = found["record"]
        print(
            f"  {record['timestamp'][11:23]}  {record['service']:<5}  {record['level']:<7}"
            f"run {record['run_id'][:8]}  {record['message']}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
