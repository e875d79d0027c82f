"""The real OpenAI and Anthropic SDKs, on clients wrapped by agent_run_id, against a fake server.

The server (on 127.0.0.1) answers each call with the X-Run-Id it got and records it (and the
session and user headers) with the prompt; every prompt names the run that was current when the
call was made.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

import agent_run_id
import agent_run_id.httpx
import agent_run_id.httpx2
from agent_run_id import RunContext, RunId
from tests._outbound_helpers import LocalServer, server

__all__ = ["server"]

ROOT = RunId.from_string("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
CHILD = RunId("1c7a6e4f-3d2b-4f9c-8a8e-6b5d4c3b2a19", parent=ROOT)


def seen_for(server: LocalServer, marker: str) -> list[dict[str, str | None]]:
    return [run for _, seen_marker, run in server.seen if seen_marker == marker]


def sync_openai(server: LocalServer, package: str, **options: Any) -> openai.OpenAI:
    if package == "httpx2":
        client: Any = httpx2.Client(transport=agent_run_id.httpx2.RunIdTransport())
    else:
        client = httpx.Client(transport=agent_run_id.httpx.RunIdTransport())
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="dummy", http_client=client, **options
    )


def ask_openai(llm: openai.OpenAI, prompt: str, **options: Any) -> str | None:
    completion = llm.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": prompt}], **options
    )
    return completion.choices[0].message.content


@pytest.mark.parametrize("package", ["httpx2", "httpx"])
def test_openai_sends_the_current_run_and_its_lineage(server: LocalServer, package: str) -> None:
    with sync_openai(server, package, max_retries=0) as llm, RunContext(CHILD):
        text = ask_openai(llm, f"lineage-{package}")
        assert ask_openai(llm, f"lineage-{package}") == CHILD.value
    assert text == CHILD.value
    assert (
        seen_for(server, f"lineage-{package}")
        == [{"x-run-id": CHILD.value, "x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}]
        * 2
    )
    with sync_openai(server, package, max_retries=0) as llm:
        assert ask_openai(llm, f"no-run-{package}") == "no run"


@pytest.mark.parametrize("package", ["httpx2", "httpx"])
def test_openai_retries_carry_the_run(server: LocalServer, package: str) -> None:
    with sync_openai(server, package, max_retries=2) as llm, RunContext(ROOT):
        assert ask_openai(llm, f"flaky-{package}") == ROOT.value
    assert [run["x-run-id"] for run in seen_for(server, f"flaky-{package}")] == [ROOT.value] * 2


def test_openai_extra_headers_of_the_caller_win(server: LocalServer) -> None:
    """The user's own snippet, extra_headers={"X-Run-Id": ...}, keeps working unchanged."""
    with sync_openai(server, "httpx2", max_retries=0) as llm, RunContext(CHILD):
        text = ask_openai(llm, "extra-headers", extra_headers={"X-Run-Id": ROOT.value})
    assert text == ROOT.value
    assert seen_for(server, "extra-headers") == [
        {"x-run-id": ROOT.value, "x-parent-run-id": None, "x-root-run-id": None}
    ]


def test_omit_does_not_opt_a_call_out_but_a_client_without_the_wrapper_does(
    server: LocalServer,
) -> None:
    """As docs/outbound.md says: Omit() drops the header before the transport sees the request."""
    with sync_openai(server, "httpx2", max_retries=0) as llm, RunContext(CHILD):
        omitted = ask_openai(llm, "omit", extra_headers={"X-Run-Id": openai.Omit()})
    plain = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="dummy", http_client=httpx2.Client(), max_retries=0
    )
    with plain, RunContext(CHILD):
        unwrapped = ask_openai(plain, "unwrapped")
    assert omitted == CHILD.value
    assert unwrapped == "no run"


def sync_anthropic(server: LocalServer, **options: Any) -> anthropic.Anthropic:
    client = httpx2.Client(transport=agent_run_id.httpx2.RunIdTransport())
    return anthropic.Anthropic(base_url=server.url, api_key="dummy", http_client=client, **options)


