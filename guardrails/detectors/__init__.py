"""Offline detectors the rails call: each looks at one text and reports what it finds.

They are plain functions of a string with no I/O, so they run in microseconds to a few
milliseconds and are unit-tested directly; the NeMo actions in ``guardrails/config``
wrap them into verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulwark.graphs.state import Severity


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found in a text."""

    reason: str
    """Machine-readable reason, e.g. ``prompt_injection``, ``pii:EMAIL``, ``toxicity``."""
    severity: Severity
    """``high`` blocks; ``medium`` and ``low`` sanitize or flag."""
    start: int | None = None
    """Start offset of the offending span, when the finding has one."""
    end: int | None = None
    """End offset (exclusive) of the offending span."""
