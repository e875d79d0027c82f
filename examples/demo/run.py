"""The whole story: a burst of agent requests, one fails, and its run tells everything.

Starts three services on 127.0.0.1 (an agent API, a fake OpenAI-compatible LLM, a search tool;
see ``services.py``), each logging JSON lines to a folder of its own. Sends eight concurrent user
requests; the agent calls the LLM through the openai SDK and the tool through requests, and the
run id travels with every call. One tool call fails. Then, as on-call would: the failing run's
id from its 500 response, its record and its tree in the run registry, and every log line of it
and its child runs across the three services.

    python examples/demo/run.py [FOLDER]

FOLDER (``demo-logs/`` at the top of the repository by default, which git ignores) keeps the
three services' logs and the run registry afterwards, so the commands shown can be run again
there, and others tried. Each run of the demo replaces the files it wrote there before.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
FOLDER = HERE.parent.parent / "demo-logs"
# What the demo writes in its folder; removed first, so that each run starts afresh.
WRITES = ("agent", "llm", "tool")
STARTUP = 20.0  # seconds a service may take to print its port
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
    with (folder / f"{name}.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "services.py"), name, "--log-dir", str(folder), *options],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            port = _first_line(process, timeout=STARTUP)
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
            if process.stdout is not None:
                process.stdout.close()


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """Return the first line the process prints, or "" when none comes within ``timeout``."""
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    # readline() has no timeout: read in a thread, which ends when the process is stopped.
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return ""


async def burst(agent: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=agent, timeout=20) as client:
        return await asyncio.gather(
            *(client.post("/ask", json={"user": u, "question": q}) for u, q in QUESTIONS.items())
        )


def command(folder: Path, *argv: str) -> str:
    """Show ``agent-run-id ARGV``, run it in ``folder`` as a user would, return its output."""
    print(f"$ agent-run-id {' '.join(argv)}")
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
    )
    return done.stdout


def fresh(folder: Path) -> None:
    """Make ``folder``, and remove what an earlier demo wrote there (and nothing else)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WRITES:
        (folder / f"{name}.jsonl").unlink(missing_ok=True)
        (folder / f"{name}.stderr").unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (folder / f"runs.db{suffix}").unlink(missing_ok=True)


def main(folder: Path) -> None:
    fresh(folder)
    with (
        service("llm", folder) as llm,
        service("tool", folder) as tool,
        service(
            "agent", folder, "--llm", llm, "--tool", tool, "--db", str(folder / "runs.db")
        ) as agent,
    ):
        responses = asyncio.run(burst(agent))
    failed = [r for r in responses if r.status_code == 500]
    print(f"{len(failed)} of {len(responses)} runs failed.")
    if not failed:
        sys.exit(f"no request failed: the tool should fail for Reykjavik; see the logs in {folder}")
    run = failed[0].headers["X-Run-Id"]
    print(f"The failing request's 500 response says X-Run-Id: {run}\n")

    print(command(folder, "runs", "show", run[:8], "--db", "runs.db"))
    print("The request's run has no user or task: those are on its agent run, one level down.\n")
    print(command(folder, "runs", "tree", run[:8], "--db", "runs.db"))
    logs = ("agent.jsonl", "llm.jsonl", "tool.jsonl")
    found = command(folder, "logs", run[:8], "--tree", "--json", *logs)
    print("(each line found, as the demo shows it: time, service, level, run, message)")
    for line in found.splitlines():
        record = json.loads(line)["record"]
        print(
            f"  {record['timestamp'][11:23]}  {record['service']:<5}  {record['level']:<7}"
            f"run {record['run_id'][:8]}  {record['message']}"
        )
    where = _shown(folder)
    print(f"\nThe logs and the registry stay in {where}: cd {where} and try the commands above.")


def _shown(folder: Path) -> str:
    """Return ``folder`` as the user best types it: relative to where they are, when inside."""
    try:
        return f"{folder.resolve().relative_to(Path.cwd().resolve())}/"
    except ValueError:
        return f"{folder.resolve()}/"


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
