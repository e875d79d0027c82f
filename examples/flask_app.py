"""A Flask app whose every request is its own run: ``python examples/flask_app.py``.

Flask is in no extra of agent-run-id (the middleware imports no framework): install it first,
``pip install flask``, or ``pip install -e ".[dev]"`` in a clone of the repository.

Try it: ``curl -i http://127.0.0.1:5000/agent?task=hello`` (a new run) or with
``-H "X-Run-Id: 0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"`` (that run, continued), and
``curl -N http://127.0.0.1:5000/stream`` (a streamed body, produced inside its run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Flask, Response, request

import agent_run_id.logging
from agent_run_id import current_run_id
from agent_run_id.wsgi import RunIdMiddleware

log = logging.getLogger("agent")

app = Flask(__name__)
app.wsgi_app = RunIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/agent")
def run_agent() -> dict[str, str]:
    task = request.args.get("task", "")
    log.info("agent started on %r", task)  # stamped with the request's run id
    run_id = request.environ["agent_run_id.run_id"]
    return {"run_id": run_id.value, "result": task[::-1]}


@app.get("/stream")
def stream() -> Response:
    def steps() -> Iterator[str]:
        for step in ("plan", "act", "answer"):
            log.info("step %s", step)  # still inside the run while the server streams
            yield f"{current_run_id()} {step}\n"

    return Response(steps(), mimetype="text/plain")


if __name__ == "__main__":
    agent_run_id.logging.install()  # %(run_id)s in every log line, werkzeug's access log too
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(run_id)s %(name)s %(message)s")
    app.run(host="127.0.0.1", port=5000)
