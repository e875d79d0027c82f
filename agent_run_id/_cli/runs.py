"""``agent-run-id runs list|show|tree``: the run registry, read from the command line."""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from agent_run_id._session import check_session_id
from agent_run_id.registry import STATUSES, AmbiguousRunError, RunRecord, RunRegistry

from . import prune, report
from ._errors import UsageError
from ._lines import parse_time
from ._links import link_templates, linked
from ._output import count, json_line, printable
from ._registry import ENV_DB, open_registry, read_errors, registry_path

__all__ = ["add_parser", "session_option"]

_AGO = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_RUN_HELP = (
    "the run id, a unique prefix of at least 8 characters, or an id another system gave the run "
    "(an OpenAI trace id, a LangSmith run id: its external ids)"
)


def add_parser(commands: Any) -> None:
    """Add the ``runs`` command and its ``list``, ``show`` and ``tree`` subcommands."""
    runs = commands.add_parser(
        "runs",
        help="read the run registry",
        description="Read the run registry (a SQLite file, or a PostgreSQL database given as a "
        "postgresql:// URL), read-only; prune deletes the old runs. "
        "The text in a run's record (task, user, error, host, metadata) is shown with its "
        "control characters escaped, so each field stays on its line; --json gives it exact.",
    )
    actions = runs.add_subparsers(
        dest="action", required=True, metavar="{list,show,tree,prune,report}"
    )
    listing = _add(
        actions,
        "list",
        "the latest runs, newest first",
        "List the latest runs, newest first: id, status, start, duration, user, session and "
        "task, one run a line; how many goes to standard error.",
        json_help="print one JSON object per run, one a line",
    )
    listing.add_argument("--status", choices=STATUSES, help="only the runs with this status")
    listing.add_argument("--user", metavar="USER", help="only this user's runs")
    listing.add_argument(
        "--session",
        metavar="SESSION",
        help="only the runs of this session (conversation, thread): every turn and its child runs",
    )
    listing.add_argument(
        "--since",
        metavar="TIME",
        help="only the runs started since: ISO 8601 (UTC if no zone), or 30m, 2h, 7d ago",
    )
    listing.add_argument(
        "--stale",
        action="store_true",
        help="only the runs still marked running whose process died, with its host and pid",
    )
    listing.add_argument(
        "--limit", metavar="N", type=int, default=50, help="at most N runs (default 50)"
    )
    listing.set_defaults(handler=_list)
    show = _add(
        actions,
        "show",
        "a run's whole record",
        "Print every field of one run's record, one a line.",
        json_help="print the record as one JSON object",
    )
    show.add_argument("run", metavar="RUN", help=_RUN_HELP)
    show.set_defaults(handler=_show)
    tree = _add(
        actions,
        "tree",
        "a run and its descendants",
        "Print a run and its descendants, each indented under its parent: id, status, duration, "
        "task, user, session (where it differs from the parent's: a child run inherits its "
        "parent's session) and error.",
        json_help="print one JSON object per run, one a line, the run first",
    )
    tree.add_argument("run", metavar="RUN", help=_RUN_HELP)
    tree.set_defaults(handler=_tree)
    prune.add_parser(actions)
    report.add_parser(actions)


def _add(
    actions: Any, name: str, summary: str, description: str, *, json_help: str
) -> argparse.ArgumentParser:
    """Add one ``runs`` subcommand with the options they all take: ``--db`` and ``--json``."""
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=summary, description=description
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help=f"the registry: a SQLite file or a postgresql:// URL (default: ${ENV_DB})",
    )
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(parser=parser)  # whose usage an unknown option is shown with
    return parser


def session_option(value: str) -> str:
    """Return ``--session``'s value checked with the session id rule, or raise UsageError."""
    try:
        check_session_id(value, "--session")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return value


