"""The interface layer the LangGraph server loads besides the graph.

Authentication and authorization (``auth.py``, ``credentials.py``), and the health and
readiness routes (``routes.py``).
"""
