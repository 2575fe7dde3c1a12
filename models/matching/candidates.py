"""A candidate value: one piece of a request (a number with its unit, a date, a name, a
phrase...) with where it is and the words around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Candidate:
    """A value found in the request, with where it is and the words around it."""

    value: Any
    start: int
    end: int
    kind: str
    """quantity, list, range, date, time, name, ident, quoted, phrase, color, currency,
    unit or email/timezone/expression."""
    unit: str = ""
    """Canonical unit of a quantity ("meter"), or ``""``."""
    money: bool = False
    percent: bool = False
    integral: bool = True
    weak: bool = False
    """A number word that is often not a number ("second", "single")."""
    raw_unit: str = ""
    left: tuple[str, ...] = ()
    """Words before the value, nearest last (stops at punctuation or another value)."""
    right: tuple[str, ...] = ()
    """Words after the value, nearest first."""
    parts: tuple[Candidate, ...] = ()
    """The quantities a list or range is made of."""
    date: tuple[int | None, int | None, int | None] | None = None
    """(year, month, day) of a date."""
    roles: set[str] = field(default_factory=set)
    """Roles the sentence gives the value beyond a preposition ("between A and B")."""
    word: bool = False
    """A number written as a word ("five")."""
    attached: bool = False
    """A unit written right after a number (``5 km``), not asked for ("in km")."""
    sub: bool = False
    """Part of a longer phrase (a modifier, an "X of Y" join): not an item of a list."""