def _read(args: argparse.Namespace, query: str) -> list[RunRecord]:
    registry = open_registry(registry_path(args.db))
    try:
        if query == "list":
            if args.limit < 1:
                raise UsageError(f"--limit must be at least 1, got {args.limit}")
            if args.stale and args.status not in (None, "running"):
                raise UsageError(
                    f"--stale lists runs still marked running: it takes no --status {args.status}"
                )
            return registry.find(
                status=args.status,
                user_id=args.user,
                session_id=None if args.session is None else session_option(args.session),
                since=None if args.since is None else _since(args.since),
                stale=args.stale,
                limit=args.limit,
            )
        record = _record_of(registry, args.run)
        return registry.tree(record.run_id) if query == "tree" else [record]
    except AmbiguousRunError as exc:
        raise UsageError(str(exc)) from None
    except KeyError as exc:
        raise UsageError(f"unknown run {args.run!r} in {registry.where}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except read_errors() as exc:
        raise UsageError(f"cannot read {registry.where}: {exc}") from None
    finally:
        registry.close()


def _record_of(registry: RunRegistry, text: str) -> RunRecord:
    """Return the run ``text`` names: by its id, a prefix, or one of its external ids.

    Raises what ``get`` raised when no run has it as an external id either, and UsageError
    when several runs carry it.
    """
    try:
        return registry.get(text)
    except (KeyError, ValueError):
        found = registry.by_external_id(text)
        if not found:
            raise
        runs = sorted({record.run_id for record in found})
        if len(runs) > 1:
            raise UsageError(
                f"{text!r} is an external id of several runs ({', '.join(runs)}): give the run id"
            ) from None
        return found[0]


def _since(text: str) -> datetime:
    ago = _AGO.fullmatch(text.strip())
    when: datetime | None = None
    if ago:
        amount, unit = ago.groups()
        # Before the year 1, or more digits than int() takes: not a time either.
        with contextlib.suppress(OverflowError, ValueError):
            when = datetime.now(timezone.utc) - timedelta(**{_UNITS[unit]: int(amount)})
    else:
        when = parse_time(text)
    if when is None:
        raise UsageError(
            f"--since {text!r} is not a time: give 2025-06-01, 2025-06-01T12:00Z or 30m, 2h, 7d"
        )
    return when


def _emit_json(records: Iterable[RunRecord], out: IO[str]) -> None:
    for record in records:
        out.write(json_line(record.to_json()))


def _list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    records = _read(args, "list")
    if args.json:
        _emit_json(records, out)
        return 0
    # A stale run is found again by where it ran: its host and the process that died.
    place = f"{'HOST':<20}  {'PID':>7}  " if args.stale else ""
    out.write(
        f"{'RUN':<36}  {'STATUS':<7}  {'STARTED (UTC)':<19}  {'DURATION':>9}  {place}"
        f"{'USER':<12}  {'SESSION':<16}  TASK\n"
    )
    for r in records:
        place = f"{_cut(r.host, 20):<20}  {r.pid or '-':>7}  " if args.stale else ""
        out.write(
            f"{printable(r.run_id):<36}  {printable(r.status):<7}  {_when(r.started_at)}  "
            f"{_took(r.duration):>9}  {place}{_cut(r.user_id, 12):<12}  "
            f"{_cut(r.session_id, 16):<16}  {_cut(r.task)}\n"
        )
    shown = count(len(records), "run") if records else "no runs"
    if len(records) == args.limit:
        shown += f" (as many as --limit {args.limit}: there may be more)"
    err.write(f"{shown}\n")
    return 0


def _show(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    (record,) = _read(args, "show")
    if args.json:
        _emit_json([record], out)
        return 0
    templates = link_templates(err) if record.external_ids else {}
    for name, value in record.to_json().items():
        if name == "external_ids":
            _show_external(record.external_ids, templates, out)
            continue
        if name == "metadata":
            value = json_line(value).rstrip("\n")
        shown = "-" if value is None else printable(str(value))
        out.write(f"{name + ':':<11} {shown}\n")
    return 0


def _show_external(ids: Mapping[str, str], templates: Mapping[str, str], out: IO[str]) -> None:
    """Write the run's external ids, one a line (``system=id``), each with its link if any."""
    if not ids:
        out.write(f"{'external:':<11} -\n")
    for i, (system, external_id) in enumerate(sorted(ids.items())):
        url = linked(system, external_id, templates)
        shown = f"{system}={external_id}" + ("" if url is None else f"  {url}")
        out.write(f"{'external:' if i == 0 else '':<11} {printable(shown)}\n")


def _tree(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    records = _read(args, "tree")
    if args.json:
        _emit_json(records, out)
        return 0
    depth = {records[0].parent_id: -1}
    # A child run inherits its parent's session: shown where it starts or changes, not again.
    sessions: dict[str | None, str | None] = {records[0].parent_id: None}
    for r in records:
        depth[r.run_id] = depth.get(r.parent_id, -1) + 1
        sessions[r.run_id] = r.session_id
        user = f"  user={printable(r.user_id)}" if r.user_id else ""
        shown = r.session_id and r.session_id != sessions.get(r.parent_id)
        session = f"  session={printable(r.session_id or '')}" if shown else ""
        error = f"  {printable(r.error)}" if r.error else ""
        out.write(
            f"{'  ' * depth[r.run_id]}{printable(r.run_id)}  {printable(r.status)}  "
            f"{_took(r.duration)}  {_cut(_task_or_name(r))}{user}{session}{error}\n"
        )
    return 0


def _task_or_name(record: RunRecord) -> str | None:
    """Return the run's task, else its name (a framework's step has a name and no task)."""
    if record.task:
        return record.task
    name = record.metadata.get("name")
    return name if isinstance(name, str) else None


def _when(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _took(duration: float | None) -> str:
    if duration is None:
        return "-"
    return f"{duration * 1000:.1f}ms" if duration < 1 else f"{duration:.2f}s"


def _cut(text: str | None, width: int = 48) -> str:
    """Return ``text`` for a table cell: escaped, runs of spaces as one, cut to ``width``."""
    if not text:
        return "-"
    text = " ".join(printable(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
