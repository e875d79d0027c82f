"""The Django app of agent-run-id: installs logging and the default registry from settings."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]

from agent_run_id._django_settings import open_registry, read_settings

__all__ = ["RunIdConfig"]


class RunIdConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """Set up agent-run-id when Django starts, from ``settings.AGENT_RUN_ID``.

    Add ``"agent_run_id.django"`` to ``INSTALLED_APPS``. Then ``"logging": True`` installs
    ``agent_run_id.logging`` (every record carries ``run_id``; a dict gives ``install()`` its
    options), and ``"registry": "runs.db"`` records every run of the process (requests,
    management commands, tasks) in that SQLite file, as ``agent_run_id.registry.set_default``
    does; a ``postgresql://`` URL or a ``RunRegistry`` object works too. Both are off by
    default. The app has no models.

    Example::

        INSTALLED_APPS = [..., "agent_run_id.django"]
        AGENT_RUN_ID = {"logging": True, "registry": BASE_DIR / "runs.db"}
    """

    name = "agent_run_id.django"
    label = "agent_run_id"
    verbose_name = "agent-run-id"

    def ready(self) -> None:
        """Install what the settings ask for: logging, the default registry."""
        options = read_settings()
        logging_option = options.get("logging", False)
        if logging_option is not False:
            from agent_run_id import logging as run_logging

            run_logging.install(**({} if logging_option is True else dict(logging_option)))
        if options.get("registry") is not None:
            from agent_run_id import registry

            registry.set_default(open_registry(options["registry"]))  # type: ignore[arg-type]
