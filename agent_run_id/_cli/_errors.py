"""The command's one error type for user mistakes: a message and exit status 2, no traceback."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A mistake in the command line or its inputs, shown as ``agent-run-id: <message>``."""
