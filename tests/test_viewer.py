"""The viewer's server side: pages, search, keyset pages, live cursors, CSP, the two commands.

Through Starlette's TestClient (the app in process) and the ``agent-run-id`` command; the
browser's side is ``tests/test_viewer_browser.py``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html as html_module
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from agent_run_id import RunId
from agent_run_id._cli._errors import UsageError
from agent_run_id._cli._lines import MAX_LINE
from agent_run_id._cli._registry import open_registry
from agent_run_id._cli.serve import allowed_hosts, is_loopback
from agent_run_id._viewer import _logs as viewer_logs
from agent_run_id._viewer._app import CSP, LOOPBACK, create_app
from agent_run_id._viewer._data import Filters, duration_text, error_parts, layout, list_page
from agent_run_id._viewer._logs import cursor_text, parse_cursors, read_tree_lines
from agent_run_id.registry import SQLiteRunRegistry
from agent_run_id.registry._record import to_micros
from tests._cli_helpers import call

ROOT = Path(__file__).resolve().parent.parent
LOCAL = "http://127.0.0.1:8765"  # the viewer answers this machine's names only
HOSTILE = "<img src=x onerror=alert(1)></script>"


def _line(run: RunId, message: str, level: str = "info", **extra: Any) -> str:
    record = {
        "timestamp": "2026-12-06T12:00:00.250Z",
        "level": level,
        "message": message,
        "run_id": str(run),
        "parent_run_id": None if run.parent is None else str(run.parent),
        "root_run_id": str(run.root),
        **extra,
    }
    return json.dumps(record) + "\n"


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[SQLiteRunRegistry, RunId, RunId, Path]]:
    """A run with a failing child, its log, and a registry holding them."""
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    run = RunId.generate()
    child = run.child()
    registry.start(run, task=HOSTILE, user_id="u-1", session_id="chat-1")
    registry.start(child, task="call the tool", external_ids={"openai_trace": "trace_abc"})
    registry.finish(child, error=RuntimeError("tool <b>failed</b>"))
    registry.finish(run, error=RuntimeError("tool <b>failed</b>"))
    registry.flush()
    log = tmp_path / "agent.jsonl"
    log.write_text(
        _line(run, "started " + HOSTILE)
        + _line(child, "calling", service="tool")
        + _line(child, "boom", level="ERROR")
        + _line(RunId.generate(), "another run")
    )
    yield registry, run, child, log
    registry.close()


@pytest.fixture
def client(recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]) -> TestClient:
    registry, _, _, log = recorded
    return TestClient(create_app(registry, [str(log)]), base_url=LOCAL)


def test_every_response_forbids_inline_script_and_framing(client: TestClient) -> None:
    for path in ("/", "/api/runs", "/runs/00000000", "/static/viewer.css", "/nowhere"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CSP
    assert "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP


def test_run_text_is_escaped_on_every_page(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    _, run, _, _ = recorded
    for path in ("/", f"/runs/{run}", f"/api/runs/{run}/live", "/api/runs"):
        response = client.get(path)
        text = (
            response.text
            if path.startswith("/runs") or path == "/"
            else json.dumps(response.json())
        )
        assert "<img" not in text, path
        assert "<b>" not in text, path
        assert "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;" in text, path
    page = client.get(f"/runs/{run}").text
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/viewer.js" defer>']


def test_the_search_box_takes_an_id_a_prefix_or_an_external_id(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    _, run, child, _ = recorded
    for query, found in ((str(run), run), (str(run)[:8], run), ("trace_abc", child)):
        response = client.get("/", params={"q": query}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/runs/{found}"
    response = client.get("/", params={"q": "nothing-like-it"})
    assert response.status_code == 200
    assert "no run with the id, prefix or external id &#39;nothing-like-it&#39;" in response.text
    response = client.get(f"/runs/{str(child)[:8]}", follow_redirects=False)
    assert response.headers["location"] == f"/runs/{child}"
    assert client.get("/runs/trace_abc", follow_redirects=False).status_code == 303
    assert client.get("/runs/%20").status_code == 404
    missing = client.get(f"/runs/{RunId.generate()}")
    assert missing.status_code == 404
    assert "no run matches" in missing.text


def test_a_prefix_or_external_id_of_several_runs_lists_them(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    one = RunId("abcdef01-0000-4000-8000-000000000001")
    two = RunId("abcdef01-0000-4000-8000-000000000002")
    registry.start(one, external_ids={"langsmith": "shared"})
    registry.start(two, external_ids={"openai": "shared"})
    registry.flush()
    client = TestClient(create_app(registry), base_url=LOCAL)
    for text in ("abcdef01", "shared"):
        response = client.get(f"/runs/{text}")
        assert response.status_code == 300
        assert str(one) in response.text
        assert str(two) in response.text
        listed = client.get("/", params={"q": text})
        assert f'href="/runs/{one}"' in listed.text
        assert f'href="/runs/{two}"' in listed.text
    registry.close()


def test_the_list_pages_by_keyset_through_runs_started_in_one_microsecond(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    runs = [RunId.generate() for _ in range(230)]
    with TestClient(create_app(registry), base_url=LOCAL) as client:  # its lifespan too
        assert client.get("/api/runs").json()["next"] is None
    for run in runs:
        registry.start(run, user_id="u-1")
    registry.flush()
    db = sqlite3.connect(tmp_path / "runs.db")
    started = dict(db.execute("SELECT run_id, started_at FROM runs").fetchall())
    tie = started[str(runs[150])]
    with db:  # 90 runs in the same microsecond, across the page boundaries
        db.executemany(
            "UPDATE runs SET started_at = ? WHERE run_id = ?", [(tie, str(r)) for r in runs[60:150]]
        )
    db.close()
    seen: list[str] = []
    filters = Filters(user="u-1")
    while True:
        page = list_page(registry, filters, size=40)
        seen += [r.run_id for r in page.runs]
        if page.next is None:
            break
        filters = Filters(user="u-1", before=page.next)
    assert len(seen) == len(set(seen)) == 230
    following = TestClient(create_app(registry), base_url=LOCAL).get("/api/runs").json()["next"]
    assert following.startswith("/?before=")
    expected = registry.find(limit=1000)
    assert seen == [r.run_id for r in expected]
    last = expected[-1]
    assert (
        list_page(registry, Filters(before=f"{to_micros(last.started_at)}:{last.run_id}")).runs
        == []
    )
    registry.close()


def test_the_list_filters_and_says_what_it_cannot_read(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    _, run, child, _ = recorded
    page = client.get("/", params={"status": "error", "session": "chat-1", "since": "2h"}).text
    assert f'data-run="{run}"' in page
    assert f'data-run="{child}"' not in page  # the child has no session of its own
    page = client.get("/", params={"status": "ok"}).text
    assert "No runs match." in page
    page = client.get("/", params={"status": "bogus", "since": "yesterday", "until": "soon"}).text
    assert "status must be one of running, ok, error" in page
    assert "since is not a time" in page
    assert "until is not a time" in page
    page = client.get("/", params={"until": "2000-01-01"}).text
    assert "No runs match." in page
    data = client.get("/api/runs", params={"user": "u-1"}).json()
    assert data["count"] == 1
    assert data["next"] is None
    assert f'data-run="{run}"' in data["rows"]


def test_the_live_endpoint_reads_only_what_was_written_since_its_cursor(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    registry, run, child, log = recorded
    first = client.get(f"/api/runs/{run}/live").json()
    assert first["count"] == 3
    assert first["reset"] is False
    assert first["cursor"].split(".")[0] == str(log.stat().st_size)  # bytes read
    again = client.get(f"/api/runs/{run}/live", params={"cursor": first["cursor"]}).json()
    assert again["count"] == 0
    assert again["lines"].strip() == ""
    grandchild = child.child()
    registry.start(grandchild, task="retry")
    registry.flush()
    with log.open("a") as f:
        f.write(_line(grandchild, "retrying") + '{"half": ')
    more = client.get(f"/api/runs/{run}/live", params={"cursor": first["cursor"]}).json()
    assert more["count"] == 1
    assert "retrying" in more["lines"]
    assert f'data-run="{grandchild}"' in more["tree"]
    half = len('{"half": ')
    assert more["cursor"].split(".")[0] == str(log.stat().st_size - half)  # left for later
    log.write_text(_line(run, "after rotation"))
    rotated = client.get(f"/api/runs/{run}/live", params={"cursor": more["cursor"]}).json()
    assert rotated["reset"] is True
    assert "after rotation" in rotated["lines"]
    assert client.get(f"/api/runs/{str(run)[:8]}/live").status_code == 404  # ids only here
    bad = client.get(f"/api/runs/{run}/live", params={"cursor": "x,y"}).json()
    assert bad["count"] == 1  # an unreadable cursor reads from the start


def test_the_run_page_shows_the_tree_its_error_and_its_lines(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    _, run, child, _ = recorded
    page = client.get(f"/runs/{run}").text
    assert page.count('<tr class="node status-error"') == 2
    assert '<strong class="etype">RuntimeError</strong>' in page
    assert "raised in <code>" + str(child)[:8] in page
    assert page.count('<tr class="line ') == 3
    assert 'class="line level-error" data-run="' + str(child) + '" data-level="error"' in page
    assert '<td class="svc">tool</td>' in page
    assert '<td class="svc">agent</td>' in page
    assert f'data-live="/api/runs/{run}/live"' in page
    assert '<input type="checkbox" class="level" value="error" checked>' in page


def test_log_lines_of_every_shape_show_a_time_level_service_and_message(tmp_path: Path) -> None:
    run = RunId.generate()
    plain = tmp_path / "svc.log"
    plain.write_text(
        f"2026-12-06 12:00:01,5 WARNING text line of {run}\n"
        + f"no time, no level, {run}\n"
        + f'{{"run_id": "{run}", "cut": \n'
        + json.dumps(
            {
                "record": {"level": {"name": "CRITICAL"}, "time": {"timestamp": 1.7e9}},
                "run_id": str(run),
                "text": "x" * 3000,
            }
        )
        + "\n"
    )
    zipped = tmp_path / "old.jsonl.gz"
    zipped.write_bytes(gzip.compress(_line(run, "from the archive", level="warn").encode()))
    scan = read_tree_lines([str(plain), str(zipped)], str(run), [str(run)], str(run))
    shown = {line.message[:20]: line for line in scan.lines}
    assert shown["2026-12-06 12:00:01,"].level == "warning"
    assert shown["no time, no level, " + str(run)[:1]].level == ""
    critical = shown["x" * 20]
    assert (critical.level, len(critical.message)) == ("critical", 2001)
    archived = shown["from the archive"]
    assert (archived.level, archived.service) == ("warning", "old")
    cursors = scan.cursors
    assert cursors[1].offset == -1  # gzip: read once
    again = read_tree_lines([str(plain), str(zipped)], str(run), [str(run)], str(run), cursors)
    assert again.lines == []
    cut = read_tree_lines([str(plain)], str(run), [str(run)], str(run), limit=1)
    assert (len(cut.lines), cut.dropped) == (1, 2)
    gone = read_tree_lines([str(tmp_path / "gone.log")], str(run), [str(run)], str(run))
    assert gone.lines == []


def test_a_poll_after_an_unfinished_long_line_shows_no_tail_of_it(tmp_path: Path) -> None:
    """The page's cursor says it stopped inside a line too long to read: the next poll skips it."""
    run = RunId.generate()
    log = tmp_path / "live.jsonl"
    log.write_text(_line(run, "first") + "x" * (MAX_LINE + 10))
    scan = read_tree_lines([str(log)], str(run), [str(run)], str(run))
    assert [line.message for line in scan.lines] == ["first"]
    text = cursor_text(scan.cursors)
    offset, _, rest = text.partition(".")
    assert (int(offset), rest.endswith(".l")) == (log.stat().st_size, True)
    with log.open("a") as f:
        f.write(f'", "run_id": "{run}", "message": "tail"}}\n' + _line(run, "second"))
    cursors = parse_cursors(text, 1)
    again = read_tree_lines([str(log)], str(run), [str(run)], str(run), cursors)
    assert [line.message for line in again.lines] == ["second"]
    (after,) = again.cursors
    assert (after.offset, after.inside_long) == (log.stat().st_size, False)
    for bad in ("1.0.x", "1.0.l.l", "1.x"):
        assert parse_cursors(bad, 1) is None


