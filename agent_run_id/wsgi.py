"""WSGI middleware: every request runs as its own run, in the app and in its response's body.

Works with any WSGI app (Flask, Django's WSGI handler, Pyramid, Bottle) and imports none of them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, cast

from ._context import RunContext, current, take_finishers
from ._inbound import InboundPolicy, IncomingOption
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, run_headers
from ._recording import check_registry
from ._run_id import RunId
from ._types import Environ, Registry, StartResponse, WSGIApp

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
    """Run every WSGI request as its own run, named in its headers, through its whole response.

    Reads the run id header of the request, or mints a new id, and makes the run current (with
    ``RunContext``, so run observers see it) while the middleware's code is on the stack: the
    app call, each step through the response's body (a Flask generator too) and its
    ``close()`` (PEP 3333). Each request keeps its run in its own copy of the caller's context,
    so nothing of it stays current in the server's thread afterwards, whether or not the caller
    closes the response (test clients often don't). The run ends for its observers (the
    registry, spans) when the body is exhausted, fails or is closed, whichever comes first.
    The app sees it as ``current_run_id()``, as ``environ["agent_run_id.run_id"]``, and in the
    request's run id header (``HTTP_X_RUN_ID``), rewritten to the id used. The response carries
    the id in exactly one header. A run current where the app is called is not nested in.

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
        registry: Registry | None = None,
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
        """Run the app in the request's run; return the response whose body steps in it too."""
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

        request = _Request(run, self.registry)
        body = request.context.run(request.call, self.app, environ, respond)
        return _wrap(body, request, environ.get("wsgi.file_wrapper"))


class _Request:
    """One request's run, current only inside the request's own copy of the caller's context.

    The app call, each step of the body and its ``close()`` run in that context, and nothing
    else does: whatever the request sets there (its run, OpenTelemetry's attached context, the
    app's own context variables) never outlives the middleware's frames, whether or not the
    server ever calls ``close()``. The run ends for its observers when the body ends: exhausted,
    failed, or closed, whichever comes first.
    """

    __slots__ = ("_end", "_entry", "context")

    def __init__(self, run: RunId, registry: Registry | None) -> None:
        self.context = contextvars.copy_context()
        self._entry = RunContext(run_id=run, registry=registry)
        self._end: Callable[[BaseException | None], None] | None = None

    def call(self, app: WSGIApp, environ: Environ, respond: StartResponse) -> Iterable[bytes]:
        """Call the app in the run (in :attr:`context`); leave the run if the call fails."""
        # A run current where the server calls the app is not this request's (a WSGI app called
        # inside an ASGI request, a test client's response never closed): the request's run
        # never nests in it.
        current.set(None)
        self._entry.__enter__()
        self._end = take_finishers(self._entry)
        try:
            return app(environ, respond)
        except BaseException as exc:
            self.leave(exc)
            raise

    def end(self, error: BaseException | None) -> None:
        """End the run for its observers (the registry, spans), once; it stays current here."""
        if self._end is not None:
            self._end(error)

    def leave(self, error: BaseException | None) -> None:
        """End the run and leave it (in :attr:`context`), noting it on ``error``."""
        self.end(error)
        self._entry.__exit__(
            None if error is None else type(error),
            error,
            None if error is None else error.__traceback__,
        )


def _wrap(body: Iterable[bytes], request: _Request, file_wrapper: object) -> Iterable[bytes]:
    """Return the response that steps through the body in the run, keeping what servers need."""
    if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
        # The server sends its own file wrapper with sendfile only when it gets that very
        # object back: hook its close() rather than wrapping it. An error while the server
        # sends the file is then not seen here: the run ends without it.
        closer = _RunBody(body, request)
        try:
            body.close = closer.close  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # a wrapper that takes no attribute: wrap it
            return closer
        return body
    if isinstance(body, Sized):  # a list: servers set Content-Length from len() == 1
        return _SizedRunBody(body, request)
    return _RunBody(body, request)


class _RunBody:
    """The app's response: each step and ``close()`` run in the request's run."""

    __slots__ = ("_body", "_close", "_error", "_iterator", "_request")

    def __init__(self, body: Iterable[bytes], request: _Request) -> None:
        self._body = body
        self._close: Callable[[], object] | None = getattr(body, "close", None)
        self._request: _Request | None = request
        self._iterator: Iterator[bytes] | None = None
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        # An iterator is its own iterator: a second iter() (werkzeug's test client makes one)
        # must go on where the first stopped, not start the body over.
        if self._iterator is None:
            self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        request = self._request
        if request is None:  # closed: what is left of the body is not read outside its run
            raise StopIteration
        if self._iterator is None:
            self._iterator = iter(self._body)
        try:
            return request.context.run(next, self._iterator)
        except StopIteration:
            request.end(None)
            raise
        except BaseException as exc:
            # Kept for close(): the server catches it and only then calls close(). The run
            # ends with it now, for a caller that never closes.
            self._error = exc
            request.end(exc)
            raise

    def close(self) -> None:
        """Close the app's response in the run, then leave the run; a second call does nothing."""
        request = self._request
        if request is None:
            return
        self._request = None
        request.context.run(self._close_in_run, request)

    def _close_in_run(self, request: _Request) -> None:
        error = self._error
        try:
            if self._close is not None:
                self._close()
        except BaseException as exc:
            error = exc
            raise
        finally:
            request.leave(error)


class _SizedRunBody(_RunBody):
    """A response whose body has a length (a list), which servers read for Content-Length."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(cast(Sized, self._body))
