"""The inbound middleware used exactly as docs/inbound.md shows; checked by mypy --strict."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette

from agent_run_id import RunId
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.wsgi import RunIdMiddleware as WsgiRunIdMiddleware


def trust_internal(scope: Any) -> str:
    return "continue" if scope["client"][0].startswith("10.") else "ignore"


starlette = Starlette()
starlette.add_middleware(RunIdMiddleware)
starlette.add_middleware(RunIdMiddleware, incoming="ignore", on_invalid="reject")

api = FastAPI()
api.add_middleware(RunIdMiddleware, header_name="X-Agent-Run", incoming=trust_internal)
app = RunIdMiddleware(api, response_header=False)

flask_app = Flask(__name__)
flask_app.wsgi_app = WsgiRunIdMiddleware(flask_app.wsgi_app, incoming="child")  # type: ignore[method-assign]


def read(environ: dict[str, Any]) -> RunId:
    run_id: RunId = environ["agent_run_id.run_id"]
    return run_id
