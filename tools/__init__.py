"""Tools the agent can call: the registry (validation, policies, breakers) and the built-ins."""

from bulwark.tools.builtin import builtin_registry, builtin_tools
from bulwark.tools.policy import ToolPolicy
from bulwark.tools.registry import ToolRegistry

__all__ = ["ToolPolicy", "ToolRegistry", "builtin_registry", "builtin_tools"]
