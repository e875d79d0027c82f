"""The propagator, and finding the run that arrived in an OpenTelemetry context.

Imported only by ``agent_run_id.otel``, which checks first that OpenTelemetry is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators import textmap

from ._context import current_run_id, current_session_id
from ._otel_runs import run_in_baggage, session_in_baggage
from ._propagation import (
    HEADER,
    PARENT_HEADER,
    ROOT_HEADER,
    SESSION_HEADER,
    run_from_wire,
    single_value,
)
from ._run_id import RunId, lineage_fields
from ._session import parse_session_id

__all__ = [
    "RunIdPropagator",
    "run_from_baggage_header",
    "run_from_context",
    "session_from_baggage_header",
    "session_from_context",
]

_EXTRACTED = otel_context.create_key("agent_run_id.extracted_run")
_EXTRACTED_SESSION = otel_context.create_key("agent_run_id.extracted_session")

# Injected in lower case: gRPC refuses metadata keys with capitals, and OpenTelemetry's gRPC
# client interceptor passes injected keys to it as they are; HTTP header names ignore case.
_NAMES = (HEADER.lower(), PARENT_HEADER.lower(), ROOT_HEADER.lower())
_SESSION = SESSION_HEADER.lower()


def run_from_context(context: Context | None = None) -> RunId | None:
    """Return the run that arrived in ``context`` (the current one by default), or None.

    Finds the run :class:`RunIdPropagator` extracted, else the one in OpenTelemetry baggage.
    Instrumentations that extract context (Celery, Kafka, gRPC, ...) make it current while the
    message is handled, so a consumer enters the run with::

        with RunContext(run_id=agent_run_id.otel.run_from_context()):  # a new run if none came
            handle(message)
    """
    run = otel_context.get_value(_EXTRACTED, context)
    if isinstance(run, RunId):
        return run
    return run_in_baggage(baggage.get_all(context))


def session_from_context(context: Context | None = None) -> str | None:
    """Return the session that arrived in ``context`` (the current one by default), or None.

    Finds the session :class:`RunIdPropagator` extracted from ``x-session-id``, else the one in
    OpenTelemetry baggage (``agent_run.session_id``); only a valid session id is taken. A
    consumer enters the run and its session with::

        with RunContext(run_id=run_from_context(), session_id=session_from_context()):
            handle(message)
    """
    session = otel_context.get_value(_EXTRACTED_SESSION, context)
    if isinstance(session, str):
        return session
    return session_in_baggage(baggage.get_all(context))


class RunIdPropagator(textmap.TextMapPropagator):
    """Carry the run in ``x-run-id`` and the lineage headers, its session in ``x-session-id``.

    ``inject`` writes the current run (else the run that arrived in the context) under those
    lower-case names, which gRPC metadata requires and HTTP takes as ``X-Run-Id``, and the
    run's session when it has one; a carrier (a mapping) that already holds one of the run
    names, in any case, belongs to the caller and is left as it is, and a session the carrier
    holds stays. ``extract`` reads them in any case with the same strict rules as the inbound
    middleware and stores the run and the session in the returned context, where
    :func:`run_from_context` and :func:`session_from_context` find them. Registered as the
    ``agent_run_id`` propagator. The run's user is never sent.

    Example::

        OTEL_PROPAGATORS=tracecontext,baggage,agent_run_id python app.py

    Security: an extracted id is client input; only a well-formed UUID is taken, and only a
    session id of the session rule, nothing else.
    """

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        """Write the run's headers into ``carrier``; nothing outside any run."""
        run = current_run_id()
        if run is not None:
            session = current_session_id()
        else:
            run = run_from_context(context)
            session = None if run is None else session_from_context(context)
        if run is None or _holds_ours(carrier, _NAMES):
            return
        for name, value in lineage_fields(run, _NAMES).items():
            setter.set(carrier, name, value)
        if session is not None and not _holds_ours(carrier, (_SESSION,)):
            setter.set(carrier, _SESSION, session)

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        """Return ``context`` with the run in ``carrier`` stored in it, if a valid one is there."""
        if context is None:
            context = otel_context.get_current()
        run = run_from_wire(
            _single(carrier, getter, HEADER),
            _single(carrier, getter, PARENT_HEADER),
            _single(carrier, getter, ROOT_HEADER),
        )
        if run is not None:
            context = otel_context.set_value(_EXTRACTED, run, context)
        session = parse_session_id(_joined(carrier, getter, SESSION_HEADER))
        if session is not None:
            context = otel_context.set_value(_EXTRACTED_SESSION, session, context)
        return context

    @property
    def fields(self) -> set[str]:
        """The headers ``inject`` may set (lower case)."""
        return {*_NAMES, _SESSION}


def _holds_ours(carrier: object, names: tuple[str, ...]) -> bool:
    # The outbound rule: one run header the caller set makes the carrier's lineage theirs.
    # Only a mapping can be asked; environment carriers (X_RUN_ID) never match, since a copy of
    # os.environ holds what this process inherited, not what its caller chose.
    if not isinstance(carrier, Mapping):
        return False
    return any(isinstance(key, str) and key.lower() in names for key in carrier)


def _joined(carrier: Any, getter: textmap.Getter[Any], name: str) -> str | None:
    """Return the values of header ``name`` in ``carrier``, in any case, joined by commas."""
    values = getter.get(carrier, name)
    if values is None:
        values = getter.get(carrier, name.lower())
    if values is None and isinstance(carrier, Mapping):
        # A plain dict keyed X-RUN-ID, say: the default getter matches keys exactly.
        wanted = name.lower()
        for key in list(carrier):
            if isinstance(key, str) and key.lower() == wanted:
                values = getter.get(carrier, key)
                break
    if not values:
        return None
    return ",".join(values)


def _single(carrier: Any, getter: textmap.Getter[Any], name: str) -> str | None:
    # A repeated header counts only when every copy holds the same id: the inbound rule.
    one = single_value(_joined(carrier, getter, name))
    return one if isinstance(one, str) else None


def run_from_baggage_header(get_header: Callable[[str], str | None]) -> RunId | None:
    """Return the run in an incoming ``baggage`` header (for the inbound middleware)."""
    raw = get_header("baggage")
    if not raw:
        return None
    extracted = _W3C_BAGGAGE.extract({"baggage": raw}, context=Context())
    return run_in_baggage(baggage.get_all(extracted))


def session_from_baggage_header(get_header: Callable[[str], str | None]) -> str | None:
    """Return the session in an incoming ``baggage`` header (for the inbound middleware)."""
    raw = get_header("baggage")
    if not raw:
        return None
    extracted = _W3C_BAGGAGE.extract({"baggage": raw}, context=Context())
    return session_in_baggage(baggage.get_all(extracted))


_W3C_BAGGAGE = W3CBaggagePropagator()
