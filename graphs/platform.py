"""The agent as the LangGraph server loads it (``langgraph.json``, ``bulwark serve``).

The server brings its own checkpointer and store, so the graph is compiled without them.
Settings come from the environment and ``.env`` when the server imports this module.
"""

from bulwark.graphs.agent import build_agent_graph
from bulwark.settings import load_settings

graph = build_agent_graph(load_settings()).compile(name="bulwark-agent")