def test_a_running_tree_is_laid_out_up_to_now(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    run = RunId.generate()
    child_run = run.child()
    registry.start(run)
    registry.start(child_run)
    registry.finish(child_run)
    registry.flush()
    tree = layout(registry.tree(run))
    top, child = tree.nodes
    assert top.running
    assert not child.running
    assert top.left == 0.0
    assert top.width == 100.0
    assert child.depth == 1
    assert child.width >= 0.4
    assert next(label for _, label in tree.ticks) == "0.0ms"
    registry.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_only_loopback_addresses_are_served_without_allow_remote(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_another_address_unless_told_and_then_warns(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, run, _, log = recorded
    db = str(registry.path)
    refused = call("serve", "--db", db, "--host", "0.0.0.0")
    assert refused.code == 2
    assert "refusing to serve on '0.0.0.0': the viewer has no authentication" in refused.err
    assert "add --allow-remote" in refused.err
    served: list[Any] = []

    def run_once(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        served.append((server.config.app, sockets[0].getsockname()))

    monkeypatch.setattr(uvicorn.Server, "run", run_once)
    result = call(
        "serve", "--db", db, str(log), "--host", "0.0.0.0", "--port", "0", "--allow-remote"
    )
    assert result.code == 0
    assert "warning: serving on 0.0.0.0 with no authentication" in result.err
    ((app, (address, port)),) = served
    assert address == "0.0.0.0"
    assert port > 0
    assert f"and 1 log file at http://0.0.0.0:{port}/ (read-only; Ctrl-C stops)" in result.out
    assert TestClient(app, base_url="http://evil.example").get("/").status_code == 400
    assert TestClient(app).get("/").status_code == 400  # "testserver": no name of this machine
    for name in (socket.gethostname(), socket.getfqdn(), "0.0.0.0", "localhost"):
        client = TestClient(app, base_url=f"http://{name}:{port}")
        assert f'data-run="{run}"' in client.get("/").text, name
    served.clear()
    assert call("serve", "--db", db, "--port", "0").code == 0
    ((app, _),) = served
    assert TestClient(app).get("/").status_code == 400  # "testserver" is not this machine
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200


def test_serve_answers_the_names_given_by_allowed_host_and_no_other(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(recorded[0].path)
    served: list[Any] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets: served.append(server))
    options = ("--allowed-host", "Viewer.Example", "--allowed-host", "10.0.0.7")
    for host in ("::", "127.0.0.1"):
        result = call(
            "serve", "--db", db, "--host", host, "--port", "0", "--allow-remote", *options
        )
        assert result.code == 0, result.err
        app = served.pop().config.app
        for name, status in (
            ("viewer.example", 200),
            ("10.0.0.7", 200),
            ("[::]" if host == "::" else "127.0.0.1", 200),
            ("evil.example", 400),
            ("viewer.example.evil", 400),
        ):
            response = TestClient(app, base_url=f"http://{name}:8765").get("/")
            assert response.status_code == status, (host, name)


@pytest.mark.parametrize("name", ["*", "*.example.com", "", "viewer:8765", "a/b", "é x"])
def test_allowed_host_refuses_a_wildcard_a_port_or_a_path(name: str) -> None:
    with pytest.raises(UsageError, match="--allowed-host takes a host name or an address"):
        allowed_hosts("127.0.0.1", [name])


def test_allowed_hosts_never_allow_every_name() -> None:
    for host in ("0.0.0.0", "::", "[::]", "192.168.1.4", "127.0.0.1"):
        hosts = allowed_hosts(host, ["::2"])
        assert "*" not in hosts
        assert {"127.0.0.1", "localhost", "[::1]", "[::2]"} <= set(hosts)
        assert socket.gethostname().lower() in hosts


def test_serve_says_what_is_wrong_with_its_options(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(recorded[0].path)
    assert "--port must be between 0 and 65535" in call("serve", "--db", db, "--port", "70000").err
    assert "not standard input" in call("serve", "--db", db, "-").err
    assert "no such file: nope.log" in call("serve", "--db", db, "nope.log").err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = call("serve", "--db", db, "--port", str(busy.getsockname()[1]))
    assert taken.code == 2
    assert "cannot listen on 127.0.0.1:" in taken.err
    assert (
        "cannot listen on no-such-host.invalid:"
        in call("serve", "--db", db, "--host", "no-such-host.invalid", "--allow-remote").err
    )
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    missing = call("serve", "--db", db)
    assert missing.code == 2
    assert 'serve needs the viewer extra: pip install "agent-run-id[viewer] @ git+' in missing.err
    monkeypatch.setitem(sys.modules, "agent_run_id._viewer._render", None)
    missing = call("runs", "report", "x" * 8, "--db", db, "--html", "out.html")
    assert 'report needs the viewer extra: pip install "agent-run-id[viewer] @' in missing.err


def test_serve_answers_over_http_until_interrupted(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path],
) -> None:
    registry, run, _, log = recorded
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_run_id",
            "serve",
            "--db",
            str(registry.path),
            str(log),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket listens
        url = re.search(r"at (http://127\.0\.0\.1:\d+/) \(read-only", line)
        assert url is not None, line
        page = httpx.get(f"{url.group(1)}runs/{run}", timeout=10)
        assert page.status_code == 200
        assert "started &lt;img" in page.text
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err  # interrupted, as for every command


def test_the_report_is_one_file_whose_csp_allows_its_own_style_and_script_only(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path], tmp_path: Path
) -> None:
    registry, run, child, log = recorded
    out = tmp_path / "report.html"
    result = call(
        "runs", "report", "trace_abc", "--db", str(registry.path), str(log), "--html", str(out)
    )
    assert result.code == 0, result.err
    assert f"wrote {out}: run {child}, 1 run in its tree, 2 log lines" in result.err
    html = out.read_text()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    script = re.search(r"<script>(.*?)</script>", html, re.S)
    assert style is not None
    assert script is not None
    policy = html_module.unescape(csp.group(1))
    for text in (style.group(1), script.group(1)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    assert "<b>" not in html
    assert "tool &lt;b&gt;failed&lt;/b&gt;" in html
    assert html.count("<script") == 1
    assert "data-live" not in html
    to_stdout = call("runs", "report", str(run)[:8], "--db", str(registry.path), "--html", "-")
    assert to_stdout.out.startswith("<!doctype html>")
    assert "wrote standard output" in to_stdout.err


def test_report_says_what_is_wrong(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path], tmp_path: Path
) -> None:
    db = str(recorded[0].path)
    assert (
        "unknown run 'ffffffff'"
        in call("runs", "report", "ffffffff", "--db", db, "--html", "-").err
    )
    not_utf8 = call("runs", "report", "\udcff\udcfe", "--db", db, "--html", "-")
    assert not_utf8.code == 2
    assert "unknown run '\\udcff\\udcfe'" in not_utf8.err
    assert (
        "is a folder" in call("runs", "report", "ffffffff", "--db", db, "--html", str(tmp_path)).err
    )
    assert (
        "not standard input"
        in call("runs", "report", "ffffffff", "-", "--db", db, "--html", "o").err
    )
    unwritable = call(
        "runs", "report", str(recorded[1]), "--db", db, "--html", str(tmp_path / "no" / "x")
    )
    assert unwritable.code == 2
    assert "cannot write" in unwritable.err
    registry = SQLiteRunRegistry(tmp_path / "two.db")
    registry.start(RunId.generate(), external_ids={"a": "same"})
    registry.start(RunId.generate(), external_ids={"b": "same"})
    registry.close()
    several = call("runs", "report", "same", "--db", str(tmp_path / "two.db"), "--html", "-")
    assert "'same' names several runs:" in several.err


def test_the_wheel_carries_the_templates_and_static_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "agent_run_id" / "_viewer"
    data = [p for p in package.rglob("*") if p.suffix in (".html", ".css", ".js")]
    assert len(data) >= 8
    for path in data:
        assert path.relative_to(ROOT).as_posix() in names


def test_a_run_page_opened_again_reads_only_what_its_logs_got_since(
    client: TestClient, recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path]
) -> None:
    _, run, child, log = recorded
    first = client.get(f"/runs/{run}").text
    assert first.count('<tr class="line ') == 3
    with log.open("a") as f:
        f.write(_line(child, "later"))
    again = client.get(f"/runs/{run}").text
    assert again.count('<tr class="line ') == 4
    assert again.index("started ") < again.index("later")
    log.write_text(_line(run, "rotated"))  # shorter: read again from its start
    rotated = client.get(f"/runs/{run}").text
    assert rotated.count('<tr class="line ') == 1
    assert "rotated" in rotated


def test_the_recent_scans_keep_the_last_few_runs_and_their_line_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer_logs, "MAX_LINES", 2)
    runs = [RunId.generate() for _ in range(3)]
    log = tmp_path / "app.jsonl"
    log.write_text("".join(_line(run, f"{n}") for n in range(2) for run in runs))
    scans = viewer_logs.RecentScans([str(log)], keep=2)
    for run in runs:
        assert len(scans.lines(str(run), [str(run)], str(run)).lines) == 2
    with log.open("a") as f:
        f.write(_line(runs[2], "third"))
    again = scans.lines(str(runs[2]), [str(runs[2])], str(runs[2]))
    assert [line.message for line in again.lines] == ["0", "1"]
    assert again.dropped == 1


def test_a_registry_that_cannot_be_read_is_said_so(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database, " * 100)
    result = call("runs", "report", "abcdef01", "--db", str(bad), "--html", "-")
    assert result.code == 2
    assert f"cannot read {bad}: file is not a database" in result.err
    registry = open_registry(str(bad))
    client = TestClient(create_app(registry), base_url=LOCAL, raise_server_exceptions=False)
    response = client.get("/")
    assert response.status_code == 500
    assert "Cannot read the registry or the logs" in response.text
    assert response.headers["content-security-policy"] == CSP
    registry.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_viewer_reads_either_registry_through_its_interface(
    backend: str, tmp_path: Path
) -> None:
    if backend == "postgres":
        from agent_run_id.registry import PostgresRunRegistry
        from tests._postgres_server import shared_server

        where = shared_server().fresh_dsn()
        registry: Any = PostgresRunRegistry(where)
    else:
        where = str(tmp_path / "runs.db")
        registry = SQLiteRunRegistry(where)
    run = RunId.generate()
    child = run.child()
    registry.start(run, task="the turn", session_id="chat-9")
    registry.start(child, task="the tool", external_ids={"langsmith_run": "ls-42"})
    registry.finish(child, error=TimeoutError("slow"))
    registry.finish(run)
    for _ in range(120):
        other = RunId.generate()
        registry.start(other)
        registry.finish(other)
    registry.close()
    log = tmp_path / "agent.jsonl"
    log.write_text(_line(run, "turn started") + _line(child, "tool timed out", level="error"))
    reader = open_registry(where)
    client = TestClient(create_app(reader, [str(log)]), base_url=LOCAL)
    first = client.get("/")
    assert first.text.count('<tr class="run ') == 100
    older = re.search(r'href="(/\?before=[^"]+)"', first.text)
    assert older is not None
    second = client.get(html_module.unescape(older.group(1)))
    assert second.text.count('<tr class="run ') == 22
    found = client.get("/", params={"q": "ls-42"}, follow_redirects=False)
    assert found.headers["location"] == f"/runs/{child}"
    page = client.get(f"/runs/{run}").text
    assert page.count('<tr class="node ') == 2
    assert page.count('<tr class="line ') == 2
    assert '<tr class="node status-error"' in page
    failed = client.get("/", params={"status": "error"}).text
    assert failed.count('<tr class="run ') == 1
    for text in ("\x00", "ls-42\x00", f"{str(run)[:8]}\x00", "chat-9\x00", "\udcff"):
        # no stored id, user or session holds a NUL or a lone surrogate: nothing, on both
        raw = text.encode("utf-8", "surrogatepass")
        assert client.get(f"/runs/{quote(raw)}").status_code == 404
        for name in ("user", "session"):
            listed = client.get(f"/?{name}={quote(raw)}")
            assert listed.status_code == 200
            assert listed.text.count('<tr class="run ') == 0
            api = client.get(f"/api/runs?{name}={quote(raw)}")
            assert (api.status_code, api.json()["count"]) == (200, 0)
        searched = client.get(f"/?q={quote(raw)}")
        assert searched.status_code == 200
        assert "no run with the id, prefix or external id" in searched.text
    reader.close()


def test_a_host_other_than_this_machine_is_refused_against_dns_rebinding(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path],
) -> None:
    registry = recorded[0]
    client = TestClient(create_app(registry, hosts=LOOPBACK), base_url="http://127.0.0.1:8765")
    assert client.get("/").status_code == 200
    for host in ("localhost:8765", "[::1]:8765"):
        assert client.get("/", headers={"host": host}).status_code == 200
    rebound = client.get("/api/runs", headers={"host": "attacker.example:8765"})
    assert rebound.status_code == 400
    assert rebound.headers["content-security-policy"] == CSP


def test_many_requests_at_once_each_get_the_whole_page(
    recorded: tuple[SQLiteRunRegistry, RunId, RunId, Path],
) -> None:
    registry, run, child, log = recorded
    app = create_app(registry, [str(log)])
    barrier = threading.Barrier(8)

    def pages(_: int) -> list[int]:
        client = TestClient(app, base_url=LOCAL)
        barrier.wait()
        counts = []
        for _ in range(5):
            counts.append(client.get(f"/runs/{run}").text.count('<tr class="line '))
            counts.append(client.get(f"/runs/{child}").text.count('<tr class="line '))
        return counts

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(pages, range(8)))
    assert results == [[3, 2] * 5] * 8  # no line lost or shown twice by the kept scans


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.0521, "52.1ms"), (1.25, "1.25s"), (119.0, "119.00s"), (150.0, "2.5min")],
)
def test_durations_read_as_the_cli_shows_them(seconds: float | None, shown: str) -> None:
    assert duration_text(seconds) == shown


@pytest.mark.parametrize(
    ("error", "parts"),
    [
        (None, ("", "")),
        ("ToolFailed: search failed with 503", ("ToolFailed", "search failed with 503")),
        ("httpx.ReadTimeout: timed out", ("httpx.ReadTimeout", "timed out")),
        ("the tool said: no", ("", "the tool said: no")),  # no exception type before ": "
    ],
)
def test_an_error_splits_into_its_type_and_message(
    error: str | None, parts: tuple[str, str]
) -> None:
    assert error_parts(error) == parts
