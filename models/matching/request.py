"""A user request taken apart into candidate values (:class:`Request`).

Finders run most specific first, each hiding what it found from the next (quoted strings,
contacts, formulas, lists, dates, identifiers, ranges, quantities, currencies, names,
colours, units, then plain phrases); the finders live in the modules named after what
they find. Every candidate then gets the words around it, which is what announces which
parameter it is for.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.dates import add_dates_and_times
from bulwark.models.matching.literals import (
    add_colors,
    add_contacts,
    add_currencies,
    add_formulas,
    add_identifiers,
    add_lists,
    add_quoted,
)
from bulwark.models.matching.names import add_names, add_places
from bulwark.models.matching.numbers import add_number_lists, add_quantities, add_ranges
from bulwark.models.matching.phrases import add_hyphen_modifiers, add_phrases
from bulwark.models.matching.tables import ALL_ROLE_PREPS, PREPOSITIONS
from bulwark.models.matching.text import words, words_between
from bulwark.models.matching.units import add_units

_CLAUSE_BREAK = re.compile(r"[,;:!?()\[\]]|(?<![\s.][A-Za-z])\.(?=\s|$)")
_CONTEXT_CHARS = 80
"""How far around a value its context words are looked for."""


def _unwrap(text: str) -> str:
    """The request without quotes that wrap all of it."""
    t = text.strip()
    if len(t) > 2 and t[0] == t[-1] and t[0] in "'\"" and t.count(t[0]) == 2:
        return t[1:-1].strip()
    return t


class Request:
    """A user request taken apart into candidate values (see :class:`Candidate`)."""

    def __init__(self, text: str) -> None:
        self.text = _unwrap(text)
        self.candidates: list[Candidate] = []
        self._bounds_key: tuple[int, int] = (-1, 0)
        self._ends: list[int] = []
        self._starts: list[int] = []
        self.masked = self.text
        """The text with what the finders took so far blanked out (offsets still hold)."""
        add_quoted(self)
        add_contacts(self)
        add_formulas(self)
        add_lists(self)
        add_dates_and_times(self)
        add_identifiers(self)
        add_ranges(self)
        add_quantities(self)
        add_number_lists(self)
        add_currencies(self)
        add_names(self)
        add_places(self)
        add_colors(self)
        add_units(self)
        self._set_contexts()
        add_phrases(self)
        add_hyphen_modifiers(self)

    def add(self, cand: Candidate, *, hide: bool = True) -> Candidate:
        """Keep ``cand``; unless ``hide`` is false, blank its text out for the next finders."""
        self.candidates.append(cand)
        if hide:
            self.hide(cand.start, cand.end)
        return cand

    def hide(self, start: int, end: int) -> None:
        """Blank ``text[start:end]`` out of :attr:`masked`."""
        self.masked = self.masked[:start] + " " * (end - start) + self.masked[end:]

    def of_kind(self, *kinds: str) -> list[Candidate]:
        """Candidates of the given kinds, in order of appearance."""
        return sorted((c for c in self.candidates if c.kind in kinds), key=lambda c: c.start)

    # -- contexts

    def _set_contexts(self) -> None:
        for cand in self.candidates:
            if not cand.left:
                self.context(cand)
        self._pair_roles()

    def _pair_roles(self) -> None:
        """ "between A and B" makes A a start and B an end; in ``'key': 'value'`` the key
        announces the value."""
        ordered = sorted(
            (c for c in self.candidates if c.kind not in ("phrase", "unit")), key=lambda c: c.start
        )
        self.mark_pairs([c for c in ordered if c.kind in ("name", "quoted")])
        starts = [c.start for c in ordered]
        for a in ordered:
            for b in ordered[bisect.bisect_left(starts, a.end) :]:
                if b.start - a.end > 40:
                    break
                gap = self.text[a.end : b.start]
                if a.left[-1:] == ("between",) and re.fullmatch(r"\s*,?\s*and\s*", gap):
                    a.roles.add("from")
                    b.roles.add("to")
                if a.kind in ("quoted", "ident", "name") and re.fullmatch(r"\s*[:=]\s*", gap):
                    b.left = (*words(str(a.value)), ":")
                if re.fullmatch(r"\s*,?\s*and\s*", gap) and a.kind == b.kind:
                    self._respectively(a, b)

    def mark_pairs(self, ordered: Sequence[Candidate]) -> None:
        """ "a human and a chimp": the first and second of a pair (for ``species1/2``)."""
        for a, b in itertools.pairwise(ordered):
            gap = self.text[a.end : b.start]
            if a.kind == b.kind and re.fullmatch(r"\s*,?\s+and\s+(?:(?:an?|the)\s+)?", gap):
                a.roles.add("first")
                b.roles.add("second")

    def _respectively(self, a: Candidate, b: Candidate) -> None:
        """ "base and height as 6 and 10": each value is announced by its own word."""
        m = re.search(
            r"\b([A-Za-z]+)\s+and\s+([A-Za-z]+)\s+(?:as|are|is|of|were|be|equal to|=|:)\s*$",
            self.text[: a.start],
        )
        if m:
            a.left = (m.group(1).lower(), "of")
            b.left = (m.group(2).lower(), "of")

    def _bounds(self) -> tuple[list[int], list[int]]:
        """Sorted ends and starts of the values that end a context (cached)."""
        key = (len(self.candidates), id(self.candidates[-1]) if self.candidates else 0)
        if self._bounds_key != key:
            solid = [c for c in self.candidates if c.kind not in ("phrase", "unit")]
            self._ends = sorted(c.end for c in solid)
            self._starts = sorted(c.start for c in solid)
            self._bounds_key = key
        return self._ends, self._starts

    def context(self, cand: Candidate) -> None:
        """Words before (back to punctuation or another value) and after a candidate."""
        ends, starts = self._bounds()
        before = bisect.bisect_right(ends, cand.start)
        after_value = before > 0 and ends[before - 1] >= cand.start - _CONTEXT_CHARS
        lo = max(ends[before - 1] if before else 0, cand.start - _CONTEXT_CHARS, 0)
        for m in _CLAUSE_BREAK.finditer(self.text, lo, cand.start):
            apposition = m.group() in ",:" and self.text[m.start() - 1 : m.start()].isalpha()
            if apposition and not after_value:
                continue  # "a Tennis player, Serena Williams": the comma does not end it
            lo = max(lo, m.end())
            after_value = False
        left = words_between(self.text, lo, cand.start)
        if (
            after_value
            and len(left) >= 2
            and left[-1] in PREPOSITIONS | ALL_ROLE_PREPS | {"for"}
            and not set(left) & {"and", "of", "is", "=", "as", "with"}
        ):
            # "5% annual yield after 3 years": the words describe the previous value.
            left = left[-1:]
        elif after_value and "and" in left[1:]:
            # "180 hits and 600 at-bats": "hits" belongs to 180.
            left = left[len(left) - left[::-1].index("and") :]
        following = bisect.bisect_left(starts, cand.end)
        hi = min(
            starts[following] if following < len(starts) else len(self.text),
            cand.end + _CONTEXT_CHARS,
        )
        brk = _CLAUSE_BREAK.search(self.text, cand.end, hi)
        if brk:
            hi = brk.start()
        right = words_between(self.text, cand.end, hi)
        cand.left = tuple(left[-6:]) + cand.left
        cand.right = cand.right + tuple(right[:3])


def string_lists(request: Request) -> list[Candidate]:
    """Runs of names, quoted strings or phrases joined by commas / "and" as list candidates."""
    lists: list[Candidate] = []
    items = [c for c in request.of_kind("quoted", "name", "phrase", "ident") if not c.sub]
    lists += [
        Candidate([c.value], c.start, c.end, "name_list", left=c.left, right=c.right, parts=(c,))
        for c in request.of_kind("phrase")
        if c.sub
    ]
    run: list[Candidate] = []
    for item in [*items, None]:  # type: ignore[list-item]
        if (
            item is not None
            and run
            and re.fullmatch(
                r"\s*(?:,|,?\s*and|,?\s*or|&)\s*(?:(?:the|a|an)\s+)?",
                request.text[run[-1].end : item.start],
            )
            and item.kind == run[-1].kind
        ):
            run.append(item)
            continue
        if len(run) >= 2:
            lists.append(
                Candidate(
                    [c.value for c in run],
                    run[0].start,
                    run[-1].end,
                    "name_list",
                    left=run[0].left,
                    right=run[-1].right,
                    parts=tuple(run),
                )
            )
        if len(run) == 1:
            lists.append(
                Candidate(
                    [run[0].value],
                    run[0].start,
                    run[0].end,
                    "name_list",
                    left=run[0].left,
                    right=run[0].right,
                    parts=tuple(run),
                )
            )
        run = [item] if item is not None else []
    return lists
