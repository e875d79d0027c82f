"""The hooks integrations register, and the one rule for a hook that fails.

Three registries, each a :class:`Hooks`: the run observers (called when a run starts), the
incoming fallbacks (asked for a run when a request carries no valid run header) and the log
field providers (asked for more fields for each stamped log record); and a fourth, the resets
that ``agent_run_id.testing.reset()`` calls to undo each integration's process-wide install.

A hook that raises never breaks the run, the request or the log call that called it: its first
failure is logged as a warning on the ``agent_run_id`` logger with its traceback, later ones at
debug level.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ._run_id import RunId

if TYPE_CHECKING:
    from ._context import RunContext
    from ._facts import Facts

__all__ = [
    "Annotator",
    "FieldProvider",
    "Hooks",
    "IncomingFallback",
    "RunFinisher",
    "RunObserver",
    "add_annotator",
    "add_field_provider",
    "add_incoming_fallback",
    "add_reset",
    "add_run_observer",
    "annotators",
    "fallbacks",
    "field_providers",
    "finish_run",
    "observers",
    "provide_fields",
    "remove_annotator",
    "remove_field_provider",
    "remove_incoming_fallback",
    "remove_run_observer",
    "report",
    "reported",
    "resets",
    "run_from_fallbacks",
]

H = TypeVar("H")

_log = logging.getLogger("agent_run_id")


class Hooks(Generic[H]):
    """Callables added and removed by integrations, read on hot paths without a lock.

    ``items`` is a tuple replaced as a whole under the lock, so a reader takes one attribute and
    iterates a snapshot that no registration can change under it. Adding a hook twice adds it
    once.
    """

    __slots__ = ("_lock", "items")

    def __init__(self) -> None:
        self.items: tuple[H, ...] = ()
        self._lock = threading.Lock()

    def add(self, hook: H) -> None:
        """Register ``hook``, after those already there; a no-op when it is there."""
        with self._lock:
            if hook not in self.items:
                self.items = (*self.items, hook)

    def remove(self, hook: H) -> None:
        """Unregister ``hook``; a no-op when it is not there."""
        with self._lock:
            self.items = tuple(item for item in self.items if item != hook)

    def clear(self) -> None:
        """Unregister every hook."""
        with self._lock:
            self.items = ()


class Reported:
    """The hooks whose first failure has been logged: one flag per registered hook.

    Held weakly where the hook allows it (a bound method is compared by its function and its
    instance, as registration compares it), by identity otherwise; a hook's flag goes when it is
    removed, so a hook registered later never inherits it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._weak: weakref.WeakSet[object] = weakref.WeakSet()
        self._strong: list[object] = []  # not weakly referable, or not hashable

    def first(self, culprit: object) -> bool:
        """Flag ``culprit`` and return whether this is its first failure."""
        with self._lock:
            try:
                if culprit in self._weak:
                    return False
                self._weak.add(culprit)
            except TypeError:
                if any(seen is culprit for seen in self._strong):
                    return False
                self._strong.append(culprit)
            return True

    def discard(self, culprit: object) -> None:
        """Forget ``culprit``'s flag; a no-op when it has none."""
        with self._lock:
            with contextlib.suppress(TypeError):  # not weakly referable, or not hashable
                self._weak.discard(culprit)
            self._strong = [seen for seen in self._strong if seen is not culprit]

    def clear(self) -> None:
        """Forget every flag."""
        with self._lock:
            self._weak.clear()
            self._strong.clear()


reported = Reported()
# Set while a failure is being logged in this thread: the warning's own record is stamped by the
# field providers, and one that fails again must not log about itself without end.
_reporting = threading.local()


def report(culprit: object, what: str) -> None:
    """Log that the hook ``culprit`` raised (the exception being handled); the caller goes on.

    ``what`` names the hook and the moment, as in ``"run observer %r failed when the run
    started"`` (``%r`` is the hook).
    """
    if getattr(_reporting, "active", False):
        return
    _reporting.active = True
    try:
        first = reported.first(culprit)
        _log.log(
            logging.WARNING if first else logging.DEBUG,
            f"{what}; it is skipped, nothing else fails%s",
            culprit,
            "" if first else " (repeated failure)",
            exc_info=True,
        )
    finally:
        _reporting.active = False


# --- run observers ---------------------------------------------------------------------------

#: Called when a run ends, with the exception that escaped it (None when it ended normally).
RunFinisher = Callable[[BaseException | None], object]
#: Called when a run starts, with the run and its RunContext; may return a RunFinisher.
RunObserver = Callable[[RunId, "RunContext"], RunFinisher | None]

observers: Hooks[RunObserver] = Hooks()


