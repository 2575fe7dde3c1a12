"""The reference tables of the matching rules, loaded once, at import, from ``data/``.

Word lists are ``data/<name>.txt`` files (one entry a line); mappings are
``data/<name>.json``. ``data/README.md`` says what each file holds. The rules that use a
table live in the modules of this package; only the loading is here.
"""

from __future__ import annotations

import json
import os
from typing import Any

_DATA = os.path.join(os.path.dirname(__file__), "data")


def _read(file: str) -> str:
    # Plain binary reads: some 40 files are read at import, and pathlib's text reads
    # would cost about a millisecond more.
    with open(os.path.join(_DATA, file), "rb") as f:
        return f.read().decode("utf-8")


def _lines(name: str) -> tuple[str, ...]:
    """The non-empty lines of ``data/<name>.txt``, in file order."""
    return tuple(line for line in _read(f"{name}.txt").split("\n") if line)


def _words(name: str) -> frozenset[str]:
    return frozenset(_lines(name))


def _json(name: str) -> Any:
    return json.loads(_read(f"{name}.json"))


# ----------------------------------------------------------------- words of a text

STOPWORDS: frozenset[str] = _words("stopwords")
"""Words that carry no signal for tool choice."""
CONNECTORS: frozenset[str] = _words("connectors")
"""Extra words trimmed from the edges of a free-text argument."""
SUFFIXES: tuple[str, ...] = _lines("suffixes")
"""Suffixes the stemmer strips, tried in this order."""
IRREGULAR: dict[str, str] = _json("irregular_plurals")
CONCEPT_WORDS: dict[str, list[str]] = _json("concepts")
"""Concept name -> its synonyms (before stemming)."""
WEAK_SYNONYM_WORDS: frozenset[str] = _words("weak_synonyms")
"""Synonyms too common to pick a tool alone (before stemming)."""
TIMEZONE_AREAS: tuple[str, ...] = _lines("timezone_areas")
"""First parts of IANA zone names ("America" in ``America/New_York``)."""

# ------------------------------------------------------------------------ numbers

NUMBER_WORDS: dict[str, int] = _json("number_words")
"""Number words; "single"/"double"/"second"... only count where a number is expected."""
WEAK_NUMBER_WORDS: frozenset[str] = _words("weak_number_words")
"""Number words that are more often something else ("a second opinion")."""
PER_YEAR: dict[str, int] = _json("frequency_words")
"""How often a year a frequency adverb means ("compounded quarterly": 4)."""
SCALES: dict[str, float] = _json("scale_words")

# -------------------------------------------------------------------------- units

_UNIT_TABLE: dict[str, dict[str, Any]] = _json("units")
UNITS: dict[str, tuple[str, float]] = {
    canonical: (entry["dimension"], entry["factor"]) for canonical, entry in _UNIT_TABLE.items()
}
"""Canonical unit -> (dimension, factor to the dimension's base unit)."""
UNIT_ALIASES: dict[str, str] = {
    form: canonical for canonical, entry in _UNIT_TABLE.items() for form in entry["forms"]
}
"""Surface form ("km", "metres") -> canonical unit."""
AMBIGUOUS_UNITS: frozenset[str] = _words("ambiguous_units")
"""Unit symbols that are also ordinary words or letters: trusted only when attached to a
number ("5s") or when the slot's description names that unit."""

# ------------------------------------------------------------ words of parameters

MONEY_CUE_WORDS: frozenset[str] = _words("money_cues")
"""Parameter words that ask for an amount of money (before stemming)."""
PERCENT_CUE_WORDS: frozenset[str] = _words("percent_cues")
"""Parameter words that ask for a rate or percentage (before stemming)."""
GENERIC_DESCRIPTION_WORDS: frozenset[str] = _words("generic_description_words")
"""Description words that don't tell one argument from another."""
NAME_SYNONYMS: dict[str, list[str]] = _json("parameter_synonyms")
"""Words that announce an argument besides its own name (``speed of 10`` -> velocity)."""
ROLES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    role: (frozenset(entry["carriers"]), frozenset(entry["prepositions"]))
    for role, entry in _json("roles").items()
}
"""Role -> (parameter words that carry it, prepositions that announce its value)."""
ALL_ROLE_PREPS: frozenset[str] = frozenset().union(*(p for _, p in ROLES.values()))
FREE_TEXT_NAMES: tuple[str, ...] = _lines("free_text_names")
"""Names of free-text parameters, the preferred first."""
FREE_TEXT_WORDS: frozenset[str] = _words("free_text_words")
"""Parameter words of a query, message or text."""
ID_WORDS: frozenset[str] = _words("identifier_words")
"""Parameter words of an identifier, code or path."""
BOOL_PREFIXES: frozenset[str] = _words("flag_prefixes")
"""Words of a flag's name that don't say what it is about ("include" in include_tax)."""
NAME_FILLERS: frozenset[str] = _words("name_fillers")
"""Words of a parameter name that announce nothing ("number_of_rolls")."""
DURATION_WORDS: frozenset[str] = _words("duration_words")
NAME_SLOT_WORDS: frozenset[str] = _words("name_slot_words")
"""Parameter words that ask for a name."""

# ---------------------------------------------------------------- words of requests

LEADING_VERBS: frozenset[str] = _words("leading_verbs")
"""Words that start a request and are capitalised only because they come first."""
PREPOSITIONS: frozenset[str] = _words("prepositions")
"""Words that end a noun phrase."""
NEGATIONS: frozenset[str] = _words("negations")
NAME_JOINERS: frozenset[str] = _words("name_joiners")
"""Lower-case words inside a name ("Treaty of Tordesillas")."""
ABBREVIATIONS: frozenset[str] = _words("abbreviations")
"""Abbreviations whose period does not end a name ("St.", "Dr.")."""
PLACE_HEADS: tuple[str, ...] = _lines("place_heads")
"""Lower-case words that end a place name ("Amazon rainforest"), as regex alternatives."""
FILE_EXTENSIONS: tuple[str, ...] = _lines("file_extensions")
"""File name extensions that make a token an identifier, as regex alternatives."""
MONTHS: dict[str, int] = _json("months")
"""Month names and abbreviations -> month number."""
COLORS: frozenset[str] = _words("colors")
CURRENCIES: dict[str, str] = _json("currencies")
"""Currency names and codes (lower case) -> ISO code."""

# ------------------------------------------------------------------------- places

US_STATES: dict[str, str] = _json("us_states")
"""US state names (lower case, ``_`` for spaces) -> postal code."""
COUNTRIES: frozenset[str] = _words("countries")
"""Country names (lower case), to tell "Tokyo, Japan" from a list of two names."""
US_CITIES: dict[str, str] = {
    city: code for code, cities in _json("us_cities").items() for city in cities
}
"""Large US cities and their state codes, for slots that want "City, State"."""

# -------------------------------------------------------------------------- facts

QUESTION_SYNONYMS: dict[str, str] = _json("question_synonyms")
"""Question words -> the fact key they ask about ("called" -> name)."""
FACT_STOP: frozenset[str] = _words("fact_stopwords")
"""Words that say nothing about what a fact or a question is about."""
QUESTION_START: frozenset[str] = _words("question_words")
"""Words that start a question."""
PRONOUNS: dict[str, str] = _json("pronouns")
"""First-person words -> second-person ones."""
