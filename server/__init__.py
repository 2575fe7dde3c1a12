"""The interface layer the LangGraph server loads: authentication and authorization."""
