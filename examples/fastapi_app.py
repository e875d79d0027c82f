"""A FastAPI app whose every request is its own run: ``python examples/fastapi_app.py [PORT]``.

Try it: ``curl -i http://127.0.0.1:8000/agent?task=hello`` (a new run) or with
``-H "X-Run-Id: 0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"`` (that run, continued). Add
``-H "Authorization: Bearer token-42" -H "X-Session-Id: chat-7"``: the run is user u-42's, in
session chat-7 (``%(session_id)s`` in the log format shows it).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from starlette.middleware.cors import CORSMiddleware

import agent_run_id.logging
from agent_run_id import annotate
from agent_run_id.asgi import RunIdMiddleware

log = logging.getLogger("agent")

api = FastAPI()
# Browsers may read the header only when CORS exposes it.
api.add_middleware(
    CORSMiddleware, allow_origins=["http://localhost:3000"], expose_headers=["X-Run-Id"]
)
TOKENS = {"token-42": "u-42"}  # your authentication here


async def current_user(authorization: Annotated[str, Header()] = "") -> str | None:
    """Authenticate the caller, then give the request's run its user: ``annotate()``.

    The middleware started the run before authentication; from here on its log records, spans,
    registry row and error reports carry the user. Anonymous callers are let through here.
    """
    user_id = TOKENS.get(authorization.removeprefix("Bearer "))
    if user_id is not None:
        annotate(user_id=user_id)
    return user_id


@api.get("/agent")
async def run_agent(
    task: str, request: Request, user_id: Annotated[str | None, Depends(current_user)]
) -> dict[str, str]:
    log.info("agent started on %r for %s", task, user_id)  # stamped with the request's run
    run_id = request.state.run_id  # also current_run_id(), anywhere below this request
    return {"run_id": run_id.value, "result": task[::-1]}


# Wrapped outermost, so that even the 500 of an unhandled error carries X-Run-Id.
app = RunIdMiddleware(api)

if __name__ == "__main__":
    import uvicorn

    agent_run_id.logging.install()  # %(run_id)s in every log record, uvicorn's too
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(run_id)s %(name)s %(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    # log_config=None: uvicorn leaves its loggers to basicConfig, so that its access log lines
    # show the run id too (its own default config formats them without it).
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None)
