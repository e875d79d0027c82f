"""Views that report what they see of the current run, and log a line while they run."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse

from agent_run_id import current_run

log = logging.getLogger("tests.django_project")


def seen(request: Any) -> dict[str, Any]:
    """What the view sees: the current run and its facts, request.run_id, the request headers."""
    run = current_run()
    return {
        "run_id": None if run is None else run.id,
        "session_id": None if run is None else run.session_id,
        "user_id": None if run is None else run.user_id,
        "request_run_id": request.run_id.value,
        "header": request.headers.get("X-Run-Id"),
        "parent_header": request.headers.get("X-Parent-Run-Id"),
    }


def line() -> str:
    run = current_run()
    return "-" if run is None else f"{run.id} {run.session_id} {run.user_id}\n"


def sync_view(request: Any) -> JsonResponse:
    log.info("sync view before")
    time.sleep(0.002)  # other requests' threads run meanwhile
    log.info("sync view after")
    return JsonResponse(seen(request))


async def async_view(request: Any) -> JsonResponse:
    log.info("async view before")
    await asyncio.sleep(0.002)  # other requests' tasks run meanwhile
    log.info("async view after")
    return JsonResponse(seen(request))


def sync_stream(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[str]:
        for index in range(3):
            log.info("sync chunk %d", index)
            time.sleep(0.001)
            yield line()

    return StreamingHttpResponse(body())


async def async_stream(request: Any) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[str]:
        for index in range(3):
            await asyncio.sleep(0.001)
            log.info("async chunk %d", index)
            yield line()

    return StreamingHttpResponse(body())


def sync_fail(request: Any) -> HttpResponse:
    raise RuntimeError("the view failed")


async def async_fail(request: Any) -> HttpResponse:
    raise RuntimeError("the view failed")


def sets_header(request: Any) -> HttpResponse:
    response = HttpResponse("ok")
    response["x-run-id"] = "the view's own"
    return response


def file_view(request: Any) -> FileResponse:
    return FileResponse(io.BytesIO(b"file body " * 100), content_type="text/plain")


def sync_stream_fails(request: Any) -> StreamingHttpResponse:
    def body() -> Iterator[str]:
        yield line()
        raise RuntimeError("the stream failed")

    return StreamingHttpResponse(body())


async def async_stream_fails(request: Any) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[str]:
        yield line()
        raise RuntimeError("the stream failed")

    return StreamingHttpResponse(body())
