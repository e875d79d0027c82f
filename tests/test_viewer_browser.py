"""The viewer in a real browser: headless Chromium against ``serve``'s app on 127.0.0.1.

The demo's own recording (three services, sixteen requests, one failing tool call) is the
data: the list filtered to failed runs, the failing run's tree with the failing tool node
marked, a node clicked to see only its lines. Then hostile text, live pages and the report.
Screenshots of the list and run pages go to ``tests/_viewer_helpers.artifacts()``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_run_id import RunId
from agent_run_id._cli._registry import open_registry
from agent_run_id._cli.main import main
from agent_run_id.registry import SQLiteRunRegistry
from tests._viewer_helpers import Watched, artifacts, browser, chromium_path, served

ROOT = Path(__file__).resolve().parent.parent
LOGS = ("agent.jsonl", "llm.jsonl", "tool.jsonl")
HOSTILE = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the demo once; return its folder and the failing request's run id."""
    chromium_path()  # skip (or fail) before the demo's ten seconds when there is no browser
    folder = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo" / "run.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = re.search(r"500 response says X-Run-Id: ([0-9a-f-]{36})", done.stdout)
    assert found is not None
    return folder, found.group(1)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with browser(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    page.close()


def _visible_runs(page: Any) -> list[str]:
    rows = page.locator("#line-rows tr.line:visible")
    return [rows.nth(i).get_attribute("data-run") for i in range(rows.count())]


def test_the_demos_failing_run_from_the_list_to_its_tool_nodes_lines(
    demo: tuple[Path, str], page: Any
) -> None:
    folder, failing = demo
    registry = open_registry(str(folder / "runs.db"))
    watched = Watched(page)
    with served(registry, [folder / name for name in LOGS]) as url:
        page.goto(url + "/")
        assert page.locator("#run-rows tr.run").count() == 64  # 16 requests x 4 runs
        page.screenshot(path=str(artifacts() / "list.png"), full_page=False)

        page.select_option("select[name=status]", "error")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"status=error"))
        rows = page.locator("#run-rows tr.run")
        assert rows.count() == 3  # the request, its agent run, the tool call
        assert all(
            rows.nth(i).get_attribute("class") == "run status-error" for i in range(rows.count())
        )
        page.screenshot(path=str(artifacts() / "list-failed.png"))

        page.click(f"#run-rows tr[data-run='{failing}'] td.id a")
        page.wait_for_url(f"{url}/runs/{failing}")
        assert page.locator("#run-status").text_content() == "error"
        assert page.locator(".error-box .etype").inner_text() == "ToolFailed"
        assert page.locator(".error-box .emsg").inner_text() == "search failed with 503"
        nodes = page.locator("#tree-rows tr.node")
        assert nodes.count() == 4
        tool = page.locator("#tree-rows tr.node", has_text="search 'weather in Reykjavik'")
        assert tool.get_attribute("class") == "node status-error"  # the failing tool, marked
        assert tool.locator("rect.error").count() == 1  # its bar on the timeline, red
        llm = page.locator("#tree-rows tr.node", has_text="choose a tool")
        assert llm.get_attribute("class") == "node status-ok"
        lines = page.locator("#line-rows tr.line")
        assert lines.count() == 6
        page.screenshot(path=str(artifacts() / "run.png"), full_page=True)

        tool_run = tool.get_attribute("data-run")
        tool.click()
        assert page.locator("#line-count").inner_text() == "4"
        assert _visible_runs(page) == [tool_run] * 4
        assert "search" in page.locator("#run-filter").inner_text()
        assert tool.get_attribute("class") == "node status-error selected"
        page.screenshot(path=str(artifacts() / "run-tool-node.png"), full_page=True)

        page.uncheck("input.level[value=info]")  # only its errors
        assert page.locator("#line-count").inner_text() == "2"
        messages = page.locator("#line-rows tr.line:visible td.msg").all_inner_texts()
        assert messages[0] == "search backend timed out for 'weather in Reykjavik'"
        assert messages[1].startswith("tool call failed: 503")
        page.click("#clear-run")
        page.check("input.level[value=info]")
        assert len(_visible_runs(page)) == 6

        page.fill("input[name=q]", failing[:8])  # the search box takes a prefix
        page.press("input[name=q]", "Enter")
        page.wait_for_url(f"{url}/runs/{failing}")
    registry.close()
    assert watched.dialogs == []
    assert watched.errors == []


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[SQLiteRunRegistry, Path, RunId]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    run = RunId.generate()
    child = run.child()
    registry.start(run, task=HOSTILE, user_id='"><svg onload=alert(3)>', session_id="s-1")
    registry.start(child, task="</style></script>", metadata={"note": "<b>bold</b>"})
    registry.finish(child, error=RuntimeError("<img src=y onerror=alert(4)>"))
    registry.finish(run, error=ValueError("</script><script>alert(5)</script>"))
    registry.flush()
    log = tmp_path / "app.jsonl"
    log.write_text(
        '{"timestamp": "2026-12-06T12:00:00Z", "level": "error", "message": '
        f'"<script>alert(6)</script> {HOSTILE}", "run_id": "{child}", '
        f'"parent_run_id": "{run}", "root_run_id": "{run}"}}\n'
        f"2026-12-06T12:00:01Z INFO text line of {run} <iframe src=javascript:alert(7)>\n"
    )
    return registry, log, run


