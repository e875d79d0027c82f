"""``settings.AGENT_RUN_ID``: the Django integration's options, read and checked in one place.

The middleware takes the inbound options (the ASGI and WSGI middleware's, checked by
``InboundPolicy``) and ``user``; the app config takes ``logging`` and ``registry``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

from ._recording import as_registry, check_registry
from ._show import show_value
from ._types import Registry

__all__ = ["NAME", "OPTIONS", "UserOption", "open_registry", "read_settings", "user_id_of"]

#: The setting, as error messages name it.
NAME = "settings.AGENT_RUN_ID"
#: Every key the setting takes.
OPTIONS = (
    "header_name",
    "incoming",
    "on_invalid",
    "response_header",
    "registry",
    "user",
    "logging",
)
#: How a request's user becomes the run's user_id: the default rule, none, or a function.
UserOption = bool | Callable[[Any], object]


def read_settings() -> dict[str, Any]:
    """Return ``settings.AGENT_RUN_ID`` as a dict, or raise ImproperlyConfigured naming the fix.

    An unset or empty setting is ``{}``: every option at its default.
    """
    raw = getattr(settings, "AGENT_RUN_ID", None)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{NAME} must be a dict of options, got {type(raw).__name__}: "
            f"{show_value(raw)}; for example {{'incoming': 'ignore'}}"
        )
    unknown = [key for key in raw if key not in OPTIONS]
    if unknown:
        raise ImproperlyConfigured(
            f"{NAME} has no option {', '.join(show_value(key) for key in unknown)}: "
            f"the options are {', '.join(OPTIONS)}"
        )
    options = dict(raw)
    user = options.get("user", True)
    if not (isinstance(user, bool) or callable(user)):
        raise ImproperlyConfigured(
            f"{NAME}['user'] must be True (the user's primary key), False (no user) or a "
            f"function of request.user returning its id, got {show_value(user)}"
        )
    logging_option = options.get("logging", False)
    if not isinstance(logging_option, bool | Mapping):
        raise ImproperlyConfigured(
            f"{NAME}['logging'] must be True, False or a dict of "
            f"agent_run_id.logging.install() options, got {show_value(logging_option)}"
        )
    registry = options.get("registry")
    if isinstance(registry, str):
        from .registry._open import check_not_conninfo

        try:
            check_not_conninfo(registry)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{NAME}['registry']: {exc}") from None
    elif registry is not None and not isinstance(registry, os.PathLike):
        try:
            check_registry(registry)
        except TypeError:
            raise ImproperlyConfigured(
                f"{NAME}['registry'] must be a path to a SQLite file (such as 'runs.db'), a "
                f"postgresql:// URL or a RunRegistry, got {type(registry).__name__}: "
                f"{show_value(registry)}"
            ) from None
    return options


def open_registry(value: object) -> Registry | None:
    """Return the registry a ``registry`` option names, as the middleware's ``registry=`` does.

    A SQLite file's path or a ``postgresql://`` URL opens one (``agent_run_id.registry.
    open_registry``); a registry is itself.
    """
    return as_registry(value)


def user_id_of(user: Any, option: UserOption) -> str | None:
    """Return the id of an authenticated ``user`` under the ``user`` option, else None.

    The default is the primary key, as text: not the user name or the e-mail address, which are
    personal data that would then reach every log line.
    """
    if option is False or not getattr(user, "is_authenticated", False):
        return None
    value = user.pk if option is True else option(user)
    return None if value is None else str(value)
