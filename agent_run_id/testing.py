"""Put the library back as a fresh process has it, between tests: :func:`reset`, a fixture.

Integrations keep process-wide state: the run observers, incoming fallbacks and log field
providers they registered, the default registry, the logging record factory, OpenTelemetry's
and Celery's installs. A test that installs one leaks it into the next. Call :func:`reset`
before (and after) each test, or use the ``isolated_runs`` pytest fixture::

    # conftest.py
    from agent_run_id.testing import isolated_runs  # noqa: F401

    @pytest.fixture(autouse=True)
    def _runs(isolated_runs: None) -> None: ...

or ``pytest.mark.usefixtures("isolated_runs")`` on the tests that need it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._context import current
from ._hooks import annotators, fallbacks, field_providers, observers, reported, resets
from ._recording import set_default_registry

__all__ = ["isolated_runs", "reset"]


def reset() -> None:
    """Undo every process-wide install of the library and leave no run current here.

    Calls each imported integration's uninstall (logging, OpenTelemetry, Celery's every app),
    removes every run observer, annotator, incoming fallback and log field provider, forgets
    their logged failures, and unsets the default registry. Integrations that were never
    imported have nothing to undo. A registry given to a middleware or a ``RunContext`` stays
    with it. A run entered and never left is no longer current, but what its observers set in
    other context variables (OpenTelemetry's attached context) stays where it was set: leave
    runs you enter.
    """
    for undo in resets.items:
        undo()
    observers.clear()
    annotators.clear()
    fallbacks.clear()
    field_providers.clear()
    reported.clear()
    set_default_registry(None)
    current.set(None)


try:
    import pytest
except ImportError:  # pragma: no cover - without pytest, reset() alone
    pass
else:

    @pytest.fixture
    def isolated_runs() -> Iterator[None]:
        """Run the test in a fresh library: :func:`reset` before it and after it."""
        token = current.set(None)
        reset()
        try:
            yield
        finally:
            reset()
            current.reset(token)
