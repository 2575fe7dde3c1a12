"""Tools the agent can call: the built-in set and (later) the registry around them."""

from bulwark.tools.builtin import builtin_tools

__all__ = ["builtin_tools"]
