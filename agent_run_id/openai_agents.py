"""Run the OpenAI Agents SDK under our run: its trace is our run, its spans our child runs.

Two parts, used together:

- :func:`run_config` returns the ``RunConfig`` of an agent run inside the current run: the
  trace's id is ``trace_<the run's 32 hex digits>``, its group the run's session, its metadata
  our ids, so the OpenAI Traces dashboard shows the run by our id and the other way round;
- :func:`install` registers a :class:`RunIdTracingProcessor` next to the SDK's own exporter: it
  records each agent, model, tool, handoff and guardrail span as a child run in the registry
  and runs each function tool's body inside its child run.

Example::

    agent_run_id.openai_agents.install()
    with RunContext(session_id="chat-42"):
        result = await Runner.run(agent, "plan a trip", run_config=run_config())
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

try:
    from agents import RunConfig, add_trace_processor
    from agents.run_config import ToolErrorFormatter, ToolErrorFormatterArgs
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("openai_agents", "openai-agents", "openai-agents") from error

from ._context import annotate, current_run
from ._facts import RunView
from ._hooks import add_reset, report
from ._openai_agents_spans import (
    RESPONSE_SYSTEM,
    SPAN_SYSTEM,
    TRACE_SYSTEM,
    RunIdTracingProcessor,
    note_tool_error,
)
from ._outbound import check_send_user, current_user_id
from ._run_id import lineage_fields
from ._show import show_value

__all__ = [
    "METADATA_LINEAGE",
    "METADATA_SESSION",
    "METADATA_USER",
    "RESPONSE_SYSTEM",
    "SPAN_SYSTEM",
    "TRACE_SYSTEM",
    "RunIdTracingProcessor",
    "install",
    "run_config",
    "uninstall",
]

#: The trace metadata keys of the run, its parent and its root (those two for a child run), as
#: ``agent_run_id.langchain`` names them in LangSmith's metadata.
METADATA_LINEAGE = ("agent_run_id", "agent_parent_run_id", "agent_root_run_id")
#: The trace metadata key of the run's session.
METADATA_SESSION = "agent_session_id"
#: The trace metadata key of the run's user, with ``send_user=True`` only.
METADATA_USER = "agent_user_id"


def run_config(*, send_user: bool = False, **kwargs: Any) -> RunConfig:
    """Return a ``RunConfig`` that makes the agent run's trace the current run's.

    What you pass wins: ``trace_id`` is ``f"trace_{run.hex}"`` (in the run's first
    ``run_config()`` only: a trace id names one trace, so a later agent run in the same run gets
    the SDK's own id, and its trace is a child run) and ``group_id`` the run's session only when
    you give none (or None); ``trace_metadata`` holds ``agent_run_id``,
    ``agent_parent_run_id`` and ``agent_root_run_id`` (for a child run) and ``agent_session_id``,
    with your own entries, which win on the same key. A ``tool_error_formatter`` of yours is
    kept and called as before: ours only hands the processor the exception a function tool
    raised, so its run records it (the SDK tells tracing only that the tool failed). Outside any
    run nothing of ours is set but that.

    Args:
        send_user: also put the run's ``user_id`` in the trace's metadata. It is personal data
            sent to OpenAI: only with ``True``.
        **kwargs: any other ``RunConfig`` field (``workflow_name``, ``model``, ...).

    Example::

        result = await Runner.run(agent, "plan a trip", run_config=run_config(workflow_name="trip"))
    """
    check_send_user(send_user, "run_config")
    metadata = kwargs.get("trace_metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(
            f"run_config: trace_metadata must be a mapping or None, got {show_value(metadata)}: "
            "pass a dict of your own entries (ours are added under them)"
        )
    run = current_run()
    if run is not None:
        if kwargs.get("trace_id") is None:
            with _handing_out:  # read again: another thread of the run may have taken it
                if TRACE_SYSTEM not in cast(RunView, current_run()).external_ids:
                    kwargs["trace_id"] = f"trace_{run.run_id.hex}"
                    annotate(external_ids={TRACE_SYSTEM: kwargs["trace_id"]})
        if kwargs.get("group_id") is None and run.session_id is not None:
            kwargs["group_id"] = run.session_id
        ours: dict[str, Any] = lineage_fields(run.run_id, METADATA_LINEAGE)
        if run.session_id is not None:
            ours[METADATA_SESSION] = run.session_id
        user_id = current_user_id() if send_user else None
        if user_id is not None:
            ours[METADATA_USER] = user_id
        kwargs["trace_metadata"] = {**ours, **(metadata or {})}
    kwargs["tool_error_formatter"] = _ToolErrorNote(kwargs.get("tool_error_formatter"))
    return RunConfig(**kwargs)


class _ToolErrorNote:
    """The SDK's ``tool_error_formatter``: notes a tool's exception, then formats as before."""

    __slots__ = ("formatter",)

    def __init__(self, formatter: ToolErrorFormatter | None) -> None:
        self.formatter = formatter

    def __call__(self, args: ToolErrorFormatterArgs[Any]) -> Any:
        if args.kind == "tool_exception" and args.error is not None:
            try:
                note_tool_error(args.error)
            except Exception:
                report(self, "OpenAI Agents tool error note %r failed")
        # None: the SDK's own message for the model.
        return None if self.formatter is None else self.formatter(args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.formatter!r})"


_installed: RunIdTracingProcessor | None = None
_install_lock = threading.Lock()
# Two run_config() calls of one run at once must not both hand out the run's trace id.
_handing_out = threading.Lock()


def install() -> RunIdTracingProcessor:
    """Register a :class:`RunIdTracingProcessor` next to the SDK's other processors; return it.

    Called again, it returns the same processor (turned on again after :func:`uninstall`). The
    SDK's own exporter is kept: traces still go to the OpenAI Traces dashboard, with our ids.
    """
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = RunIdTracingProcessor()
            add_trace_processor(_installed)
        _installed.enabled = True
        return _installed


def uninstall() -> None:
    """Stop recording: the installed processor stays registered with the SDK but does nothing.

    The SDK has no way to remove one processor; steps already started still end when their
    spans do.
    """
    with _install_lock:
        if _installed is not None:
            _installed.enabled = False


add_reset(uninstall)