def add_run_observer(observer: RunObserver) -> None:
    """Call ``observer(run_id, context)`` each time a run is entered, in any thread or task.

    The observer may return a finisher, called with the exception that escaped the run (or None)
    when the run is left. This is how integrations (the run registry, OpenTelemetry, Sentry) hook
    into runs. Adding the same observer twice registers it once. An observer or finisher that
    raises never breaks the run: its first failure is logged as a warning on the
    ``agent_run_id`` logger with its traceback, later ones at debug level.
    """
    if not callable(cast(object, observer)):
        raise TypeError(f"observer must be callable, got {type(observer).__name__}")
    observers.add(observer)


def remove_run_observer(observer: RunObserver) -> None:
    """Stop calling ``observer``; runs already entered still call their finishers.

    Its failures are forgotten: added again, its next failure is logged as a warning again.
    """
    observers.remove(observer)
    reported.discard(observer)


def finish_run(finishers: list[tuple[object, RunFinisher]], exc: BaseException | None) -> None:
    """Call a run's finishers, the last started first, with the exception that ended it.

    Each comes with the observer (or registry) that returned it, named when it fails.
    """
    for culprit, finish in reversed(finishers):
        try:
            finish(exc)
        except Exception:
            report(culprit, "run observer %r failed when the run ended")


# --- annotators -----------------------------------------------------------------------------

#: Called after ``annotate()`` changed the current run's facts (OpenTelemetry stamps its spans).
Annotator = Callable[[RunId, "Facts"], object]

annotators: Hooks[Annotator] = Hooks()


def add_annotator(annotator: Annotator) -> None:
    """Call ``annotator(run_id, facts)`` each time ``annotate()`` changes the current run."""
    annotators.add(annotator)


def remove_annotator(annotator: Annotator) -> None:
    """Stop calling ``annotator``; a no-op when it was not added."""
    annotators.remove(annotator)
    reported.discard(annotator)


# --- incoming fallbacks ----------------------------------------------------------------------

#: Finds a run in an incoming request that has no valid ``X-Run-Id`` header (for example in
#: OpenTelemetry baggage). Called with a function that returns a request header by its lower-case
#: name (None when absent); returns the run, or None.
IncomingFallback = Callable[[Callable[[str], str | None]], RunId | None]

fallbacks: Hooks[IncomingFallback] = Hooks()


def add_incoming_fallback(fallback: IncomingFallback) -> None:
    """Let the inbound middleware ask ``fallback`` for a run when the header carries none.

    For integrations (``agent_run_id.otel`` reads the run from incoming baggage); adding the same
    fallback twice adds it once. The header always wins over a fallback.
    """
    fallbacks.add(fallback)


def remove_incoming_fallback(fallback: IncomingFallback) -> None:
    """Stop asking ``fallback``; a no-op when it was not added."""
    fallbacks.remove(fallback)
    reported.discard(fallback)


def run_from_fallbacks(get_header: Callable[[str], str | None]) -> RunId | None:
    """Return the run the first fallback finds in a request with no valid run header, or None.

    A fallback that raises is skipped (and reported): incoming data must never fail a request.
    """
    for fallback in fallbacks.items:
        try:
            run_id = fallback(get_header)
        except Exception:
            report(fallback, "incoming fallback %r failed")
            continue
        if run_id is not None:
            return run_id
    return None


# --- log field providers ---------------------------------------------------------------------

#: Adds fields to each stamped record (``agent_run_id.otel`` adds the trace and span ids).
FieldProvider = Callable[[], Mapping[str, object]]

field_providers: Hooks[FieldProvider] = Hooks()


def add_field_provider(provider: FieldProvider) -> None:
    """Stamp each log record also with the fields ``provider()`` returns; for integrations.

    Adding the same provider twice adds it once.
    """
    field_providers.add(provider)


def remove_field_provider(provider: FieldProvider) -> None:
    """Stop calling ``provider``; a no-op when it was not added."""
    field_providers.remove(provider)
    reported.discard(provider)


def provide_fields(attributes: dict[str, Any], only_missing: bool) -> None:
    """Set the providers' fields in a record's ``attributes`` (those it lacks, if ``only_missing``).

    A provider that raises is skipped (and reported): a log call must never fail for a field.
    """
    for provider in field_providers.items:
        try:
            fields = provider()
            for name, value in fields.items():
                if not only_missing or name not in attributes:
                    attributes[name] = value
        except Exception:
            report(provider, "log field provider %r failed")


# --- resets ----------------------------------------------------------------------------------

#: What undoes an integration's process-wide state (``agent_run_id.logging.uninstall``, ...).
resets: Hooks[Callable[[], object]] = Hooks()


def add_reset(reset: Callable[[], object]) -> None:
    """Have ``agent_run_id.testing.reset()`` call ``reset``; integrations add theirs at import."""
    resets.add(reset)
