"""Evaluations of Bulwark (tool calling on BFCL, ...)."""
