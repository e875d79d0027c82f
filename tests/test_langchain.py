"""agent_run_id.langchain: config() and the callback handler, with plain LangChain runnables."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import CallbackManager
from langchain_core.callbacks.manager import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import StructuredTool, ToolException, tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

import agent_run_id.langchain
import agent_run_id.logging
from agent_run_id import RunContext, RunId, current_run, current_run_id
from agent_run_id.httpx import AsyncRunIdTransport
from agent_run_id.langchain import RunIdCallbackHandler, config
from agent_run_id.registry import RunRecord, SQLiteRunRegistry, set_default

log = logging.getLogger("tests.langchain.plain")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    yield registry
    registry.close()


@pytest.fixture
def stamped(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    agent_run_id.logging.install()
    caplog.set_level(logging.INFO, logger="tests.langchain.plain")
    return caplog


@tool
def search(query: str) -> str:
    """Search the web for ``query``."""
    log.info("searching %s", query)
    return f"results for {query}"


def to_query(text: str) -> dict[str, str]:
    return {"query": text}


async def ato_query(text: str) -> dict[str, str]:
    return {"query": text}


CHAIN = RunnableLambda(to_query, afunc=ato_query) | search


def steps(registry: SQLiteRunRegistry, run: RunId) -> list[tuple[str, str, str]]:
    """The run's tree as (name, parent's name, status), in start order; the run itself is ""."""
    tree = registry.tree(run)
    names = {r.run_id: r.metadata.get("name", "") for r in tree}
    names[run.value] = ""
    ordered = sorted(tree[1:], key=lambda r: r.started_at)
    return [(names[r.run_id], names[r.parent_id or ""], r.status) for r in ordered]


def one(registry: SQLiteRunRegistry, run: RunId, name: str) -> RunRecord:
    (record,) = [r for r in registry.tree(run) if r.metadata.get("name") == name]
    return record


# -- config() ------------------------------------------------------------------------------------


def test_config_gives_langchain_the_runs_id_our_ids_the_session_as_thread_and_a_handler() -> None:
    with RunContext(session_id="chat-7", user_id="alice"), RunContext() as run:
        made = config()
        assert made["run_id"] == run.run_id.uuid
        assert made["metadata"] == {
            "agent_run_id": run.run_id.value,
            "agent_parent_run_id": run.run_id.parent.value,  # type: ignore[union-attr]
            "agent_root_run_id": run.run_id.root.value,
            "agent_session_id": "chat-7",
            "thread_id": "chat-7",  # LangSmith's threads
        }  # no user: personal data goes only when asked for
        assert made["configurable"] == {"thread_id": "chat-7"}
        (handler,) = made["callbacks"]  # type: ignore[misc]
        assert isinstance(handler, RunIdCallbackHandler)
        view = current_run()
        assert view is not None
        assert dict(view.external_ids) == {"langchain_run": run.run_id.value}


def test_config_of_a_root_run_without_a_session_has_only_its_id() -> None:
    with RunContext() as run:
        made = config()
    assert made["metadata"] == {"agent_run_id": run.run_id.value}
    assert "configurable" not in made


def test_config_sends_the_user_only_when_asked() -> None:
    with RunContext(user_id="alice"):
        assert config(send_user=True)["metadata"]["agent_user_id"] == "alice"
    with RunContext():  # no user: nothing to send
        assert "agent_user_id" not in config(send_user=True)["metadata"]


def test_only_the_runs_first_config_hands_out_the_runs_id() -> None:
    """LangChain needs a new root id per invocation: later ones are steps of the run."""
    with RunContext() as run:
        assert config()["run_id"] == run.run_id.uuid
        assert "run_id" not in config()
        with RunContext() as child:  # a child run hands out its own id
            assert config()["run_id"] == child.run_id.uuid


def test_config_keeps_what_the_caller_gives_and_adds_ours_beside_it() -> None:
    mine = RunCollectorCallbackHandler()
    given = uuid.uuid4()
    with RunContext(session_id="chat-7") as run:
        made = config(
            run_id=given,
            tags=["trip"],
            run_name="planner",
            recursion_limit=5,
            metadata={"agent_run_id": "mine", "team": "travel"},
            configurable={"thread_id": "t-1", "model": "small"},
            callbacks=[mine],
        )
    assert made["run_id"] == given
    assert (made["tags"], made["run_name"], made["recursion_limit"]) == (["trip"], "planner", 5)
    assert made["metadata"] == {
        "agent_run_id": "mine",
        "agent_session_id": "chat-7",
        "thread_id": "t-1",  # the thread LangGraph is given
        "team": "travel",
    }
    assert made["configurable"] == {"thread_id": "t-1", "model": "small"}
    callbacks = made["callbacks"]
    assert isinstance(callbacks, list)
    assert callbacks[0] is mine
    assert isinstance(callbacks[1], RunIdCallbackHandler)
    assert "langchain_run" not in dict(_external_ids(run.run_id))  # the id handed out is theirs


def _external_ids(run: RunId) -> dict[str, str]:
    view = current_run()
    return {} if view is None or view.run_id != run else dict(view.external_ids)


def test_config_adds_its_handler_to_a_callback_manager_and_never_twice() -> None:
    ours = RunIdCallbackHandler()
    with RunContext():
        manager = CallbackManager(handlers=[])
        made = config(callbacks=manager)["callbacks"]
        assert isinstance(made, CallbackManager)
        assert made is not manager
        assert manager.handlers == []
        assert [type(h) for h in made.handlers] == [RunIdCallbackHandler]
        assert [type(h) for h in made.inheritable_handlers] == [RunIdCallbackHandler]
        assert config(callbacks=made)["callbacks"] is made
        assert config(callbacks=(ours,))["callbacks"] == [ours]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"thread_id": "t-1"}, "config() got the key 'thread_id', which is not a RunnableConf"),
        ({"\x1b[31m": 1}, "config() got the key '\\x1b[31m', which is not a RunnableConfig"),
        ({"callbacks": "stdout"}, "callbacks must be a list of LangChain callback handlers"),
        ({"callbacks": [print]}, "callbacks must be a list of LangChain callback handlers"),
        ({"send_user": "yes"}, "send_user must be True or False, got 'yes'"),
    ],
)
def test_bad_options_raise_naming_them_and_the_fix(options: dict[str, Any], error: str) -> None:
    with RunContext(), pytest.raises(TypeError) as raised:
        config(**options)
    assert str(raised.value).startswith(error)


def test_outside_any_run_config_is_what_was_given() -> None:
    assert config() == {}
    assert config(tags=["x"], metadata={"a": 1}) == {"tags": ["x"], "metadata": {"a": 1}}


def test_outside_any_run_the_handler_records_nothing(registry: SQLiteRunRegistry) -> None:
    set_default(registry)
    handler = RunIdCallbackHandler()
    assert CHAIN.invoke("q", {"callbacks": [handler]}) == "results for q"
    with RunContext() as run:
        pass
    assert [r.run_id for r in registry.find()] == [run.run_id.value]  # only the run of ours
    assert repr(handler) == "RunIdCallbackHandler(open_steps=0)"


# -- plain LangChain -----------------------------------------------------------------------------


def test_a_sync_chain_with_a_tool_is_the_run_and_the_tool_runs_in_its_step(
    registry: SQLiteRunRegistry, stamped: pytest.LogCaptureFixture
) -> None:
    collector = RunCollectorCallbackHandler()
    with RunContext(registry=registry) as run:
        assert CHAIN.invoke("flights", config(callbacks=[collector])) == "results for flights"
        assert current_run_id() == run.run_id  # the tool's step is left
    (root,) = collector.traced_runs
    assert root.id == run.run_id.uuid
    assert steps(registry, run.run_id) == [
        ("chain to_query", "", "ok"),
        ("tool search", "", "ok"),
    ]
    tool_step = one(registry, run.run_id, "tool search")
    (line,) = [r for r in stamped.records if r.getMessage() == "searching flights"]
    assert line.run_id == tool_step.run_id  # type: ignore[attr-defined]
    assert tool_step.external_ids == {"langchain_run": str(root.child_runs[1].id)}


def test_an_async_chain_with_a_tool_is_the_run_and_the_tool_runs_in_its_step(
    registry: SQLiteRunRegistry, stamped: pytest.LogCaptureFixture
) -> None:
    async def main() -> RunId:
        with RunContext(registry=registry) as run:
            assert await CHAIN.ainvoke("hotels", config()) == "results for hotels"
            assert current_run_id() == run.run_id
        return run.run_id

    run = asyncio.run(main())
    assert steps(registry, run) == [("chain to_query", "", "ok"), ("tool search", "", "ok")]
    (line,) = [r for r in stamped.records if r.getMessage() == "searching hotels"]
    assert line.run_id == one(registry, run, "tool search").run_id  # type: ignore[attr-defined]


def test_an_async_tool_runs_in_its_step(
    registry: SQLiteRunRegistry, stamped: pytest.LogCaptureFixture
) -> None:
    seen: list[RunId | None] = []

    async def lookup(city: str) -> str:
        await asyncio.sleep(0)
        seen.append(current_run_id())
        return city

    lookup_tool = StructuredTool.from_function(coroutine=lookup, name="lookup", description="L.")
    chain = RunnableLambda(lambda text: {"city": text}, name="prepare") | lookup_tool

    async def main() -> RunId:
        with RunContext(registry=registry) as run:
            await chain.ainvoke("Oslo", config())
        return run.run_id

    run = asyncio.run(main())
    assert seen == [RunId(one(registry, run, "tool lookup").run_id)]


def test_a_tools_outbound_calls_carry_its_step(registry: SQLiteRunRegistry) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, text="sunny")

    transport = AsyncRunIdTransport(httpx.MockTransport(answer))

    async def weather(city: str) -> str:
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get(f"http://127.0.0.1/weather/{city}")).text

    weather_tool = StructuredTool.from_function(coroutine=weather, name="weather", description="W.")
    chain = RunnableLambda(lambda text: {"city": text}, name="prepare") | weather_tool

    async def main() -> RunId:
        with RunContext(registry=registry, session_id="chat-3") as run:
            assert await chain.ainvoke("Oslo", config()) == "sunny"
        return run.run_id

    run = asyncio.run(main())
    (request,) = sent
    step = one(registry, run, "tool weather")
    assert request.headers["X-Run-Id"] == step.run_id
    assert request.headers["X-Parent-Run-Id"] == run.value
    assert request.headers["X-Session-Id"] == "chat-3"


def test_a_tool_invoked_as_the_root_is_the_run_itself(
    registry: SQLiteRunRegistry, stamped: pytest.LogCaptureFixture
) -> None:
    with RunContext(registry=registry) as run:
        search.invoke({"query": "alone"}, config())
    assert steps(registry, run.run_id) == []
    (line,) = [r for r in stamped.records if r.getMessage() == "searching alone"]
    assert line.run_id == run.run_id.value  # type: ignore[attr-defined]


def test_a_root_id_of_the_callers_is_a_step_of_the_run(registry: SQLiteRunRegistry) -> None:
    given = uuid.uuid4()
    with RunContext(registry=registry) as run:
        CHAIN.invoke("q", config(run_id=given, run_name="mine"))
    assert steps(registry, run.run_id) == [
        ("chain mine", "", "ok"),
        ("chain to_query", "chain mine", "ok"),
        ("tool search", "chain mine", "ok"),
    ]
    assert one(registry, run.run_id, "chain mine").external_ids == {"langchain_run": str(given)}


def test_a_failing_tool_fails_its_step_the_chain_and_the_run(registry: SQLiteRunRegistry) -> None:
    def broken(query: str) -> str:
        raise ConnectionError(f"search backend down for {query}")

    broken_tool = StructuredTool.from_function(func=broken, name="search", description="S.")
    chain = RunnableLambda(to_query) | broken_tool
    given = uuid.uuid4()
    with pytest.raises(ConnectionError), RunContext(registry=registry) as run:
        chain.invoke("q", config(run_id=given))
    assert steps(registry, run.run_id) == [
        (f"chain {chain.get_name()}", "", "error"),
        ("chain to_query", f"chain {chain.get_name()}", "ok"),
        ("tool search", f"chain {chain.get_name()}", "error"),
    ]
    message = "ConnectionError: search backend down for q"
    assert one(registry, run.run_id, "tool search").error == message
    assert registry.get(run.run_id).error == message


def test_a_tool_that_reports_its_error_as_a_message_fails_its_step(
    registry: SQLiteRunRegistry,
) -> None:
    def refuse(query: str) -> str:
        raise ToolException(f"no results for {query}")

    refusing = StructuredTool.from_function(
        func=refuse, name="search", description="S.", handle_tool_error=True
    )
    call = {"type": "tool_call", "name": "search", "args": {"query": "q"}, "id": "call-1"}
    with RunContext(registry=registry) as run:
        answer = refusing.invoke(call, config(run_id=uuid.uuid4()))
    assert (answer.status, answer.content) == ("error", "no results for q")
    record = one(registry, run.run_id, "tool search")
    assert (record.status, record.error) == ("error", "ReportedError: no results for q")


class Shelf(BaseRetriever):
    """A retriever over a fixed list; the query "broken" fails."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if query == "broken":
            raise LookupError("index missing")
        return [Document(page_content=f"about {query}")]


