"""Cost per span of RunIdSpanProcessor, against the same span with no processor.

A third case adds the SDK's do-nothing ``SpanProcessor``: the gap between it and no processor is
what the SDK charges for calling any processor; the rest is ours.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from agent_run_id import RunContext
from agent_run_id.otel import RunIdSpanProcessor

from ._timing import compare, report

NUMBER = 5_000  # spans a sample
ROUNDS = 11


def _tracer(*processors: Any) -> Tracer:
    provider = TracerProvider()
    for processor in processors:
        provider.add_span_processor(processor)
    return provider.get_tracer("bench")


def main() -> None:
    bare, empty, stamped = _tracer(), _tracer(SpanProcessor()), _tracer(RunIdSpanProcessor())
    cases = {
        "no processor": lambda: bare.start_span("step").end(),
        "SDK's empty SpanProcessor": lambda: empty.start_span("step").end(),
        "RunIdSpanProcessor": lambda: stamped.start_span("step").end(),
    }
    with RunContext(), RunContext():  # a child run: all three attributes are set
        inside = compare(cases, number=NUMBER, rounds=ROUNDS)
    report("OTel SDK span start+end inside a run, no exporter", inside, baseline="no processor")
    outside = compare(cases, number=NUMBER, rounds=ROUNDS)
    report("Same, outside any run", outside, baseline="no processor")


if __name__ == "__main__":
    main()
