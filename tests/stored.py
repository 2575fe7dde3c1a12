"""Read what a checkpointer holds for a thread, as the agent graph sees it.

The agent's ``messages`` channel is a DeltaChannel: a checkpoint's ``channel_values`` holds
no list, only the graph can rebuild it from the stored writes. A graph with the agent's
state schema does that without the agent's models, rails or tools.
"""

from __future__ import annotations

from langchain_core.messages import AnyMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph

from bulwark.graphs.state import AgentState


async def stored_messages(saver: BaseCheckpointSaver, thread_id: str) -> list[AnyMessage]:
    """The thread's latest messages in ``saver`` (empty for an unknown thread)."""
    graph = StateGraph(AgentState)
    graph.add_node("noop", lambda state: {})
    graph.add_edge(START, "noop")
    state = await graph.compile(checkpointer=saver).aget_state({"configurable": {"thread_id": thread_id}})
    return list(state.values.get("messages", []))