def test_retrievers_and_models_are_steps_with_their_errors(registry: SQLiteRunRegistry) -> None:
    def failing() -> Iterator[AIMessage]:
        raise RuntimeError("model overloaded")
        yield AIMessage(content="never")  # pragma: no cover

    with RunContext(registry=registry) as run:
        Shelf().invoke("trains", config())
        with pytest.raises(LookupError):
            Shelf().invoke("broken", config())
        FakeListLLM(responses=["ok"]).invoke("hi", config())
        with pytest.raises(RuntimeError):
            GenericFakeChatModel(messages=failing()).invoke("hi", config())
    # A retriever takes no run_id from its config (LangChain 1.8): both are steps of the run.
    assert steps(registry, run.run_id) == [
        ("retriever Shelf", "", "ok"),
        ("retriever Shelf", "", "error"),
        ("llm FakeListLLM", "", "ok"),
        ("chat_model GenericFakeChatModel", "", "error"),
    ]
    errors = {r.metadata["name"]: r.error for r in registry.tree(run.run_id) if r.error}
    assert errors["retriever Shelf"] == "LookupError: index missing"
    assert errors["chat_model GenericFakeChatModel"] == "RuntimeError: model overloaded"


def test_a_step_whose_parent_the_handler_never_saw_is_a_step_of_the_current_run(
    registry: SQLiteRunRegistry,
) -> None:
    handler = RunIdCallbackHandler()
    manager = CallbackManager(handlers=[handler], parent_run_id=uuid.uuid4())
    with RunContext(registry=registry) as run:
        search.invoke({"query": "q"}, {"callbacks": manager})
    assert steps(registry, run.run_id) == [("tool search", "", "ok")]


