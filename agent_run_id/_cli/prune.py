"""``agent-run-id runs prune --older-than 30d``: retention, on both registry backends."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import IO, Any

from agent_run_id.registry import open_registry as open_writable

from ._errors import UsageError
from ._output import count
from ._registry import ENV_DB, open_registry, read_errors, registry_path

__all__ = ["add_parser"]

_AGE = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def add_parser(actions: Any) -> None:
    """Add ``runs prune`` to the ``runs`` subcommands."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "prune",
        help="delete the runs older than an age",
        description="Delete the runs that started more than --older-than ago, with their "
        "external ids, from the registry (a SQLite file or a PostgreSQL database); print how "
        "many. The only runs command that writes: run it from cron, e.g. daily.",
    )
    parser.add_argument(
        "--older-than",
        metavar="AGE",
        required=True,
        help="the age beyond which runs go: 30d, 12h or 90m",
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help=f"the registry: a SQLite file or a postgresql:// URL (default: ${ENV_DB})",
    )
    parser.set_defaults(handler=_prune, parser=parser)


def _age(text: str) -> timedelta:
    found = _AGE.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise UsageError(f"--older-than {text!r} is not an age: give 30d, 12h or 90m")
    amount, unit = found.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def _prune(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    age = _age(args.older_than)
    target = registry_path(args.db) or ""
    reader = open_registry(target)  # a registry (not another file) and its schema known
    try:
        reader.find(limit=1)
    except read_errors() as exc:
        raise UsageError(f"cannot read {reader.where}: {exc}") from None
    finally:
        reader.close()
    registry = open_writable(target)
    try:
        deleted = registry.prune(age)
    except read_errors() as exc:
        raise UsageError(f"cannot prune {registry.where}: {exc}") from None
    finally:
        registry.close()
    out.write(
        f"{count(deleted, 'run') if deleted else 'no runs'} older than {args.older_than} "
        f"deleted from {registry.where}\n"
    )
    return 0
