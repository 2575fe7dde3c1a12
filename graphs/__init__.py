"""Graph assembly: the agent graph, its state and runtime context."""
