"""Carry the run through MCP (Model Context Protocol) tool calls, on both sides, in ``_meta``.

Every ``tools/call``, ``resources/read`` and ``prompts/get`` carries the caller's run in its
``params._meta``, the carrier MCP defines for tracing context (SEP-414), so the run crosses every
transport: stdio and in-process ones, which have no headers, and streamable HTTP, whose headers
mcp 1.x sends from a task holding a stale context.

Client side:

- :func:`meta` returns the ``_meta`` entries of the current run, for ``call_tool(..., meta=)``;
- :func:`instrument_client` adds them to every call of a ``ClientSession`` (or mcp 2.x
  ``Client``) without changing each call;
- :func:`meta_resolver` is the OpenAI Agents SDK's ``tool_meta_resolver``.

Server side, each of those requests runs as its own run, by default a child of the caller's,
named ``tools/call {tool}`` (or ``resources/read {uri}``, ``prompts/get {prompt}``):

- :class:`RunIdServerMiddleware` for mcp 2.x, in ``MCPServer(..., middleware=[...])``;
- :func:`instrument_server` for mcp 1.x (and 2.x): it wraps the request handlers.

The entries: our own keys under the reverse-DNS prefix :data:`PREFIX` (``run-id``,
``parent-run-id``, ``root-run-id``, ``session-id``); and, by the rules of ``agent_run_id.otel``
(only while its ``install()`` with baggage is in effect), ``agent_run.*`` merged into the W3C
``baggage`` entry as it merges them (every other entry kept). The server
reads, in order: our keys; ``x-run-id`` and its lineage as ``agent_run_id.otel.RunIdPropagator``
writes them (mcp 2.x injects the global propagator into ``_meta``); ``agent_run.*`` in the
``baggage`` entry; the run ``agent_run_id.asgi.RunIdMiddleware`` gave the HTTP request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

try:
    from mcp import types as mcp_types
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("mcp", "mcp", "mcp") from error

from ._context import current_run_id
from ._inbound import IncomingOption
from ._mcp_meta import PREFIX, RUN_KEYS, SESSION_KEY, meta_of_run
from ._mcp_server import RUN_METHODS, ServerRuns
from ._types import Registry

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

__all__ = [
    "PARENT_RUN_KEY",
    "PREFIX",
    "ROOT_RUN_KEY",
    "RUN_KEY",
    "SESSION_KEY",
    "RunIdServerMiddleware",
    "instrument_client",
    "instrument_server",
    "meta",
    "meta_resolver",
]

#: The ``_meta`` key of the run id.
RUN_KEY = RUN_KEYS[0]
#: The ``_meta`` key of the parent run's id, when the run has a parent.
PARENT_RUN_KEY = RUN_KEYS[1]
#: The ``_meta`` key of the root run's id, when the run is not its own root.
ROOT_RUN_KEY = RUN_KEYS[2]

C = TypeVar("C")
S = TypeVar("S")
_MARK = "__agent_run_id_mcp__"


def meta(base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the ``_meta`` entries that carry the current run (a new dict); ``{}`` outside one.

    With ``base`` (the ``_meta`` a call would send), return a copy of it with ours added: every
    entry of it is kept, the run is merged into its ``baggage`` entry while
    ``agent_run_id.otel.install()`` (baggage on) is in effect, and a ``base`` that names
    a run already (one of our keys, or ``x-run-id``) is left as the caller chose it.

    Example::

        await session.call_tool("search", {"q": "mcp"}, meta=agent_run_id.mcp.meta())
    """
    return meta_of_run(base)


def meta_resolver(context: object = None) -> dict[str, Any]:
    """Return :func:`meta` for the OpenAI Agents SDK's ``tool_meta_resolver=``.

    The SDK calls it in the task that calls the tool, inside the agent's run, with an
    ``MCPToolMetaContext`` (not needed: the current run is the one carried).

    Example::

        MCPServerStdio(params, tool_meta_resolver=agent_run_id.mcp.meta_resolver)
    """
    return meta_of_run(None)


def _takes_meta(method: object) -> bool:
    try:
        return "meta" in inspect.signature(cast(Callable[..., Any], method)).parameters
    except (TypeError, ValueError):
        return False


