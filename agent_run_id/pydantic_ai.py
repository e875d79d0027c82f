"""Run Pydantic AI agents under our run: its run id is ours, its tools and model calls our runs.

Pydantic AI takes a run's ids directly: ``agent.run(..., run_id=, conversation_id=)``.
:func:`run_kwargs` returns them for the current run (the run's id, its session), with a
:class:`RunIdCapability` that records each model request and tool call as a child run and runs
each tool inside its child run, so a tool's log lines and outbound calls carry it.

Pydantic AI runs each tool call in an asyncio task of its own made from the run's context (a
sync tool in a worker thread, with a copy of that context): the current run is already the
agent's inside a tool; the capability makes it the tool's own.

A run's first agent run is the run itself (Pydantic AI's ``run_id`` is ours); a later agent run
in the same run, a conversation's next turn say, is a child run of it, with its own id.

Example::

    with RunContext(session_id="chat-42"):
        result = await agent.run("plan a trip", **run_kwargs())
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, TypedDict, cast

try:
    from pydantic_ai.capabilities import AbstractCapability, AgentCapability
    from pydantic_ai.conversation import Conversation
    from pydantic_ai.exceptions import ToolFailedError, ToolRetryError
    from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
    from pydantic_ai.tools import RunContext as AgentContext
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("pydantic_ai", "pydantic-ai-slim", "pydantic-ai") from error

from ._context import annotate, current_run
from ._external import check_external_ids
from ._facts import RunView
from ._hooks import report
from ._steps import Step

__all__ = ["CONVERSATION_SYSTEM", "RUN_SYSTEM", "RunIdCapability", "RunKwargs", "run_kwargs"]

#: The external id system of a Pydantic AI run's id, on the run it ran in.
RUN_SYSTEM = "pydantic_ai_run"
#: The external id system of a Pydantic AI run's conversation id, on the run it ran in.
CONVERSATION_SYSTEM = "pydantic_ai_conversation"

# Held while a run's first agent run is told apart from later ones: by run_kwargs() handing out
# the run's id, and by the capability tying an agent run to the run or to a child of it.
_tying = threading.Lock()

# The step a RunIdCapability is running now here, by (agent run, step): a second instance of it
# in the same agent run (the agent's own and run_kwargs()'s) passes through instead.
_running: ContextVar[tuple[str, str] | None] = ContextVar(
    "agent_run_id.pydantic_ai.running", default=None
)


class RunKwargs(TypedDict, total=False):
    """What :func:`run_kwargs` returns: ``agent.run()`` keywords, typed for the agent's output."""

    run_id: str
    conversation_id: str
    conversation: Conversation
    message_history: Sequence[ModelMessage]
    capabilities: list[AgentCapability[Any]]


def run_kwargs(
    *,
    run_id: str | None = None,
    conversation_id: str | None = None,
    conversation: Conversation | None = None,
    message_history: Sequence[ModelMessage] | None = None,
    capabilities: Sequence[AgentCapability[Any]] | None = None,
) -> RunKwargs:
    """Return ``agent.run()`` keywords that make the agent's run the current run.

    ``run_id`` is the current run's id and ``conversation_id`` its session, unless you give them
    (or a ``conversation``, which Pydantic AI takes instead of a ``conversation_id``); a
    :class:`RunIdCapability` is added to your ``capabilities``. Outside any run only the
    capability is added. Pass the other keywords of ``agent.run()`` beside it:
    ``agent.run(prompt, deps=deps, **run_kwargs())``.

    Only the run's first ``run_kwargs()`` hands out the run's id: an id names one agent run, so
    a later agent run in the same run gets Pydantic AI's own id, and the capability records it
    as a child run (with that id as its external id). Handing it out records it on the run at
    once, whether or not the agent run starts: call it in the ``agent.run()`` call. Pydantic AI
    refuses a ``run_id`` that is already on the ``message_history``; this function says so
    before Pydantic AI does.

    Args:
        run_id: the agent run's id; None: the current run's (in the run's first call).
        conversation_id: the conversation's id; None: the current run's session.
        conversation: a Pydantic AI ``Conversation`` to continue, returned as given.
        message_history: the history to continue, returned as given.
        capabilities: your capabilities for the run, returned with ours added.

    Example::

        result = await agent.run("plan a trip", deps=deps, **run_kwargs())
    """
    kwargs: RunKwargs = {}
    run = current_run()
    if run_id is None and run is not None:
        with _tying:  # read again: another thread of the run may have taken the id
            if RUN_SYSTEM not in cast(RunView, current_run()).external_ids:
                _check_history(message_history, run.id)
                run_id = run.id
                try:
                    annotate(external_ids={RUN_SYSTEM: run_id})
                except Exception:
                    report(
                        "run_kwargs", "agent_run_id.pydantic_ai's %r failed to record the run id"
                    )
    if run_id is not None:
        kwargs["run_id"] = run_id
    if conversation is not None:
        kwargs["conversation"] = conversation
    elif conversation_id is not None:
        kwargs["conversation_id"] = conversation_id
    elif run is not None and run.session_id is not None:
        kwargs["conversation_id"] = run.session_id
    if message_history is not None:
        kwargs["message_history"] = message_history
    given: object = capabilities
    if given is not None and (isinstance(given, str) or not isinstance(given, Sequence)):
        raise TypeError(
            f"run_kwargs: capabilities must be a sequence of capabilities or None, got "
            f"{type(given).__name__}: pass a list (a RunIdCapability is added to it)"
        )
    mine = list(capabilities or ())
    if not any(isinstance(c, RunIdCapability) for c in mine):
        mine.append(RunIdCapability())
    kwargs["capabilities"] = mine
    return kwargs


