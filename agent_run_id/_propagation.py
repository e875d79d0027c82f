"""How a run crosses a boundary: header and environment names, and reading an incoming id.

This is the one place for the wire policy. The inbound middleware, the outbound wrappers and the
helpers below all take the names and the validation rule from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ._context import current_run_id, current_session_id
from ._run_id import (
    ENV_PARENT_RUN_ID,
    ENV_ROOT_RUN_ID,
    ENV_RUN_ID,
    ENV_SESSION_ID,
    RunId,
    lineage_fields,
    make_run_id,
)
from ._session import check_session_id, parse_session_id
from ._show import show_value
from ._uuid import parse_wire_id

__all__ = [
    "HEADER",
    "NAMES",
    "PARENT_HEADER",
    "ROOT_HEADER",
    "SESSION_HEADER",
    "check_header_name",
    "environ",
    "headers",
    "run_from_wire",
    "run_headers",
    "session_from_env",
    "single_value",
]

#: The header that carries the run id.
HEADER = "X-Run-Id"
#: The header that carries the id of the run's parent, when it has one.
PARENT_HEADER = "X-Parent-Run-Id"
#: The header that carries the id of the first run of the tree, when the run has a parent.
ROOT_HEADER = "X-Root-Run-Id"
#: The three, in the order of :func:`~agent_run_id._run_id.lineage_fields`.
NAMES = (HEADER, PARENT_HEADER, ROOT_HEADER)
#: The header that carries the run's session (conversation, thread), when it has one.
SESSION_HEADER = "X-Session-Id"

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
        return make_run_id(value, None, None)
    root_value = parse_wire_id(root)
    if root_value == value:
        root_value = None
    parent_value = parse_wire_id(parent)
    parent_id = None
    if parent_value is not None and parent_value != value:
        parent_id = RunId(parent_value, root=root_value)
    return RunId(value, parent=parent_id, root=root_value)


def single_value(raw: bytes | str | None) -> bytes | str | None:
    """Return the single value of a header that may have come repeated (joined with commas).

    The repeated-header rule of every inbound path: repeats count only when every one of them
    holds the same valid id; otherwise the result is None, which no caller takes for a run id.
    Empty elements are skipped, as HTTP lists are read (RFC 9110, section 5.6.1). The cost is
    linear in the length, whatever the number of repeats, and the scan stops at the first value
    that does not agree.
    """
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else bytes(raw).decode("latin-1")
    if "," not in text:
        return raw
    found = None
    last = ""  # the copy read before, blank at first: a copy the same as it needs no reading
    for part in text.split(","):
        if part == last or not part.strip(" \t"):
            continue
        last = part
        value = parse_wire_id(part)
        if value is None or (found is not None and value != found):
            return None
        found = value
    return found


def headers() -> dict[str, str]:
    """Return the HTTP headers that carry the current run, or ``{}`` outside any run.

    ``X-Run-Id`` always, ``X-Parent-Run-Id`` and ``X-Root-Run-Id`` when the run has a parent,
    and ``X-Session-Id`` when it has a session. Ready for ``extra_headers=`` in the OpenAI and
    Anthropic SDKs, or any client. The user id is never among them: it is personal data.
    """
    run_id = current_run_id()
    if run_id is None:
        return {}
    fields = lineage_fields(run_id, NAMES)
    session_id = current_session_id()
    if session_id is not None:
        fields[SESSION_HEADER] = session_id
    return fields


def environ() -> dict[str, str]:
    """Return the environment variables that carry the current run to a subprocess.

    All four of ``AGENT_RUN_ID``, ``AGENT_PARENT_RUN_ID``, ``AGENT_ROOT_RUN_ID`` and
    ``AGENT_RUN_SESSION_ID``, the lineage and session ``""`` when the run has none, so merged over
    ``os.environ`` they replace any this process itself inherited; ``{}`` outside any run. Read
    them back with ``RunId.from_env()`` and ``session_from_env()``, which take an empty
    variable as unset.

    Example::

        subprocess.run(cmd, env={**os.environ, **agent_run_id.environ()})
    """
    run_id = current_run_id()
    if run_id is None:
        return {}
    return {
        ENV_PARENT_RUN_ID: "",
        ENV_ROOT_RUN_ID: "",
        **lineage_fields(run_id, (ENV_RUN_ID, ENV_PARENT_RUN_ID, ENV_ROOT_RUN_ID)),
        ENV_SESSION_ID: current_session_id() or "",
    }


def session_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """Return the session passed in ``AGENT_RUN_SESSION_ID``, or None when unset or empty.

    Reads ``os.environ`` unless ``env`` is given. Raises ValueError naming the variable when it
    holds anything the session rule refuses, as ``RunId.from_env()`` does for the run. For a
    subprocess started with :func:`environ`::

        with RunContext(run_id=RunId.from_env(), session_id=session_from_env()): ...
    """
    env = os.environ if env is None else env
    text = env.get(ENV_SESSION_ID)
    if not text or not text.strip(" \t"):
        return None
    session_id = parse_session_id(text)
    if session_id is None:
        check_session_id(text, f"${ENV_SESSION_ID}")  # raises, naming the variable
    return session_id


def run_headers(run_id: RunId, header: str = HEADER) -> tuple[tuple[str, str], ...]:
    """Return the ``(name, value)`` header pairs that carry ``run_id``: its id, then lineage.

    The one definition of what goes on the wire for a run, shared by :func:`headers` and every
    outbound wrapper: the id under ``header`` (an outbound ``header_name=``), ``X-Parent-Run-Id``
    when the parent is known, ``X-Root-Run-Id`` when the run is not its own root.
    """
    return tuple(lineage_fields(run_id, (header, PARENT_HEADER, ROOT_HEADER)).items())
