"""Guardrails: NeMo Guardrails rails (config in ``guardrails/config``) over fast offline detectors."""
