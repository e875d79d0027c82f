"""The test project's URLs: each view in a sync and an async form."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("sync", views.sync_view),
    path("async", views.async_view),
    path("sync-stream", views.sync_stream),
    path("async-stream", views.async_stream),
    path("sync-fail", views.sync_fail),
    path("async-fail", views.async_fail),
    path("sets-header", views.sets_header),
    path("file", views.file_view),
    path("sync-stream-fails", views.sync_stream_fails),
    path("async-stream-fails", views.async_stream_fails),
]
