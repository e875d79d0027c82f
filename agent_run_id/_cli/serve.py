"""``agent-run-id serve``: the run viewer, a read-only web app on this machine (extra ``viewer``).

It binds 127.0.0.1 by default. It has no authentication: whoever reaches its port reads every
run and log line it shows, so another address is refused unless ``--allow-remote`` says so,
and then it warns.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from typing import IO, Any

from agent_run_id._optional import install_command

from ._errors import UsageError
from ._inputs import check_files
from ._output import count, printable
from ._registry import ENV_DB, open_registry, registry_path, shown_registry

__all__ = [
    "add_parser",
    "allowed_hosts",
    "check_log_files",
    "is_loopback",
    "run",
    "viewer_missing",
]

#: The port served when none is given.
PORT = 8765
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def add_parser(commands: Any) -> None:
    """Add the ``serve`` command to the command's subparsers."""
    parser = commands.add_parser(
        "serve",
        help="browse the runs, their trees and their log lines in a local web page",
        description="Serve the run viewer: the runs of the registry (newest first, filtered, "
        "found by id, prefix or external id) and each run's tree on a timeline with the log "
        "lines of the run and its descendants from the FILEs, kept live while runs are "
        "recorded. Read-only. It has no authentication: it binds 127.0.0.1 unless --host "
        "names another address and --allow-remote is given. Needs the viewer extra.",
    )
    parser.add_argument(
        "files",
        metavar="FILE",
        nargs="*",
        default=[],
        help="log files whose lines the run pages show (JSON lines or text, gzip too)",
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help=f"the registry: a SQLite file or a postgresql:// URL (default: ${ENV_DB})",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=PORT, help=f"the port (default {PORT}; 0: any free one)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on an address other machines reach: anyone who reaches it reads every "
        "run and log line, as there is no authentication",
    )
    parser.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        default=[],
        help="another name the Host header of a request may give (repeatable): the viewer "
        "answers only requests to 127.0.0.1, localhost, [::1], this machine's name and the "
        "address it listens on, so that no other site's page can read it through a browser "
        "(DNS rebinding)",
    )
    parser.set_defaults(handler=run, parser=parser)


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> list[str]:
    """Return the names the ``Host`` header of a request to a server on ``host`` may give.

    The loopback names, this machine's name (and its fully qualified one), ``host`` itself
    (bracketed when an IPv6 address), and the ``extra`` names (``--allowed-host``). Never
    ``*``, even for ``0.0.0.0`` or ``::``: a page whose name an attacker points at this
    machine (DNS rebinding) would then read the viewer through a browser.

    Raises:
        UsageError: an ``extra`` name is empty, a wildcard, or has a port or a path.
    """
    names = [*_LOOPBACK_NAMES, _bracketed(host)]
    with contextlib.suppress(OSError):
        names += [socket.gethostname(), socket.getfqdn()]
    for name in extra:
        names.append(_allowed_host(name))
    shown: list[str] = []
    for name in names:
        if name and name.lower() not in shown:
            shown.append(name.lower())
    return shown


def _bracketed(host: str) -> str:
    bare = host.strip("[]")
    return f"[{bare}]" if ":" in bare else bare


def _allowed_host(name: str) -> str:
    """Return ``name`` as the Host header gives it, or raise UsageError saying what is wrong."""
    text = name.strip()
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return _bracketed(str(address))
    if not text or not all(char.isalnum() or char in "-._" for char in text):
        raise UsageError(
            f"--allowed-host takes a host name or an address, without port, path or wildcard: "
            f"got {printable(name)!r}"
        )
    return text


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is this machine only: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_log_files(command: str, files: list[str]) -> None:
    """Raise UsageError for log files a viewer command cannot read: standard input, or bad paths."""
    if "-" in files:
        raise UsageError(f"{command} reads log files, not standard input: give their paths")
    check_files(files)


def viewer_missing(command: str) -> UsageError:
    """Return the error that says ``command`` needs the viewer extra, and how to install it."""
    return UsageError(f"{command} needs the viewer extra: {install_command('viewer')}")


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Serve the viewer until interrupted; return 0."""
    host: str = args.host
    if not is_loopback(host) and not args.allow_remote:
        raise UsageError(
            f"refusing to serve on {host!r}: the viewer has no authentication, and anyone who "
            "reaches that address would read every run and log line; serve on 127.0.0.1 (the "
            "default), or add --allow-remote if that is what you want"
        )
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    check_log_files("serve", args.files)
    hosts = allowed_hosts(host, args.allowed_host)
    try:
        import uvicorn

        from agent_run_id._viewer._app import create_app
    except ImportError:
        raise viewer_missing("serve") from None
    path = registry_path(args.db)
    registry = open_registry(path)
    try:
        sock = _listen(host, args.port)
        try:
            port = sock.getsockname()[1]
            shown = f"[{host.strip('[]')}]" if ":" in host else host
            if not is_loopback(host):
                err.write(
                    f"agent-run-id: warning: serving on {printable(host)} with no "
                    "authentication: anyone who reaches it reads every run and log line\n"
                )
            logs = f" and {count(len(args.files), 'log file')}" if args.files else ""
            out.write(
                f"agent-run-id: serving {printable(shown_registry(str(path)))}{logs} at "
                f"http://{shown}:{port}/ "
                "(read-only; Ctrl-C stops)\n"
            )
            out.flush()
            config = uvicorn.Config(
                create_app(registry, args.files, hosts=hosts),
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        registry.close()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket bound to ``host:port``, or raise UsageError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
