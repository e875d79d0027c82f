"""The server side of ``agent_run_id.mcp``: which run an MCP request runs as, and running it.

Shared by the mcp 2.x middleware and the mcp 1.x handler wrappers, which differ only in where
they find the method, the params and the HTTP request. No import of the ``mcp`` package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from ._context import (
    RunContext,
    activate,
    capture,
    current_run_id,
    current_session_id,
    deactivate,
    enter_unwatched,
)
from ._inbound import InboundPolicy, IncomingOption
from ._mcp_meta import RUN_KEYS, SESSION_KEY, Wire, incoming_run
from ._notes import note_run
from ._propagation import HEADER, run_from_wire
from ._recording import check_registry
from ._run_id import RunId, lineage_fields, make_run_id, new_default_id
from ._steps import ReportedError
from ._types import Registry

__all__ = ["RUN_METHODS", "ServerRuns", "reported_error"]

#: The requests that run as runs of their own, and the param naming what each one calls.
RUN_METHODS: Mapping[str, str] = {
    "tools/call": "name",
    "resources/read": "uri",
    "prompts/get": "name",
}
# A run's name holds at most this much of the tool, prompt or resource it calls.
_MAX_TARGET = 200
# And its registry error at most this much of a failing tool's text.
_MAX_ERROR_TEXT = 500
_NAMES = ("run", "parent", "root")
# How many callers' runs ServerRuns keeps parsed.
_PARSED = 1024

A = TypeVar("A")
R = TypeVar("R")


def _no_header(name: str) -> None:
    """Read no header: an MCP request's run comes from its ``_meta``, not the fallbacks'."""


def _no_headers(request: object) -> Callable[[str], None]:
    return _no_header


def _http_run(http_request: object) -> tuple[RunId | None, str | None]:
    """Return the run ``RunIdMiddleware`` gave the HTTP request, and its session when known."""
    scope = getattr(http_request, "scope", None)
    if not isinstance(scope, Mapping):
        return None, None
    state = scope.get("state")
    run = state.get("run_id") if isinstance(state, Mapping) else None
    if not isinstance(run, RunId):
        return None, None
    # The session is known when the handler runs in the HTTP request's own run (mcp 2.x); in a
    # task started by an older request (mcp 1.x) the run current is another one.
    return run, current_session_id() if current_run_id() is run else None


def reported_error(method: str, target: str | None, result: object) -> ReportedError | None:
    """Return the error a ``tools/call`` result reports (``isError: true``), or None."""
    if method != "tools/call":
        return None
    if type(result) is dict or isinstance(result, Mapping):  # mcp 2.x handlers give a dict
        flag, content = result.get("isError"), result.get("content")
    else:
        inner = getattr(result, "root", result)  # mcp 1.x wraps results in a ServerResult
        flag = getattr(inner, "isError", None)
        if flag is None:
            flag = getattr(inner, "is_error", None)
        content = getattr(inner, "content", None)
    if flag is not True:
        return None
    text = None
    for item in content if isinstance(content, list) else ():
        text = item.get("text") if isinstance(item, Mapping) else getattr(item, "text", None)
        if isinstance(text, str):
            break
    message = f"tool {target} reported an error"
    if isinstance(text, str) and text:
        message += f": {text[:_MAX_ERROR_TEXT]}"
    return ReportedError(message)


def _ours_as_written(
    seen: tuple[object, ...], came: Wire | RunId, run: RunId, session_id: str | None
) -> bool:
    """Return whether our keys gave ``run`` and ``session_id`` and hold exactly them, valid.

    Only such values are kept by :class:`ServerRuns`: none that another source gave, and none
    of a client's overlong or invalid values (a kept key is at most a few hundred characters).
    """
    if isinstance(came, RunId) or seen[0] != came[0] or seen[0] != run.value:
        return False
    parent, root = run.parent, run.root
    return (
        seen[1] == (None if parent is None else parent.value)
        and seen[2] == (None if root is run else root.value)
        and seen[3] == session_id
    )


class ServerRuns:
    """The checked options of a server side, and running one request as its own run.

    Raises TypeError or ValueError naming the option for a bad one (``owner`` is the dotted
    name of the class or function given it).
    """

    __slots__ = ("_owner", "_parsed", "_seen", "policy", "registry")

    def __init__(self, *, incoming: IncomingOption, registry: Registry | None, owner: str) -> None:
        check_registry(registry)
        self.policy = InboundPolicy(
            header_name=HEADER,
            incoming=incoming,
            on_invalid="replace",
            response_header=False,
            owner=owner,
            header_getter=_no_headers,
        )
        self.registry = registry
        # The owner of the frames of runs entered without a RunContext (enter_unwatched).
        self._owner = RunContext(registry=registry)
        # The callers' runs as they came and as the wire rule made them: an agent's run makes
        # call after call with the same three values. Bounded: emptied when full.
        self._parsed: dict[Wire, RunId] = {}
        # The same for our own keys as they came, with the session: each value looked up once
        # and checked only the first time. Bounded as _parsed.
        self._seen: dict[tuple[object, ...], tuple[RunId, str | None]] = {}

    def run_of(
        self, request: object, meta: object, http_request: object
    ) -> tuple[RunId, str | None]:
        """Return the run a request runs as, and the session that came with it.

        ``meta`` is the request's ``_meta`` as it came; ``request`` goes to a callable
        ``incoming``. The run that came is the first valid one of ``_meta``, else the HTTP
        request's; the policy makes it that run, a child of it or a new root run.
        """
        mode = self.policy.mode
        seen = None
        if mode == "child" and type(meta) is dict:
            # An agent's run makes call after call with the same values of our keys: the run
            # they make is kept, and a new child of it made here (as RunId.child() makes one).
            get = meta.get
            seen = (get(RUN_KEYS[0]), get(RUN_KEYS[1]), get(RUN_KEYS[2]), get(SESSION_KEY))
            try:
                known = self._seen.get(seen)
            except TypeError:  # a value that cannot be hashed: never one of ours
                known = seen = None
            if known is not None:
                caller = known[0]
                return make_run_id(new_default_id(), caller, caller.root), known[1]
        came: Wire | RunId | None
        came, session_id = incoming_run(meta) if isinstance(meta, Mapping) else (None, None)
        if came is None:
            came, session_id = _http_run(http_request)
        if came is None or mode is None:  # no run came, or a function of the request decides
            wire: tuple[str | None, ...] = (None,)
            if isinstance(came, RunId):
                fields = lineage_fields(came, _NAMES)
                wire = (fields["run"], fields.get("parent"), fields.get("root"))
            elif came is not None:
                wire = came
            run = self.policy.run_for(request, *wire)
            return run or RunId.generate(), session_id  # the policy never rejects ("replace")
        # A fixed mode and a valid run: the policy's three answers (InboundPolicy.run_for), given
        # here to skip building the same caller's run from its text at every call.
        if mode == "ignore":
            return RunId.generate(), session_id
        run = came if isinstance(came, RunId) else self._run_of_wire(came)
        if mode == "continue":
            return run, session_id
        if seen is not None and _ours_as_written(seen, came, run, session_id):
            if len(self._seen) >= _PARSED:
                self._seen.clear()
            self._seen[seen] = (run, session_id)
        return run.child(), session_id

    def _run_of_wire(self, wire: Wire) -> RunId:
        run = self._parsed.get(wire)
        if run is None:
            # The run id is valid (incoming_run checked it): run_from_wire keeps it, and keeps
            # the lineage that is valid.
            run = run_from_wire(*wire) or RunId.generate()
            if len(self._parsed) >= _PARSED:
                self._parsed.clear()
            self._parsed[wire] = run
        return run

    async def run(
        self,
        request: object,
        method: str,
        params: object,
        http_request: object,
        call: Callable[[A], Awaitable[R]],
        argument: A,
    ) -> R:
        """Await ``call(argument)`` as the run of one request, named ``{method} {target}``.

        The run is entered here, in the task that handles the request, from no run: never
        nested in a run left current where the server started that task (mcp 1.x starts it in
        the context of the session's first HTTP request). A ``tools/call`` result with
        ``isError: true`` ends the run with a :class:`ReportedError`, as an exception would.
        """
        meta = target = None
        if type(params) is dict or isinstance(params, Mapping):
            meta = params.get("_meta")
            value = params.get(RUN_METHODS[method])
            if isinstance(value, str):
                target = value[:_MAX_TARGET]
        run, session_id = self.run_of(request, meta, http_request)
        name = method if target is None else f"{method} {target}"
        token = enter_unwatched(run, self._owner, name, session_id)
        if token is not None:  # nothing records the run: no RunContext, and no result to read
            try:
                return await call(argument)
            except BaseException as exc:
                note_run(exc, run)
                raise
            finally:
                deactivate(token)
        context = RunContext(run_id=run, name=name, registry=self.registry, session_id=session_id)
        aside = None if capture() is None else activate(None)
        try:
            context.__enter__()
            try:
                result = await call(argument)
            except BaseException as exc:
                context.__exit__(type(exc), exc, exc.__traceback__)
                raise
            error = reported_error(method, target, result)
            if error is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(type(error), error, None)  # recorded, never raised
            return result
        finally:
            if aside is not None:
                deactivate(aside)
