"""Infrastructure for observing Bulwark: log hygiene (and, later, traces and metrics)."""
