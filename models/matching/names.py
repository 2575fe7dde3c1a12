"""Names: capitalised phrases ("New York City", "Treaty of Tordesillas", "Washington
D.C."), places written with their region ("Boston, MA", "Tokyo, Japan"), and whether a
value is a US state or a country.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.tables import (
    ABBREVIATIONS,
    AMBIGUOUS_UNITS,
    COUNTRIES,
    LEADING_VERBS,
    NAME_JOINERS,
    PLACE_HEADS,
    STOPWORDS,
    US_STATES,
)
from bulwark.models.matching.units import unit_of

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request

_GEO_HEAD = re.compile(r"\s+(?:" + "|".join(PLACE_HEADS) + r")\b")
"""Lower-case words that end a place name ("Amazon rainforest", "Mississippi river")."""
_VERSION = re.compile(r"\s\d{1,4}(?=\s*(?:$|[,.?!;)]|\s(?:and|or|with|in|on|for|from|to)\b))")
"""A number that ends a name: "Windows 10", "S&P 500"."""
_NAME_TOKEN = re.compile(r"[A-Za-z][\w'’.&+#♯-]*")


def is_region(value: str) -> bool:
    """A US state (name or code), "D.C." or a country."""
    v = value.strip()
    low = v.lower().replace(".", "")
    return (
        bool(re.fullmatch(r"[A-Z]{2}", v))
        or low in ("dc", "usa", "us", "uk")
        or low.replace(" ", "_") in US_STATES
        or low in COUNTRIES
    )


def add_names(request: Request) -> None:
    """Capitalised phrases ("New York City", "Treaty of Tordesillas", "Washington D.C.")."""
    tokens = list(_NAME_TOKEN.finditer(request.masked))
    starts = {0} | {m.end() for m in re.finditer(r"[.!?:]\s+|^\s*", request.masked)}
    i = 0
    while i < len(tokens):
        if not _is_name_token(request, tokens[i], starts):
            i += 1
            continue
        j = i
        while j + 1 < len(tokens):
            gap = request.text[tokens[j].end() : tokens[j + 1].start()]
            nxt = tokens[j + 1]
            if tokens[j].group().endswith(".") and (
                not _keeps_period(tokens[j].group()) or nxt.group().lower() in LEADING_VERBS
            ):
                break
            if gap.strip() == "" and _is_name_token(request, nxt, set()):
                j += 1
            elif (
                gap.strip() == ""
                and nxt.group().lower() in NAME_JOINERS
                and j + 2 < len(tokens)
                and request.text[nxt.end() : tokens[j + 2].start()].strip() == ""
                and _is_name_token(request, tokens[j + 2], set())
            ):
                j += 2
            else:
                break
        start, end = tokens[i].start(), tokens[j].end()
        head = _GEO_HEAD.match(request.masked, end) or _VERSION.match(request.text, end)
        if head:
            end = head.end()
        value = request.text[start:end]
        value = re.sub(r"['’]s$", "", value)
        if value.endswith(".") and not _keeps_period(value):
            value = value[:-1]
        request.add(Candidate(value, start, start + len(value), "name"))
        i = j + 1


def add_places(request: Request) -> None:
    """ "Boston, MA" and "Tokyo, Japan": a name, a comma and a region or country name
    also make one candidate (both parts stay candidates too)."""
    names = request.of_kind("name")
    for a, b in itertools.pairwise(names):
        if re.fullmatch(r",\s*", request.text[a.end : b.start]) and is_region(b.value):
            request.candidates.append(
                Candidate(f"{a.value}, {b.value}", a.start, b.end, "name", roles={"place"})
            )


def _is_name_token(request: Request, m: re.Match[str], sentence_starts: set[int]) -> bool:
    tok = m.group()
    if not tok[0].isupper():
        return False
    if m.start() in sentence_starts and not tok.isupper():
        # A request's first word is capitalised anyway: a name only if one follows.
        follower = re.match(r"\s+([A-Z])", request.text[m.end() :])
        if not follower:
            return False
    low = re.sub(r"['’]s$", "", tok.lower()).rstrip(".")
    if unit_of(low) and low not in AMBIGUOUS_UNITS and len(low) > 2:
        return False
    if low in ("id", "ids", "no", "nos"):
        return False  # "building Id B1004": a label, not a name
    if low == "the" and tok == "The":
        follower = re.match(r"\s+([A-Z])", request.text[m.end() :])
        return bool(follower) and m.start() not in sentence_starts
    if m.start() in sentence_starts and (low in LEADING_VERBS or low in STOPWORDS):
        return False
    return low not in STOPWORDS or (tok.isupper() and len(tok) > 1 and low not in {"i"})


def _keeps_period(value: str) -> bool:
    last = value.split()[-1]
    core = last.rstrip(".")
    return "." in core or core.lower() in ABBREVIATIONS or (len(core) == 1 and core.isupper())
