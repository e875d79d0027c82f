"""External ids: the ids other systems give a run, on the run, in the registry, in the command.

A LangSmith run, an OpenAI trace, a Langfuse trace: an on-call engineer holding one of those ids
finds our run by it (``runs show <id>``), and a run's record links back to those systems.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import agent_run_id
from agent_run_id import RunContext, RunId, annotate, current_run
from agent_run_id.registry import SCHEMA_VERSION, SQLiteRunRegistry
from agent_run_id.registry._schema import MIGRATIONS
from tests._cli_helpers import call

ROOT = "e1111111-2c1a-4e8b-9f7d-5a4c3b2a1908"
TOOL = "e1111112-2c1a-4e8b-9f7d-5a4c3b2a1908"
OTHER = "e2222222-2c1a-4e8b-9f7d-5a4c3b2a1908"
TRACE = "trace_" + "ab" * 16
LANGSMITH = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    yield registry
    registry.close()


# -- RunId.hex -----------------------------------------------------------------------------------


def test_hex_is_the_uuids_hex_and_makes_an_openai_trace_id() -> None:
    run = RunId.generate()
    assert run.hex == run.uuid.hex == uuid.UUID(run.value).hex
    assert len(f"trace_{run.hex}") == 38
    assert RunId(ROOT).hex == "e11111112c1a4e8b9f7d5a4c3b2a1908"


# -- annotate(external_ids=) ---------------------------------------------------------------------


def test_annotate_adds_external_ids_to_those_the_run_has() -> None:
    with RunContext():
        assert annotate(external_ids={"openai_trace": TRACE})
        assert annotate(external_ids={"langsmith_run": LANGSMITH, "openai_trace": "trace_2"})
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == {"openai_trace": "trace_2", "langsmith_run": LANGSMITH}
        with pytest.raises(TypeError):
            view.external_ids["x"] = "y"  # type: ignore[index]


def test_a_run_without_external_ids_has_an_empty_read_only_mapping() -> None:
    with RunContext():
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == {}
    with RunContext(user_id="u-1"):
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == {}


def test_external_ids_of_a_child_run_are_its_own() -> None:
    with RunContext():
        annotate(external_ids={"openai_trace": TRACE})
        with RunContext():
            view = current_run()
            assert view is not None
            assert dict(view.external_ids) == {}


def test_annotate_outside_a_run_does_nothing() -> None:
    assert annotate(external_ids={"openai_trace": TRACE}) is False


@pytest.mark.parametrize(
    ("external_ids", "error", "message"),
    [
        (["openai_trace", TRACE], TypeError, "external_ids must be a mapping of system names"),
        ({"OpenAI": TRACE}, ValueError, "external_ids has the system name 'OpenAI'"),
        ({"": TRACE}, ValueError, "external_ids has the system name ''"),
        ({"x" * 65: TRACE}, ValueError, "name a system with 1 to 64 lowercase letters"),
        ({1: TRACE}, ValueError, "external_ids has the system name 1"),
        ({"openai_trace": 42}, ValueError, "external_ids['openai_trace'] is 42"),
        ({"openai_trace": ""}, ValueError, "not an external id"),
        ({"openai_trace": "a b"}, ValueError, "without spaces or control characters"),
        ({"openai_trace": "a\nb"}, ValueError, "without spaces or control characters"),
        ({"openai_trace": "x" * 257}, ValueError, "1 to 256 characters"),
    ],
    ids=["list", "capital", "empty-system", "long-system", "int-system", "int-id", "empty-id",
         "space", "newline", "long-id"],
)  # fmt: skip
def test_bad_external_ids_raise_naming_the_argument_and_the_fix(
    external_ids: Any, error: type[Exception], message: str
) -> None:
    with RunContext(), pytest.raises(error, match=None) as raised:
        annotate(external_ids=external_ids)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_external_id_may_hold_any_text_but_spaces_and_controls() -> None:
    odd = {"langfuse_trace": "tr-\u00e9:42/x?y=1", "x.y-z_0": "#"}
    with RunContext():
        assert annotate(external_ids=odd)
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == odd


# -- the registry --------------------------------------------------------------------------------


def test_the_registry_records_external_ids_and_finds_the_run_by_them(
    registry: SQLiteRunRegistry,
) -> None:
    with RunContext(RunId(ROOT), registry=registry):
        annotate(external_ids={"openai_trace": TRACE, "langsmith_run": LANGSMITH})
        with RunContext(RunId(TOOL, parent=ROOT)):
            annotate(external_ids={"langsmith_run": "0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b"})
    record = registry.get(ROOT)
    assert record.external_ids == {"openai_trace": TRACE, "langsmith_run": LANGSMITH}
    assert record.to_json()["external_ids"] == dict(record.external_ids)
    assert [r.run_id for r in registry.by_external_id(TRACE)] == [ROOT]
    assert [r.run_id for r in registry.by_external_id(f"  {TRACE}\t")] == [ROOT]
    assert [r.run_id for r in registry.by_external_id(TRACE, system="openai_trace")] == [ROOT]
    assert registry.by_external_id(TRACE, system="langsmith_run") == []
    assert registry.by_external_id("trace_unknown") == []
    (found,) = registry.by_external_id("0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b")
    assert found.run_id == TOOL
    assert found.external_ids == {"langsmith_run": "0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b"}
    # every read gives each record its own
    tree = registry.tree(ROOT)
    assert [dict(r.external_ids) for r in tree] == [
        {"openai_trace": TRACE, "langsmith_run": LANGSMITH},
        {"langsmith_run": "0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b"},
    ]
    assert [dict(r.external_ids) for r in registry.children(ROOT)] == [dict(tree[1].external_ids)]
    assert {r.run_id: dict(r.external_ids) for r in registry.find()} == {
        r.run_id: dict(r.external_ids) for r in tree
    }


def test_an_external_id_given_to_another_run_moves_to_it(registry: SQLiteRunRegistry) -> None:
    for run in (ROOT, OTHER):
        with RunContext(RunId(run), registry=registry):
            annotate(external_ids={"openai_trace": TRACE})
    assert [r.run_id for r in registry.by_external_id(TRACE)] == [OTHER]
    assert registry.get(ROOT).external_ids == {}


def test_the_same_id_in_two_systems_finds_both_runs_newest_first(
    registry: SQLiteRunRegistry,
) -> None:
    with RunContext(RunId(ROOT), registry=registry):
        annotate(external_ids={"langsmith_run": LANGSMITH})
    with RunContext(RunId(OTHER), registry=registry):
        annotate(external_ids={"langchain_run": LANGSMITH})
    assert [r.run_id for r in registry.by_external_id(LANGSMITH)] == [OTHER, ROOT]
    assert [r.run_id for r in registry.by_external_id(LANGSMITH, system="langsmith_run")] == [ROOT]


def test_start_takes_external_ids_too(registry: SQLiteRunRegistry) -> None:
    registry.start(RunId(ROOT), external_ids={"openai_trace": TRACE})
    registry.finish(RunId(ROOT))
    assert registry.get(ROOT).external_ids == {"openai_trace": TRACE}


@pytest.mark.parametrize("method", ["start", "annotate"])
def test_the_registry_refuses_bad_external_ids_at_once(
    registry: SQLiteRunRegistry, method: str
) -> None:
    with pytest.raises(ValueError, match="external_ids has the system name 'Bad'"):
        getattr(registry, method)(RunId(ROOT), external_ids={"Bad": "x"})
    with pytest.raises(TypeError, match="external_ids must be a mapping"):
        getattr(registry, method)(RunId(ROOT), external_ids="trace_1")


def test_by_external_id_refuses_what_is_not_text(registry: SQLiteRunRegistry) -> None:
    with pytest.raises(TypeError, match="external_id must be a str, got int"):
        registry.by_external_id(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="system must be a str or None, got int"):
        registry.by_external_id(TRACE, system=1)  # type: ignore[arg-type]


class _OldRegistry:
    """A registry of the user's own, written before external ids: its annotate takes none."""

    def __init__(self) -> None:
        self.annotations: list[dict[str, Any]] = []

    def start(self, run_id: RunId, **facts: Any) -> None:
        pass

    def annotate(self, run_id: RunId, *, user_id: str | None = None, task: str | None = None,
                 metadata: Mapping[str, Any] | None = None,
                 session_id: str | None = None) -> None:  # fmt: skip
        self.annotations.append({"user_id": user_id})

    def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
        pass


