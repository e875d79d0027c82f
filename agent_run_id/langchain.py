"""Run LangChain and LangGraph under the current run: one id in our logs, registry and LangSmith.

:func:`config` gives a LangChain or LangGraph invocation the current run's id as its root run id
(the id LangSmith shows for the trace), our ids in its metadata, the run's session as
LangGraph's ``thread_id``, and a :class:`RunIdCallbackHandler` that records each chain, tool,
retriever and model step as a child run and runs each tool's body inside its step.

Example::

    with RunContext(registry=registry):
        graph.invoke({"messages": [("user", "plan a trip")]}, agent_run_id.langchain.config())
"""

from __future__ import annotations

import threading
from typing import Any, cast

try:
    from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
    from langchain_core.runnables import RunnableConfig
except ImportError as exc:
    from ._optional import missing_extra

    raise missing_extra("langchain", "langchain-core", "langchain") from exc

from ._context import annotate, current_run
from ._facts import RunView
from ._langchain_handler import EXTERNAL_SYSTEM, RunIdCallbackHandler
from ._show import show_value

__all__ = ["EXTERNAL_SYSTEM", "RunIdCallbackHandler", "config"]

_KEYS = RunnableConfig.__optional_keys__ | RunnableConfig.__required_keys__
# Two config() calls of one run at once must not both hand out the run's id.
_handing_out = threading.Lock()


def config(*, send_user: bool = False, **extra: Any) -> RunnableConfig:
    """Return a ``RunnableConfig`` that runs a LangChain or LangGraph invocation under the run.

    Inside a run it holds:

    - ``run_id``: the current run's UUID, so LangChain's root run (and LangSmith's trace) has
      our run's id; only in the run's first ``config()``: LangChain needs a new id per
      invocation, so later invocations get LangChain's own ids and are steps of the run. The
      run records it as its external id ``langchain_run``.
    - ``metadata``: ``agent_run_id``, ``agent_parent_run_id`` and ``agent_root_run_id`` (for a
      child run), ``agent_session_id`` (when the run has a session) and, with
      ``send_user=True`` only, ``agent_user_id``.
    - ``configurable.thread_id``: the run's session, when it has one and none is given; the
      thread id is in the metadata too (``thread_id``, what LangSmith groups threads by).
    - ``callbacks``: a new :class:`RunIdCallbackHandler` added to those given.

    Keys given in ``extra`` win: a ``run_id``, a ``metadata`` or ``configurable`` key, and
    callbacks (a list or a callback manager) are kept, and ours added beside them. Make one
    config per invocation. Outside any run it returns ``extra`` as given: no id, no metadata,
    no handler (there is no run to record steps under).

    Args:
        send_user: also put the run's user in the metadata (personal data, sent to LangSmith
            when tracing is on); off by default.
        **extra: any other ``RunnableConfig`` keys (``tags``, ``callbacks``, ``metadata``,
            ``configurable``, ``run_name``, ``recursion_limit``, ``max_concurrency``,
            ``run_id``).

    Example::

        graph.invoke(state, agent_run_id.langchain.config(recursion_limit=10))
    """
    if not isinstance(send_user, bool):
        raise TypeError(
            f"send_user must be True or False, got {show_value(send_user)}: pass send_user=True "
            "to put the run's user in LangChain's metadata (personal data), else leave it out"
        )
    for key in extra:
        if key not in _KEYS:
            raise TypeError(
                f"config() got the key {show_value(key)}, which is not a RunnableConfig key: "
                f"give {', '.join(sorted(_KEYS))} (LangGraph's options go in configurable=...)"
            )
    result: dict[str, Any] = dict(extra)
    run = current_run()
    if run is None:
        return cast(RunnableConfig, result)
    if "run_id" not in extra:
        with _handing_out:  # read again: another thread of the run may have taken it since
            if EXTERNAL_SYSTEM not in cast(RunView, current_run()).external_ids:
                annotate(external_ids={EXTERNAL_SYSTEM: run.id})
                result["run_id"] = run.run_id.uuid
    metadata = dict(extra.get("metadata") or {})
    ours = {"agent_run_id": run.id}
    if run.run_id.parent is not None:
        ours["agent_parent_run_id"] = run.run_id.parent.value
        ours["agent_root_run_id"] = run.run_id.root.value
    if run.session_id is not None:
        ours["agent_session_id"] = run.session_id
    if send_user and run.user_id is not None:
        ours["agent_user_id"] = run.user_id
    if run.session_id is not None:
        configurable = {"thread_id": run.session_id, **(extra.get("configurable") or {})}
        result["configurable"] = configurable
        # What LangSmith groups a conversation's traces by, on every run of the trace.
        ours["thread_id"] = configurable["thread_id"]
    result["metadata"] = {**ours, **metadata}
    result["callbacks"] = _with_handler(extra.get("callbacks"))
    return cast(RunnableConfig, result)


def _with_handler(callbacks: Any) -> Any:
    """Return ``callbacks`` (None, a list of handlers or a manager) with a handler of ours."""
    if callbacks is None:
        return [RunIdCallbackHandler()]
    if isinstance(callbacks, BaseCallbackManager):
        if any(isinstance(h, RunIdCallbackHandler) for h in callbacks.handlers):
            return callbacks
        manager = callbacks.copy()
        manager.add_handler(RunIdCallbackHandler(), inherit=True)
        return manager
    if isinstance(callbacks, (list, tuple)) and all(
        isinstance(h, BaseCallbackHandler) for h in callbacks
    ):
        if any(isinstance(h, RunIdCallbackHandler) for h in callbacks):
            return list(callbacks)
        return [*callbacks, RunIdCallbackHandler()]
    raise TypeError(
        f"callbacks must be a list of LangChain callback handlers or a callback manager, got "
        f"{type(callbacks).__name__}: pass callbacks=[handler, ...]"
    )
