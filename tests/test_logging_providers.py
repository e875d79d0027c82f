"""Extra field providers: integrations add their own fields to the records logging stamps."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import pytest

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId
from agent_run_id._hooks import add_field_provider, field_providers, remove_field_provider


def _trace_fields() -> Mapping[str, object]:
    return {"trace_hint": "t-1"}


def _broken() -> Mapping[str, object]:
    raise RuntimeError("provider bug")


@pytest.fixture(autouse=True)
def _clean_providers() -> Iterator[None]:
    yield
    for provider in (_trace_fields, _broken):
        remove_field_provider(provider)


def _record(logger: logging.Logger, **kwargs: object) -> logging.LogRecord:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("hello", **kwargs)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return records[0]


def test_installed_factory_adds_provider_fields_next_to_the_run() -> None:
    add_field_provider(_trace_fields)
    run_logging.install()
    run_id = RunId.generate()
    with RunContext(run_id=run_id):
        record = _record(logging.getLogger("providers.factory"))
    assert record.__dict__["run_id"] == run_id.value
    assert record.__dict__["trace_hint"] == "t-1"


def test_a_failing_provider_never_fails_the_log_call_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_field_provider(_broken)
    add_field_provider(_trace_fields)
    run_logging.install()
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        first = _record(logging.getLogger("providers.broken"))
        second = _record(logging.getLogger("providers.broken"))
    for record in (first, second):
        assert record.__dict__["trace_hint"] == "t-1"
        assert record.__dict__["run_id"] == "-"
    reports = [r for r in caplog.records if r.name == "agent_run_id"]
    assert [r.levelno for r in reports] == [logging.WARNING, logging.DEBUG]
    assert "log field provider" in reports[0].getMessage()
    assert reports[0].exc_info is not None


def test_filter_adds_provider_fields_the_record_lacks_and_keeps_the_others() -> None:
    add_field_provider(_trace_fields)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert run_logging.RunIdFilter().filter(record)
    assert record.__dict__["trace_hint"] == "t-1"
    kept = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    kept.trace_hint = "made in another thread"
    assert run_logging.RunIdFilter().filter(kept)
    assert kept.__dict__["trace_hint"] == "made in another thread"


def test_removed_provider_is_no_longer_called_and_adding_twice_adds_once() -> None:
    add_field_provider(_trace_fields)
    add_field_provider(_trace_fields)
    assert field_providers.items.count(_trace_fields) == 1
    remove_field_provider(_trace_fields)
    run_logging.install()
    record = _record(logging.getLogger("providers.removed"))
    assert "trace_hint" not in record.__dict__
