"""``agent-run-id runs report RUN --html OUT``: a run's page as one file, for an incident ticket.

The page ``serve`` shows for the run (its fields and error, its tree on a timeline, its
tree's log lines, filterable), in one HTML file that makes no request: its stylesheet and
script are inline, allowed by their hashes in its Content-Security-Policy. Extra ``viewer``.
"""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from ._errors import UsageError
from ._output import count, printable
from ._registry import ENV_DB, open_registry, read_errors, registry_path, shown_registry
from .serve import check_log_files, viewer_missing

__all__ = ["add_parser", "run"]


def add_parser(actions: Any) -> None:
    """Add ``report`` to the ``runs`` subcommands."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "report",
        help="a run's page as one self-contained HTML file",
        description="Write the viewer's page of one run (its fields and error, its tree on a "
        "timeline, the log lines of the run and its descendants from the FILEs) as one HTML "
        "file that makes no request: to attach to an incident ticket. Needs the viewer extra.",
    )
    parser.add_argument(
        "run",
        metavar="RUN",
        help="the run id, a unique prefix of at least 8 characters, or an external id",
    )
    parser.add_argument("files", metavar="FILE", nargs="*", default=[], help="log files (gzip too)")
    parser.add_argument(
        "--db",
        metavar="DB",
        help=f"the registry: a SQLite file or a postgresql:// URL (default: ${ENV_DB})",
    )
    parser.add_argument(
        "--html", metavar="OUT", required=True, help="the file to write (- for standard output)"
    )
    parser.set_defaults(handler=run, parser=parser)


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Write the report; return 0."""
    check_log_files("report", args.files)
    target: str = args.html
    if target != "-" and os.path.isdir(target):
        raise UsageError(f"--html {target} is a folder: give the file to write")
    try:
        from agent_run_id._viewer._data import find_run, layout
        from agent_run_id._viewer._logs import read_tree_lines
        from agent_run_id._viewer._render import render_report
    except ImportError:
        raise viewer_missing("report") from None
    path = registry_path(args.db)
    registry = open_registry(path)
    try:
        record, candidates = find_run(registry, args.run)
        if record is None:
            if candidates:
                shown = ", ".join(r.run_id for r in candidates[:10])
                raise UsageError(f"{args.run!r} names several runs: {shown}; give the run id")
            raise UsageError(f"unknown run {args.run!r} in {shown_registry(str(path))}")
        tree = layout(registry.tree(record.run_id))
    except read_errors() as exc:
        raise UsageError(f"cannot read {shown_registry(str(path))}: {exc}") from None
    finally:
        registry.close()
    scan = read_tree_lines(args.files, record.run_id, tree.ids, record.root_id, complete=False)
    html = render_report(record, tree, scan, args.files)
    if target == "-":
        out.write(html)
        out.flush()
    else:
        try:
            with open(target, "w", encoding="utf-8") as file:
                file.write(html)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    where = "standard output" if target == "-" else printable(target)
    err.write(
        f"agent-run-id: wrote {where}: run {record.run_id}, {count(len(tree.nodes), 'run')} "
        f"in its tree, {count(len(scan.lines), 'log line')}\n"
    )
    return 0
