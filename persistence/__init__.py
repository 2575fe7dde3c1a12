"""Infrastructure: checkpointers, stores and the audit log."""
