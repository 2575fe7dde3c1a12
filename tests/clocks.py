"""A clock for tests: breakers, TTLs and rate limits are tested without sleeping."""

from __future__ import annotations


class ManualClock:
    """Seconds that move only when told: ``clock()`` reads, ``clock.advance(s)`` moves."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
