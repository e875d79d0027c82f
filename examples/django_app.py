"""A Django project in one file: each request is a run, with its session and its logged-in user.

Run it with ``python examples/django_app.py``: it migrates an in-memory database, logs a user
in, and sends three requests of one conversation through Django's test client (a sync view, an
async view, a streaming answer). Every log line names the request's run, the session from the
``X-Session-Id`` header and the user, read from ``request.user`` after authentication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import django
from django.conf import settings
from django.core.management import call_command
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.test import Client
from django.urls import path

settings.configure(
    SECRET_KEY="example-only",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "agent_run_id.django",
    ],
    MIDDLEWARE=[
        "agent_run_id.django.RunIdMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    AGENT_RUN_ID={"logging": {"fields": ("run_id", "session_id", "user_id")}},
    LOGGING_CONFIG=None,
    USE_TZ=True,
)
log = logging.getLogger("agent")


def plan(request: HttpRequest) -> JsonResponse:
    log.info("planning")
    return JsonResponse({"run_id": request.run_id.value})  # type: ignore[attr-defined]


async def search(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0)
    log.info("searching")
    return JsonResponse({"run_id": request.run_id.value})  # type: ignore[attr-defined]


def answer(request: HttpRequest) -> StreamingHttpResponse:
    def tokens() -> Iterator[str]:
        for token in ("Lisbon", "in", "May"):
            log.info("token %s", token)  # each chunk is made in the request's run
            yield token + " "

    return StreamingHttpResponse(tokens())


urlpatterns = [path("plan", plan), path("search", search), path("answer", answer)]


def main() -> None:
    django.setup()
    logging.basicConfig(
        level=logging.INFO,
        format="%(run_id).8s session=%(session_id)s user=%(user_id)s %(message)s",
    )
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    client = Client(headers={"X-Session-Id": "chat-42"})
    client.force_login(User.objects.create_user("carol"))
    runs = [client.get(url)["X-Run-Id"] for url in ("/plan", "/search")]
    streamed = client.get("/answer")
    print(b"".join(streamed.streaming_content).decode().strip())
    runs.append(streamed["X-Run-Id"])
    print(f"{len(set(runs))} runs of session chat-42: {', '.join(run[:8] for run in runs)}")


if __name__ == "__main__":
    main()
