"""An agent step whose LLM call and tool call both carry its run, with no code to pass the id.

The OpenAI client and the tool client are each made once, with ``RunIdTransport``; every request
then carries the run current when it is sent. Three runs share both clients at once.

Runs with no outside service: it starts a tiny OpenAI-compatible server (and a tool endpoint) on
127.0.0.1 in this process, which prints the run headers each request brought. Point it at a real
OpenAI-compatible API instead with ``--base-url URL`` (and ``OPENAI_API_KEY``); the tool calls
still go to the local server.

    python examples/openai_client.py
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx2
from openai import OpenAI

from agent_run_id import RunContext, RunId, current_run_id, in_current_run
from agent_run_id.httpx2 import RunIdTransport

_print_lock = threading.Lock()


def say(text: str) -> None:
    """Print one whole line, even while other threads print."""
    with _print_lock:
        print(text)


class FakeService(BaseHTTPRequestHandler):
    """A stand-in for the LLM API and a search tool: answers, and shows the run it was sent."""

    def do_POST(self) -> None:
        """Answer a chat completion, asking to search for the question."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._show()
        question = body["messages"][-1]["content"]
        self._json(
            {
                "id": "chatcmpl-local",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"search: {question}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            }
        )

    def do_GET(self) -> None:
        """Answer a tool call."""
        self._show()
        self._json({"results": ["one result"]})

    def _show(self) -> None:
        run = self.headers.get("X-Run-Id", "-")
        parent = self.headers.get("X-Parent-Run-Id", "-")
        path = urlsplit(self.path).path
        say(f"  server got {self.command:4} {path:<22} X-Run-Id={run[:8]} parent={parent[:8]}")

    def _json(self, data: object) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Keep quiet: _show prints what matters."""


def agent_step(llm: OpenAI, tools: httpx2.Client, question: str) -> str:
    """Ask the LLM what to do, then call the tool it names: two requests, one run."""
    with RunContext(name="agent_step"):  # a child of the agent's run
        reply = llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        query = (reply.choices[0].message.content or "").removeprefix("search: ")
        found = tools.get("/tools/search", params={"q": query}).json()
        run = current_run_id()
        assert run is not None
        return f"step {run.short()} found {len(found['results'])} result(s) for {query!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible API (default: a local fake)")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{server.server_address[1]}"

    base_url = args.base_url or f"{local}/v1"
    llm_host = urlsplit(base_url).hostname or "127.0.0.1"
    # Made once, shared by every run. hosts= keeps the ids to the two services we mean.
    llm = OpenAI(
        base_url=base_url,
        api_key=os.environ.get("OPENAI_API_KEY", "local-fake-key"),
        http_client=httpx2.Client(transport=RunIdTransport(hosts=(llm_host,))),
    )
    tools = httpx2.Client(base_url=local, transport=RunIdTransport(hosts=("127.0.0.1",)))

    questions = ["weather in Reykjavik", "flights Lisbon to Oslo", "open pull requests"]
    with llm, tools, ThreadPoolExecutor(max_workers=3) as pool:
        futures = []
        for question in questions:
            with RunContext(RunId.generate(), name="agent") as run:
                say(f"agent run {run.run_id.short()} asks {question!r}")
                futures.append(pool.submit(in_current_run(agent_step), llm, tools, question))
        for future in futures:
            say(future.result())
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
