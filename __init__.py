"""Bulwark: a production-grade agent framework on LangGraph.

The repository root is this package; each layer is a sub-package (see the README's
architecture section)::

    from bulwark.graphs.agent import build_agent
    from bulwark.settings import Settings
"""

__version__ = "0.1.0"
