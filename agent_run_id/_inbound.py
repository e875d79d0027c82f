"""The inbound policy: which run a request starts, given the run id headers it came with.

The ASGI and the WSGI middleware both read their options and decide each request's run here;
the header names and the rule for a valid id come from ``_propagation``. Only the reading of
headers from a scope or an environ, and the writing of the answer, differ between them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Literal, cast

from ._hooks import fallbacks, run_from_fallbacks
from ._propagation import check_header_name, run_from_wire, single_value
from ._run_id import RunId
from ._show import show_value

__all__ = ["InboundPolicy", "Incoming", "IncomingOption"]

#: How a request's incoming run id is used.
Incoming = Literal["continue", "child", "ignore"]
#: A fixed mode, or a function of the ASGI scope or WSGI environ that picks one per request.
IncomingOption = Incoming | Callable[[Any], str]

_MODES = ("continue", "child", "ignore")
_ON_INVALID = ("replace", "reject")

_log = logging.getLogger("agent_run_id.inbound")


def _absent(raw: bytes | str) -> bool:
    """Return whether a header that came says nothing: empty, or blanks and commas alone.

    Clients that template an unset id send exactly that; it counts as no header at all.
    """
    return not (raw.strip(" \t,") if isinstance(raw, str) else raw.strip(b" \t,"))


class InboundPolicy:
    """The checked options of one middleware, and the run they give each request.

    Raises TypeError or ValueError naming the option for a bad one; ``owner`` (the middleware's
    dotted name) makes the message point at the right class. ``header_getter(request)`` returns
    a function that reads a request header by its lower-case name, for the incoming fallbacks.
    """

    __slots__ = (
        "choose",
        "header_getter",
        "header_name",
        "mode",
        "reject",
        "reject_body",
        "response_header",
    )

    def __init__(
        self,
        *,
        header_name: object,
        incoming: object,
        on_invalid: object,
        response_header: object,
        owner: str,
        header_getter: Callable[[Any], Callable[[str], str | None]],
    ) -> None:
        name = check_header_name(header_name, owner)
        self.mode: str | None = None
        self.choose: Callable[[Any], str] | None = None
        if isinstance(incoming, str):
            if incoming not in _MODES:
                raise ValueError(
                    f"{owner}: incoming={show_value(incoming)} is not a mode: pass 'continue' "
                    "(take the caller's run), 'child' (start a child of it), 'ignore' (always "
                    "start a new run) or a function of the request returning one of them"
                )
            self.mode = incoming
        elif callable(incoming):
            self.choose = cast(Callable[[Any], str], incoming)
        else:
            raise TypeError(
                f"{owner}: incoming must be 'continue', 'child', 'ignore' or a callable, "
                f"got {type(incoming).__name__}: {show_value(incoming)}"
            )
        if not isinstance(on_invalid, str) or on_invalid not in _ON_INVALID:
            raise ValueError(
                f"{owner}: on_invalid={show_value(on_invalid)} is not an option: pass 'replace' "
                "(start a new run) or 'reject' (answer 400)"
            )
        if not isinstance(response_header, bool):
            raise TypeError(
                f"{owner}: response_header must be True or False, got {show_value(response_header)}"
            )
        self.header_name = name
        self.header_getter = header_getter
        self.reject = on_invalid == "reject"
        self.response_header = response_header
        self.reject_body = json.dumps(
            {"detail": f"invalid {header_name} header: send a UUID or leave the header out"}
        ).encode("ascii")

    def run_for(
        self,
        request: object,
        raw: bytes | str | None,
        parent: bytes | str | None = None,
        root: bytes | str | None = None,
    ) -> RunId | None:
        """Return the run a request starts, or None when it must be answered with a 400.

        ``raw``, ``parent`` and ``root`` are the request's run id, parent and root headers as they
        came (None when absent, repeated headers joined with commas; an empty or blank value is
        taken as absent, under ``on_invalid="reject"`` too); ``request`` is the scope or
        environ, for a callable ``incoming`` and for the incoming fallbacks (asked only when the
        header is absent or invalid). A new run is always a root run: never a child of a run that
        happens to be current where the server calls the middleware.
        """
        mode = self.mode
        if mode is None:
            mode = self._choose(request)
        if mode == "ignore":
            return RunId.generate()
        if raw is not None and _absent(raw):
            raw = None
        if raw is not None:
            if parent is None and root is None:
                run = run_from_wire(raw)
                if run is None:  # only a rare repeated header is worth a second look
                    run = run_from_wire(single_value(raw))
            else:
                run = run_from_wire(single_value(raw), single_value(parent), single_value(root))
            if run is not None:
                return run if mode == "continue" else run.child()
            if self.reject:
                # Debug, not warning: any client can send bad values, and must not flood the logs.
                _log.debug(
                    "rejected a request: invalid %s header %s", self.header_name, show_value(raw)
                )
                return None
        # The fallbacks (OpenTelemetry baggage) are asked only when the header gave no run.
        found = None
        if fallbacks.items:
            found = run_from_fallbacks(self.header_getter(request))
        if found is None:
            run = RunId.generate()
        elif mode == "child":
            run = found.child()
        else:
            run = found
        if raw is not None:
            _log.debug(
                "invalid %s header %s replaced by run %s", self.header_name, show_value(raw), run
            )
        return run

    def _choose(self, request: object) -> str:
        choose = cast(Callable[[Any], str], self.choose)
        mode = choose(request)
        if mode not in _MODES:
            raise ValueError(
                f"incoming={choose!r} returned {show_value(mode)}: return 'continue', 'child' "
                "or 'ignore'"
            )
        return mode
