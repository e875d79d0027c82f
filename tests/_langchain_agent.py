"""A LangGraph agent for the tests: a fake chat model that calls two tools, one of which fails.

Real LangChain and LangGraph parts, no network: ``GenericFakeChatModel`` answers with a message
calling ``search`` and ``hotels`` at once (LangGraph's ``ToolNode`` runs them in parallel: in
threads for ``invoke``, in tasks for ``ainvoke``), then with its final answer. ``hotels`` raises
``TimeoutError``; the node turns it into an error message for the model, as agents do.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import StructuredTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

log = logging.getLogger("tests.langchain.tools")


@tool
def search(query: str) -> str:
    """Search the web for ``query``."""
    log.info("searching %s", query)
    return f"results for {query}"


def _hotels(city: str) -> str:
    log.info("looking for hotels in %s", city)
    raise TimeoutError(f"hotel API timed out for {city}")


async def _ahotels(city: str) -> str:
    log.info("looking for hotels in %s", city)
    raise TimeoutError(f"hotel API timed out for {city}")


#: A tool that fails, sync and async alike.
hotels = StructuredTool.from_function(
    func=_hotels, coroutine=_ahotels, name="hotels", description="Find hotels in a city."
)


def build_agent(tag: str) -> Any:
    """Return a compiled graph whose model calls ``search(tag)`` and ``hotels(tag)``, then ends."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "search", "args": {"query": tag}, "id": f"{tag}-1"},
                        {"name": "hotels", "args": {"city": tag}, "id": f"{tag}-2"},
                    ],
                ),
                AIMessage(content=f"done {tag}"),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", RunnableLambda(agent, afunc=aagent, name="call_model"))
    graph.add_node("tools", ToolNode([search, hotels], handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()
