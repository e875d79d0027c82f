"""A WSGI request's run, current only in the middleware's own frames, and its response body.

The app call, each step through the body and its ``close()`` run in the request's own copy of
the caller's context, and nothing else does (PEP 3333 responses, for ``wsgi.py``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import cast

from ._context import RunContext, current, take_finishers
from ._run_id import RunId
from ._types import Environ, Registry, StartResponse, WSGIApp

__all__ = ["Request", "RunBody", "SizedRunBody", "wrap_body"]


class Request:
    """One request's run, current only inside the request's own copy of the caller's context.

    The app call, each step of the body and its ``close()`` run in that context, and nothing
    else does: whatever the request sets there (its run, OpenTelemetry's attached context, the
    app's own context variables) never outlives the middleware's frames, whether or not the
    server ever calls ``close()``. The run ends for its observers when the body ends: exhausted,
    failed, or closed, whichever comes first.
    """

    __slots__ = ("_end", "_entry", "context")

    def __init__(self, run: RunId, registry: Registry | None, session_id: str | None) -> None:
        self.context = contextvars.copy_context()
        self._entry = RunContext(run_id=run, registry=registry, session_id=session_id)
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


def wrap_body(body: Iterable[bytes], request: Request, file_wrapper: object) -> Iterable[bytes]:
    """Return the response that steps through the body in the run, keeping what servers need."""
    if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
        # The server sends its own file wrapper with sendfile only when it gets that very
        # object back: hook its close() rather than wrapping it. An error while the server
        # sends the file is then not seen here: the run ends without it.
        closer = RunBody(body, request)
        try:
            body.close = closer.close  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # a wrapper that takes no attribute: wrap it
            return closer
        return body
    if isinstance(body, Sized):  # a list: servers set Content-Length from len() == 1
        return SizedRunBody(body, request)
    return RunBody(body, request)


class RunBody:
    """The app's response: each step and ``close()`` run in the request's run."""

    __slots__ = ("_body", "_close", "_error", "_iterator", "_request")

    def __init__(self, body: Iterable[bytes], request: Request) -> None:
        self._body = body
        self._close: Callable[[], object] | None = getattr(body, "close", None)
        self._request: Request | None = request
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

    def _close_in_run(self, request: Request) -> None:
        error = self._error
        try:
            if self._close is not None:
                self._close()
        except BaseException as exc:
            error = exc
            raise
        finally:
            request.leave(error)


class SizedRunBody(RunBody):
    """A response whose body has a length (a list), which servers read for Content-Length."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(cast(Sized, self._body))
