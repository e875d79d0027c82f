"""LangChain's callbacks as steps: each chain, tool, retriever and model run a child run of ours.

LangChain tells a handler of each of its runs by its id and its parent's id, started in one
callback and ended in another. The handler keeps each LangChain run's :class:`Step` by that id,
so a step nests under its LangChain parent's step wherever the callbacks are called. The root
LangChain run whose id is the current run's (``agent_run_id.langchain.config()`` gives LangChain
that id) is the run itself, not a step of it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ._context import Captured, current_run_id
from ._run_id import RunId
from ._steps import Step

__all__ = ["EXTERNAL_SYSTEM", "RunIdCallbackHandler"]

#: The external id system of a step's LangChain run id (LangSmith's run id too: LangSmith
#: records each LangChain run under LangChain's id).
EXTERNAL_SYSTEM = "langchain_run"
_NAME_LIMIT = 200


class _Root:
    """The current run standing for the root LangChain run that has its id: its steps' parent."""

    __slots__ = ("context", "lock", "run_id")

    def __init__(self, run_id: RunId) -> None:
        self.run_id = run_id
        self.context = contextvars.copy_context()  # where the run is current: its registry
        self.lock = threading.Lock()  # a context is entered by one thread at a time

    def child(self, name: str, external_ids: Mapping[str, str]) -> Step:
        with self.lock:
            return self.context.run(Step, name, parent=self.run_id, external_ids=external_ids)


class RunIdCallbackHandler(BaseCallbackHandler):
    """Record each LangChain run (chain, tool, retriever, model) as a child run of ours.

    Each LangChain run becomes a :class:`~agent_run_id._steps.Step` named after its kind and
    name (``"tool search"``, ``"chat_model GenericFakeChatModel"``, ``"chain agent"``), a child
    of its LangChain parent's step, recorded in the registry with its status (``"error"`` with
    the exception's message, or a tool's error message) and times, and with its LangChain run id
    as its external id ``langchain_run``. A root LangChain run whose id is the current run's is
    that run itself; any other root LangChain run is a step of the run current where it starts.
    Outside any run the handler records nothing.

    Each tool's body runs inside its step: its log lines and outbound calls carry the step's
    run. The handler runs inline (``run_inline``), where LangChain runs the tool, in sync and
    async code alike; a handler that LangChain ran in a thread of its own could not do that.
    Its failures never break the agent: LangChain logs them and goes on (``raise_error`` is
    False).

    ``agent_run_id.langchain.config()`` adds one to a run's config; add one yourself to a
    model's or tool's ``callbacks`` to record only those. One handler may serve any number of
    concurrent invocations, in tasks and threads.
    """

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[UUID, Step | _Root] = {}
        self._entered: dict[UUID, Token[Captured]] = {}

    # -- starts -----------------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Start the chain's step, or take the run itself for the root chain that has its id."""
        self._start("chain", serialized, kwargs, run_id, parent_run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Start the tool's step and make it current for the tool's body."""
        step = self._start("tool", serialized, kwargs, run_id, parent_run_id)
        if isinstance(step, Step):
            # LangChain runs the body in a copy of this context, taken after this returns.
            token = step.enter()
            with self._lock:
                self._entered[run_id] = token

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Start the chat model's step."""
        self._start("chat_model", serialized, kwargs, run_id, parent_run_id)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Start the LLM's step."""
        self._start("llm", serialized, kwargs, run_id, parent_run_id)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Start the retriever's step."""
        self._start("retriever", serialized, kwargs, run_id, parent_run_id)

    # -- ends -------------------------------------------------------------------------------------

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """End the chain's step: ok."""
        self._end(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """End the chain's step with its error."""
        self._end(run_id, error)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """End the tool's step: ok, or failed with the message of an error it returned."""
        # A tool that handled its own error (handle_tool_error) returns a message with status
        # "error" rather than raise.
        failed = getattr(output, "status", None) == "error"
        self._end(run_id, str(getattr(output, "content", output)) if failed else None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """End the tool's step with its error."""
        self._end(run_id, error)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """End the model's step: ok."""
        self._end(run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """End the model's step with its error."""
        self._end(run_id, error)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """End the retriever's step: ok."""
        self._end(run_id, None)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """End the retriever's step with its error."""
        self._end(run_id, error)

    # -- the steps --------------------------------------------------------------------------------

    def _start(
        self,
        kind: str,
        serialized: Mapping[str, Any] | None,
        options: Mapping[str, Any],
        run_id: UUID,
        parent_run_id: UUID | None,
    ) -> Step | _Root | None:
        with self._lock:
            parent = None if parent_run_id is None else self._steps.get(parent_run_id)
        name = _step_name(kind, serialized, options)
        ids = {EXTERNAL_SYSTEM: str(run_id)}
        step: Step | _Root
        if isinstance(parent, Step):
            step = Step(name, parent=parent, external_ids=ids)
        elif parent is not None:
            step = parent.child(name, ids)
        else:
            # A root LangChain run, or one whose parent this handler never saw: of the run here.
            current = current_run_id()
            if current is None:
                return None  # outside any run: nothing to belong to
            if parent_run_id is None and current.uuid == run_id:
                step = _Root(current)  # config() gave LangChain the run's own id
            else:
                step = Step(name, external_ids=ids)
        with self._lock:
            self._steps[run_id] = step
        return step

    def _end(self, run_id: UUID, error: BaseException | str | None) -> None:
        if isinstance(error, BaseException) and _bubbles_up(error):
            error = None  # LangGraph's interrupts and commands to a parent graph: no failure
        with self._lock:
            step = self._steps.pop(run_id, None)
            token = self._entered.pop(run_id, None)
        if isinstance(step, Step):
            if token is not None:
                step.leave(token)
            step.finish(error)

    def __repr__(self) -> str:
        return f"RunIdCallbackHandler(open_steps={len(self._steps)})"


def _step_name(kind: str, serialized: Mapping[str, Any] | None, options: Mapping[str, Any]) -> str:
    """Return ``"<kind> <name>"``: the run's name (``run_name``) or its class's, else the kind."""
    name = options.get("name")
    if not name and serialized:
        name = serialized.get("name")
        if not name and isinstance(serialized.get("id"), list) and serialized["id"]:
            name = serialized["id"][-1]
    if not name:
        return kind
    return f"{kind} {name}"[:_NAME_LIMIT]


def _bubbles_up(error: BaseException) -> bool:
    """Return whether ``error`` is LangGraph's control flow (an interrupt, a parent command)."""
    return any(
        cls.__name__ == "GraphBubbleUp" and cls.__module__.startswith("langgraph.")
        for cls in type(error).__mro__
    )
