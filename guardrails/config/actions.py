"""NeMo actions of the Bulwark rails: thin wrappers over :mod:`bulwark.guardrails.checks`.

``bulwark_policy`` is registered as an action parameter by
:class:`bulwark.guardrails.rails.Guardrails`, so the rails use the deployment's policy.
"""

from __future__ import annotations

from nemoguardrails.actions import action

from bulwark.guardrails.checks import RailPolicy, check_input, check_output


@action(name="bulwark_check_input")
async def bulwark_check_input(text: str, bulwark_policy: RailPolicy) -> dict:
    """Input rail: the verdict on a request and its sanitized text."""
    return check_input(text, bulwark_policy).as_dict()


@action(name="bulwark_check_output")
async def bulwark_check_output(
    text: str, bulwark_policy: RailPolicy, sources: list[str] | None = None
) -> dict:
    """Output rail: the verdict on an answer and the text to deliver."""
    return check_output(text, bulwark_policy, sources=sources or ()).as_dict()
