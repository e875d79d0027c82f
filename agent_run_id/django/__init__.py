"""Django: every request runs as its own run, with its session and its user, in sync and async.

Add the middleware and the app, and configure both in one setting::

    INSTALLED_APPS = [..., "agent_run_id.django"]
    MIDDLEWARE = ["agent_run_id.django.RunIdMiddleware", ...]  # first: every layer in the run
    AGENT_RUN_ID = {"logging": True, "registry": "runs.db"}

The middleware works in Django's test client as in production (the test client never calls
the WSGI or ASGI application object, so wrapping that one leaves your tests without runs).
See docs/django.md for the options, the middleware order and a ``LOGGING`` recipe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from agent_run_id._optional import missing_extra

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction

    # Not as "apps": importing the submodule .apps below sets that name in this package.
    from django.apps import apps as app_registry  # type: ignore[import-untyped]
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
    from django.http import HttpResponse  # type: ignore[import-untyped]
except ImportError as exc:
    raise missing_extra("django", "django", "django") from exc

from agent_run_id._context import RunContext, activate, annotate, deactivate
from agent_run_id._django_settings import NAME, read_settings, user_id_of
from agent_run_id._django_stream import stream_in_run
from agent_run_id._hooks import report
from agent_run_id._inbound import InboundPolicy
from agent_run_id._propagation import (
    HEADER,
    PARENT_HEADER,
    ROOT_HEADER,
    SESSION_HEADER,
    run_headers,
)
from agent_run_id._run_id import RunId
from agent_run_id._session import parse_session_id
from agent_run_id.django.apps import RunIdConfig

__all__ = ["RunIdConfig", "RunIdMiddleware"]

# Set on a request whose user was read already: in process_view, or at the end of the request.
_USER_READ = "_agent_run_id_user_read"


def _meta_key(header: str) -> str:
    """Return the ``request.META`` key of an HTTP request header (as WSGI and ASGI both give)."""
    return "HTTP_" + header.upper().replace("-", "_")


_PARENT_KEY = _meta_key(PARENT_HEADER)
_ROOT_KEY = _meta_key(ROOT_HEADER)
_SESSION_KEY = _meta_key(SESSION_HEADER)


def _header_getter(request: Any) -> Any:
    """Return a reader of the request's headers by name, for the incoming fallbacks."""
    return request.headers.get


