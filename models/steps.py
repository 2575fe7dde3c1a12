"""Sync and async twins written once: a generator yields the I/O it needs as :class:`Io`
(how to make the call both ways) and gets each result back, or the call's exception thrown
into it; :func:`drive` makes the calls synchronously, :func:`adrive` awaits them.

The answer cache's lookups and stores and the agent node's walk along the fallback chain are
written this way, so their sync (``invoke``) and async (``ainvoke``, the server) paths cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Io:
    """One call a step needs: how to make it, sync and async."""

    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


Steps = Generator[Io, Any, T]
"""Work written once: it yields the calls and gets their results back."""


def drive(steps: Steps[T]) -> T:
    """Run ``steps``, making each call synchronously."""
    try:
        io = next(steps)
        while True:
            try:
                result = io.run()
            except Exception as exc:  # noqa: BLE001 - handed to the steps, which decide
                io = steps.throw(exc)
            else:
                io = steps.send(result)
    except StopIteration as done:
        return done.value


async def adrive(steps: Steps[T]) -> T:
    """Run ``steps``, awaiting each call."""
    try:
        io = next(steps)
        while True:
            try:
                result = await io.arun()
            except Exception as exc:  # noqa: BLE001 - see drive
                io = steps.throw(exc)
            else:
                io = steps.send(result)
    except StopIteration as done:
        return done.value
