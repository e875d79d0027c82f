"""A FastAPI app whose every request is its own run: ``python examples/fastapi_app.py [PORT]``.

Try it: ``curl -i http://127.0.0.1:8000/agent?task=hello`` (a new run) or with
``-H "X-Run-Id: 0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"`` (that run, continued).
"""

from __future__ import annotations

import logging
import sys

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware

import agent_run_id.logging
from agent_run_id.asgi import RunIdMiddleware

log = logging.getLogger("agent")

api = FastAPI()
# Browsers may read the header only when CORS exposes it.
api.add_middleware(
    CORSMiddleware, allow_origins=["http://localhost:3000"], expose_headers=["X-Run-Id"]
)


@api.get("/agent")
async def run_agent(task: str, request: Request) -> dict[str, str]:
    log.info("agent started on %r", task)  # stamped with the request's run id
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