def test_steps_are_named_by_kind_alone_when_langchain_gives_no_name(
    registry: SQLiteRunRegistry,
) -> None:
    handler = RunIdCallbackHandler()
    with RunContext(registry=registry) as run:
        for n, serialized in enumerate([None, {}, {"id": ["a", "MyChain"]}, {"name": "x" * 300}]):
            step = uuid.UUID(int=n + 1)
            handler.on_chain_start(serialized, {}, run_id=step)
            handler.on_chain_end({}, run_id=step)
    names = [name for name, _, _ in steps(registry, run.run_id)]
    assert names == ["chain", "chain", "chain MyChain", "chain " + "x" * 194]


def test_a_langgraph_interrupt_is_not_a_failure(registry: SQLiteRunRegistry) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.types import interrupt

    @tool
    def ask(question: str) -> str:
        """Ask the user ``question``."""
        return str(interrupt(question))

    def approve(state: MessagesState) -> dict[str, Any]:
        ask.invoke({"question": "approve the booking?"})
        return {}  # pragma: no cover

    graph = StateGraph(MessagesState)
    graph.add_node("approve", approve)
    graph.add_edge(START, "approve")
    app = graph.compile(checkpointer=InMemorySaver())
    with RunContext(registry=registry, session_id="chat-9") as run:
        state = app.invoke({"messages": []}, config())
    assert "__interrupt__" in state
    assert steps(registry, run.run_id) == [
        ("chain approve", "", "ok"),
        ("tool ask", "chain approve", "ok"),
    ]


