"""The agent graph's nodes, one module per node (see ``bulwark.graphs.agent`` for the wiring)."""
