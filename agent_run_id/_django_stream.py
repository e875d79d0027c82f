"""A Django streaming response's run: current for each chunk, ended when the body ends.

Django sends a ``StreamingHttpResponse`` after the middleware has returned, from the server's
thread (WSGI) or the handler's task (ASGI), and calls ``response.close()`` when it is done. The
request's run is made current again for each step through the body and for ``close()``, and
ends for its observers (the registry, spans) when the body is exhausted, fails or is closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from ._context import RunContext, activate, capture, deactivate, take_finishers

__all__ = ["RunStream", "stream_in_run"]


class RunStream:
    """The run of one streaming response, kept for the steps of its body and its close()."""

    __slots__ = ("captured", "end")

    def __init__(self, context: RunContext) -> None:
        # Called inside the run's block: the run is current, and its end is taken away from it.
        self.end: Callable[[BaseException | None], None] = take_finishers(context)
        self.captured = capture()

    def close_in_run(self, close: Callable[[], object]) -> Callable[[], None]:
        """Return ``close`` made to run in the run and then end it (Django's response.close)."""

        def close_response() -> None:
            token = activate(self.captured)
            try:
                close()
            except BaseException as exc:
                self.end(exc)
                raise
            else:
                self.end(None)
            finally:
                deactivate(token)

        return close_response


class SyncBody:
    """A sync streaming body whose every chunk is produced in the run."""

    __slots__ = ("_iterator", "_stream")

    def __init__(self, content: Iterable[Any], stream: RunStream) -> None:
        self._iterator = iter(content)
        self._stream = stream

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        stream = self._stream
        token = activate(stream.captured)
        try:
            return next(self._iterator)
        except StopIteration:
            stream.end(None)
            raise
        except BaseException as exc:
            stream.end(exc)
            raise
        finally:
            deactivate(token)


class AsyncBody:
    """An async streaming body whose every chunk is produced in the run."""

    __slots__ = ("_iterator", "_stream")

    def __init__(self, content: AsyncIterable[Any], stream: RunStream) -> None:
        self._iterator = aiter(content)
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        # Set and reset within this one step, in the task that awaits it: the view's async
        # generator runs in that task, and nothing of the run stays current there in between.
        stream = self._stream
        token = activate(stream.captured)
        try:
            return await anext(self._iterator)
        except StopAsyncIteration:
            stream.end(None)
            raise
        except BaseException as exc:  # CancelledError too: the client went away
            stream.end(exc)
            raise
        finally:
            deactivate(token)


def stream_in_run(response: Any, context: RunContext) -> None:
    """Make ``response``'s body and ``close()`` run in ``context``'s run, which they then end.

    Called inside the run's block, for a streaming response. A ``FileResponse`` keeps its file
    (servers send it with ``wsgi.file_wrapper``): only its ``close()`` runs in the run.
    """
    stream = RunStream(context)
    if getattr(response, "file_to_stream", None) is None:
        content = response.streaming_content
        if response.is_async:
            response.streaming_content = AsyncBody(content, stream)
        else:
            response.streaming_content = SyncBody(content, stream)
    response.close = stream.close_in_run(response.close)
