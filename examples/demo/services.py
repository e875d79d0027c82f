"""The demo's three services: an agent API, a fake OpenAI-compatible LLM, and a search tool.

Each runs in its own process (``python services.py NAME --log-dir DIR ...``), listens on a free
port of 127.0.0.1, prints that port on its first line of output, and writes JSON log lines to
``DIR/NAME.jsonl``. Every service has ``RunIdMiddleware``, which takes the caller's run and its
session (``X-Session-Id``); only the agent API records its runs in the registry, and puts the
user on the request's run once it has authenticated them. The tool fails, the same way every
time, for searches about Reykjavik.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx2
import requests
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from openai import AsyncOpenAI

import agent_run_id.logging
from agent_run_id import RunContext, annotate
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.httpx2 import AsyncRunIdTransport
from agent_run_id.registry import SQLiteRunRegistry
from agent_run_id.requests import instrument

log = logging.getLogger("demo")


class JsonLines(logging.Formatter):
    """One JSON object a line: time, service, level, message, the run fields and the session."""

    converter = time.gmtime

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        # Microseconds: the lines of three services merge in time order, and two lines of one
        # call (the tool's error, the agent's report of it) often share a millisecond.
        micros = int((record.created % 1) * 1_000_000)
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"
        return json.dumps(
            {
                "timestamp": stamp,
                "service": self.service,
                "level": record.levelname.lower(),
                "message": record.getMessage(),
                "run_id": getattr(record, "run_id", None),
                "parent_run_id": getattr(record, "parent_run_id", None),
                "root_run_id": getattr(record, "root_run_id", None),
                "session_id": getattr(record, "session_id", None),
            }
        )


def llm_app() -> Any:
    """Answer every chat completion with a tool call to make: ``search: <question>``."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        question = body["messages"][-1]["content"]
        log.info("chat completion (%s): %r", body["model"], question)
        return {
            "id": "chatcmpl-demo",
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
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        }

    return RunIdMiddleware(app)


def tool_app() -> Any:
    """Search; the backend 'times out' for Reykjavik."""
    app = FastAPI()

    @app.get("/search")
    async def search(q: str) -> JSONResponse:
        log.info("search %r", q)
        if "Reykjavik" in q:
            log.error("search backend timed out for %r", q)
            return JSONResponse({"error": "search backend timed out"}, status_code=503)
        return JSONResponse({"results": [f"first result for {q}"]})

    return RunIdMiddleware(app)


class ToolFailed(Exception):
    """The tool answered with an error."""


async def authenticated_user(authorization: Annotated[str, Header()] = "") -> str:
    """Authenticate the caller (a demo token names its user), then annotate the request's run.

    The middleware started the run before any authentication: ``annotate()`` gives it its user
    from here on, in log records, the registry row and error reports.
    """
    user = authorization.removeprefix("Bearer demo-token-")
    if not authorization.startswith("Bearer demo-token-") or not user.isalpha():
        raise HTTPException(status_code=401, detail="unknown token")
    annotate(user_id=user)
    return user


def agent_app(llm_url: str, tool_url: str, db: str) -> Any:
    """Answer a user's question: ask the LLM which search to make, then make it."""
    app = FastAPI()
    llm = AsyncOpenAI(
        base_url=f"{llm_url}/v1",
        api_key="demo-key",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=AsyncRunIdTransport(hosts=("127.0.0.1",))),
    )
    tools = instrument(requests.Session(), hosts=("127.0.0.1",))

    @app.post("/ask")
    async def ask(
        request: Request, user: Annotated[str, Depends(authenticated_user)]
    ) -> dict[str, Any]:
        question = (await request.json())["question"]
        # The agent's run: a child of the request's, in its session (inherited), for its user.
        async with RunContext(name="agent", user_id=user, task=question):
            log.info("agent started for %s: %r", user, question)
            async with RunContext(name="llm", task="choose a tool"):
                reply = await llm.chat.completions.create(
                    model="demo-model", messages=[{"role": "user", "content": question}]
                )
            query = (reply.choices[0].message.content or "").removeprefix("search: ")
            async with RunContext(name="tool", task=f"search {query!r}"):
                log.info("calling tool search %r", query)
                response = await asyncio.to_thread(
                    tools.get, f"{tool_url}/search", params={"q": query}, timeout=10
                )
                if response.status_code != 200:
                    log.error("tool call failed: %s %s", response.status_code, response.text)
                    raise ToolFailed(f"search failed with {response.status_code}")
            log.info("agent answered %s", user)
            return {"answer": response.json()["results"][0]}

    # Outermost, so even the 500 of an unhandled error carries the run id.
    return RunIdMiddleware(app, registry=SQLiteRunRegistry(db))


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one of the demo's services.")
    parser.add_argument("name", choices=("agent", "llm", "tool"))
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--llm", help="the LLM service's URL (agent only)")
    parser.add_argument("--tool", help="the tool service's URL (agent only)")
    parser.add_argument("--db", help="the run registry (agent only)")
    args = parser.parse_args()

    handler = logging.FileHandler(args.log_dir / f"{args.name}.jsonl")
    handler.setFormatter(JsonLines(args.name))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    agent_run_id.logging.install()
    if args.name == "agent":
        app = agent_app(args.llm, args.tool, args.db)
    else:
        app = llm_app() if args.name == "llm" else tool_app()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)  # the demo reads the port from here
    config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
