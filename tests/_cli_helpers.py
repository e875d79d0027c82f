"""Hand-made logs and a registry for the command's tests, and ways to run the command."""

from __future__ import annotations

import gzip
import io
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tty import setraw

from agent_run_id._cli.main import main

RUN = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"
CHILD = "11111111-2c1a-4e8b-9f7d-5a4c3b2a1908"
GRANDCHILD = "22222222-2c1a-4e8b-9f7d-5a4c3b2a1908"
OTHER = "33333333-2c1a-4e8b-9f7d-5a4c3b2a1908"
TWIN = "0b6f5d3e-ffff-4e8b-9f7d-5a4c3b2a1908"  # shares RUN's first 13 characters


@dataclass
class Result:
    code: int
    out: str
    err: str


Runner = Callable[..., Result]


def run_cli(*argv: str, stdin: bytes = b"") -> Result:
    """Run ``python -m agent_run_id`` in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv],
        input=stdin,
        capture_output=True,
        check=False,
    )
    # A log line that is not UTF-8 is printed as it is, like grep does.
    return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode())


def run_cli_bytes(*argv: str) -> tuple[int, bytes]:
    """Run ``python -m agent_run_id`` with its standard output on a pipe: its exact bytes."""
    done = subprocess.run(
        [sys.executable, "-m", "agent_run_id", *argv], capture_output=True, check=False
    )
    return done.returncode, done.stdout


def run_cli_on_terminal(*argv: str) -> tuple[int, bytes]:
    """Run ``python -m agent_run_id`` with its standard output on a pseudo-terminal.

    Return its exit status and the bytes the terminal received. The terminal is in raw mode, so
    it passes them on as they were written (no newline turned into carriage return and newline).
    """
    terminal, command_side = os.openpty()
    setraw(command_side)
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_run_id", *argv],
        stdin=subprocess.DEVNULL,
        stdout=command_side,
        stderr=subprocess.DEVNULL,
    )
    os.close(command_side)  # the command holds its own copy
    received = b""
    try:
        while select.select([terminal], [], [], 60)[0]:
            try:
                chunk = os.read(terminal, 1 << 16)
            except OSError:  # Linux: EIO once the command's side is closed
                break
            if not chunk:  # other systems: end of file
                break
            received += chunk
        return process.wait(timeout=60), received
    finally:
        os.close(terminal)
        if process.poll() is None:  # only when the command hangs
            process.kill()
            process.wait()


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def call(
    *argv: str, stdin: bytes | None = None, tty: bool = False, out_tty: bool = False
) -> Result:
    """Run the command's ``main`` in this process (for coverage), with text streams.

    ``tty`` makes standard error say it is a terminal, ``out_tty`` standard output.
    """
    out = _TtyText() if out_tty else io.StringIO()
    err = _TtyText() if tty else io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = _Stdin(stdin)  # type: ignore[assignment]
    try:
        code = main(list(argv), stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    return Result(code, out.getvalue(), err.getvalue())


class _TtyText(io.StringIO):
    def isatty(self) -> bool:
        return True


def jline(**fields: object) -> str:
    return json.dumps(fields) + "\n"


def write_logs(folder: Path) -> tuple[Path, Path]:
    """Write an API log (JSON lines) and a gzip tool log (text and JSON), interleaved in time."""
    api = folder / "api.log"
    api.write_text(
        jline(timestamp="2025-01-01T00:00:01Z", run_id=RUN, root_run_id=RUN, message="start")
        + jline(timestamp="2025-01-01T00:00:03Z", run_id=OTHER, message=f"mentions {RUN}")
        + jline(timestamp="2025-01-01T00:00:05Z", run_id=RUN, message="end")
    )
    tool = folder / "tool.log.gz"
    with gzip.open(tool, "wt") as f:
        f.write(f"2025-01-01 00:00:02,000 INFO run={CHILD} parent={RUN} tool call\n")
        f.write(
            jline(
                time="2025-01-01T01:00:04+01:00",
                run_id=GRANDCHILD,
                parent_run_id=CHILD,
                root_run_id=RUN,
                message="grandchild",
            )
        )
        f.write(jline(time=1735689604.5, run_id=CHILD, parent_run_id=RUN, message="child"))
        f.write(jline(time=1735689604.6, run_id=OTHER, parent_run_id=OTHER, message="unrelated"))
    return api, tool
