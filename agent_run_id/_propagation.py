"""How a run crosses a boundary: header and environment names, and reading an incoming id.

This is the one place for the wire policy. The inbound middleware, the outbound wrappers and the
helpers below all take the names and the validation rule from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._context import current_run_id
from ._hooks import Hooks
from ._run_id import ENV_PARENT_RUN_ID, ENV_ROOT_RUN_ID, ENV_RUN_ID, RunId, _restore, show_value
from ._uuid import _PLACEHOLDERS, parse_wire_id

__all__ = [
    "ENV_PARENT_RUN_ID",
    "ENV_ROOT_RUN_ID",
    "ENV_RUN_ID",
    "HEADER",
    "PARENT_HEADER",
    "ROOT_HEADER",
    "IncomingFallback",
    "add_incoming_fallback",
    "check_header_name",
    "environ",
    "headers",
    "parse_wire_id",
    "remove_incoming_fallback",
    "run_from_fallbacks",
    "run_from_wire",
    "run_headers",
]

#: The header that carries the run id.
HEADER = "X-Run-Id"
#: The header that carries the id of the run's parent, when it has one.
PARENT_HEADER = "X-Parent-Run-Id"
#: The header that carries the id of the first run of the tree, when the run has a parent.
ROOT_HEADER = "X-Root-Run-Id"

# RFC 9110 token characters: what a header field name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_header_name(header_name: object, owner: str) -> str:
    """Return ``header_name`` if it is an HTTP header name, else raise ValueError.

    The one rule for every ``header_name=`` option, inbound and outbound; ``owner`` (the dotted
    name of the class or function given the option) starts the message.
    """
    if not isinstance(header_name, str) or not _TOKEN.fullmatch(header_name):
        raise ValueError(
            f"{owner}: header_name {show_value(header_name)} is not an HTTP header name: "
            f"pass letters, digits and hyphens, such as {HEADER!r}"
        )
    return header_name


# The quick check of a canonical id, which parse_wire_id keeps as it is (ASGI's common path):
#     raw.translate(_CANONICAL_TABLE) == _CANONICAL_SHAPE and raw != _NIL and raw != _MAX
# (compared, not looked up in a set: a server that breaks the spec with a bytearray must not fail)
# bytes.translate maps lower-case hex digits to "0", "-" to itself and any other byte to "x", so
# only a lowercase 8-4-4-4-12 id translates to _CANONICAL_SHAPE.
_CANONICAL_SHAPE = b"00000000-0000-0000-0000-000000000000"
_CANONICAL_TABLE = bytes(
    48 if byte in b"0123456789abcdef" else 45 if byte == 45 else 120 for byte in range(256)
)
_NIL, _MAX = sorted(value.encode("ascii") for value in _PLACEHOLDERS)


def run_from_wire(
    run: bytes | str | None,
    parent: bytes | str | None = None,
    root: bytes | str | None = None,
) -> RunId | None:
    """Return the RunId carried by incoming values, with the lineage that is valid, or None.

    ``run`` must pass :func:`parse_wire_id`; an invalid or self-referring parent or root is
    dropped rather than failing the run.
    """
    value = parse_wire_id(run)
    if value is None:
        return None
    if parent is None and root is None:
        # The common case of a request that carries the run id alone; value is canonical.
        return _restore(value, None, None)
    root_value = parse_wire_id(root)
    if root_value == value:
        root_value = None
    parent_value = parse_wire_id(parent)
    parent_id = None
    if parent_value is not None and parent_value != value:
        parent_id = RunId(parent_value, root=root_value)
    return RunId(value, parent=parent_id, root=root_value)


#: Finds a run in an incoming request that has no valid ``X-Run-Id`` header (for example in
#: OpenTelemetry baggage). Called with a function that returns a request header by its lower-case
#: name (None when absent); returns the run, or None.
IncomingFallback = Callable[[Callable[[str], str | None]], RunId | None]

_fallbacks: Hooks[IncomingFallback] = Hooks()


def add_incoming_fallback(fallback: IncomingFallback) -> None:
    """Let the inbound middleware ask ``fallback`` for a run when the header carries none.

    For integrations (``agent_run_id.otel`` reads the run from incoming baggage); adding the same
    fallback twice adds it once. The header always wins over a fallback.
    """
    _fallbacks.add(fallback)


def remove_incoming_fallback(fallback: IncomingFallback) -> None:
    """Stop asking ``fallback``; a no-op when it was not added."""
    _fallbacks.remove(fallback)


def run_from_fallbacks(get_header: Callable[[str], str | None]) -> RunId | None:
    """Return the run the first fallback finds in a request with no valid run header, or None.

    A fallback that raises is skipped: incoming data must never fail a request.
    """
    for fallback in _fallbacks.items:
        try:
            run_id = fallback(get_header)
        except Exception:
            continue
        if run_id is not None:
            return run_id
    return None


def headers() -> dict[str, str]:
    """Return the HTTP headers that carry the current run, or ``{}`` outside any run.

    ``X-Run-Id`` always, plus ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the run has a
    parent. Ready for ``extra_headers=`` in the OpenAI and Anthropic SDKs, or any client.
    """
    run_id = current_run_id()
    if run_id is None:
        return {}
    return _fields(run_id, HEADER, PARENT_HEADER, ROOT_HEADER)


def environ() -> dict[str, str]:
    """Return the environment variables that carry the current run to a subprocess.

    All three of ``AGENT_RUN_ID``, ``AGENT_PARENT_RUN_ID`` and ``AGENT_ROOT_RUN_ID``, the
    lineage ``""`` when the run has none, so merged over ``os.environ`` they replace any lineage
    this process itself inherited; ``{}`` outside any run. Read them back with
    ``RunId.from_env()``, which takes an empty variable as unset.

    Example::

        subprocess.run(cmd, env={**os.environ, **agent_run_id.environ()})
    """
    run_id = current_run_id()
    if run_id is None:
        return {}
    return {
        ENV_PARENT_RUN_ID: "",
        ENV_ROOT_RUN_ID: "",
        **_fields(run_id, ENV_RUN_ID, ENV_PARENT_RUN_ID, ENV_ROOT_RUN_ID),
    }


def run_headers(run_id: RunId, header: str = HEADER) -> tuple[tuple[str, str], ...]:
    """Return the ``(name, value)`` header pairs that carry ``run_id``: its id, then lineage.

    The one definition of what goes on the wire for a run, shared by :func:`headers` and every
    outbound wrapper: the id under ``header`` (an outbound ``header_name=``), ``X-Parent-Run-Id``
    when the parent is known, ``X-Root-Run-Id`` when the run is not its own root.
    """
    return tuple(_fields(run_id, header, PARENT_HEADER, ROOT_HEADER).items())


def _fields(run_id: RunId, run: str, parent: str, root: str) -> dict[str, str]:
    fields = {run: run_id.value}
    if run_id.parent is not None:
        fields[parent] = run_id.parent.value
    if run_id.root is not run_id:
        fields[root] = run_id.root.value
    return fields
