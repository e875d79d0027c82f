"""The run in an MCP request's ``params._meta``: the keys, writing them, reading them back.

Stdlib only, and no import of the ``mcp`` package: the client and server sides of
``agent_run_id.mcp`` share it with the benchmarks and the tests. The ``baggage`` entry is
written as ``agent_run_id.otel`` writes the run in baggage: only once its ``install()`` (with
``baggage=True``, the default) is in effect. It needs the OpenTelemetry API (which mcp 2.x
depends on); without it that entry is neither written nor read, and the prefixed keys carry the
run alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._context import current_run_id, current_session_id
from ._propagation import NAMES, SESSION_HEADER
from ._run_id import RunId, lineage_fields
from ._session import parse_session_id
from ._uuid import parse_wire_id

#: A run as it came on the wire: its id (valid), its parent's and its root's (not checked yet).
Wire = tuple[str, str | None, str | None]
_NAMES = ("run", "parent", "root")
_Merge = Callable[[str | None, RunId, str | None], str | None]
_Read = Callable[[str], Any]
baggage_on: Callable[[], bool] | None
baggage_with_run: _Merge | None
run_in_baggage_text: _Read | None
session_in_baggage_text: _Read | None
try:
    from ._mcp_baggage import (
        baggage_on,
        baggage_with_run,
        run_in_baggage_text,
        session_in_baggage_text,
    )
except ImportError:  # pragma: no cover - exercised only without the OpenTelemetry API
    baggage_on = baggage_with_run = run_in_baggage_text = session_in_baggage_text = None

__all__ = [
    "BAGGAGE",
    "PREFIX",
    "RUN_KEYS",
    "SESSION_KEY",
    "WIRE_KEYS",
    "WIRE_SESSION_KEY",
    "Wire",
    "incoming_run",
    "meta_of_run",
]

#: The reverse-DNS prefix of this project's ``_meta`` keys: the project's home is
#: github.com/MukundaKatta/agent-run-id, whose GitHub Pages name is mukundakatta.github.io.
PREFIX = "io.github.mukundakatta.agent-run-id/"
#: Our keys of the run, its parent and its root, in the order of ``lineage_fields``.
RUN_KEYS = (f"{PREFIX}run-id", f"{PREFIX}parent-run-id", f"{PREFIX}root-run-id")
#: Our key of the run's session.
SESSION_KEY = f"{PREFIX}session-id"
#: The keys ``agent_run_id.otel.RunIdPropagator`` writes (``x-run-id`` and its lineage), which
#: mcp 2.x puts in ``_meta`` when the propagator is among ``OTEL_PROPAGATORS``.
WIRE_KEYS = (NAMES[0].lower(), NAMES[1].lower(), NAMES[2].lower())
#: The session key the propagator writes.
WIRE_SESSION_KEY = SESSION_HEADER.lower()
#: The W3C baggage entry of ``_meta`` (MCP's SEP-414).
BAGGAGE = "baggage"

# Our keys of the last run meta_of_run wrote, with the run and session they were made for: an
# agent's run makes call after call with the same ones (annotate() may change the session, which
# is part of the key). Replaced as one tuple, so threads never see a mix; never changed in place.
_last: tuple[RunId | None, str | None, dict[str, str]] = (None, None, {})


def meta_of_run(base: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``base`` (a copy) with the current run's entries added; outside a run, the copy.

    Our prefixed keys for the run, its lineage and its session; and, while
    ``agent_run_id.otel.install(baggage=True)`` is in effect, the run merged into the
    ``baggage`` entry. A ``base`` that already names a run (one of our keys, or ``x-run-id``
    and its lineage) is the caller's choice and comes back as it is; so does a ``baggage``
    entry that is not a string. Every other entry is kept.
    """
    global _last
    if base is None:
        entries: dict[str, Any] = {}
    elif isinstance(base, Mapping):
        entries = dict(base)
    else:
        raise TypeError(
            f"meta must be a mapping (the request's _meta) or None, got {type(base).__name__}"
        )
    run = current_run_id()
    if run is None:
        return entries
    if entries and any(key in entries for key in (*RUN_KEYS, *WIRE_KEYS)):
        return entries  # the caller's lineage: the outbound rule, never two runs in one request
    session_id = current_session_id()
    last = _last
    if last[0] is not run or last[1] != session_id:
        ours = lineage_fields(run, RUN_KEYS)
        if session_id is not None:
            ours[SESSION_KEY] = session_id
        last = _last = (run, session_id, ours)
    # None of our run keys is in entries (above): theirs win for the session alone.
    entries = {**last[2], **entries} if entries else last[2].copy()
    if baggage_on is not None and baggage_with_run is not None and baggage_on():
        existing = entries.get(BAGGAGE)
        if existing is None or isinstance(existing, str):
            merged = baggage_with_run(existing, run, session_id)
            if merged:
                entries[BAGGAGE] = merged
    return entries


def _lineage(meta: Mapping[str, Any], names: tuple[str, str, str]) -> Wire | None:
    """Return the run, parent and root under ``names`` as they came, if the run is valid.

    Only the run id is checked here; the lineage is checked where the run is made from them
    (an invalid parent or root is dropped there, the run kept).
    """
    raw = meta.get(names[0])
    if not isinstance(raw, str) or parse_wire_id(raw) is None:
        return None
    parent, root = meta.get(names[1]), meta.get(names[2])
    return (
        raw,
        parent if isinstance(parent, str) else None,
        root if isinstance(root, str) else None,
    )


def _session(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return parse_session_id(value) if isinstance(value, str) else None


def incoming_run(meta: Mapping[str, Any]) -> tuple[Wire | None, str | None]:
    """Return the run a request's ``_meta`` carries (as wire values) and its session, or Nones.

    The first valid run of: our prefixed keys; ``x-run-id`` and its lineage as the OpenTelemetry
    propagator writes them; ``agent_run.*`` in the ``baggage`` entry. The session is the one
    that came with that run, in the same place. Client input: only values of the right type
    that pass the wire rules count (a UUID, a session id of the session rule), and each key is
    looked up once, whatever else ``_meta`` holds, so the cost never grows with its entries.
    """
    found = _lineage(meta, RUN_KEYS)
    if found is not None:
        return found, _session(meta, SESSION_KEY)
    found = _lineage(meta, WIRE_KEYS)
    if found is not None:
        return found, _session(meta, WIRE_SESSION_KEY)
    text = meta.get(BAGGAGE)
    if not isinstance(text, str) or not text or run_in_baggage_text is None:
        return None, None
    run = run_in_baggage_text(text)
    if run is None or session_in_baggage_text is None:
        return None, None
    fields = lineage_fields(run, _NAMES)
    wire = (fields["run"], fields.get("parent"), fields.get("root"))
    return wire, session_in_baggage_text(text)
