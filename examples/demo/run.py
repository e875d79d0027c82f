"""The whole story: eight users chat with an agent at once, one turn fails, and its run tells all.

Starts three services on 127.0.0.1 (an agent API, a fake OpenAI-compatible LLM, a search tool;
see ``services.py``), each logging JSON lines to a folder of its own. Eight users hold a
conversation of two turns each, all at once: each request carries the user's token and the
conversation's session id (``X-Session-Id``). The agent calls the LLM through the openai SDK and
the tool through requests, and the run id and the session travel with every call. One tool call
fails. Then, as on-call would: the failing run's id from its 500 response, its record (its user
and its session) and its tree in the run registry, every log line of it and its child runs
across the three services, and then the user's whole conversation: every run of the session,
and every log line of every turn.

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
# Each user's conversation: two turns, the second sent when the first is answered.
CONVERSATIONS = {
    "alice": ("weather in Lisbon", "restaurants in Lisbon"),
    "bob": ("flights from Oslo to Rome", "hotels in Rome"),
    "carol": ("flights to Iceland", "weather in Reykjavik"),
    "dave": ("open pull requests", "failing builds"),
    "erin": ("train times to Porto", "wine tours in Porto"),
    "frank": ("museum hours in Madrid", "tapas in Madrid"),
    "grace": ("exchange rate EUR to NOK", "exchange rate EUR to SEK"),
    "heidi": ("ferry to Helsinki", "saunas in Helsinki"),
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


def session_of(user: str) -> str:
    """Return the id the chat client gives the user's conversation (its own string)."""
    return f"chat-{user}"


async def conversation(
    client: httpx.AsyncClient, user: str, questions: tuple[str, ...]
) -> list[httpx.Response]:
    """Ask ``questions`` in turn as ``user``, in one session; return the responses."""
    headers = {"Authorization": f"Bearer demo-token-{user}", "X-Session-Id": session_of(user)}
    return [await client.post("/ask", json={"question": q}, headers=headers) for q in questions]


async def burst(agent: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=agent, timeout=20) as client:
        chats = await asyncio.gather(
            *(conversation(client, user, turns) for user, turns in CONVERSATIONS.items())
        )
    return [response for chat in chats for response in chat]


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
    print(
        f"{len(failed)} of {len(responses)} requests failed "
        f"({len(CONVERSATIONS)} users, a conversation of two turns each)."
    )
    if not failed:
        sys.exit(f"no request failed: the tool should fail for Reykjavik; see the logs in {folder}")
    run = failed[0].headers["X-Run-Id"]
    print(f"The failing request's 500 response says X-Run-Id: {run}\n")

    record = command(folder, "runs", "show", run[:8], "--db", "runs.db")
    print(record)
    print(
        "The request's run has its user, annotated once authenticated, and its session, from the\n"
        "chat client's X-Session-Id header. The task is on its agent run, one level down.\n"
    )
    print(command(folder, "runs", "tree", run[:8], "--db", "runs.db"))
    logs = ("agent.jsonl", "llm.jsonl", "tool.jsonl")
    _print_lines(command(folder, "logs", run[:8], "--tree", "--json", *logs))

    (session,) = [line.split()[1] for line in record.splitlines() if line[:11] == "session_id:"]
    print(f"\nThe whole conversation of session {session}, every turn of it:\n")
    print(command(folder, "runs", "list", "--session", session, "--db", "runs.db"))
    found = command(folder, "logs", "--session", session, "--db", "runs.db", "--json", *logs)
    _print_lines(found)
    where = _shown(folder)
    print(f"\nThe logs and the registry stay in {where}: cd {where} and try the commands above.")
    print(
        f"Or browse them (the viewer extra), the failing run at http://127.0.0.1:8765/runs/{run[:8]}:"
    )
    print(f"$ agent-run-id serve --db runs.db {' '.join(logs)}")


def _print_lines(found: str) -> None:
    """Print the JSON lines ``logs --json`` found, one short line each."""
    print("(each line found, as the demo shows it: time, service, level, run, message)")
    for line in found.splitlines():
        record = json.loads(line)["record"]
        print(
            f"  {record['timestamp'][11:23]}  {record['service']:<5}  {record['level']:<7}"
            f"run {record['run_id'][:8]}  {record['message']}"
        )


def _shown(folder: Path) -> str:
    """Return ``folder`` as the user best types it: relative to where they are, when inside."""
    try:
        return f"{folder.resolve().relative_to(Path.cwd().resolve())}/"
    except ValueError:
        return f"{folder.resolve()}/"


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