def _with_meta(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    # A plain function returning the call's awaitable, not a coroutine of its own: the run is
    # read when the call is made, in the caller's task, and no extra coroutine runs per call.
    @functools.wraps(method)
    def call(*args: Any, meta: Mapping[str, Any] | None = None, **kwargs: Any) -> Awaitable[Any]:
        if meta is None:
            meta = meta_of_run(None) or None  # outside any run: None, as it came
        elif current_run_id() is not None:
            meta = meta_of_run(meta)
        return method(*args, meta=meta, **kwargs)

    setattr(call, _MARK, True)
    return call


def _sending_meta(send: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    # mcp 1.x: read_resource and get_prompt take no meta=, so the run goes in where every
    # request passes, send_request, for the three methods that run as runs.
    @functools.wraps(send)
    async def send_request(request: Any, *args: Any, **kwargs: Any) -> Any:
        inner = getattr(request, "root", request)
        params = getattr(inner, "params", None)
        if (
            params is not None
            and getattr(inner, "method", None) in RUN_METHODS
            and current_run_id() is not None
        ):
            existing = params.meta
            base = None if existing is None else existing.model_dump(exclude_none=True)
            params.meta = mcp_types.RequestParams.Meta(**meta_of_run(base))  # type: ignore[attr-defined]
        return await send(request, *args, **kwargs)

    setattr(send_request, _MARK, True)
    return send_request


def instrument_client(session_or_client: C) -> C:
    """Make every ``call_tool``, ``read_resource`` and ``get_prompt`` of it carry the run.

    ``session_or_client``: an ``mcp.ClientSession`` (1.x or 2.x) or an mcp 2.x ``mcp.Client``;
    the same object is returned. The calls made inside a run send :func:`meta` merged over the
    ``meta=`` they were given; outside any run they are unchanged. On mcp 1.x, whose
    ``read_resource`` and ``get_prompt`` take no ``meta=``, the session's ``send_request`` adds
    it. Calling it again changes nothing.

    Note: mcp 2.x ``Client`` sends every call carrying ``meta`` to the server, past its cache.

    Example::

        async with ClientSession(read, write) as session:
            agent_run_id.mcp.instrument_client(session)
    """
    if not callable(getattr(session_or_client, "call_tool", None)):
        raise TypeError(
            "instrument_client takes an mcp ClientSession or Client (with call_tool), got "
            f"{type(session_or_client).__name__}"
        )
    methods = [getattr(session_or_client, name) for name in ("read_resource", "get_prompt")]
    if all(_takes_meta(method) for method in methods):
        for name in ("call_tool", "read_resource", "get_prompt"):
            method = getattr(session_or_client, name)
            if not getattr(method, _MARK, False):
                setattr(session_or_client, name, _with_meta(method))
        return session_or_client
    send = getattr(session_or_client, "send_request", None)
    if not callable(send):
        raise TypeError(
            "instrument_client: this mcp client takes meta= on call_tool alone and has no "
            f"send_request: pass meta=agent_run_id.mcp.meta() on each call of "
            f"{type(session_or_client).__name__}"
        )
    if not getattr(send, _MARK, False):
        session_or_client.send_request = _sending_meta(send)  # type: ignore[attr-defined]
    return session_or_client


class RunIdServerMiddleware:
    """mcp 2.x server middleware: each tool call, resource read and prompt get is a run.

    Each ``tools/call``, ``resources/read`` and ``prompts/get`` runs as its own run, a child of
    the caller's by default. The caller's run is the first valid one of the request's
    ``_meta`` (our keys, then ``x-run-id``, then ``baggage``), else the run ``RunIdMiddleware``
    gave the HTTP request (streamable HTTP). The run is named ``tools/call {tool}`` (its
    registry row's ``metadata["name"]``); a result with ``isError: true`` ends it as an error,
    as an exception does. Every other message (``initialize``, ``tools/list``, notifications)
    passes untouched.

    Args:
        incoming: what to do with the caller's run: start a ``"child"`` of it (the default: each
            tool call is a run of its own in the caller's tree), ``"continue"`` it, or
            ``"ignore"`` it and start a new root run; or a function of the request's
            ``ServerRequestContext`` returning one of them.
        registry: record each request's run in this registry; by default the process-wide
            default registry, if one is set.

    Example::

        server = MCPServer("tools", middleware=[RunIdServerMiddleware()])

    Security: ``_meta`` is client input. Only valid ids are taken; a client can still pick the
    run its calls land in. Use ``incoming="ignore"`` for clients you do not trust.
    """

    def __init__(
        self, *, incoming: IncomingOption = "child", registry: Registry | None = None
    ) -> None:
        self._runs = ServerRuns(
            incoming=incoming, registry=registry, owner="agent_run_id.mcp.RunIdServerMiddleware"
        )

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Run one request as its run (or pass any other message straight through)."""
        method = ctx.method
        if method not in RUN_METHODS or ctx.request_id is None:
            return await call_next(ctx)
        return await self._runs.run(ctx, method, ctx.params, ctx.request, call_next, ctx)

    def __repr__(self) -> str:
        policy = self._runs.policy
        incoming = policy.mode if policy.mode is not None else policy.choose
        return f"RunIdServerMiddleware(incoming={incoming!r}, registry={self._runs.registry!r})"


def instrument_server(
    server: S, *, incoming: IncomingOption = "child", registry: Registry | None = None
) -> S:
    """Make each ``tools/call``, ``resources/read`` and ``prompts/get`` of ``server`` a run.

    ``server``: an mcp 1.x ``Server`` or ``FastMCP``, whose request handlers for those three
    requests are wrapped (call it after the handlers are registered: ``FastMCP`` registers them
    when made, a low-level ``Server`` when its decorators run); or an mcp 2.x ``Server`` or
    ``MCPServer``, or a fastmcp (PrefectHQ's) ``FastMCP`` on mcp 2.x, to whose SDK middleware a
    :class:`RunIdServerMiddleware` is appended. Options and behaviour
    as :class:`RunIdServerMiddleware`'s. The same object is returned; calling it again changes
    nothing.

    On mcp 1.x this also corrects the stale context of its streamable HTTP sessions (every
    handler of a session ran in the context of the session's first HTTP request): the run is
    entered inside each handler.

    Example::

        server = agent_run_id.mcp.instrument_server(FastMCP("tools"))
    """
    owner = "agent_run_id.mcp.instrument_server"
    # FastMCP (mcp 1.x's, and PrefectHQ's fastmcp) keeps the SDK's low-level server there; that
    # fastmcp's own middleware list holds its own kind of middleware, not the SDK's.
    lowlevel = getattr(server, "_mcp_server", server)
    middleware = getattr(lowlevel, "middleware", None)
    if isinstance(middleware, list):  # mcp 2.x
        if not any(isinstance(layer, RunIdServerMiddleware) for layer in middleware):
            middleware.append(RunIdServerMiddleware(incoming=incoming, registry=registry))
        return server
    handlers = getattr(lowlevel, "request_handlers", None)
    if not isinstance(handlers, dict):
        raise TypeError(
            f"{owner} takes an mcp Server, FastMCP or MCPServer, or a fastmcp FastMCP, got "
            f"{type(server).__name__}"
        )
    runs = ServerRuns(incoming=incoming, registry=registry, owner=owner)
    for request_type, method in (
        (mcp_types.CallToolRequest, "tools/call"),
        (mcp_types.ReadResourceRequest, "resources/read"),
        (mcp_types.GetPromptRequest, "prompts/get"),
    ):
        handler = handlers.get(request_type)
        if handler is not None and not getattr(handler, _MARK, False):
            handlers[request_type] = _run_handler(runs, lowlevel, method, handler)
    return server


def _run_handler(
    runs: ServerRuns, lowlevel: Any, method: str, handler: Callable[[Any], Awaitable[Any]]
) -> Callable[[Any], Awaitable[Any]]:
    """Wrap an mcp 1.x request handler: run each request as its run."""
    key = RUN_METHODS[method]

    @functools.wraps(handler)
    async def run_request(request: Any) -> Any:
        params = getattr(request, "params", None)
        meta = getattr(params, "meta", None)
        target = getattr(params, key, None)
        fields = {
            "_meta": getattr(meta, "model_extra", None),
            key: None if target is None else str(target),
        }
        try:
            context = lowlevel.request_context
        except LookupError:  # called outside a request (a test calling the handler): no HTTP
            context = None
        http_request = getattr(context, "request", None)
        return await runs.run(context, method, fields, http_request, handler, request)

    setattr(run_request, _MARK, True)
    return run_request