def test_a_registry_that_knows_no_external_ids_gets_the_other_facts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = _OldRegistry()
    with RunContext(registry=old):  # type: ignore[arg-type]
        assert annotate(user_id="u-1")
        assert old.annotations == [{"user_id": "u-1"}]
        with caplog.at_level(logging.WARNING, "agent_run_id"):
            assert annotate(external_ids={"openai_trace": TRACE})  # never breaks the run
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == {"openai_trace": TRACE}
    assert "failed when the run was annotated" in caplog.text


def test_a_schema_2_registry_is_upgraded_in_place_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO runs (run_id, root_id, status, started_at, metadata, session_id) "
        "VALUES (?, ?, 'ok', 1764000000000000, '{}', 'chat-1')",
        (ROOT, ROOT),
    )
    conn.commit()
    conn.close()
    # the command reads the old file as it is, writing nothing
    before = path.read_bytes()
    shown = call("runs", "show", ROOT, "--db", str(path))
    assert shown.code == 0, shown.err
    assert "external:   -\n" in shown.out
    assert call("runs", "show", TRACE, "--db", str(path)).code == 2
    assert path.read_bytes() == before
    registry = SQLiteRunRegistry(path)
    try:
        assert registry.get(ROOT).session_id == "chat-1"
        assert registry.get(ROOT).external_ids == {}
        registry.annotate(RunId(ROOT), external_ids={"openai_trace": TRACE})
        assert [r.run_id for r in registry.by_external_id(TRACE)] == [ROOT]
    finally:
        registry.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


