"""The OpenTelemetry, Sentry and Celery integrations used exactly as docs/beyond.md shows.

Checked by ``mypy --strict`` (``make type``), never run.
"""

from __future__ import annotations

import sentry_sdk
from celery import Celery  # type: ignore[import-untyped]
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import agent_run_id.celery
import agent_run_id.otel
from agent_run_id import RunContext, RunId
from agent_run_id.otel import RunIdPropagator, RunIdSpanProcessor, run_from_context
from agent_run_id.sentry import RunIdIntegration


def otel_setup() -> None:
    provider = TracerProvider()
    provider.add_span_processor(RunIdSpanProcessor())
    trace.set_tracer_provider(provider)
    agent_run_id.otel.install()
    agent_run_id.otel.install(
        baggage=True,
        run_spans=True,
        span_processor=False,
        log_correlation=True,
        tracer_provider=provider,
    )
    with RunContext(name="planner"):
        carrier: dict[str, str] = {}
        RunIdPropagator().inject(carrier)
    arrived: RunId | None = run_from_context(RunIdPropagator().extract(carrier))
    with RunContext(run_id=arrived):
        pass
    agent_run_id.otel.uninstall()


def sentry_setup() -> None:
    sentry_sdk.init(dsn="https://public@sentry.example.com/1", integrations=[RunIdIntegration()])


def celery_setup() -> None:
    app = Celery("agents", broker="redis://localhost")
    agent_run_id.celery.install(app)
    agent_run_id.celery.install(app, mode="child")
    agent_run_id.celery.uninstall(app)
