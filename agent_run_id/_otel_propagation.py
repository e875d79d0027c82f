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

from ._context import current_run_id
from ._otel_runs import run_in_baggage
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, run_from_wire, single_value
from ._run_id import RunId, lineage_fields

__all__ = ["RunIdPropagator", "run_from_baggage_header", "run_from_context"]

_EXTRACTED = otel_context.create_key("agent_run_id.extracted_run")

# Injected in lower case: gRPC refuses metadata keys with capitals, and OpenTelemetry's gRPC
# client interceptor passes injected keys to it as they are; HTTP header names ignore case.
_NAMES = (HEADER.lower(), PARENT_HEADER.lower(), ROOT_HEADER.lower())


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


class RunIdPropagator(textmap.TextMapPropagator):
    """Carry the run in ``x-run-id``, ``x-parent-run-id`` and ``x-root-run-id``.

    ``inject`` writes the current run (else the run that arrived in the context) under those
    lower-case names, which gRPC metadata requires and HTTP takes as ``X-Run-Id``; a carrier
    (a mapping) that already holds one of them, in any case, belongs to the caller and is left
    as it is. ``extract`` reads them in any case with the same strict rule as the inbound
    middleware and stores the run in the returned context, where :func:`run_from_context` finds
    it. Registered as the ``agent_run_id`` propagator.

    Example::

        OTEL_PROPAGATORS=tracecontext,baggage,agent_run_id python app.py

    Security: an extracted id is client input; only a well-formed UUID is taken, nothing else.
    """

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        """Write the run's headers into ``carrier``; nothing outside any run."""
        run = current_run_id()
        if run is None:
            run = run_from_context(context)
        if run is None or _holds_ours(carrier):
            return
        for name, value in lineage_fields(run, _NAMES).items():
            setter.set(carrier, name, value)

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
        if run is None:
            return context
        return otel_context.set_value(_EXTRACTED, run, context)

    @property
    def fields(self) -> set[str]:
        """The headers ``inject`` may set (lower case)."""
        return set(_NAMES)


def _holds_ours(carrier: object) -> bool:
    # The outbound rule: one run header the caller set makes the carrier's lineage theirs.
    # Only a mapping can be asked; environment carriers (X_RUN_ID) never match, since a copy of
    # os.environ holds what this process inherited, not what its caller chose.
    if not isinstance(carrier, Mapping):
        return False
    return any(isinstance(key, str) and key.lower() in _NAMES for key in carrier)


def _single(carrier: Any, getter: textmap.Getter[Any], name: str) -> str | None:
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
    # A repeated header counts only when every copy holds the same id: the inbound rule.
    one = single_value(",".join(values))
    return one if isinstance(one, str) else None


def run_from_baggage_header(get_header: Callable[[str], str | None]) -> RunId | None:
    """Return the run in an incoming ``baggage`` header (for the inbound middleware)."""
    raw = get_header("baggage")
    if not raw:
        return None
    extracted = _W3C_BAGGAGE.extract({"baggage": raw}, context=Context())
    return run_in_baggage(baggage.get_all(extracted))


_W3C_BAGGAGE = W3CBaggagePropagator()
