"""Stamp stdlib ``logging`` records with the current run: ``%(run_id)s`` in any format.

Two ways, for two needs:

- :func:`install` stamps every record of every logger (third-party ones and uvicorn's access log
  included) at the moment it is created, so the id survives ``QueueHandler``/``QueueListener``
  and any other hand-off to another thread. This is what most applications want.
- :class:`RunIdFilter` on a *handler* stamps the records that handler emits, for a setup that
  must not touch the process-wide record factory. Put it on handlers, not on a logger: a logger's
  filters see only records logged on that very logger, never those propagated from its children.

Each stamped record carries ``run_id``, ``run_id_short``, ``parent_run_id``, ``root_run_id`` and
``session_id`` (``fields=`` chooses others: ``user_id`` and ``task`` are stamped only when asked
for), and the fields of any integration that adds its own (``agent_run_id.otel`` adds
``otelTraceID`` and ``otelSpanID`` with ``install(log_correlation=True)``). The session, user and
task are the run's as :func:`agent_run_id.annotate` last set them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ._context import FACTS, LOG_FIELDS, RUN, Frame, current
from ._facts import Facts
from ._hooks import add_reset, field_providers, provide_fields
from ._log_fields import (
    ALL_FIELDS,
    DEFAULT_FIELDS,
    FACT_FIELDS,
    FIELDS,
    LINEAGE,
    check_fields,
    field_values,
)

__all__ = [
    "ALL_FIELDS",
    "DEFAULT_FIELDS",
    "FACT_FIELDS",
    "FIELDS",
    "LINEAGE",
    "RunIdFilter",
    "install",
    "uninstall",
]


class _Options:
    """How records are stamped; replaced as a whole when the options change."""

    __slots__ = ("default", "names", "outside", "short", "standard")

    def __init__(self, short: bool, default: str, fields: object) -> None:
        if not isinstance(short, bool):
            raise TypeError(f"short must be True or False, got {short!r}")
        if not isinstance(default, str):
            raise TypeError(f"default must be a str (shown outside any run), got {default!r}")
        self.short = short
        self.default = default
        self.names = check_fields(fields)
        # The default fields are stamped by hand-written code on the hot path; others by _set_each.
        self.standard = self.names == DEFAULT_FIELDS
        self.outside = (default,) * len(self.names)


def _facts_seen(facts: Facts | None) -> tuple[str | None, ...] | None:
    return None if facts is None else (facts.session_id, facts.user_id, facts.task)


def _run_fields(frame: Frame, options: _Options) -> tuple[str, ...]:
    """Return the fields of a run, worked out once per run, options and ``annotate()``."""
    cached = frame[LOG_FIELDS]
    if cached is not None and cached[0] is options:
        return cached[1]  # type: ignore[no-any-return]
    facts: Facts | None = frame[FACTS]
    seen = _facts_seen(facts)
    fields = field_values(frame[RUN], facts, options.names, options.default, short=options.short)
    frame[LOG_FIELDS] = (options, fields)
    # annotate() changes the facts, then clears the cache: when it ran in another thread since
    # they were read here, the cache just written may hold the old ones, so clear it again.
    if frame[FACTS] is not facts or _facts_seen(facts) != seen:
        frame[LOG_FIELDS] = None
    return fields


# The likeliest choices besides the default: the user added, and every field.
_WITH_USER = (*DEFAULT_FIELDS, FACT_FIELDS[1])


def _set_each(record: logging.LogRecord, names: tuple[str, ...], values: tuple[str, ...]) -> None:
    """Set fields other than the default ones (those are set inline, on the hot path).

    Setting attributes one by one in a loop costs several times an unpacking assignment, so the
    likeliest choices are written out.
    """
    if names == _WITH_USER:
        (
            record.run_id,
            record.run_id_short,
            record.parent_run_id,
            record.root_run_id,
            record.session_id,
            record.user_id,
        ) = values
    elif names == ALL_FIELDS:
        (
            record.run_id,
            record.run_id_short,
            record.parent_run_id,
            record.root_run_id,
            record.session_id,
            record.user_id,
            record.task,
        ) = values
    else:
        for name, value in zip(names, values, strict=True):
            setattr(record, name, value)


class RunIdFilter(logging.Filter):
    """Set ``run_id``, its lineage and its session on each record that passes; never drops one.

    Fields a record already has (stamped by :func:`install`, or given in ``extra=``) are left as
    they are, so a filter running in a ``QueueListener`` thread does not overwrite the run that
    was current when the record was made (give it the ``fields=`` of ``install()`` then: a field
    the record lacks is the listener thread's).

    Args:
        short: put the 8-character form in ``run_id`` (``run_id_short`` always has it).
        default: what the fields hold outside any run, and a field the run lacks (a parent, a
            session).
        fields: the fields to set, from ``ALL_FIELDS``: by default ``DEFAULT_FIELDS``, the run's
            and its session; add ``"user_id"`` (personal data) and ``"task"`` when wanted.

    Example::

        handler.addFilter(RunIdFilter())
        handler.setFormatter(logging.Formatter("%(run_id)s %(session_id)s %(message)s"))
    """

    def __init__(
        self, short: bool = False, default: str = "-", *, fields: tuple[str, ...] = DEFAULT_FIELDS
    ) -> None:
        self._options = _Options(short, default, fields)
        super().__init__()

    @property
    def short(self) -> bool:
        """Whether ``run_id`` holds the 8-character form."""
        return self._options.short

    @property
    def default(self) -> str:
        """What the fields hold outside any run."""
        return self._options.default

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields set on each record, in the order of ``ALL_FIELDS``."""
        return self._options.names

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the fields ``record`` does not have yet with the current run; keep it."""
        # Attributes, not record.__dict__: reading __dict__ moves the record's attributes into a
        # dict there and then, and every later read and write of the record is slower for it.
        options = self._options
        names = options.names
        for name in names:
            if hasattr(record, name):
                break
        else:  # none given, the common case: all set at once
            frame = current.get()
            values = options.outside if frame is None else _run_fields(frame, options)
            if options.standard:
                (
                    record.run_id,
                    record.run_id_short,
                    record.parent_run_id,
                    record.root_run_id,
                    record.session_id,
                ) = values
            else:
                _set_each(record, names, values)
            if field_providers.items:
                provide_fields(record.__dict__, only_missing=True)
            return True
        missing = [name for name in names if not hasattr(record, name)]
        if missing:  # some given in extra=, or stamped by install(): those are kept
            frame = current.get()
            values = options.outside if frame is None else _run_fields(frame, options)
            for name, value in zip(names, values, strict=True):
                if name in missing:
                    setattr(record, name, value)
            if field_providers.items:
                provide_fields(record.__dict__, only_missing=True)
        return True


# The record factory's state lives in module globals, read once per record: the factory runs for
# every record of the process, so it is kept to a few attribute stores.
_lock = threading.Lock()
_previous: Any = None  # the factory ours chains; kept after uninstall() for records in flight
_installed = False  # whether our factory is in the chain
_options: _Options | None = None  # None: not stamping (never installed, or uninstall())
_FIELD_SET = frozenset(ALL_FIELDS)
_RESERVED = frozenset({"message", "asctime"})  # extra= keys Logger.makeRecord always refuses
_make_record: Any = None  # Logger.makeRecord as it was before install(); kept, like _previous
_patched = False  # whether Logger.makeRecord is ours


def _make_record_letting_extra_win(
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    """Make a record as the ``Logger.makeRecord`` wrapped here does, letting ``extra=`` win.

    ``Logger.makeRecord`` refuses (KeyError) an ``extra`` key the record already has, and the
    factory stamps ours when the record is made: ``extra={"run_id": ...}``, common in code that
    threaded ids by hand and in libraries, would then fail the log call. The caller's values
    replace the stamps instead. Used when ``makeRecord`` was replaced before ``install()``; over
    the standard library's own, :func:`_make_stamped_record` does the same in one call.
    """
    if extra is None or _FIELD_SET.isdisjoint(extra):
        return _make_record(self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)  # type: ignore[no-any-return]
    rest = {key: value for key, value in extra.items() if key not in _FIELD_SET}
    record: logging.LogRecord = _make_record(
        self, name, level, fn, lno, msg, args, exc_info, func, rest, sinfo
    )
    record.__dict__.update((key, extra[key]) for key in ALL_FIELDS if key in extra)
    return record


def _make_stamped_record(
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    """Do the standard library's ``Logger.makeRecord`` and the stamp in one call.

    Its rules are kept: the record comes from the installed record factory, and an ``extra``
    key naming ``message``, ``asctime`` or an attribute the record already has is refused with
    KeyError, but for the stamped fields, where the caller's value wins. When our factory is the
    installed one, the factory it chains is called directly and the record stamped here, with
    :func:`_stamp_fields` written out inline: no Python call per record but the record's own, on
    the path every log call of the process takes (``make bench-count`` counts it).
    """
    factory = logging.getLogRecordFactory()
    if factory is _stamp:
        record: logging.LogRecord = _previous(
            name, level, fn, lno, msg, args, exc_info, func, sinfo
        )
        # _stamp_fields, inlined; tests/test_logging.py holds the two to the same records.
        options = _options
        if options is not None:
            frame = current.get()
            if frame is None:
                if options.standard:
                    default = options.default
                    record.run_id = record.run_id_short = record.session_id = default
                    record.parent_run_id = record.root_run_id = default
                else:
                    _set_each(record, options.names, options.outside)
            else:
                cached = frame[LOG_FIELDS]
                fields = cached[1] if cached is not None and cached[0] is options else None
                if fields is None:
                    fields = _run_fields(frame, options)
                if options.standard:
                    (
                        record.run_id,
                        record.run_id_short,
                        record.parent_run_id,
                        record.root_run_id,
                        record.session_id,
                    ) = fields
                else:
                    _set_each(record, options.names, fields)
            if field_providers.items:
                provide_fields(record.__dict__, only_missing=False)
    else:  # another factory wraps ours (it stamps), or ours is uninstalled
        record = factory(name, level, fn, lno, msg, args, exc_info, func, sinfo)
    if extra is not None:
        attributes = record.__dict__
        for key in extra:
            if key not in _FIELD_SET and (key in _RESERVED or key in attributes):
                raise KeyError(f"Attempt to overwrite {key!r} in LogRecord")
            attributes[key] = extra[key]
    return record


def _stamp(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Make a record with the previous factory and stamp it with the current run."""
    record: logging.LogRecord = _previous(*args, **kwargs)
    _stamp_fields(record)
    return record


def _stamp_fields(record: logging.LogRecord) -> None:
    """Set the current run's fields (and the integrations' fields) on a new record."""
    options = _options
    if options is None:
        return
    frame = current.get()
    if frame is None:
        if options.standard:
            default = options.default
            record.run_id = record.run_id_short = record.session_id = default
            record.parent_run_id = record.root_run_id = default
        else:
            _set_each(record, options.names, options.outside)
    else:
        cached = frame[LOG_FIELDS]  # _run_fields' cache, read here to save a call per record
        fields = cached[1] if cached is not None and cached[0] is options else None
        if fields is None:
            fields = _run_fields(frame, options)
        if options.standard:  # the default fields, set by hand: no loop on the common path
            (
                record.run_id,
                record.run_id_short,
                record.parent_run_id,
                record.root_run_id,
                record.session_id,
            ) = fields
        else:
            _set_each(record, options.names, fields)
    if field_providers.items:
        provide_fields(record.__dict__, only_missing=False)


def _is_stdlib_make_record(make_record: object) -> bool:
    """Whether ``make_record`` is the standard library's own ``Logger.makeRecord``."""
    return (
        getattr(make_record, "__module__", None) == "logging"
        and getattr(make_record, "__qualname__", None) == "Logger.makeRecord"
    )


_OURS = (_make_stamped_record, _make_record_letting_extra_win)


def _chains_ours(factory: Callable[..., logging.LogRecord], stamped: str) -> bool:
    """Whether making a record with ``factory`` runs ours: one probe record, thrown away.

    Another library may have wrapped ours (it then still runs) or replaced it outright, with
    ``logging.setLogRecordFactory(logging.LogRecord)`` for example; only calling the factory
    tells the two apart: ours stamps the probe with the field ``stamped`` (install() sets the
    options first). Called under the lock.
    """
    probe = factory("agent_run_id.probe", logging.NOTSET, __file__, 0, "probe", (), None)
    return stamped in probe.__dict__


def install(
    *, short: bool = False, default: str = "-", fields: tuple[str, ...] = DEFAULT_FIELDS
) -> None:
    """Stamp every log record of the process with the run current when it is created.

    Chains the record factory installed before (OpenTelemetry's logging instrumentation installs
    one too) instead of replacing it. Calling it again changes the options and installs nothing
    more, unless another library has since replaced the factory without chaining ours: then ours
    is chained again, on top of theirs. After it, ``%(run_id)s`` formats for any logger, inside
    a run or not.

    ``extra={"run_id": ...}`` keeps working and wins over the stamp: ``Logger.makeRecord``, which
    refuses an ``extra`` key a record factory has set, is wrapped to let the caller's value
    through (a ``Logger`` subclass that overrides ``makeRecord`` without calling it is not
    covered).

    Args:
        short: put the 8-character form in ``run_id`` (``run_id_short`` always has it).
        default: what the fields hold outside any run, and a field the run lacks (a parent, a
            session, a user).
        fields: the fields to stamp, from ``ALL_FIELDS`` (``run_id``, ``run_id_short``,
            ``parent_run_id``, ``root_run_id``, ``session_id``, ``user_id``, ``task``). By
            default ``DEFAULT_FIELDS``: all but ``user_id`` (personal data) and ``task``.

    Example::

        agent_run_id.logging.install(fields=(*DEFAULT_FIELDS, "user_id"))
        logging.basicConfig(format="%(asctime)s %(run_id)s %(session_id)s %(message)s")
    """
    global _installed, _make_record, _options, _patched, _previous
    options = _Options(short, default, fields)
    with _lock:
        _options = options
        factory = logging.getLogRecordFactory()
        if factory is not _stamp and not (_installed and _chains_ours(factory, options.names[0])):
            _previous = factory
            logging.setLogRecordFactory(_stamp)
            _installed = True
        if not _patched:
            _make_record = logging.Logger.makeRecord
            logging.Logger.makeRecord = (  # type: ignore[method-assign]
                _make_stamped_record
                if _is_stdlib_make_record(_make_record)
                else _make_record_letting_extra_win
            )
            _patched = True


def uninstall() -> None:
    """Stop stamping records; a no-op when :func:`install` was not called.

    When another library has wrapped the record factory (or ``Logger.makeRecord``) after us,
    ours stays in its chain as a pass-through (removing it would drop theirs); ``install()``
    turns it back on.
    """
    global _installed, _options, _patched
    with _lock:
        _options = None
        if _installed and logging.getLogRecordFactory() is _stamp:
            logging.setLogRecordFactory(_previous)
            _installed = False
        if _patched and logging.Logger.makeRecord in _OURS:
            logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]
            _patched = False


add_reset(uninstall)