def test_a_failing_handler_never_breaks_the_agent(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import agent_run_id._langchain_handler as handler_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("registry on fire")

    monkeypatch.setattr(handler_module, "Step", broken)
    with RunContext(registry=registry) as run:
        assert CHAIN.invoke("q", config(run_id=uuid.uuid4())) == "results for q"
    assert steps(registry, run.run_id) == []
    assert "Error in RunIdCallbackHandler.on_chain_start callback" in caplog.text


def test_one_handler_serves_many_threads_and_tasks_without_mixing(
    registry: SQLiteRunRegistry,
) -> None:
    shared = RunIdCallbackHandler()
    seen: dict[RunId, RunId | None] = {}
    lock = threading.Lock()

    def probe(query: str) -> str:
        with lock:
            seen[current_run_id().root] = current_run_id()  # type: ignore[union-attr]
        return query

    probe_tool = StructuredTool.from_function(func=probe, name="probe", description="P.")
    chain = RunnableLambda(to_query, afunc=ato_query) | probe_tool
    runs: list[RunId] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        with RunContext(registry=registry) as run:
            chain.invoke("q", {"callbacks": [shared]})
        with lock:
            runs.append(run.run_id)

    async def agent() -> None:
        with RunContext(registry=registry) as run:
            await chain.ainvoke("q", {"callbacks": [shared]})
        runs.append(run.run_id)

    async def agents() -> None:
        await asyncio.gather(*(agent() for _ in range(40)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    asyncio.run(agents())
    for thread in threads:
        thread.join()
    assert len(runs) == len(set(runs)) == 56
    for run in runs:
        assert steps(registry, run) == [
            (f"chain {chain.get_name()}", "", "ok"),
            ("chain to_query", f"chain {chain.get_name()}", "ok"),
            ("tool probe", f"chain {chain.get_name()}", "ok"),
        ]
        assert seen[run] == RunId(one(registry, run, "tool probe").run_id)
    assert repr(shared) == "RunIdCallbackHandler(open_steps=0)"


def test_missing_langchain_core_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "langchain_core"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    monkeypatch.delitem(sys.modules, "agent_run_id.langchain")
    monkeypatch.delitem(sys.modules, "agent_run_id._langchain_handler")
    with pytest.raises(ImportError) as raised:
        importlib.import_module("agent_run_id.langchain")
    assert str(raised.value).startswith(
        'agent_run_id.langchain needs the langchain-core package: pip install "agent-run-id['
        'langchain] @ git+https://github.com/MukundaKatta/agent-run-id"'
    )
    assert isinstance(raised.value.__cause__, ImportError)
    assert agent_run_id.langchain.config is config  # the module imported first is untouched
