"""The viewer's HTML: Jinja2 templates, autoescaped, for the served pages and the one-file report.

Every run field and log line is user-controlled text: it reaches the page only through
autoescaped template variables and attributes (never ``|safe``), and never inside a script.
The served pages load the one stylesheet and script from ``/static/``; the report carries
them inline, allowed by their SHA-256 hashes in its Content-Security-Policy, so it makes no
request at all.
"""

from __future__ import annotations

try:
    import jinja2
    from markupsafe import Markup, escape
except ImportError as exc:  # pragma: no cover - the viewer extra brings them
    from agent_run_id._optional import missing_extra

    raise missing_extra("_viewer", "jinja2", "viewer") from exc

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agent_run_id import __version__
from agent_run_id.registry import STATUSES, RunRecord

from ._data import Filters, Page, Tree, duration_text, error_parts, fields
from ._logs import LogLine, Scan, cursor_text, iter_levels

__all__ = [
    "STATIC",
    "render_line_rows",
    "render_list",
    "render_message",
    "render_report",
    "render_rows",
    "render_run",
    "render_tree_rows",
]

HERE = Path(__file__).resolve().parent
#: The folder of the stylesheet and the script.
STATIC = HERE / "static"


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["took"] = duration_text
    env.filters["json"] = _json
    env.globals.update(statuses=STATUSES, version=__version__, urlencode=urlencode, inline=None)
    return env


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _page(template: str, **values: Any) -> str:
    return _env().get_template(template).render(**values)


def render_list(
    page: Page, filters: Filters, *, message: str = "", candidates: Sequence[RunRecord] = ()
) -> str:
    """Return the list page: the filters' form, the page of runs, the link to the next."""
    return _page(
        "list.html",
        page=page,
        runs=page.runs,
        filters=filters,
        message=message,
        candidates=list(candidates),
        first=not filters.before,
    )


def render_rows(page: Page) -> str:
    """Return the list's rows alone, for the live page to put in place."""
    return _page("_rows.html", runs=page.runs)


def render_run(
    record: RunRecord, tree: Tree, scan: Scan, logs: Sequence[str], *, live: bool = True
) -> str:
    """Return the run page: its fields and error, its tree on a timeline, its log lines."""
    return _page("run.html", **_run_values(record, tree, scan, logs), live=live, inline=None)


def render_report(record: RunRecord, tree: Tree, scan: Scan, logs: Sequence[str]) -> str:
    """Return the run page as one file: styles and script inline, hashed in its CSP."""
    css = (STATIC / "viewer.css").read_text(encoding="utf-8")
    script = (STATIC / "viewer.js").read_text(encoding="utf-8")
    inline = {
        "css": Markup(css),  # the package's own file, never run data
        "js": Markup(script),  # the package's own file, never run data
        "csp": f"default-src 'none'; script-src '{_hash(script)}'; "
        f"style-src '{_hash(css)}'; img-src data:; base-uri 'none'; form-action 'none'",
    }
    values = _run_values(record, tree, scan, logs)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _page("run.html", **values, live=False, inline=inline, made=made)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _run_values(record: RunRecord, tree: Tree, scan: Scan, logs: Sequence[str]) -> dict[str, Any]:
    kind, message = error_parts(record.error)
    failing = [node.record for node in tree.nodes if node.record.status == "error"]
    return {
        "record": record,
        "tree": tree,
        "scan": scan,
        "logs": [Path(name).name for name in logs],
        "levels": list(iter_levels(scan.lines)),
        "cursor": cursor_text(scan.cursors),
        "line_rows": Markup(render_line_rows(scan.lines)),  # escaped, value by value
        "error_type": kind,
        "error_message": message,
        "fields": fields(record),
        "deepest_error": failing[-1] if failing else None,
    }


def render_tree_rows(tree: Tree) -> str:
    """Return the tree's rows alone, for the live page to put in place."""
    return _page("_tree.html", tree=tree)


def render_line_rows(lines: Sequence[LogLine]) -> str:
    """Return log lines as the page's rows: for the page, and for the live page to add.

    Written here rather than in a template: a run page may hold tens of thousands of lines,
    and a template costs several times more per row. Every value goes through ``escape``.
    """
    rows = []
    for line in lines:
        level = escape(line.level)
        run = escape(line.run_id)
        rows.append(
            f'<tr class="line level-{level or "none"}" data-run="{run}" data-level="{level}">'
            f'<td class="num">{escape(line.time)}</td><td class="svc">{escape(line.service)}</td>'
            f'<td><span class="lvl">{level or "-"}</span></td><td><code>{run[:8]}</code></td>'
            f'<td class="msg">{escape(line.message)}</td></tr>\n'
        )
    return "".join(rows)


def render_message(title: str, message: str, candidates: Sequence[RunRecord] = ()) -> str:
    """Return a page saying what went wrong (an unknown run), with the runs it may mean."""
    return _page("message.html", title=title, message=message, candidates=list(candidates))