def test_markup_in_runs_and_lines_is_shown_as_text_and_never_runs(
    hostile: tuple[SQLiteRunRegistry, Path, RunId], page: Any
) -> None:
    registry, log, run = hostile
    watched = Watched(page)
    with served(registry, [log]) as url:
        page.goto(url + "/")
        assert page.locator("#run-rows td.task").first.inner_text() in (
            HOSTILE,
            "</style></script>",
        )
        assert page.locator("main img, main svg[onload], main iframe, main script").count() == 0
        page.goto(f"{url}/runs/{run}")
        assert page.locator("section.head h1").inner_text().endswith(HOSTILE)
        assert page.locator(".error-box .emsg").inner_text() == "</script><script>alert(5)</script>"
        messages = page.locator("#line-rows td.msg").all_inner_texts()
        assert messages == [
            f"<script>alert(6)</script> {HOSTILE}",
            f"2026-12-06T12:00:01Z INFO text line of {run} <iframe src=javascript:alert(7)>",
        ]
        assert page.locator("main img, main iframe, main script").count() == 0
        assert page.locator("head script").count() == 1  # the viewer's own, from /static/
        page.locator("#tree-rows tr.node").nth(1).click()  # the script still works
        assert page.locator("#line-count").inner_text() == "1"
        page.screenshot(path=str(artifacts() / "hostile-run.png"), full_page=True)
    assert watched.dialogs == []
    assert watched.errors == []


def test_the_pages_show_new_runs_and_lines_without_a_reload(tmp_path: Path, page: Any) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    run = RunId.generate()
    registry.start(run, task="a long agent run")
    registry.flush()
    log = tmp_path / "agent.jsonl"
    first = (
        f'{{"level": "info", "message": "started", "run_id": "{run}", "root_run_id": "{run}"}}\n'
    )
    log.write_text(first)
    watched = Watched(page)
    with served(open_registry(str(tmp_path / "runs.db")), [log]) as url:
        page.goto(f"{url}/runs/{run}")
        assert page.locator("#run-status").text_content() == "running"
        assert page.locator("#line-rows tr.line").count() == 1
        step = run.child()
        registry.start(step, task="call the search tool")
        registry.finish(step, error=TimeoutError("search timed out"))
        registry.flush()
        with log.open("a") as file:  # a line of the new child, and half of the next one
            file.write(
                f'{{"level": "error", "message": "tool timed out", "run_id": "{step}", '
                f'"parent_run_id": "{run}", "root_run_id": "{run}"}}\n{{"level": "in'
            )
        page.wait_for_selector(f"#line-rows tr.line[data-run='{step}']")
        page.wait_for_selector(f"#tree-rows tr.node.status-error[data-run='{step}']")
        assert page.locator("#line-rows tr.line").count() == 2  # the half line is not read yet
        registry.finish(run)
        registry.flush()
        page.wait_for_selector("#run-status.badge.ok")  # the run ended, seen by the page

        page.goto(url + "/")
        assert page.locator("#run-rows tr.run").count() == 2
        later = RunId.generate()
        registry.start(later, task="the next request")
        registry.flush()
        page.wait_for_selector(f"#run-rows tr.run[data-run='{later}']")
        assert page.locator("#run-rows tr.run").first.get_attribute("data-run") == str(later)
    registry.close()
    assert watched.dialogs == []
    assert watched.errors == []


def test_the_report_is_one_file_that_works_offline_and_requests_nothing(
    demo: tuple[Path, str], tmp_path: Path, page: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, failing = demo
    report = tmp_path / "incident.html"
    argv = ["runs", "report", failing[:8], "--db", str(folder / "runs.db")]
    assert main([*argv, *(str(folder / name) for name in LOGS), "--html", str(report)]) == 0
    assert (
        f"wrote {report}: run {failing}, 4 runs in its tree, 6 log lines" in capsys.readouterr().err
    )
    watched = Watched(page)
    page.goto(report.as_uri())
    assert watched.requests == [report.as_uri()]  # no stylesheet, script, font or image fetched
    assert page.locator("#tree-rows tr.node").count() == 4
    assert page.locator("#line-rows tr.line").count() == 6
    page.locator("#tree-rows tr.node", has_text="choose a tool").click()  # its inline script
    assert page.locator("#line-count").inner_text() == "1"
    badge = page.locator(".badge.error").first
    background = badge.evaluate("badge => getComputedStyle(badge).backgroundColor")
    assert background == "rgb(198, 40, 40)"  # its inline stylesheet applies
    page.screenshot(path=str(artifacts() / "report.png"), full_page=True)
    assert watched.dialogs == []
    assert watched.errors == []  # a script or style refused by its CSP would be reported here
