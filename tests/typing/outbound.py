"""The outbound wrappers used exactly as docs/outbound.md shows them; checked by mypy --strict."""

from __future__ import annotations

import aiohttp
import anthropic
import httpx
import httpx2
import openai
import requests

from agent_run_id import RunContext
from agent_run_id.aiohttp import trace_config
from agent_run_id.httpx import AsyncRunIdTransport, RunIdTransport, instrument
from agent_run_id.httpx2 import AsyncRunIdTransport as AsyncRunIdTransport2
from agent_run_id.httpx2 import RunIdTransport as RunIdTransport2
from agent_run_id.httpx2 import instrument as instrument2
from agent_run_id.requests import RunIdAdapter
from agent_run_id.requests import instrument as instrument_session


def sync_clients() -> None:
    client: httpx.Client = httpx.Client(transport=RunIdTransport(hosts=("api.openai.com",)))
    wrapped: httpx.BaseTransport = RunIdTransport(httpx.HTTPTransport(retries=2))
    client = instrument(httpx.Client(), hosts=("*.example.com",))
    llm = openai.OpenAI(api_key="k", http_client=httpx2.Client(transport=RunIdTransport2()))
    claude = anthropic.Anthropic(
        api_key="k", http_client=httpx2.Client(transport=RunIdTransport2())
    )
    client2: httpx2.Client = instrument2(httpx2.Client())
    session: requests.Session = instrument_session(requests.Session(), hosts=("tools.example.com",))
    session.mount("https://", RunIdAdapter(max_retries=3, hosts=("*.example.com",)))
    with RunContext():
        client.get("https://api.example.com/")
    del wrapped, llm, claude, client2


async def async_clients() -> None:
    client = httpx.AsyncClient(transport=AsyncRunIdTransport(hosts=("*.example.com",)))
    client = instrument(client)
    llm = openai.AsyncOpenAI(
        api_key="k", http_client=httpx2.AsyncClient(transport=AsyncRunIdTransport2())
    )
    claude = anthropic.AsyncAnthropic(
        api_key="k", http_client=httpx2.AsyncClient(transport=AsyncRunIdTransport2())
    )
    config = trace_config(hosts=("*.example.com",))
    async with aiohttp.ClientSession(trace_configs=[config]) as session, RunContext():
        await session.get("https://api.example.com/")
    del llm, claude


def lifecycle() -> None:
    with RunIdTransport() as transport:
        kept: RunIdTransport = transport
    del kept


def user_opt_in() -> None:
    internal = httpx.Client(
        transport=RunIdTransport(hosts=("*.internal.example.com",), send_user=True)
    )
    session = instrument_session(requests.Session(), send_user=True)
    config = trace_config(send_user=True)
    with RunContext(session_id="chat-42", user_id="user-7"):
        internal.get("https://tools.internal.example.com/")
    del session, config
