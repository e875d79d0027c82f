"""Stamp stdlib ``logging`` records with the current run: ``%(run_id)s`` in any format.

Two ways, for two needs:

- :func:`install` stamps every record of every logger (third-party ones and uvicorn's access log
  included) at the moment it is created, so the id survives ``QueueHandler``/``QueueListener``
  and any other hand-off to another thread. This is what most applications want.
- :class:`RunIdFilter` on a *handler* stamps the records that handler emits, for a setup that
  must not touch the process-wide record factory. Put it on handlers, not on a logger: a logger's
  filters see only records logged on that very logger, never those propagated from its children.

Each stamped record carries ``run_id``, ``run_id_short``, ``parent_run_id`` and ``root_run_id``,
and the fields of any integration that adds its own (``agent_run_id.otel`` adds ``otelTraceID``
and ``otelSpanID`` with ``install(log_correlation=True)``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._context import _current
from ._run_id import RunId

__all__ = ["RunIdFilter", "install", "uninstall"]

#: The attributes a stamped record carries.
FIELDS = ("run_id", "run_id_short", "parent_run_id", "root_run_id")
_FIELDS = frozenset(FIELDS)

#: Adds fields to each stamped record (``agent_run_id.otel`` adds the trace and span ids).
FieldProvider = Callable[[], Mapping[str, object]]

# Replaced as a whole under the lock, so stamping a record reads them without taking it.
_providers: tuple[FieldProvider, ...] = ()
_provided: frozenset[str] = _FIELDS
_providers_lock = threading.Lock()


def _add_field_provider(provider: FieldProvider, names: Iterable[str]) -> None:
    """Stamp each record also with ``provider()``, whose keys are among ``names``.

    For integrations; adding the same provider twice adds it once.
    """
    global _providers, _provided
    with _providers_lock:
        if provider not in _providers:
            _providers = (*_providers, provider)
        _provided = _provided | frozenset(names)


def _remove_field_provider(provider: FieldProvider) -> None:
    """Stop calling ``provider``; a no-op when it was not added."""
    global _providers
    with _providers_lock:
        _providers = tuple(p for p in _providers if p != provider)


def _provide(fields: dict[str, Any]) -> None:
    for provider in _providers:
        try:
            fields.update(provider())
        except Exception:  # a log call must never fail because of an extra field
            continue


def _fields(run_id: RunId | None, short: bool, default: str) -> dict[str, str]:
    if run_id is None:
        return dict.fromkeys(FIELDS, default)
    value = run_id.value
    parent = run_id.parent
    return {
        "run_id": value[:8] if short else value,
        "run_id_short": value[:8],
        "parent_run_id": default if parent is None else parent.value,
        "root_run_id": run_id.root.value,
    }


def _check(short: object, default: object) -> None:
    if not isinstance(short, bool):
        raise TypeError(f"short must be True or False, got {short!r}")
    if not isinstance(default, str):
        raise TypeError(f"default must be a str (shown outside any run), got {default!r}")


class RunIdFilter(logging.Filter):
    """Set ``run_id`` and its lineage on each record that passes; never drops a record.

    Fields a record already has (stamped by :func:`install`, or given in ``extra=``) are left as
    they are, so a filter running in a ``QueueListener`` thread does not overwrite the run that
    was current when the record was made.

    Args:
        short: put the 8-character form in ``run_id`` (``run_id_short`` always has it).
        default: what the fields hold outside any run.

    Example::

        handler.addFilter(RunIdFilter())
        handler.setFormatter(logging.Formatter("%(run_id)s %(levelname)s %(message)s"))
    """

    def __init__(self, short: bool = False, default: str = "-") -> None:
        _check(short, default)
        super().__init__()
        self.short = short
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the fields ``record`` does not have yet with the current run; keep it."""
        attributes = record.__dict__
        # dict.__contains__, not ``in``: records stamped by install() hide their fields from ``in``
        if not dict.__contains__(attributes, "root_run_id"):
            frame = _current.get()
            fields = _fields(None if frame is None else frame.run_id, self.short, self.default)
            if _providers:
                _provide(fields)
            for name, value in fields.items():
                if not dict.__contains__(attributes, name):
                    attributes[name] = value
        return True


class _RecordDict(dict[str, Any]):
    """The ``__dict__`` of a record stamped by :func:`install`.

    ``Logger.makeRecord`` refuses an ``extra=`` key that the record already has, with a KeyError
    raised into the caller's logging call. A caller (or a library) passing
    ``extra={"run_id": ...}`` must not crash because of us, so the stamped keys read as absent to
    that check, and the caller's value then replaces ours.
    """

    __slots__ = ()

    def __contains__(self, key: object) -> bool:
        return key not in _provided and dict.__contains__(self, key)


class _Factory:
    """The record factory state: the factory chained before ours, and the options."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.enabled = False
        self.previous: Any = None
        self.short = False
        self.default = "-"

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        if self.enabled:
            frame = _current.get()
            stamped = _RecordDict(record.__dict__)
            stamped.update(
                _fields(None if frame is None else frame.run_id, self.short, self.default)
            )
            if _providers:
                _provide(stamped)
            record.__dict__ = stamped
        return record


_factory = _Factory()


def install(*, short: bool = False, default: str = "-") -> None:
    """Stamp every log record of the process with the run current when it is created.

    Chains the record factory installed before (OpenTelemetry's logging instrumentation installs
    one too) instead of replacing it. Calling it again changes the options and installs nothing
    more. After it, ``%(run_id)s`` formats for any logger, inside a run or not.

    Args:
        short: put the 8-character form in ``run_id`` (``run_id_short`` always has it).
        default: what the fields hold outside any run.

    Example::

        agent_run_id.logging.install()
        logging.basicConfig(format="%(asctime)s %(run_id)s %(name)s %(message)s")
    """
    _check(short, default)
    with _factory.lock:
        _factory.short = short
        _factory.default = default
        _factory.enabled = True
        if not _factory.installed:
            _factory.previous = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_factory)
            _factory.installed = True


def uninstall() -> None:
    """Stop stamping records; a no-op when :func:`install` was not called.

    When another library has wrapped the record factory after us, ours stays in its chain as a
    pass-through (removing it would drop theirs); ``install()`` turns it back on.
    """
    with _factory.lock:
        _factory.enabled = False
        if _factory.installed and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_factory.previous)
            _factory.installed = False
