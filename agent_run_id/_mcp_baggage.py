"""The run in the ``baggage`` entry of an MCP ``_meta``, by the rules of ``agent_run_id.otel``.

Those rules say when as well as how: ``agent_run_id.otel`` puts the run in baggage only once
``install(baggage=True)`` (its default) is in effect, and so does ``meta()`` (:func:`baggage_on`).

Imports OpenTelemetry at the top: ``agent_run_id._mcp_meta`` imports this module only when the
OpenTelemetry API is installed (mcp 2.x depends on it, mcp 1.x does not), and leaves the
``baggage`` entry alone without it.
"""

from __future__ import annotations

from urllib.parse import quote_plus

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from ._hooks import fallbacks
from ._otel_propagation import run_from_baggage_header, session_from_baggage_header
from ._otel_runs import RUN_MEMBERS, SESSION_KEY, attributes, with_run_baggage
from ._run_id import RunId

__all__ = ["baggage_on", "baggage_with_run", "run_in_baggage_text", "session_in_baggage_text"]

_W3C = W3CBaggagePropagator()
# The W3C Baggage limits: 180 members, 8,192 bytes in all.
_MAX_MEMBERS = 180
_MAX_BYTES = 8192


def baggage_on() -> bool:
    """Return whether ``agent_run_id.otel.install(baggage=True)`` is in effect in this process.

    That install puts the run in OpenTelemetry baggage while it is current (so the W3C
    ``baggage`` header carries it) and registers :func:`run_from_baggage_header` as the inbound
    fallback; ``uninstall()`` undoes both. The fallback is the one of the two that can be asked.
    """
    return run_from_baggage_header in fallbacks.items


def baggage_with_run(existing: str | None, run: RunId, session_id: str | None) -> str | None:
    """Return a W3C ``baggage`` value holding the run, merged as ``agent_run_id.otel`` merges it.

    Into ``existing`` (its text: every other member kept as it came), else into the current
    OpenTelemetry baggage: the run, its lineage and ``session_id``. Members of a run are
    replaced, every other one kept; when ours would take the baggage past the W3C limits, ours
    are left out. None when there is nothing to write.
    """
    if existing:
        return _merged_text(existing, _ours(run, session_id))
    context = otel_context.get_current()
    entries = baggage.get_all(context)
    if RUN_MEMBERS.issuperset(entries):
        # Nothing but a run's members in it (``install()`` puts the current run's there): ours
        # alone, as OpenTelemetry's propagator would write them (a test holds the two to the
        # same text), without building four contexts and parsing them back.
        return ",".join(_ours(run, session_id))
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, with_run_baggage(context, run, session_id))
    return carrier.get("baggage")


def _ours(run: RunId, session_id: str | None) -> list[str]:
    """Return the run's baggage members: its ids (nothing to quote) and its session, quoted."""
    pairs = [f"{key}={value}" for key, value in attributes(run).items()]
    if session_id is not None:
        pairs.append(f"{SESSION_KEY}={quote_plus(session_id)}")
    return pairs


def _merged_text(existing: str, ours: list[str]) -> str:
    """Return the caller's ``baggage`` text with our members in place of a run's, as given.

    Worked on the text: every member of the caller's is kept to the byte (a parse and a new
    write would re-quote values and drop a baggage past the limits whole); members of a run,
    ours or an enclosing one, are replaced. When ours would take it past the W3C limits, it is
    returned as it came: ours are the ones left out.
    """
    mine = {pair.split("=", 1)[0] for pair in ours}
    kept = [
        member
        for member in existing.split(",")
        if member.strip() and member.split(";", 1)[0].split("=", 1)[0].strip() not in mine
    ]
    merged = [*kept, *ours]
    text = ",".join(merged)
    if len(merged) > _MAX_MEMBERS or len(text.encode("utf-8", "surrogatepass")) > _MAX_BYTES:
        return existing
    return text


def run_in_baggage_text(text: str) -> RunId | None:
    """Return the run in a W3C ``baggage`` value (``agent_run.id`` and its lineage), or None."""
    return run_from_baggage_header({"baggage": text}.get)


def session_in_baggage_text(text: str) -> str | None:
    """Return the valid session in a W3C ``baggage`` value (``agent_run.session_id``), or None."""
    return session_from_baggage_header({"baggage": text}.get)
