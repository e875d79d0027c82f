"""One way to name a registry: a SQLite file's path, or a PostgreSQL URL.

``set_default(...)``, the middleware's ``registry=``, ``$AGENT_RUN_ID_DB`` and the command's
``--db`` all take either, and all choose the backend here.
"""

from __future__ import annotations

import os
import re

from ._buffered import BufferedRunRegistry
from ._sqlite import SQLiteRunRegistry

__all__ = ["DSN_SCHEMES", "check_not_conninfo", "is_dsn", "open_registry"]

#: The URL schemes that name a PostgreSQL database.
DSN_SCHEMES = ("postgresql://", "postgres://")
# libpq's connection string: key = value pairs apart, a value bare or in single quotes (with \
# escapes). A pair ends where blanks begin: read in one pass, whatever the string.
_PAIR = r"([A-Za-z_]+)\s*=\s*(?:'(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)+)"
_CONNINFO = re.compile(rf"\s*{_PAIR}(?:\s+{_PAIR})*\s*")
_KEY = re.compile(_PAIR)
# libpq's keywords a connection string is made of: one of them says it is one.
_LIBPQ = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "service",
        "sslmode",
        "options",
        "application_name",
        "connect_timeout",
        "target_session_attrs",
    }
)


def check_not_conninfo(target: str) -> None:
    """Raise ValueError for libpq's ``key=value`` connection string, which names no file.

    Such a string given where a SQLite path or a URL goes would otherwise open a SQLite file of
    that name (a password in it, in a file name). A path that exists, or whose folder does, is a
    path, whatever its name. The string is never echoed.
    """
    if not _CONNINFO.fullmatch(target):
        return
    if not any(key.lower() in _LIBPQ for key in _KEY.findall(target)):
        return
    folder = os.path.dirname(target)
    if os.path.exists(target) or (folder and os.path.isdir(folder)):
        return
    raise ValueError(
        "a libpq key=value connection string (host=... dbname=...) names no registry here: "
        "give a postgresql:// URL (postgresql://user@host:5432/dbname), or pass the string "
        "to PostgresRunRegistry(...) itself"
    )


def is_dsn(target: object) -> bool:
    """Return whether ``target`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.strip().lower().startswith(DSN_SCHEMES)


def open_registry(target: str | os.PathLike[str]) -> BufferedRunRegistry:
    """Return the registry ``target`` names: a PostgreSQL URL, else a SQLite file's path.

    ``postgresql://user:password@host:5432/dbname`` (or ``postgres://...``) opens a
    :class:`PostgresRunRegistry` (the ``postgres`` extra: psycopg); anything else is the path
    of a :class:`SQLiteRunRegistry` file. Making either never connects in the foreground: a
    database that cannot be reached is logged once, and the runs go on.

    Example::

        registry = open_registry(os.environ.get("AGENT_RUN_ID_DB", "runs.db"))

    Raises TypeError for a target that is neither a str nor a path, ValueError for libpq's
    ``key=value`` connection string (give its URL), ImportError naming the extra to install for
    a PostgreSQL URL without psycopg.
    """
    if isinstance(target, str) and is_dsn(target):
        from ._postgres import PostgresRunRegistry  # psycopg: imported only for a URL

        return PostgresRunRegistry(target.strip())
    if not isinstance(target, (str, os.PathLike)):
        raise TypeError(
            f"a registry is named by a str or a path, got {type(target).__name__}: give a "
            "SQLite file's path or a postgresql:// URL"
        )
    if isinstance(target, str):
        check_not_conninfo(target)
    return SQLiteRunRegistry(target)