# -- many runs at once ---------------------------------------------------------------------------


def test_concurrent_tasks_and_threads_each_record_their_own_external_ids(
    registry: SQLiteRunRegistry,
) -> None:
    seen: dict[str, str] = {}
    lock = threading.Lock()

    def mark(n: int) -> None:
        view = current_run()
        assert view is not None
        annotate(external_ids={"openai_trace": f"trace_{n:032x}"})
        with lock:
            seen[f"trace_{n:032x}"] = view.id

    async def task(n: int) -> None:
        with RunContext(registry=registry):
            await asyncio.sleep(0)
            mark(n)
            await asyncio.sleep(0)
            view = current_run()
            assert view is not None
            assert dict(view.external_ids) == {"openai_trace": f"trace_{n:032x}"}

    async def tasks() -> None:
        await asyncio.gather(*(task(n) for n in range(100)))

    def thread(n: int, barrier: threading.Barrier) -> None:
        with RunContext(registry=registry):
            barrier.wait()
            mark(n)
            barrier.wait()
            view = current_run()
            assert view is not None
            assert dict(view.external_ids) == {"openai_trace": f"trace_{n:032x}"}

    asyncio.run(tasks())
    barrier = threading.Barrier(32)
    threads = [threading.Thread(target=thread, args=(n, barrier)) for n in range(100, 132)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 132
    for trace, run_id in seen.items():
        (found,) = registry.by_external_id(trace)
        assert found.run_id == run_id
        assert found.external_ids == {"openai_trace": trace}


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(RunId(ROOT), registry=registry, task="plan"):
        annotate(external_ids={"openai_trace": TRACE, "langsmith_run": LANGSMITH})
        with RunContext(RunId(TOOL, parent=ROOT), task="search"):
            pass
    with RunContext(RunId(OTHER), registry=registry):
        annotate(external_ids={"langchain_run": LANGSMITH})
    registry.close()
    return path


def test_runs_show_finds_a_run_by_an_external_id(db: Path) -> None:
    shown = call("runs", "show", TRACE, "--db", str(db))
    assert shown.code == 0, shown.err
    assert shown.out.startswith(f"run_id:     {ROOT}\n")
    lines = shown.out.splitlines()
    at = lines.index(f"external:   langsmith_run={LANGSMITH}")
    assert lines[at + 1] == f"            openai_trace={TRACE}"


def test_runs_tree_finds_a_run_by_an_external_id(db: Path) -> None:
    tree = call("runs", "tree", TRACE, "--db", str(db))
    assert tree.code == 0, tree.err
    assert [line.split()[0] for line in tree.out.splitlines()] == [ROOT, TOOL]


def test_runs_show_names_the_runs_an_external_id_of_several_belongs_to(db: Path) -> None:
    shown = call("runs", "show", LANGSMITH, "--db", str(db))
    assert shown.code == 2
    assert f"is an external id of several runs ({ROOT}, {OTHER}): give the run id" in shown.err


def test_runs_show_of_an_unknown_id_says_so(db: Path) -> None:
    shown = call("runs", "show", "trace_nope", "--db", str(db))
    assert shown.code == 2
    assert "is neither a run id nor a prefix of one" in shown.err


def test_runs_show_links_each_external_id_to_its_systems_page(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AGENT_RUN_ID_LINKS",
        '{"openai_trace": "https://platform.openai.com/traces/trace?trace_id={id}",'
        ' "langsmith_run": "https://smith.langchain.com/r/{id}?poll=true"}',
    )
    shown = call("runs", "show", ROOT, "--db", str(db))
    assert shown.code == 0
    assert (
        f"external:   langsmith_run={LANGSMITH}  https://smith.langchain.com/r/{LANGSMITH}?poll=true"
        in shown.out
    )
    assert (
        f"            openai_trace={TRACE}  https://platform.openai.com/traces/trace?trace_id={TRACE}"
        in shown.out
    )
    assert shown.err == ""


def test_a_link_quotes_the_id_it_puts_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(RunId(ROOT), registry=registry):
        annotate(external_ids={"langfuse_trace": "a/b?c=d#e&\u00e9"})
    registry.close()
    monkeypatch.setenv("AGENT_RUN_ID_LINKS", '{"langfuse_trace": "https://lf.example/t/{id}"}')
    shown = call("runs", "show", ROOT, "--db", str(path))
    assert "https://lf.example/t/a%2Fb%3Fc%3Dd%23e%26%C3%A9\n" in shown.out


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not json", "it is not a JSON object"),
        ('["https://x/{id}"]', "it is not a JSON object"),
        ('{"openai_trace": "https://x/"}', "the template of 'openai_trace' is not a string with"),
        ('{"openai_trace": 3}', "the template of 'openai_trace' is not a string with"),
        ('{"openai_trace": "javascript:{id}"}', "the template of 'openai_trace' is not an http"),
    ],
)
def test_a_bad_links_variable_is_reported_and_the_ids_still_shown(
    db: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("AGENT_RUN_ID_LINKS", value)
    shown = call("runs", "show", ROOT, "--db", str(db))
    assert shown.code == 0
    assert f"openai_trace={TRACE}\n" in shown.out
    assert shown.err.startswith(f"agent-run-id: $AGENT_RUN_ID_LINKS is ignored: {problem}")
    assert "set it to a JSON object of URL templates with {id}" in shown.err


def test_runs_show_json_gives_the_external_ids(db: Path) -> None:
    shown = call("runs", "show", TRACE, "--db", str(db), "--json")
    assert '"external_ids": {' in shown.out
    assert f'"openai_trace": "{TRACE}"' in shown.out


def test_the_public_annotate_takes_external_ids() -> None:
    assert agent_run_id.annotate is annotate
    with RunContext():
        assert agent_run_id.annotate(external_ids={"pydantic_ai_run": "run-1"})