def ask_anthropic(llm: anthropic.Anthropic, prompt: str) -> str:
    message = llm.messages.create(
        model="fake", max_tokens=16, messages=[{"role": "user", "content": prompt}]
    )
    block = message.content[0]
    assert block.type == "text"
    return block.text


def test_anthropic_sends_the_current_run_and_retries_carry_it(server: LocalServer) -> None:
    with sync_anthropic(server, max_retries=2) as llm:
        with RunContext(CHILD):
            assert ask_anthropic(llm, "claude-lineage") == CHILD.value
        with RunContext(ROOT):
            assert ask_anthropic(llm, "flaky-claude") == ROOT.value
    assert seen_for(server, "claude-lineage") == [
        {"x-run-id": CHILD.value, "x-parent-run-id": ROOT.value, "x-root-run-id": ROOT.value}
    ]
    assert [run["x-run-id"] for run in seen_for(server, "flaky-claude")] == [ROOT.value] * 2


def test_anthropic_takes_only_httpx2_clients(server: LocalServer) -> None:
    """Why agent_run_id.httpx2 exists: the current Anthropic SDK refuses an httpx.Client."""
    legacy = httpx.Client(transport=agent_run_id.httpx.RunIdTransport())
    with pytest.raises(TypeError, match="httpx2"):
        anthropic.Anthropic(base_url=server.url, api_key="dummy", http_client=legacy)  # type: ignore[arg-type]


def in_16_threads(server: LocalServer, tag: str, ask: Any) -> None:
    """16 threads, each in its own run, all current at once, make 4 calls each with ``ask``."""
    barrier = threading.Barrier(16)

    def work() -> list[tuple[str, str | None]]:
        with RunContext() as run:
            barrier.wait()  # every run is current before any call goes out
            sent = run.run_id.value
            return [(sent, ask(f"{tag}-{sent}-{i}")) for i in range(4)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(work) for _ in range(16)]
        pairs = [pair for future in futures for pair in future.result()]
    assert len(pairs) == 64
    assert len({sent for sent, _ in pairs}) == 16
    for index, (sent, text) in enumerate(pairs):
        assert text == sent
        marker = f"{tag}-{sent}-{index % 4}"
        assert [run["x-run-id"] for run in seen_for(server, marker)] == [sent]


@pytest.mark.parametrize("package", ["httpx2", "httpx"])
def test_one_shared_sync_openai_client_in_16_threads(server: LocalServer, package: str) -> None:
    with sync_openai(server, package, max_retries=0) as llm:
        in_16_threads(server, f"thread-openai-{package}", lambda prompt: ask_openai(llm, prompt))


def test_one_shared_sync_anthropic_client_in_16_threads(server: LocalServer) -> None:
    with sync_anthropic(server, max_retries=0) as llm:
        in_16_threads(server, "thread-claude", lambda prompt: ask_anthropic(llm, prompt))


@pytest.mark.parametrize("package", ["httpx2", "httpx"])
async def test_200_concurrent_runs_on_one_shared_async_openai_client(
    server: LocalServer, package: str
) -> None:
    runs = 200  # as many as the issue asks of every async client
    if package == "httpx2":
        client: Any = httpx2.AsyncClient(transport=agent_run_id.httpx2.AsyncRunIdTransport())
    else:
        client = httpx.AsyncClient(transport=agent_run_id.httpx.AsyncRunIdTransport())
    llm = openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="dummy", http_client=client, max_retries=0
    )

    async def call() -> tuple[str, str | None]:
        async with RunContext() as run:
            marker = f"async-openai-{package}-{run.run_id.value}"
            await asyncio.sleep(0)  # let the other runs start before this call goes out
            completion = await llm.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": marker}]
            )
            return run.run_id.value, completion.choices[0].message.content

    async with llm:
        pairs = await asyncio.gather(*(call() for _ in range(runs)))
    assert len({sent for sent, _ in pairs}) == runs
    for sent, text in pairs:
        assert text == sent
        seen = seen_for(server, f"async-openai-{package}-{sent}")
        assert [run["x-run-id"] for run in seen] == [sent]