class RunIdMiddleware:
    """Run every Django request as its own run, with its session and user, through its response.

    Reads the run id header of the request, or mints a new id, and runs the rest of the
    middleware stack and the view inside one ``RunContext`` (sync views, async views, and the
    chunks of a streaming response, sync or async, which also end the run when they end). The
    run's session comes from the ``X-Session-Id`` header (an invalid one is taken as absent and
    never echoed), and its user from ``request.user`` once authentication has run (in
    ``process_view``, or at the end for requests that reach no view). The view sees the run as
    ``request.run_id``, as ``current_run_id()``, and in the request's run id header, rewritten
    to the id used; the response carries the id in exactly one header.

    Works in sync and async stacks (Django picks the mode; the middleware never forces a switch
    between them). Options come from ``settings.AGENT_RUN_ID``, the same as those of
    ``agent_run_id.asgi.RunIdMiddleware``: ``header_name``, ``incoming`` (a function takes the
    Django request), ``on_invalid``, ``response_header`` and ``registry`` (a path, for the
    app config to open, or a ``RunRegistry``); plus ``user``: True (the default: the
    authenticated user's primary key), False (never read ``request.user``), or a function of
    ``request.user`` returning the id to record.

    Example::

        MIDDLEWARE = ["agent_run_id.django.RunIdMiddleware", ...]
        AGENT_RUN_ID = {"incoming": "ignore"}

    Security: the incoming id is client input. A client can pick its run id (and its session),
    and so land in another run's logs. On a public edge whose clients are not trusted, use
    ``"incoming": "ignore"``, or a function that trusts only known networks or routes.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        options = read_settings()
        header_name = options.get("header_name", HEADER)
        self.policy = InboundPolicy(
            header_name=header_name,
            incoming=options.get("incoming", "continue"),
            on_invalid=options.get("on_invalid", "replace"),
            response_header=options.get("response_header", True),
            owner=NAME,
            header_getter=_header_getter,
        )
        registry = options.get("registry")
        if isinstance(registry, str | os.PathLike):
            # A path is the app config's to open, as the default registry every run goes to.
            if not app_registry.is_installed(RunIdConfig.name):
                raise ImproperlyConfigured(
                    f"{NAME}['registry'] is a path, which the app opens: add "
                    f"{RunIdConfig.name!r} to INSTALLED_APPS, or pass a RunRegistry"
                )
            registry = None
        self.registry = registry
        self.user = options.get("user", True)
        self.get_response = get_response
        self._key = _meta_key(header_name)
        self._is_async = iscoroutinefunction(get_response)
        # Django calls process_view once authentication has run, whatever the middleware order;
        # it awaits this instance, and its process_view, in an async stack.
        self.process_view: Callable[[Any, Any, Any, Any], Any] = self._process_view
        if self._is_async:
            markcoroutinefunction(self)
            self.process_view = self._aprocess_view

    def __call__(self, request: Any) -> Any:
        """Answer ``request`` in its run (a coroutine in an async stack)."""
        if self._is_async:
            return self.__acall__(request)
        run = self._run_for(request)
        if run is None:
            return self._reject()
        aside = activate(None)  # the request's run never nests in one current here
        try:
            context = RunContext(
                run_id=run,
                registry=self.registry,
                session_id=parse_session_id(request.META.get(_SESSION_KEY)),
            )
            with context:
                response = self.get_response(request)
                if self.user is not False and not hasattr(request, _USER_READ):
                    self._annotate_user(request, getattr(request, "user", None))
                if response.streaming:
                    stream_in_run(response, context)
        finally:
            deactivate(aside)
        return self._respond(response, run)

    async def __acall__(self, request: Any) -> Any:
        """Answer ``request`` in its run, in an async stack."""
        run = self._run_for(request)
        if run is None:
            return self._reject()
        aside = activate(None)
        try:
            context = RunContext(
                run_id=run,
                registry=self.registry,
                session_id=parse_session_id(request.META.get(_SESSION_KEY)),
            )
            with context:
                response = await self.get_response(request)
                if self.user is not False and not hasattr(request, _USER_READ):
                    await self._aannotate_user(request)
                if response.streaming:
                    stream_in_run(response, context)
        finally:
            deactivate(aside)
        return self._respond(response, run)

    def _process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        if self.user is not False:
            self._annotate_user(request, getattr(request, "user", None))

    async def _aprocess_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        if self.user is not False:
            await self._aannotate_user(request)

    def _run_for(self, request: Any) -> RunId | None:
        """Return the request's run, with the request's headers saying it; None to reject."""
        meta = request.META
        run = self.policy.run_for(
            request, meta.get(self._key), meta.get(_PARENT_KEY), meta.get(_ROOT_KEY)
        )
        if run is None:
            return None
        request.run_id = run
        meta[self._key] = run.value
        meta.pop(_PARENT_KEY, None)
        meta.pop(_ROOT_KEY, None)
        for name, lineage in run_headers(run)[1:]:
            meta[_meta_key(name)] = lineage
        request.__dict__.pop("headers", None)  # request.headers, if read already, read anew
        return run

    def _reject(self) -> Any:
        return HttpResponse(self.policy.reject_body, status=400, content_type="application/json")

    def _respond(self, response: Any, run: RunId) -> Any:
        if self.policy.response_header:
            response[self.policy.header_name] = run.value  # replaces one the view set
        return response

    def _annotate_user(self, request: Any, user: Any) -> None:
        setattr(request, _USER_READ, True)
        if user is None:  # no AuthenticationMiddleware
            return
        try:
            user_id = user_id_of(user, self.user)
        except Exception:
            # Reading the user (a database query) must not fail a request whose view never
            # needed it; the view that does will see the error itself.
            report(self.user, "reading the user of a request for settings.AGENT_RUN_ID (%r) failed")
            return
        self._annotate(user_id)

    async def _aannotate_user(self, request: Any) -> None:
        setattr(request, _USER_READ, True)
        auser = getattr(request, "auser", None)
        if auser is None:
            return
        try:
            user_id = user_id_of(await auser(), self.user)
        except Exception:
            report(self.user, "reading the user of a request for settings.AGENT_RUN_ID (%r) failed")
            return
        self._annotate(user_id)

    @staticmethod
    def _annotate(user_id: str | None) -> None:
        if user_id is not None:
            annotate(user_id=user_id)
