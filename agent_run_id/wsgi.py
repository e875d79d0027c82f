"""WSGI middleware: every request runs as its own run, in the app and in its response's body.

Works with any WSGI app (Flask, Django's WSGI handler, Pyramid, Bottle) and imports none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ._inbound import InboundPolicy, IncomingOption
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, SESSION_HEADER, run_headers
from ._recording import as_registry
from ._session import parse_session_id
from ._types import Environ, Registry, StartResponse, WSGIApp
from ._wsgi_body import Request, wrap_body

__all__ = ["ENVIRON_KEY", "RunIdMiddleware"]

#: The environ key under which the app finds the request's RunId.
ENVIRON_KEY = "agent_run_id.run_id"


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


_PARENT_KEY = _environ_key(PARENT_HEADER)
_ROOT_KEY = _environ_key(ROOT_HEADER)
_SESSION_KEY = _environ_key(SESSION_HEADER)


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
            ``agent_run_id.registry.RunRegistry``, or its name: a SQLite file's path or a
            ``postgresql://`` URL); by default runs go to the process-wide
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
        registry: Registry | str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.policy = InboundPolicy(
            header_name=header_name,
            incoming=incoming,
            on_invalid=on_invalid,
            response_header=response_header,
            owner="agent_run_id.wsgi.RunIdMiddleware",
            header_getter=_header_getter,
        )
        # Opened (when named) once every other option is checked: a bad one opens nothing.
        self.registry = as_registry(registry)
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

        # The session is client input too: a bad one is absent, and never echoed.
        request = Request(run, self.registry, parse_session_id(environ.get(_SESSION_KEY)))
        body = request.context.run(request.call, self.app, environ, respond)
        return wrap_body(body, request, environ.get("wsgi.file_wrapper"))
