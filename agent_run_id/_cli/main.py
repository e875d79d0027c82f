"""``agent-run-id``: the command line (``new``, ``logs``, ``runs``, ``serve``); the stdlib only.

``serve`` and ``runs report`` import the viewer (extra ``viewer``) when they run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from agent_run_id import __version__
from agent_run_id._run_id import RunId

from . import logs, runs, serve
from ._errors import UsageError
from ._output import printable

__all__ = ["main"]


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command with ``argv`` (``sys.argv[1:]`` when None) and return its exit status.

    Exit status: 0 done, 2 a user mistake (shown without a traceback) or an unknown run, 1 the
    reader of the output went away (``| head``), 130 interrupted.
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    parser = _parser()
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extra = parser.parse_known_args(words)
        # argparse stops filling ``logs RUN FILE...`` at the first option: take files after it.
        if extra and getattr(args, "files", None) is not None and not _options(extra):
            args.files = [*args.files, *extra]
        elif extra:
            # With the usage of the command given them (``logs``, ``runs list``). The top level
            # takes no option but --help and --version, which exit: one given before the command
            # is the first word.
            owner = parser if words[0].startswith("-") else args.parser
            owner.error(f"unrecognized arguments: {printable(' '.join(extra))}")
        check = getattr(args, "check", None)
        if check is not None:  # what argparse cannot say: options that go together, or not
            check(args)
    except SystemExit as exc:  # argparse has printed the usage and the error
        return exc.code if isinstance(exc.code, int) else 2
    try:
        handler: Any = args.handler
        if handler is logs.run:
            return int(logs.run(args, _binary(out), err))
        return int(handler(args, out, err))
    except UsageError as exc:
        out.flush()
        err.write(f"agent-run-id: {printable(str(exc))}\n")
        return 2
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def _options(words: list[str]) -> bool:
    return any(word.startswith("-") and word != "-" for word in words)


def _new(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    out.write(f"{RunId.generate(version=args.uuid_version)}\n")
    return 0


def _binary(out: IO[str]) -> IO[bytes]:
    buffer: IO[bytes] | None = getattr(out, "buffer", None)
    if buffer is None:  # a text stream without bytes underneath (tests' StringIO)
        return _TextBytes(out)  # type: ignore[return-value]
    out.flush()
    return buffer


class _TextBytes:
    """Write bytes to a text stream, decoding them (with replacement) on the way."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        return self._out.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-run-id",
        description="One id per agent run: mint ids, find a run's log lines, read the registry.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = commands.add_parser(
        "new",
        help="print a fresh run id",
        description="Print a fresh run id, e.g. for AGENT_RUN_ID=$(agent-run-id new) ./my-agent",
    )
    new.add_argument(
        "--uuid-version",
        type=int,
        choices=(4, 7),
        default=None,
        help="4 (random) or 7 (time-ordered); default: $AGENT_RUN_ID_VERSION or 4",
    )
    new.set_defaults(handler=_new, parser=new)
    logs.add_parser(commands)
    runs.add_parser(commands)
    serve.add_parser(commands)
    return parser
