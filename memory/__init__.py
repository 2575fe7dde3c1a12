"""Memory: the Qdrant-backed LangGraph store, embedders, memory layers and the knowledge base."""
