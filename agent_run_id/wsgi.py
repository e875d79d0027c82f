"""WSGI middleware: every request runs as its own run, until the server closes its response.

Works with any WSGI app (Flask, Django's WSGI handler, Pyramid, Bottle) and imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from contextvars import Token
from typing import Any, cast

from ._context import _PREVIOUS, RunContext, _current, _Frame, _still_open, check_registry
from ._inbound import InboundPolicy, IncomingOption
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, run_headers
from ._types import Environ, StartResponse, WSGIApp

__all__ = ["ENVIRON_KEY", "RunIdMiddleware"]

#: The environ key under which the app finds the request's RunId.
ENVIRON_KEY = "agent_run_id.run_id"


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


_PARENT_KEY = _environ_key(PARENT_HEADER)
_ROOT_KEY = _environ_key(ROOT_HEADER)


def _header_getter(environ: Environ) -> Callable[[str], str | None]:
    """Return a reader of the environ's request headers by lower-case name."""

    def get_header(name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # the two headers CGI keeps unprefixed
            return environ.get(key)
        return environ.get("HTTP_" + key)

    return get_header


class RunIdMiddleware:
    """Run every WSGI request as its own run, named in its headers, until its response closes.

    Reads the run id header of the request, or mints a new id, and makes the run current (with
    ``RunContext``, so run observers see it) from the call of the app until the server calls the
    response's ``close()`` (PEP 3333), so a streamed body (a Flask generator too) is produced
    inside the run. The app sees it as ``current_run_id()``, as
    ``environ["agent_run_id.run_id"]``, and in the request's run id header (``HTTP_X_RUN_ID``),
    rewritten to the id used. The response carries the id in exactly one header. A run still
    current where the app is called (a test client's response that was never closed) is set
    aside: the request's run never nests in it, and it comes back when the response closes.

    Args:
        app: the WSGI app to wrap.
        header_name: the header that carries the run id, both ways.
        incoming: what to do with a valid incoming id: ``"continue"`` that run (with the lineage
            in ``X-Parent-Run-Id``/``X-Root-Run-Id``), start a ``"child"`` of it, or
            ``"ignore"`` it and start a new root run; or a function of the environ returning one.
        on_invalid: ``"replace"`` an invalid incoming id with a new run (noted in one debug log
            line), or ``"reject"`` the request with a 400 JSON answer.
        registry: record each request's run in this registry (an
            ``agent_run_id.registry.RunRegistry``); by default runs go to the process-wide
            default registry, if one is set (``agent_run_id.registry.set_default``).
        response_header: send the run id back in the response.

    Example::

        app = Flask(__name__)
        app.wsgi_app = RunIdMiddleware(app.wsgi_app)

    Security: the incoming id is client input. A client can pick its run id, and so land in
    another run's logs. On a public edge whose clients are not trusted, use
    ``incoming="ignore"``, or a function that trusts only known networks or routes.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        header_name: str = HEADER,
        incoming: IncomingOption = "continue",
        on_invalid: str = "replace",
        response_header: bool = True,
        registry: Any = None,
    ) -> None:
        check_registry(registry)
        self.app = app
        self.registry = registry
        self.policy = InboundPolicy(
            header_name=header_name,
            incoming=incoming,
            on_invalid=on_invalid,
            response_header=response_header,
            owner="agent_run_id.wsgi.RunIdMiddleware",
            header_getter=_header_getter,
        )
        self._key = _environ_key(header_name)
        self._lower = header_name.lower()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Start the request's run and return the response that leaves it when closed."""
        key = self._key
        run = self.policy.run_for(
            environ, environ.get(key), environ.get(_PARENT_KEY), environ.get(_ROOT_KEY)
        )
        if run is None:
            rejection = self.policy.reject_body
            start_response(
                "400 Bad Request",
                [("Content-Type", "application/json"), ("Content-Length", str(len(rejection)))],
            )
            return [rejection]
        environ[ENVIRON_KEY] = run
        environ[key] = run.value
        environ.pop(_PARENT_KEY, None)
        environ.pop(_ROOT_KEY, None)
        for name, lineage in run_headers(run)[1:]:
            environ[_environ_key(name)] = lineage

        if self.policy.response_header:
            name, lower, value = self.policy.header_name, self._lower, run.value

            def start_with_run(status: str, headers: Any, exc_info: Any = None) -> Any:
                headers = [pair for pair in headers if pair[0].lower() != lower]
                headers.append((name, value))
                return start_response(status, headers, exc_info)

            respond: StartResponse = start_with_run
        else:
            respond = start_response

        # A run still current here is not this request's: a response its caller never closed
        # (werkzeug's test client without `with` or buffered=True) leaves its run in the calling
        # thread. The request starts from no run, so it never nests in that one (for the run
        # observers too: the registry, OpenTelemetry), and close() puts it back.
        outer = _current.set(None) if _current.get() is not None else None
        context = RunContext(run_id=run, registry=self.registry)
        context.__enter__()
        try:
            body = self.app(environ, respond)
        except BaseException as exc:
            try:
                context.__exit__(type(exc), exc, exc.__traceback__)
            finally:
                _restore(outer)
            raise
        return _wrap(body, context, outer, environ.get("wsgi.file_wrapper"))


def _restore(outer: Token[_Frame | None] | None) -> None:
    """Make current again what was current when the request started, unless it has ended."""
    if outer is None:
        return
    try:
        _current.reset(outer)
    except ValueError:  # closed in another context: the request's own context is not here
        return
    # That run may have ended while this request's run was current (responses closed out of
    # order): it must not come back; the run it was entered in comes back instead.
    frame = alive = _current.get()
    while alive is not None and not _still_open(alive):
        alive = alive[_PREVIOUS]
    if alive is not frame:
        _current.set(alive)


def _wrap(
    body: Iterable[bytes],
    context: RunContext,
    outer: Token[_Frame | None] | None,
    file_wrapper: object,
) -> Iterable[bytes]:
    """Return the response that leaves the run when closed, keeping what servers look for."""
    if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
        # The server sends its own file wrapper with sendfile only when it gets that very
        # object back: hook its close() rather than wrapping it. An error while the server
        # sends the file is then not seen here: the run ends without it.
        closer = _RunBody(body, context, outer)
        try:
            body.close = closer.close  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # a wrapper that takes no attribute: wrap it
            return closer
        return body
    if isinstance(body, Sized):  # a list: servers set Content-Length from len() == 1
        return _SizedRunBody(body, context, outer)
    return _RunBody(body, context, outer)


class _RunBody:
    """The app's response, keeping its run current until the server calls ``close()``."""

    __slots__ = ("_body", "_close", "_context", "_error", "_iterator", "_outer")

    def __init__(
        self, body: Iterable[bytes], context: RunContext, outer: Token[_Frame | None] | None
    ) -> None:
        self._body = body
        self._close: Callable[[], object] | None = getattr(body, "close", None)
        self._context: RunContext | None = context
        self._outer = outer
        self._iterator: Iterator[bytes] | None = None
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        # An iterator is its own iterator: a second iter() (werkzeug's test client makes one)
        # must go on where the first stopped, not start the body over.
        if self._iterator is None:
            self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:
            raise
        except BaseException as exc:
            # Kept for the run's observers: the server catches it and only then calls close().
            self._error = exc
            raise

    def close(self) -> None:
        """Close the app's response, then leave the run; a second call does nothing."""
        context = self._context
        if context is None:
            return
        self._context = None
        error = self._error
        try:
            if self._close is not None:
                self._close()
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                context.__exit__(
                    None if error is None else type(error),
                    error,
                    None if error is None else error.__traceback__,
                )
            finally:
                _restore(self._outer)


class _SizedRunBody(_RunBody):
    """A response whose body has a length (a list), which servers read for Content-Length."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(cast(Sized, self._body))