def _check_history(history: Sequence[ModelMessage] | None, run_id: str) -> None:
    """Raise when the message history already holds an agent run of this run's id."""
    for message in history or ():
        if getattr(message, "run_id", None) == run_id:
            raise ValueError(
                f"run_kwargs: message_history already holds an agent run of run {run_id} "
                "and Pydantic AI takes each run_id once: run each agent run in a run of its "
                "own (with RunContext(): ...), or pass run_id= yourself"
            )


class RunIdCapability(AbstractCapability[Any]):
    """A Pydantic AI capability recording the agent's model requests and tool calls as our runs.

    Each model request is a child run named ``model <model name>``, each tool call one named
    ``tool <tool name>`` made current for the tool's body; a failed call's run records the error
    (a tool's ``ModelRetry`` or ``ToolFailed`` message too, though the agent goes on). The agent
    run's ``run_id`` (and ``conversation_id``) are recorded as external ids of the run it runs
    in; a later agent run in the same run (one whose ``run_id`` the run does not have) is a
    child run named ``agent <agent name>``, its steps under it. Give it to the agent
    (``Agent(..., capabilities=[RunIdCapability()])``) or to a run with
    :func:`run_kwargs`; given twice, it records once. Its own failures are logged once as a
    warning on the ``agent_run_id`` logger and never reach the agent.
    """

    async def wrap_run(self, ctx: AgentContext[Any], *, handler: Any) -> Any:
        """Record the agent run's ids on the run it runs in (or a child run of it); run it."""
        key = (str(ctx.run_id), "agent")
        if _running.get() == key:  # a second instance of ours, inside the first one's child run
            return await handler()
        ids: dict[str, str] = {}
        later = False
        try:
            # Pydantic AI takes ids ours refuse (with spaces, longer than 256): those are left out.
            ids = _valid({RUN_SYSTEM: ctx.run_id, CONVERSATION_SYSTEM: ctx.conversation_id})
            with _tying:  # two agent runs starting in one run at once: one of them is the run's
                run = current_run()
                mine = None if run is None else run.external_ids.get(RUN_SYSTEM)
                later = mine not in (None, ctx.run_id)  # not the run's first, nor its own id
                if not later:
                    annotate(external_ids=ids)
        except Exception:
            report(self, "Pydantic AI capability %r failed when an agent run started")
        if not later:
            return await handler()
        agent = getattr(getattr(ctx, "agent", None), "name", None)
        name = "agent" if agent is None else f"agent {agent}"
        # Its own id alone: the conversation (the session's, shared by its turns) stays the run's.
        own = {RUN_SYSTEM: ids[RUN_SYSTEM]} if RUN_SYSTEM in ids else None
        return await self._in_step(key, name, {}, lambda _: handler(), None, own)

    async def wrap_model_request(
        self, ctx: AgentContext[Any], *, request_context: Any, handler: Any
    ) -> ModelResponse:
        """Run the model request inside a child run of its own."""
        model = getattr(request_context.model, "model_name", None)
        name = "model" if model is None else f"model {model}"
        key = (str(ctx.run_id), f"model {ctx.run_step}")
        response: ModelResponse = await self._in_step(key, name, {}, handler, request_context)
        return response

    async def wrap_tool_execute(
        self,
        ctx: AgentContext[Any],
        *,
        call: ToolCallPart,
        tool_def: Any,
        args: Any,
        handler: Any,
    ) -> Any:
        """Run the tool call inside a child run of its own: its body's log lines carry it."""
        key = (str(ctx.run_id), f"tool {call.tool_call_id}")
        metadata = {"tool_call_id": call.tool_call_id}
        return await self._in_step(key, f"tool {call.tool_name}", metadata, handler, args)

    async def _in_step(
        self,
        key: tuple[str, str],
        name: str,
        metadata: dict[str, Any],
        handler: Any,
        arg: Any,
        external_ids: dict[str, str] | None = None,
    ) -> Any:
        if _running.get() == key:  # a second instance of ours, inside the first one's step
            return await handler(arg)
        try:
            step = Step(
                name,
                metadata={"pydantic_ai_step": name.split(" ", 1)[0], **metadata},
                external_ids=external_ids,
            )
        except Exception:
            report(self, "Pydantic AI capability %r failed when a step started")
            return await handler(arg)
        token = step.enter()
        running = _running.set(key)
        try:
            result = await handler(arg)
        except BaseException as exc:
            _running.reset(running)
            step.leave(token)
            self._finish(step, _recorded(exc))
            raise
        _running.reset(running)
        step.leave(token)
        self._finish(step, None)
        return result

    def _finish(self, step: Step, error: BaseException | None) -> None:
        try:
            step.finish(error)
        except Exception:
            report(self, "Pydantic AI capability %r failed when a step ended")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _valid(ids: dict[str, str | None]) -> dict[str, str]:
    """Return the ids that are valid external ids (``annotate()`` takes), the others left out."""
    valid: dict[str, str] = {}
    for system, value in ids.items():
        if value:
            try:
                valid.update(check_external_ids({system: value}))
            except ValueError:
                continue
    return valid


def _recorded(error: BaseException) -> BaseException:
    """Return what a failed call's run records: the tool's own ``ModelRetry``, ``ToolFailed``."""
    if isinstance(error, ToolRetryError | ToolFailedError):
        cause = error.__cause__
        if isinstance(cause, Exception):
            return cause
    return error
