"""Every Sentry event captured inside a run carries the run: tag ``run_id``, context ``agent_run``.

Runs as it is: the transport prints the events instead of sending them. In production, keep your
own ``sentry_sdk.init(dsn=...)`` and add the integration:

    pip install "agent-run-id[sentry] @ git+https://github.com/MukundaKatta/agent-run-id"
    python examples/sentry_errors.py
"""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from agent_run_id import RunContext
from agent_run_id.sentry import RunIdIntegration


class PrintTransport(Transport):
    """Print the events instead of sending them (for this example only)."""

    def capture_envelope(self, envelope: Envelope) -> None:
        """Print each error event's tags and run context."""
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                event = item.payload.json
                message = event["exception"]["values"][-1]["value"]
                print(f"event {message!r}: tags={event['tags']}")
                print(f"  agent_run={event['contexts']['agent_run']}")


def main() -> None:
    sentry_sdk.init(
        dsn="https://public@sentry.example.com/1",
        transport=PrintTransport(),
        integrations=[RunIdIntegration()],
    )
    with RunContext(), RunContext():
        try:
            raise TimeoutError("tool call failed: search_web")
        except TimeoutError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush()


if __name__ == "__main__":
    main()
