"""The one message for an integration whose package is not installed."""

from __future__ import annotations

__all__ = ["SOURCE", "install_command", "missing_extra"]

# Where pip finds the package until it is published: the repository, by git URL.
SOURCE = "git+https://github.com/MukundaKatta/agent-run-id"


def install_command(extra: str) -> str:
    """Return the pip command that installs agent-run-id with ``extra``, as it resolves today."""
    return f'pip install "agent-run-id[{extra}] @ {SOURCE}"'


def missing_extra(module: str, package: str, extra: str, alone: str | None = None) -> ImportError:
    """Return the ImportError to raise from ``module`` when ``package`` cannot be imported.

    ``alone``: what to ``pip install`` for the package alone, when not its name (``psycopg``
    wants its ``binary`` extra, or the system's libpq).
    """
    return ImportError(
        f"agent_run_id.{module} needs the {package} package: {install_command(extra)}"
        f" (or pip install {alone or package} alone)"
    )
