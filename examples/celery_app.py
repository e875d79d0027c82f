"""Celery tasks run in the run that sent them: a chain of three keeps the lineage.

Runs as it is, with a worker in this process on Celery's in-memory broker:

    pip install "agent-run-id[celery] @ git+https://github.com/MukundaKatta/agent-run-id"
    python examples/celery_app.py

In production, point ``broker`` at Redis or RabbitMQ and run ``celery -A celery_app worker``;
``install(app)`` must run in both the sending process and the worker (import it with the app).
"""

from __future__ import annotations

from celery import Celery, chain  # type: ignore[import-untyped]
from celery.contrib.testing.worker import start_worker  # type: ignore[import-untyped]

import agent_run_id.celery
from agent_run_id import RunContext, current_run_id

app = Celery("agents", broker="memory://", backend="cache+memory://")
app.conf.update(
    broker_connection_retry_on_startup=True,
    broker_transport_options={"polling_interval": 0.05},
)
# "child": each task is a child run of the run that sent it (the default "continue" reuses it).
agent_run_id.celery.install(app, mode="child")


def _where() -> str:
    run = current_run_id()
    assert run is not None
    parent = run.parent.short() if run.parent else "-"
    return f"run={run.short()} parent={parent} root={run.root.short()}"


@app.task(name="plan")
def plan(goal: str) -> list[str]:
    return [f"plan({goal}): {_where()}"]


@app.task(name="search")
def search(steps: list[str]) -> list[str]:
    return [*steps, f"search: {_where()}"]


@app.task(name="summarize")
def summarize(steps: list[str]) -> list[str]:
    return [*steps, f"summarize: {_where()}"]


def main() -> None:
    with start_worker(app, pool="solo", perform_ping_check=False):
        with RunContext() as run:
            print(f"agent run {run.run_id.short()} sends a chain of three tasks")
            result = chain(plan.s("find flights"), search.s(), summarize.s()).apply_async()
        for line in result.get(timeout=30):
            print("  " + line)


if __name__ == "__main__":
    main()
