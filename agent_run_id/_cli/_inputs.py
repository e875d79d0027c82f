"""Opening the logs to scan: files or standard input, gzip recognized by its magic bytes."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, cast

from ._errors import UsageError
from ._lines import Stats
from ._scan import Searched, candidates

__all__ = ["check_files", "open_log", "read_log", "spooled_stdin"]

_GZIP = b"\x1f\x8b"


def check_files(names: list[str]) -> None:
    """Raise UsageError for a file that is missing or cannot be read, before any output."""
    for name in names:
        if name == "-":
            continue
        if not os.path.exists(name):
            raise UsageError(f"no such file: {name}")
        if os.path.isdir(name):
            raise UsageError(f"{name} is a folder: give log files")
        if not os.access(name, os.R_OK):
            raise UsageError(f"cannot read {name}: permission denied")


@contextmanager
def spooled_stdin() -> Iterator[IO[bytes]]:
    """Copy standard input (as it came, gzip or not) to a temporary file, to read it twice.

    The file is on disk, so memory stays constant; it is deleted on the way out.
    """
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        yield spool


@contextmanager
def open_log(name: str, stdin: IO[bytes] | None = None) -> Iterator[IO[bytes]]:
    """Open a log for reading bytes, through gzip when it starts with gzip's magic bytes.

    ``-`` is standard input, or ``stdin`` when given (a spooled copy, read from its start).
    """
    if name == "-":
        if stdin is not None:
            stdin.seek(0)
        raw = cast(io.BufferedReader, sys.stdin.buffer if stdin is None else stdin)
        close = False
    else:
        raw = open(name, "rb")  # noqa: SIM115 - closed below
        close = True
    try:
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)
        if raw.peek(2)[:2] == _GZIP:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield cast(IO[bytes], unzipped)
        else:
            yield raw
    finally:
        if close:
            raw.close()


def read_log(
    name: str,
    searched: Searched,
    stats: Stats,
    stdin: IO[bytes] | None = None,
    *,
    numbered: bool = True,
    progress: Callable[[Stats], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, line)`` for the lines of log ``name`` that ``searched`` may want.

    ``numbered=False`` spares counting the newlines: the lines found by the scan's needles are
    then numbered 0. A file that cannot be read raises UsageError.
    """
    shown = "(stdin)" if name == "-" else name
    try:
        with open_log(name, stdin) as stream:
            yield from candidates(stream, searched, stats, numbered=numbered, progress=progress)
    # A truncated or corrupt gzip file, or a file gone or unreadable since it was checked.
    except (EOFError, OSError, zlib.error) as exc:
        raise UsageError(f"cannot read {shown}: {exc}") from None
