"""The viewer's web app: Starlette routes over a registry and log files, read-only.

- ``/``: the runs, newest first, filtered and paged; ``?q=`` finds a run by id, prefix or
  external id.
- ``/runs/{run}``: a run's fields, its tree on a timeline, and its tree's log lines.
- ``/api/runs`` and ``/api/runs/{run}/live``: what the pages poll to stay live (their rows
  as HTML, rendered and escaped here, and cursors).
- ``/static/``: the stylesheet and the script.

Each endpoint is a plain function: Starlette runs it in its thread pool, where the
registry's blocking reads belong. Every response carries a Content-Security-Policy that allows
scripts from this server alone (no inline script), and refuses framing.
"""

from __future__ import annotations

try:
    from starlette.applications import Starlette
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - the viewer extra brings it
    from agent_run_id._optional import missing_extra

    raise missing_extra("_viewer", "starlette", "viewer") from exc

from collections.abc import Sequence
from urllib.parse import quote, urlencode

from agent_run_id.registry import RunRecord, RunRegistry

from ._data import find_run, layout, list_page, parse_filters
from ._logs import RecentScans, cursor_text, parse_cursors, read_tree_lines
from ._render import (
    STATIC,
    render_line_rows,
    render_list,
    render_message,
    render_rows,
    render_run,
    render_tree_rows,
)

__all__ = ["CSP", "LOOPBACK", "create_app"]

#: The policy of every page served: the server's own script and stylesheet, nothing inline.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The names of this machine a browser gives in ``Host`` for a server on 127.0.0.1.
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class _Headers:
    """Add the security headers to every response (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    registry: RunRegistry, logs: Sequence[str] = (), *, hosts: Sequence[str] = LOOPBACK
) -> ASGIApp:
    """Return the viewer's ASGI app over ``registry`` and the log files ``logs``.

    ``hosts``: the names the ``Host`` header may give (``LOOPBACK`` by default; ``serve``
    adds this machine's names, see ``allowed_hosts``), others answered 400, so that a web page
    whose name was pointed at this machine (DNS rebinding) cannot read the viewer from the
    user's browser.
    """
    names = list(logs)
    scans = RecentScans(names)

    def runs(request: Request) -> Response:
        filters = parse_filters(request.query_params)
        if filters.q:
            record, candidates = find_run(registry, filters.q)
            if record is not None:
                return RedirectResponse(f"/runs/{record.run_id}", status_code=303)
            page = list_page(registry, filters)
            shown = "runs" if candidates else "no run"
            message = f"{shown} with the id, prefix or external id {filters.q!r}"
            return HTMLResponse(render_list(page, filters, message=message, candidates=candidates))
        return HTMLResponse(render_list(list_page(registry, filters), filters))

    def runs_api(request: Request) -> Response:
        filters = parse_filters(request.query_params)
        page = list_page(registry, filters)
        following = None
        if page.next is not None:
            following = "/?" + urlencode(filters.query(before=page.next))
        return JSONResponse({"rows": render_rows(page), "count": len(page.runs), "next": following})

    def run(request: Request) -> Response:
        text = request.path_params["run"]
        record, candidates = find_run(registry, text)
        if record is None:
            status = 300 if candidates else 404
            title = "Several runs" if candidates else "No such run"
            message = f"{'several runs match' if candidates else 'no run matches'} {text!r}"
            return HTMLResponse(render_message(title, message, candidates), status_code=status)
        if record.run_id != text:
            return RedirectResponse(f"/runs/{quote(record.run_id)}", status_code=303)
        records = registry.tree(record.run_id)
        tree = layout(records)
        scan = scans.lines(record.run_id, tree.ids, record.root_id)
        return HTMLResponse(render_run(record, tree, scan, names))

    def live(request: Request) -> Response:
        record = _exact(registry, request.path_params["run"])
        if record is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        tree = layout(registry.tree(record.run_id))
        cursors = parse_cursors(request.query_params.get("cursor", ""), len(names))
        scan = read_tree_lines(names, record.run_id, tree.ids, record.root_id, cursors)
        return JSONResponse(
            {
                "status": record.status,
                "tree": render_tree_rows(tree),
                "lines": render_line_rows(scan.lines),
                "count": len(scan.lines),
                "cursor": cursor_text(scan.cursors),
                "reset": scan.reset,
            }
        )

    def failed(request: Request, exc: Exception) -> Response:
        title = "Cannot read the registry or the logs"
        message = f"{type(exc).__name__}: {exc}"
        return HTMLResponse(render_message(title, message), status_code=500)

    app = Starlette(
        exception_handlers={Exception: failed},
        routes=[
            Route("/", runs),
            Route("/api/runs", runs_api),
            Route("/runs/{run}", run),
            Route("/api/runs/{run}/live", live),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
    )
    return _Headers(TrustedHostMiddleware(app, allowed_hosts=list(hosts)))


def _exact(registry: RunRegistry, run: str) -> RunRecord | None:
    record, _ = find_run(registry, run)
    return record if record is not None and record.run_id == run else None
