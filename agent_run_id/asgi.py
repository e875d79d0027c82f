"""ASGI middleware: every HTTP request and WebSocket session runs as its own run.

Works with any ASGI framework (Starlette, FastAPI, Quart, Django's ASGI handler) and imports
none of them.
"""

from __future__ import annotations

import os
from types import MethodType

from . import _recording, _run_id
from ._asgi_headers import (
    PARENT_KEY,
    ROOT_KEY,
    SESSION_KEY,
    header_getter,
    joined,
    request_headers,
    response_sender,
)
from ._context import RunContext, current
from ._hooks import fallbacks, observers
from ._inbound import InboundPolicy, IncomingOption
from ._notes import note_run
from ._propagation import HEADER
from ._recording import as_registry
from ._run_id import RunId
from ._session import parse_session_id
from ._types import ASGIApp, Receive, Registry, Scope, Send
from ._uuid import CANONICAL_SHAPE, CANONICAL_TABLE, MAX, NIL

__all__ = ["RunIdMiddleware"]

_RUN_SCOPES = frozenset({"http", "websocket"})
_new = object.__new__


class RunIdMiddleware:
    """Run every HTTP request and WebSocket session as its own run, named in its headers.

    Reads the run id header of the request, or mints a new id, and makes the run current (with
    ``RunContext``, so run observers see it) for everything the request does: the handler, sync
    handlers in the thread pool, streaming bodies, background tasks, the whole WebSocket session.
    The app sees it as ``current_run_id()``, as ``scope["state"]["run_id"]`` (Starlette's
    ``request.state.run_id``), and in the request's run id header, rewritten to the id used. The
    response carries the id in exactly one header. Lifespan and other scopes pass untouched.

    The scope goes on as the server gave it, not copied, so that what the app writes there (the
    route) reaches outer layers such as OpenTelemetry's middleware; so give each request its own
    scope, as servers do: a scope passed in again continues the run of its first request.

    Args:
        app: the ASGI app to wrap.
        header_name: the header that carries the run id, both ways.
        incoming: what to do with a valid incoming id: ``"continue"`` that run (with the lineage
            in ``X-Parent-Run-Id``/``X-Root-Run-Id``), start a ``"child"`` of it, or
            ``"ignore"`` it and start a new root run; or a function of the scope returning one.
        on_invalid: ``"replace"`` an invalid incoming id with a new run (noted in one debug log
            line), or ``"reject"`` the request with a 400 JSON answer (a WebSocket is closed
            with code 1008 before the handshake).
        registry: record each request's run in this registry (an
            ``agent_run_id.registry.RunRegistry``, or its name: a SQLite file's path or a
            ``postgresql://`` URL); by default runs go to the process-wide
            default registry, if one is set (``agent_run_id.registry.set_default``).
        response_header: send the run id back in the response (and the WebSocket handshake).

    Example::

        app.add_middleware(RunIdMiddleware)  # Starlette, FastAPI
        app = RunIdMiddleware(app)  # outermost: also the 500 of an unhandled error has the id

    Security: the incoming id is client input. A client can pick its run id, and so land in
    another run's logs. On a public edge whose clients are not trusted, use
    ``incoming="ignore"``, or a function that trusts only known networks or routes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = HEADER,
        incoming: IncomingOption = "continue",
        on_invalid: str = "replace",
        response_header: bool = True,
        registry: Registry | str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.policy = InboundPolicy(
            header_name=header_name,
            incoming=incoming,
            on_invalid=on_invalid,
            response_header=response_header,
            owner="agent_run_id.asgi.RunIdMiddleware",
            header_getter=header_getter,
        )
        # Opened (when named) once every other option is checked: a bad one opens nothing.
        self.registry = as_registry(registry)
        self._key = header_name.lower().encode("ascii")
        self._send_with_run = response_sender(self._key)
        self._names = frozenset((self._key, PARENT_KEY, ROOT_KEY, SESSION_KEY))
        self._run_names = frozenset((self._key, PARENT_KEY, ROOT_KEY))
        self._response_header = self.policy.response_header
        # Requests with no id, or a canonical one, take the fast path of __call__ when the
        # policy would only continue that id or mint a root run for them.
        self._fast = self.policy.mode == "continue"
        # The owner of the runs entered without a RunContext: never entered itself.
        self._owner = RunContext()
        self._reject_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.policy.reject_body)).encode("ascii")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one request (or pass a lifespan or other scope straight through)."""
        if scope["type"] not in _RUN_SCOPES:
            await self.app(scope, receive, send)
            return
        key = self._key
        raw = parent = root = session = None
        headers = scope.get("headers", ())
        if type(headers) is not list:  # the spec allows any iterable: one the scan may use up
            headers = scope["headers"] = list(headers)
        names = self._names
        for name, field in headers:
            if name not in names:  # one set lookup for most headers, not three comparisons
                continue
            if name == key:
                if raw is None:
                    raw = field
                    continue
            elif name == PARENT_KEY:
                if parent is None:
                    parent = field
                    continue
            elif name == ROOT_KEY:
                if root is None:
                    root = field
                    continue
            elif session is None:
                session = field
                continue
            # One of them came again: read them all anew, repeats joined (the policy sorts
            # them out). Once per request, not per repeat: a client's thousands of copies cost
            # time linear in their number, never quadratic.
            raw, parent, root, session = joined(headers, key)
            break
        run: RunId | None
        changed: list[tuple[bytes, bytes]] | None = None  # the request headers, when rewritten
        session_id: str | None = None
        if parent is None and root is None and session is None and self._fast:
            # The common requests, decided here without the policy's general path: a root run
            # continued from a canonical id, or a new run when no id came (and no fallback
            # such as OpenTelemetry baggage may supply one).
            # Each RunId is made as _run_id.make_run_id makes it, inlined: a call less per
            # request (tests/test_core_fast_paths.py holds the copies to the original).
            if raw is None and not fallbacks.items:
                run = _new(RunId)
                run._value = text = _run_id.new_default_id()  # as RunId.generate() does
                run._parent = run._root = None
                # ASCII: the default UTF-8 is the same, and quicker. One tuple for the request
                # headers and the response's: a tuple cannot change.
                header = (key, text.encode())
                changed = [*headers, header]
            elif (
                raw is not None
                and raw.translate(CANONICAL_TABLE) == CANONICAL_SHAPE
                and raw != NIL
                and raw != MAX
            ):  # canonical: the quick check of _uuid
                run = _new(RunId)
                run._value = raw.decode()  # ASCII, as checked
                run._parent = run._root = None
                header = (key, raw)  # the request headers say this run already
            else:
                run, header, changed = self._decide(scope, headers, raw, None, None)
        else:
            run, header, changed = self._decide(scope, headers, raw, parent, root)
            if session is not None:
                session_id = parse_session_id(session)  # client input: a bad one is absent
        if run is None:
            await self._reject(scope, send)
            return
        # The scope is the server's, changed in place and not copied, as the apps inside change
        # theirs (Starlette's router sets "route", "endpoint", "app"): outer layers read those
        # after the app returns. OpenTelemetry's middleware labels its duration metrics with the
        # route, Sentry's names the transaction after the endpoint; a copy would hide them. The
        # server's list of headers is never changed: a new one takes its place.
        if changed is not None:
            scope["headers"] = changed
        state = scope.get("state")
        if state is None:
            scope["state"] = {"run_id": run}
        else:
            state["run_id"] = run  # shared on purpose: Starlette's request.state lives here

        if self._response_header:
            inner: Send = MethodType(self._send_with_run, (send, header))
        else:
            inner = send
        # The request's run never nests in a run left current where the server calls us (some
        # servers start a request in the previous one's context): it starts from no run.
        if (
            observers.items
            or self.registry is not None
            or _recording.default is not None
            or session_id is not None
        ):
            aside = None if current.get() is None else current.set(None)
            try:
                with RunContext(run_id=run, registry=self.registry, session_id=session_id):
                    await self.app(scope, receive, inner)
            finally:
                if aside is not None:
                    current.reset(aside)
            return
        # No registry or observer to call: the work of RunContext, without building one per
        # request. Its frame as _context.new_frame(run, self._owner, None) makes it, inlined
        # (tests/test_core_fast_paths.py holds the copy to the original).
        token = current.set([run, self._owner, None, None, None, None, None])
        try:
            await self.app(scope, receive, inner)
        except BaseException as exc:
            note_run(exc, run)
            raise
        finally:
            current.reset(token)

    def _decide(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        raw: bytes | None,
        parent: bytes | None,
        root: bytes | None,
    ) -> tuple[RunId | None, tuple[bytes, bytes], list[tuple[bytes, bytes]] | None]:
        """Return the run of a request the fast path did not decide, and its run id header.

        Also returns the request headers of the run, or None when those that came say it already.
        """
        run = self.policy.run_for(scope, raw, parent, root)
        if run is None:
            return None, (self._key, b""), None
        value = run.value.encode("ascii")
        header = (self._key, value)
        if raw is None and parent is None and root is None and run.root is run:
            return run, header, [*headers, header]
        if raw != value or parent is not None or root is not None or run.root is not run:
            # Rewritten unless they already say exactly this run (a root run, canonical form).
            return run, header, request_headers(headers, self._run_names, run, header)
        return run, header, None

    async def _reject(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = self.policy.reject_body
        # A fresh list: an outer middleware may add to the headers of the message in place.
        headers = list(self._reject_headers)
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