async def test_200_concurrent_runs_on_one_shared_async_anthropic_client(
    server: LocalServer,
) -> None:
    client = httpx2.AsyncClient(transport=agent_run_id.httpx2.AsyncRunIdTransport())
    llm = anthropic.AsyncAnthropic(
        base_url=server.url, api_key="dummy", http_client=client, max_retries=0
    )

    async def call() -> tuple[str, str]:
        async with RunContext() as run:
            marker = f"async-claude-{run.run_id.value}"
            await asyncio.sleep(0)
            message = await llm.messages.create(
                model="fake", max_tokens=16, messages=[{"role": "user", "content": marker}]
            )
            block = message.content[0]
            assert block.type == "text"
            return run.run_id.value, block.text

    async with llm:
        pairs = await asyncio.gather(*(call() for _ in range(200)))
    assert len({sent for sent, _ in pairs}) == 200
    for sent, text in pairs:
        assert text == sent
        assert [run["x-run-id"] for run in seen_for(server, f"async-claude-{sent}")] == [sent]


async def test_an_instrumented_sdk_owned_client_sends_the_run(server: LocalServer) -> None:
    """instrument() on the client an SDK made itself, reached through the SDK's own attribute."""
    llm = anthropic.AsyncAnthropic(base_url=server.url, api_key="dummy", max_retries=0)
    agent_run_id.httpx2.instrument(llm._client, hosts=("127.0.0.1",))
    async with llm, RunContext(CHILD):
        message = await llm.messages.create(
            model="fake", max_tokens=16, messages=[{"role": "user", "content": "sdk-owned"}]
        )
    block = message.content[0]
    assert block.type == "text"
    assert block.text == CHILD.value


def facts_for(server: LocalServer, marker: str) -> list[dict[str, str | None]]:
    return [facts for _, seen_marker, facts in server.facts if seen_marker == marker]


@pytest.mark.parametrize("package", ["httpx2", "httpx"])
def test_openai_sends_the_session_and_the_user_only_when_opted_in(
    server: LocalServer, package: str
) -> None:
    with (
        sync_openai(server, package, max_retries=0) as llm,
        RunContext(CHILD, session_id="chat-42", user_id="user-7"),
    ):
        assert ask_openai(llm, f"session-{package}") == CHILD.value
        agent_run_id.annotate(session_id="chat-43")
        ask_openai(llm, f"annotated-{package}")
    assert facts_for(server, f"session-{package}") == [
        {"x-session-id": "chat-42", "x-user-id": None}
    ]
    assert facts_for(server, f"annotated-{package}") == [
        {"x-session-id": "chat-43", "x-user-id": None}
    ]
    http: Any = httpx2 if package == "httpx2" else httpx
    ours: Any = agent_run_id.httpx2 if package == "httpx2" else agent_run_id.httpx
    client = http.Client(transport=ours.RunIdTransport(hosts=("127.0.0.1",), send_user=True))
    opted = openai.OpenAI(base_url=f"{server.url}/v1", api_key="d", http_client=client)
    with opted, RunContext(ROOT, session_id="chat-42", user_id="user-7"):
        ask_openai(opted, f"opted-in-{package}")
    assert facts_for(server, f"opted-in-{package}") == [
        {"x-session-id": "chat-42", "x-user-id": "user-7"}
    ]


async def test_anthropic_async_sends_each_runs_own_session_in_200_concurrent_runs(
    server: LocalServer,
) -> None:
    client = httpx2.AsyncClient(transport=agent_run_id.httpx2.AsyncRunIdTransport())
    llm = anthropic.AsyncAnthropic(
        base_url=server.url, api_key="dummy", http_client=client, max_retries=0
    )

    async def call(i: int) -> str:
        async with RunContext(session_id=f"chat-{i}") as run:
            marker = f"claude-session-{run.run_id.value}"
            await asyncio.sleep(0)
            await llm.messages.create(
                model="fake", max_tokens=16, messages=[{"role": "user", "content": marker}]
            )
            return marker

    async with llm:
        markers = await asyncio.gather(*(call(i) for i in range(200)))
    for i, marker in enumerate(markers):
        assert facts_for(server, marker) == [{"x-session-id": f"chat-{i}", "x-user-id": None}]
