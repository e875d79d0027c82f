"""The one message for an integration whose package is not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(module: str, package: str, extra: str) -> ImportError:
    """Return the ImportError to raise from ``module`` when ``package`` cannot be imported."""
    return ImportError(
        f'agent_run_id.{module} needs the {package} package: pip install "agent-run-id[{extra}]"'
    )
