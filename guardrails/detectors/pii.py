"""Offline PII detection and redaction for the rails: regexes, checksums and small heuristics.

``find_pii`` reports ``PiiSpan``s for eight entity types (``ENTITIES``) and ``redact_pii``
replaces them with ``<ENTITY>`` placeholders.  The functions are pure (no I/O): a few
hundred microseconds for a 500-character message, a few milliseconds for 10 KB.

The word lists (given names, surnames, cue phrases, street types...) are data files,
``data/pii_*.txt`` and ``data/pii_*.json``, whose contents and sources are in
``data/README.md``; this module holds the logic.  They are read at import (about a
millisecond), but the regular expressions are compiled on first use and ``phonenumbers``
and ``stdnum`` are imported on first use: compiling the patterns took about 200 ms and
``import phonenumbers`` 150-300 ms, paid by every process that imported the rails,
``bulwark --help`` included.  :func:`preload` pays both up front (a server's start-up).

Why not Presidio's ``AnalyzerEngine``?  Its NLP engine needs a spaCy language model
(``en_core_web_lg``), which cannot be downloaded here (only PyPI is reachable, no model
hub), and even with the model an analysis costs milliseconds to tens of milliseconds, too
slow for a rail that runs on every message.  We do reuse the validation libraries that
Presidio's own recognizers rely on: Google's ``phonenumbers`` (possible/valid checks on
``+``-prefixed numbers) and ``python-stdnum`` (Luhn for cards, ISO 13616 mod-97 and the
per-country BBAN registry for IBANs).

Speed: a full regex pass costs tens of nanoseconds per character, so the digit-based
detectors do not each scan the text.  One pass finds the "numeric blobs" (digits and
separators) and the card/SSN/IPv4/phone regexes only run on the blobs with enough digits;
IBANs start at a blob preceded by two letters, emails at an ``@``, IPv6 at a ``:``, PO
boxes at "box", and names come from a single pass over runs of capitalised words.

How each entity is found:

* ``EMAIL``: RFC-ish local part, dotted domain, alphabetic TLD.
* ``CREDIT_CARD``: 13-19 digits (plain, or in 4-digit / Amex 4-6-5 groups), Luhn-valid.
  Without a card word nearby ("card", "cc", "visa"...) the issuer prefix must fit the
  length (a 13-digit epoch-milliseconds timestamp passes Luhn one time in ten); 12-digit
  Maestro numbers only with a card word.
* ``IBAN_CODE``: country code + 2 check digits + BBAN, with or without spaces, any case,
  validated by ``stdnum.iban`` (mod-97 and the country's BBAN format) -> score 1.0.  Two
  softer cases: mod-97 holds but the country/length is not in stdnum's registry (registries
  lag behind banks, and generators get formats wrong) -> 0.75-0.9 if the country code is a
  real one; the format is right but the check digits are wrong -> 0.6, only right after
  the word "IBAN" (a mistyped IBAN is still somebody's account number).
* ``US_SSN``: ``ddd-dd-dddd`` / ``ddd dd dddd`` with the SSA rules (area not 000, 666 or
  9xx, group not 00, serial not 0000); nine bare digits only after "SSN"/"social security".
* ``IP_ADDRESS``: dotted-quad IPv4 with octet ranges (not after "version"), IPv6 validated
  by ``ipaddress`` (with at least one digit, so ``a::b`` in code is not one).
* ``PHONE_NUMBER``: candidates with an optional ``+`` country code, ``(area)``, digit groups
  joined by one separator (or the mixed national styles "08-972 069 55", "06-27/181 2326")
  and an extension; then shape rules.  Strong shapes pass on their own: ``+`` prefix
  (``phonenumbers.is_possible_number``), ``(area)``, extension, North-American
  ``ddd-ddd-dddd``, a trunk ``0`` with three or more groups, or three or more groups of mixed
  sizes ("60-56-85-91", "416 60 039").  Weak shapes need a phone word within a few words
  ("call", "phone", "tel", "mobile", "fax", "desk", "office", "messages", ...): two groups
  ("467 3395"), bare digit runs, thousands-grouped quantities ("12 345 678"), lists of
  equal-width numbers ("85 90 78 92"), SSN-shaped strings.  Dates, year ranges, decimals
  and IPv4s are rejected, and identifier words ("order", "invoice", "licence"...) veto weak
  and medium shapes.
* ``PERSON`` (best effort): honorifics (``Dr. Kyle Kuefer``), cue phrases ("my name is",
  "call me", "Dear", "my son", "said", a "Name:" field), capitalised word runs with evidence
  of being a name (a built-in list of common given names across languages, a middle
  initial, a common surname or a typical surname ending, two accented words), enumerations
  of names, dialogue speaker labels, the name line on top of an address block, and later
  mentions of a name already found.  Place and organisation words ("Santa", "Inc",
  "Orchestra") veto a run; all-lowercase texts only get given-name and cue matches.
* ``STREET_ADDRESS`` (best effort): house number + street words + suffix (St, Road,
  Avenue, ...), continental forms with a street type ("Villacher Strasse 89", "Koskikatu
  25", "31 rue de Tanger", "Erzsébet tér 19."), number + name + number ("20789 Allika 46"),
  apartment/suite units next to a street or on their own line in a block, PO boxes and
  military (PSC/Unit ... APO/FPO/DPO) addresses, "the corner of X and Y", and any number +
  words right after an address cue ("lives at", "sent to", "address:").  An address is
  extended over the city/region/postcode that follows it on its line and on the next lines
  of an address block.

Overlaps are resolved once, across all entity types: the higher score wins, then the
longer span.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["ENTITIES", "PiiSpan", "find_pii", "preload", "redact_pii"]

ENTITIES: tuple[str, ...] = (
    "EMAIL",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "PERSON",
    "STREET_ADDRESS",
)
"""Entity types ``find_pii`` can report, and the placeholder names ``redact_pii`` uses."""


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """One piece of PII found in a text: ``text[start:end]`` is an ``entity``."""

    entity: str
    """One of ``ENTITIES``."""
    start: int
    """Start offset in the text."""
    end: int
    """End offset in the text (exclusive)."""
    score: float
    """Confidence in ``[0, 1]``; used to pick between overlapping candidates."""


# --------------------------------------------------------------------------------------
# Data files and lazily compiled patterns

_DATA = Path(__file__).with_name("data")


def _lines(file: str) -> tuple[str, ...]:
    """The non-empty lines of ``data/<file>``, in file order."""
    return tuple(line for line in (_DATA / file).read_text(encoding="utf-8").split("\n") if line)


def _table(file: str) -> dict[str, Any]:
    """The object in ``data/<file>`` (a JSON file)."""
    return json.loads((_DATA / file).read_text(encoding="utf-8"))


def _alternatives(words: Sequence[str]) -> str:
    """A non-capturing group of regex alternatives, tried in the given order."""
    return "(?:" + "|".join(words) + ")"


_COMPILERS: list[Callable[[], re.Pattern[str]]] = []


def _regex(source: str, flags: int = 0) -> Callable[[], re.Pattern[str]]:
    """``source`` compiled on the first call, then the same pattern on every call."""

    @cache
    def compiled() -> re.Pattern[str]:
        return re.compile(source, flags)

    _COMPILERS.append(compiled)
    return compiled


_NUMBER_CUES = _table("pii_number_cues.json")
_NAME_CUE_WORDS = _table("pii_name_cues.json")
_ADDRESS_WORDS = _table("pii_address_words.json")


# --------------------------------------------------------------------------------------
# Shared character classes.  ``re`` has no \p{Lu}, so the upper/lower-case letter classes
# (Latin with all its extensions, Greek, Cyrillic) are built once here.

def _char_class(pred: Callable[[str], bool]) -> str:
    ranges: list[tuple[int, int]] = []
    blocks = ((0x41, 0x24F), (0x370, 0x52F), (0x1E00, 0x1EFF))
    for lo, hi in blocks:
        for cp in range(lo, hi + 1):
            if pred(chr(cp)):
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )


_UP = _char_class(str.isupper)
_LO = _char_class(str.islower)
_U = f"[{_UP}]"
_L = f"[{_LO}]"
_A = f"[{_UP}{_LO}]"
# A capitalised word: "Smith", "O'Brien", "Jean-Luc", "DiCaprio", "Yefremova".
_CAP = rf"{_U}{_L}+(?:{_U}{_L}+)?(?:['’-]{_U}?{_L}+)*"
# Any letter word, any case (used for all-lowercase texts and street names).
_WORD = rf"{_A}[{_UP}{_LO}'’-]*"


def _window(text: str, start: int, end: int, before: int, after: int) -> str:
    return text[max(0, start - before) : start] + " " + text[end : end + after]


# --------------------------------------------------------------------------------------
# Numeric blobs.  Cards, SSNs, IPv4s, phones and house numbers are all made of digits and
# a few separators; one pass finds those stretches and the detailed regexes then only run
# on the few that have enough digits.  (A full regex pass costs ~20-50 ns per character,
# so running six of them over every text would dominate the budget.)

_blob_re = _regex(r"\d[\d \t.()\-/+x]*")
_BLOB_STRIP = " \t.(-/+x"


class _Blob(NamedTuple):
    start: int
    end: int  # after the last digit or ")"
    digits: int
    dots: int


def _numeric_blobs(text: str) -> list[_Blob]:
    out: list[_Blob] = []
    for m in _blob_re().finditer(text):
        start = m.start()
        s = m.group().rstrip(_BLOB_STRIP)
        if start and text[start - 1] in "+(":
            start -= 1  # "+44 20 ...", "(37) 788-063"
            s = text[start] + s
        out.append(_Blob(start, start + len(s), sum(map(str.isdigit, s)), s.count(".")))
    return out


# --------------------------------------------------------------------------------------
# EMAIL

_email_re = _regex(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)


_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _find_email(text: str) -> Iterator[PiiSpan]:
    # Anchor on each "@" and match from the start of its local part: much cheaper than a
    # regex pass over the whole text.
    at = text.find("@")
    last_end = 0
    while at != -1:
        start = at
        while start > last_end and text[start - 1] in _EMAIL_LOCAL_CHARS and at - start < 64:
            start -= 1
        while start < at and not text[start].isalnum():
            start += 1
        m = _email_re().match(text, start)
        if m:
            last_end = m.end()
            yield PiiSpan("EMAIL", m.start(), m.end(), 1.0)
        at = text.find("@", max(at + 1, last_end))


# --------------------------------------------------------------------------------------
# CREDIT_CARD

_card_re = _regex(
    r"(?<![\w+.,/-])(?:"
    r"\d{4}(?P<s1>[ -])\d{4}(?:(?P=s1)\d{4}){1,2}(?:(?P=s1)\d{1,4})?"  # 4-4-4-4(-3), 4-4-4(-1..4)
    r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|\d{12,19}"
    r")(?![\w]|[.,/-]?\d)"
)
_card_ctx_re = _regex(rf"\b{_alternatives(_NUMBER_CUES['card_words'])}\b", re.I)


def _plausible_iin(d: str) -> bool:
    """Issuer prefix consistent with the length (Visa, Mastercard, Amex, Discover, JCB,
    Diners, UnionPay, Maestro)."""
    n, first = len(d), d[0]
    if n == 13:
        return first == "4"
    if n == 14:
        return d[:2] in ("30", "36", "38", "39")
    if n == 15:
        return d[:2] in ("34", "37") or d[:4] in ("1800", "2131", "2014", "2149")
    return first in "3456" or 2221 <= int(d[:4]) <= 2720


def _find_card(text: str, blobs: list[_Blob]) -> Iterator[PiiSpan]:
    from stdnum import luhn

    for b in blobs:
        if b.digits < 12:
            continue
        for m in _card_re().finditer(text, b.start, b.end + 3):
            digits = re.sub(r"\D", "", m.group())
            n = len(digits)
            if n < 12 or n > 19 or len(set(digits)) == 1 or not luhn.is_valid(digits):
                continue
            ctx = bool(_card_ctx_re().search(_window(text, m.start(), m.end(), 60, 20)))
            # Without a card word, also ask for an issuer prefix that fits the length: a
            # 13-digit epoch-milliseconds timestamp passes Luhn one time in ten.
            if not ctx and (n == 12 or not _plausible_iin(digits)):
                continue
            yield PiiSpan("CREDIT_CARD", m.start(), m.end(), 1.0 if ctx else 0.85)


# --------------------------------------------------------------------------------------
# IBAN_CODE

_iban_re = _regex(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,32}")
_iban_ctx_re = _regex(r"\biban\b", re.I)


def _find_iban(text: str, blobs: list[_Blob]) -> Iterator[PiiSpan]:
    last_end = -1
    for b in blobs:
        # An IBAN's first blob is its two check digits, right after the country code.
        if b.start < 2 or b.start < last_end or not text[b.start - 2 : b.start].isascii() or not text[b.start - 2 : b.start].isalpha():
            continue
        m = _iban_re().match(text, b.start - 2)
        if not m:
            continue
        span = _iban_span(text, m)
        if span:
            last_end = span.end
            yield span


def _iban_span(text: str, m: re.Match[str]) -> PiiSpan | None:
    import phonenumbers
    from stdnum import iban
    from stdnum.exceptions import InvalidChecksum, ValidationError

    cand = m.group()
    ctx = bool(_iban_ctx_re().search(text, max(0, m.start() - 40), m.start()))
    # The regex is greedy and may swallow a following word ("... 32 to other"): try the
    # candidate ends at group boundaries from the longest down.
    ends = [e for e in range(len(cand), 14, -1) if e == len(cand) or cand[e] in " -"]
    mod97_only: PiiSpan | None = None
    for e in ends:
        sub = cand[:e]
        try:
            iban.validate(sub)
        except InvalidChecksum:
            # Right country, length and BBAN structure but wrong check digits: a mistyped
            # IBAN is still an account number, so report it (lower score) after "IBAN".
            if ctx and _iban_shape_ok(sub):
                return PiiSpan("IBAN_CODE", m.start(), m.start() + e, 0.6)
            continue
        except ValidationError:
            # mod-97 passed (stdnum checks it first) but the country is unknown to stdnum
            # or the BBAN does not fit its registry entry.  A 1-in-97 accident on an
            # IBAN-shaped string is unlikely, and registries lag behind banks (and
            # generators): keep it, with a lower score, if the country code is a real one.
            compact = iban.compact(sub)
            last_group = sub.replace("-", " ").rsplit(" ", 1)[-1]
            if (
                mod97_only is None
                and "-" not in sub
                and (ctx or sub[:2].isupper())
                and compact[:2] in phonenumbers.SUPPORTED_REGIONS
                and sum(c.isdigit() for c in compact) >= 10
                and not (" " in sub and last_group.isalpha())
            ):
                mod97_only = PiiSpan("IBAN_CODE", m.start(), m.start() + e, 0.9 if ctx else 0.75)
            continue
        return PiiSpan("IBAN_CODE", m.start(), m.start() + e, 1.0)
    return mod97_only


def _iban_shape_ok(cand: str) -> bool:
    """Country known, length and BBAN structure right; the check digits are not looked at.

    stdnum checks mod-97 before the structure, so recompute the check digits and validate
    the corrected number instead.
    """
    from stdnum import iban

    compact = iban.compact(cand)
    if not compact[:2].isalpha() or not compact.isalnum():
        return False
    body = compact[4:] + compact[:2] + "00"
    num = int("".join(str(int(c, 36)) for c in body))
    return iban.is_valid(compact[:2] + f"{98 - num % 97:02d}" + compact[4:])


# --------------------------------------------------------------------------------------
# US_SSN

_ssn_re = _regex(r"(?<![\w+.,/-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[.,/-]?\d)")
_ssn_ctx_re = _regex(rf"\b{_alternatives(_NUMBER_CUES['ssn_words'])}", re.I)


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def _find_ssn(text: str, blobs: list[_Blob]) -> Iterator[PiiSpan]:
    for b in blobs:
        if b.digits < 9:
            continue
        for m in _ssn_re().finditer(text, b.start, b.end + 3):
            area, sep, group, serial = m.groups()
            if not _ssn_valid(area, group, serial):
                continue
            ctx = bool(_ssn_ctx_re().search(text, max(0, m.start() - 50), m.start()))
            if sep == "-":
                score = 0.95 if ctx else 0.85
            elif sep == " ":
                score = 0.95 if ctx else 0.6
            else:  # nine bare digits: only with an SSN word in front
                if not ctx:
                    continue
                score = 0.9
            yield PiiSpan("US_SSN", m.start(), m.end(), score)


# --------------------------------------------------------------------------------------
# IP_ADDRESS

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_ipv4_re = _regex(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_ipv6_re = _regex(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:.]|\.\d)"
)
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_version_ctx_re = _regex(rf"\b{_alternatives(_NUMBER_CUES['version_words'])}\.?\s*$", re.I)


def _find_ip(text: str, blobs: list[_Blob]) -> Iterator[PiiSpan]:
    for b in blobs:
        if b.dots < 3 or b.digits < 4:
            continue
        for m in _ipv4_re().finditer(text, b.start, b.end + 3):
            if _version_ctx_re().search(text, max(0, m.start() - 12), m.start()):
                continue  # "version 1.2.3.4"
            yield PiiSpan("IP_ADDRESS", m.start(), m.end(), 0.95)
    # IPv6: expand each colon into the run of hex digits, colons and dots around it.
    i = text.find(":")
    while i != -1:
        start = i
        while start > 0 and text[start - 1] in _IPV6_CHARS:
            start -= 1
        end = i
        while end < len(text) and text[end] in _IPV6_CHARS:
            end += 1
        i = text.find(":", end)
        if text.count(":", start, end) < 2:
            continue
        for m in _ipv6_re().finditer(text, start, end):
            cand = m.group()
            if sum(1 for g in cand.split(":") if g) < 2 or not any(c.isdigit() for c in cand):
                continue  # "::", "a::b" (Rust/C++ paths) are not addresses worth flagging
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            yield PiiSpan("IP_ADDRESS", m.start(), m.end(), 0.95)


# --------------------------------------------------------------------------------------
# PHONE_NUMBER

_phone_re = _regex(
    r"(?<![\w+$€£¥/.-])(?<!\d,)"
    r"(?P<cc>\+[1-9]\d{0,2}[ .-]?)?"
    r"(?P<paren>\(\d{1,5}\)[ .-]?)?"
    r"(?P<body>\d{1,15}(?:(?P<sep>[ .-])\d{1,8}(?:(?P=sep)\d{1,8}){0,5})?)"
    r"(?P<ext>[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
    r"(?![\w%]|[.,/-]?\d)"
)
# National formats that mix separators: "08-972 069 55", "042 976-83-07", "06-27/181 2326",
# "(39)/867-7305".  Only tried where the consistent-separator regex above cannot read them.
_phone_mixed_re = _regex(
    r"(?<![\w+$€£¥/.-])(?<!\d,)"
    r"(?P<cc>\+[1-9]\d{0,2}[ .-]?)?"
    r"(?P<paren>\(\d{1,5}\)(?:[ .-]|[ ]?/[ ]?)?)?"
    r"(?P<body>\d{1,5}(?:(?:[ .-]|[ ]?/[ ]?)\d{1,8}){1,6})"
    r"(?P<ext>[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
    r"(?![\w%]|[.,/-]?\d)"
)
_non_digits_re = _regex(r"\D+")
_phone_ctx_re = _regex(rf"\b{_alternatives(_NUMBER_CUES['phone_words'])}\b", re.I)
# Identifier words that make a medium-shape number something else ("order 123-456-789").
_phone_neg_re = _regex(rf"\b{_alternatives(_NUMBER_CUES['identifier_words'])}\b", re.I)
_year_re = _regex(r"(?:1[89]|20)\d\d$")


def _looks_like_date(groups: list[str], sep: str) -> bool:
    if sep not in "-./" or len(groups) != 3:
        return False
    a, b, c = groups
    if len(a) == 4 and len(b) <= 2 and len(c) <= 2:  # yyyy-mm-dd
        return 1 <= int(b) <= 12 and 1 <= int(c) <= 31
    if len(c) == 4 and len(a) <= 2 and len(b) <= 2:  # dd-mm-yyyy or mm-dd-yyyy
        x, y = int(a), int(b)
        return (1 <= x <= 31 and 1 <= y <= 12) or (1 <= x <= 12 and 1 <= y <= 31)
    return False


def _mixed_phone(text: str, m: re.Match[str]) -> PiiSpan | None:
    """Judge a candidate that mixes separators ("08-972 069 55"); None when it does not."""
    import phonenumbers

    cc, paren, body, ext = m.group("cc"), m.group("paren"), m.group("body"), m.group("ext")
    seps = _non_digits_re().findall(body)
    if len(set(seps)) == 1 and "/" not in seps[0] and not (paren and paren[-1:] in "/."):
        return None  # consistent separators: the main regex handles it
    groups = _non_digits_re().split(body)
    ndig = sum(c.isdigit() for c in (cc or "") + (paren or "") + body)
    if not 7 <= ndig <= 15 or len(groups[0]) > 5:
        return None
    if len(groups) >= 3 and _looks_like_date(groups[:3], seps[0].strip() or "-") and seps[0] == seps[1]:
        return None  # "2024-01-15 10"
    trunk = body.startswith("0") or bool(paren) or bool(cc)
    if min(len(g) for g in groups[1:]) < (1 if trunk else 2):
        return None
    ctx = bool(_phone_ctx_re().search(_window(text, m.start(), m.end(), 35, 15)))
    if cc:
        try:
            parsed = phonenumbers.parse(text[m.start() : m.start("ext")] if ext else m.group(), None)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(parsed) and not ctx:
            return None
        score = 0.8
    elif trunk and ndig >= 8:
        score = 0.7
    elif ctx:
        score = 0.6
    else:
        return None
    if ctx:
        score += 0.1
    elif _phone_neg_re().search(text, max(0, m.start() - 30), m.start()):
        return None
    return PiiSpan("PHONE_NUMBER", m.start(), m.end(), score)


def _find_phone(text: str, blobs: list[_Blob]) -> list[PiiSpan]:
    found: list[PiiSpan] = []
    for b in blobs:
        if b.digits < 7:
            continue
        # The window reaches past the blob for a spelled-out extension ("ext. 12").
        for rx, judge in ((_phone_mixed_re(), _mixed_phone), (_phone_re(), _strict_phone)):
            for m in rx.finditer(text, b.start, b.end + 16):
                if m.start() >= b.end:
                    break
                span = judge(text, m)
                if span:
                    found.append(span)
    # A number read two ways ("08-972" and "08-972 069 55"): keep the whole one.
    kept: list[PiiSpan] = []
    for p in sorted(found, key=lambda p: (p.start - p.end, -p.score)):
        if not any(q.start <= p.start and p.end <= q.end for q in kept):
            kept.append(p)
    return kept


def _strict_phone(text: str, m: re.Match[str]) -> PiiSpan | None:
    """Judge a candidate whose digit groups share one separator."""
    import phonenumbers

    body, sep, cc, paren, ext = m.group("body"), m.group("sep"), m.group("cc"), m.group("paren"), m.group("ext")
    groups = body.split(sep) if sep else [body]
    ndig = sum(c.isdigit() for c in (cc or "") + (paren or "") + body)
    if ndig < 7 or ndig > 15:
        return None
    ctx = bool(_phone_ctx_re().search(_window(text, m.start(), m.end(), 35, 15)))
    if sep:
        if len(groups[0]) > 6:
            return None
        if sep == "." and len(groups) == 2 and not (cc or paren) and not ctx:
            return None  # a decimal number ("3.14159265"), unless it is "Call 8649.4171"
        if sep == "." and len(groups) == 4 and all(len(g) <= 3 and int(g) <= 255 for g in groups):
            return None  # an IPv4 address
        if _looks_like_date(groups, sep):
            return None
        if all(len(g) == 4 and _year_re().match(g) for g in groups):
            return None  # "1990-2000", "2010 2015 2020"
    lengths = [len(g) for g in groups]
    # North American "905-674-3793", "1-800-555-0199", "259.735.7502", "001-518-640-0854"
    nanp = sep is not None and lengths[-3:] == [3, 3, 4] and (len(groups) == 3 or (len(groups) == 4 and sep in "-."))
    if cc and cc.startswith("+"):
        try:
            parsed = phonenumbers.parse(m.group(0) if not ext else text[m.start() : m.start("ext")], None)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(parsed):
            if not ctx:
                return None
            score = 0.6
        else:
            score = 0.95 if phonenumbers.is_valid_number(parsed) else 0.85
    elif paren and ndig >= 8:
        score = 0.8
    elif ext and sep:
        score = 0.8
    elif nanp:
        score = 0.8
    elif sep and len(groups) >= 3 and groups[0].startswith("0") and ndig >= 9:
        score = 0.75  # national trunk prefix: "07700 063 966", "0490 75 40 81"
    elif sep and len(groups) >= 3 and (8 <= ndig <= 13 or ctx) and min(len(g) for g in groups[1:]) >= 2:
        ssn_shape = sep == "-" and lengths == [3, 2, 4]
        # "12 345 678" (a thousands-grouped quantity) or "85 90 78 92" (a list of numbers)
        thousands = sep in " ." and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3
        number_list = (sep == " " and len({len(g) for g in groups}) == 1) or (
            len(groups) >= 5 and len({len(g) for g in groups[1:]}) == 1
        )
        if ssn_shape or thousands or number_list:
            if not ctx:
                return None
            score = 0.6
        else:
            score = 0.65  # "60-56-85-91", "416 60 039", "21 284 698 2548"
    elif sep and len(groups) == 2 and min(len(g) for g in groups) >= 2:
        if not ctx:
            return None
        score = 0.6  # "467 3395", "9472 7916", "0961-7596216"
    elif not sep:
        if not ctx or ndig < 7:
            return None
        score = 0.6  # "Fax: 9498777106"
    else:
        return None
    if score < 0.8 and not ctx and _phone_neg_re().search(text, max(0, m.start() - 30), m.start()):
        return None
    if ctx:
        score = min(0.95, score + 0.1)
    return PiiSpan("PHONE_NUMBER", m.start(), m.end(), score)


def _fold(word: str) -> str:
    """Strip diacritics ("júlia" -> "julia") so accented spellings hit the name lists."""
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


# --------------------------------------------------------------------------------------
# PERSON (best effort).  Without an NER model a name needs evidence: a cue ("my name is",
# "Dr.", "Dear"), a known given name, a middle initial, a common or typically-shaped
# surname.  The name lists are general knowledge (common given names and surnames across
# languages), not taken from any evaluation data; the files hold them as written, and the
# unaccented spellings ("júlia" -> "julia") are added here.

_FIRST_NAMES = frozenset(_lines("pii_given_names.txt"))
# Given names that are also ordinary words or places: they only count in a "First Last"
# pair, never alone.
_AMBIGUOUS_NAMES = frozenset(_lines("pii_ambiguous_given_names.txt"))
_FIRST_NAMES = _FIRST_NAMES | {_fold(n) for n in _FIRST_NAMES}
_FIRST_NAMES_SOLO = _FIRST_NAMES - _AMBIGUOUS_NAMES
_FIRST_NAMES_ALL = _FIRST_NAMES | _AMBIGUOUS_NAMES
_SURNAMES = frozenset(_lines("pii_surnames.txt"))
_SURNAMES = _SURNAMES | {_fold(n) for n in _SURNAMES}
# Endings typical of surnames (Nordic, Slavic, Baltic, Greek, Japanese, Turkish, Spanish...).
_SURNAME_SUFFIXES = _lines("pii_surname_endings.txt")
# Sentence furniture: splits a run of capitalised words and never starts a name.
_SPLIT_WORDS = frozenset(_lines("pii_sentence_words.txt"))
# Words that make a run of capitalised words a place, an organisation, an event or a thing.
_KILL_WORDS = frozenset(_lines("pii_place_org_words.txt"))
_HONORIFICS = frozenset(_NAME_CUE_WORDS["honorifics"])
_RELATIONS = _NAME_CUE_WORDS["relations"]
_PERSON_NOUNS = _NAME_CUE_WORDS["person_nouns"]
_NAME_QUALIFIERS = _NAME_CUE_WORDS["name_qualifiers"]
# Cues after which the next capitalised word(s) are a name, even a word no list knows
# (compared on lower-cased words).  Generic ones ("name is", "called", "to add") are left
# out on purpose: "the file name is Config", "a library called Pandas".
_NAME_CUES = frozenset((
    *(f"{q} name is" for q in _NAME_QUALIFIERS), *(f"{q} name:" for q in _NAME_QUALIFIERS),
    *(f"{q} name?" for q in _NAME_QUALIFIERS), *_NAME_CUE_WORDS["cues"],
    *(f"{n} named" for n in _PERSON_NOUNS), *(f"{n} called" for n in _PERSON_NOUNS),
    *(f"my {r}" for r in _RELATIONS), *(f"my {r} is" for r in _RELATIONS), *(f"my {r}'s" for r in _RELATIONS),
))
# Weak cues: enough for a known given name (or, after "I'm", a two-word name), not for any
# single capitalised word ("User: Write a poem", "This is Python").
_WEAK_CUES = frozenset(_NAME_CUE_WORDS["weak_cues"])
_SELF_INTRO = frozenset(_NAME_CUE_WORDS["self_introductions"])
_GREETINGS = frozenset(_NAME_CUE_WORDS["greetings"])
_CUE_LAST_WORDS = frozenset(c.rsplit(" ", 1)[-1] for c in _NAME_CUES | _HONORIFICS | _WEAK_CUES)
_VOCATIVE_NEXT = frozenset(_NAME_CUE_WORDS["vocative_next"])
_PLACE_PREPS = frozenset(_NAME_CUE_WORDS["place_prepositions"])
_ENUM_GAPS = frozenset(_NAME_CUE_WORDS["enumeration_gaps"])
_ENUM_LAST_GAPS = frozenset(_NAME_CUE_WORDS["enumeration_last_gaps"])
_ENUM_PREPS = frozenset(_NAME_CUE_WORDS["firm_prepositions"])
_NOT_VOCATIVE = frozenset(_lines("pii_not_vocative_words.txt"))
_LABEL_WORDS = frozenset(_lines("pii_label_words.txt"))
_capseq_re = _regex(rf"(?<![\w])(?:{_CAP}|{_U}\.?(?=[ \t]+{_U}))(?:[ \t]+(?:{_CAP}|{_U}\.?(?=[ \t]+{_U})))*(?![\w])")
_token_re = _regex(rf"{_CAP}|{_U}\.?")
_speaker_re = _regex(rf"(?m)^[ \t>]*(?P<name>{_CAP})[ \t]*:")
_after_name_re = _regex(r"[ \t]+(?:lives|lived)[ \t]+(?:at|on|in)\b|[ \t]+is[ \t]+from\b")
_followed_by_number_re = _regex(r"[ \t]+\d{1,5}\b")
_POSSESSIVE = ("'s", "’s")
_street_dr_re = _regex(rf"{_CAP}[ \t]+Dr[ \t]*$")


@lru_cache(maxsize=8192)
def _base(tok: str) -> str:
    """Lower-case, unaccented name token without its possessive ("Goldberg's" -> "goldberg")."""
    t = tok.lower()
    return _fold(t[:-2] if t.endswith(_POSSESSIVE) else t)


def _is_initial(tok: str) -> bool:
    return len(tok) == 1 or (len(tok) == 2 and tok[1] == ".")


def _name_pieces(run: str, base: int) -> list[list[tuple[int, int, str]]]:
    """Split a run of capitalised words into candidate pieces of (start, end, token).

    Sentence furniture ("The", "Hi", "Mr") splits a run, a possessive ends a piece, and a
    piece with a place/organisation word ("Santa", "Inc", "Street") is dropped.
    """
    pieces: list[list[tuple[int, int, str]]] = []
    piece: list[tuple[int, int, str]] = []
    pos = 0
    for tok in run.split():
        start = run.index(tok, pos)
        pos = start + len(tok)
        initial = _is_initial(tok)
        b = "" if initial else _base(tok)
        possessive = tok.endswith(_POSSESSIVE)
        if b in _SPLIT_WORDS and not initial:
            _flush_piece(piece, pieces)
            continue
        piece.append((start + base, pos + base - (2 if possessive else 0), tok))
        if possessive:
            _flush_piece(piece, pieces)  # "Alice Goldberg's Cautionary Tales"
    _flush_piece(piece, pieces)
    return pieces


def _flush_piece(piece: list[tuple[int, int, str]], pieces: list[list[tuple[int, int, str]]]) -> None:
    while piece and _is_initial(piece[-1][2]):
        piece.pop()
    while piece and _is_initial(piece[0][2]):
        piece.pop(0)
    if piece and not any(_base(t[2]).rstrip(".") in _KILL_WORDS for t in piece):
        pieces.append(list(piece))
    piece.clear()


def _evidence(b: str) -> bool:
    return b in _FIRST_NAMES_SOLO or b in _SURNAMES or b.endswith(_SURNAME_SUFFIXES)


def _window_score(toks: list[str]) -> float:
    """How name-like a run of 1-3 words (with initials between them) is."""
    words = [t for t in toks if not _is_initial(t)]
    first = _base(words[0])
    if len(words) == 1:
        return 0.5 if first in _FIRST_NAMES_SOLO else 0.0
    if first in _FIRST_NAMES_ALL:
        return 0.75
    if len(toks) == 3 and _is_initial(toks[1]):
        return 0.7  # "Faina D. Yefremova"
    last = _base(words[-1])
    if last in _SURNAMES or last.endswith(_SURNAME_SUFFIXES):
        return 0.55
    if not any(w.isascii() for w in words):
        return 0.55  # "Vladimír Jára": two accented capitalised words in English text are mostly a name
    return 0.0


def _best_window(piece: list[tuple[int, int, str]]) -> tuple[int, int, float]:
    """The best-scoring run of 1-3 words (initials in between allowed) inside a piece."""
    toks = [t[2] for t in piece]
    if len(piece) == 1:
        return piece[0][0], piece[0][1], _window_score(toks)
    idx = [i for i, t in enumerate(toks) if not _is_initial(t)]
    best = (0, 0, 0.0)
    for a in range(len(idx)):
        for b in range(a, min(a + 3, len(idx))):
            i, j = idx[a], idx[b]
            sc = _window_score(toks[i : j + 1])
            s, e = piece[i][0], piece[j][1]
            if sc > best[2] or (sc == best[2] and sc > 0 and e - s > best[1] - best[0]):
                best = (s, e, sc)
    return best


def _cue_before(
    words: list[str], cues: frozenset[str], max_words: int = 4, last_words: frozenset[str] | None = None
) -> str | None:
    """The cue (1-4 lower-case words) that ``words`` ends with, if any.

    ``last_words`` (the cues' last words) lets most calls stop after one set lookup.
    """
    if not words or (last_words is not None and words[-1] not in last_words):
        return None
    for k in range(min(max_words, len(words)), 0, -1):
        cue = " ".join(words[-k:])
        if cue in cues:
            return cue
    return None


def _enumerations(text: str, singles: list[tuple[int, int, str, bool]]) -> Iterator[PiiSpan]:
    """Enumerations of single names: "Kónya, Becker and Vasquez", "Alex, Sam and Steve".

    ``singles`` are the one-word capitalised pieces (start, end, base, has name evidence).
    """
    i = 0
    while i < len(singles):
        j = i
        while j + 1 < len(singles) and text[singles[j][1] : singles[j + 1][0]] in _ENUM_GAPS:
            j += 1
        group = singles[i : j + 1]
        i = j + 1
        if len(group) < 2 or text[group[-2][1] : group[-1][0]] not in _ENUM_LAST_GAPS:
            continue
        prev = text[max(0, group[0][0] - 20) : group[0][0]].split()
        prev_word = prev[-1].lower() if prev else ""
        if prev_word in _ENUM_PREPS:
            continue  # "at Jones, Mitchell and Williams": a firm
        following = text[group[-1][1] : group[-1][1] + 16].split()
        if following and _base(following[0]).rstrip(".,") in _KILL_WORDS:
            continue  # "The Davis, Reynolds and Williamson Orchestra"
        if not any(g[3] for g in group):
            continue
        if len(group) >= 3 and not any(g[2] in _FIRST_NAMES_SOLO for g in group) and not prev_word.endswith(":"):
            continue  # "Lopez, Santos and Coleman is a design agency": a firm's name
        for g in group:
            yield PiiSpan("PERSON", g[0], g[1], 0.55)


def _speakers(text: str) -> Iterator[PiiSpan]:
    """Dialogue speaker labels ("Nicole: Remember me?"), when there are two speakers."""
    if ":" not in text or "\n" not in text:
        return
    found = [
        m for m in _speaker_re().finditer(text)
        if (b := _base(m.group("name"))) not in _SPLIT_WORDS and b not in _LABEL_WORDS and b not in _KILL_WORDS
    ]
    if len({m.group("name") for m in found}) >= 2:
        for m in found:
            yield PiiSpan("PERSON", m.start("name"), m.end("name"), 0.55)


def _address_block_heads(text: str, addresses: list[PiiSpan]) -> Iterator[PiiSpan]:
    """The name line on top of an address block: "Sara Schwarz\n 28245 Puruntie 82 ..."."""
    for a in addresses:
        lo = max(0, a.start - 120)
        off = lo
        for line in text[lo : a.start].split("\n")[:-1]:
            stripped = line.strip(" \t>?")
            toks = stripped.split()
            if (
                2 <= len(toks) <= 4
                and (off > lo or lo == 0)  # not a line cut by the 120-character window
                and all(_token_re().fullmatch(t) for t in toks)
                and not any(_base(t).rstrip(".") in _KILL_WORDS or _base(t) in _SPLIT_WORDS for t in toks)
            ):
                s = off + line.index(stripped)
                yield PiiSpan("PERSON", s, s + len(stripped), 0.6)
                break
            off += len(line) + 1


def _later_mentions(out: list[PiiSpan], tokens: list[tuple[int, int, str]]) -> Iterator[PiiSpan]:
    """Later mentions of a name already found: "Maciej Borkowski ... starring Borkowski"."""
    strong = [p for p in out if p.score >= 0.6]
    if not strong or not tokens:
        return
    tokens.sort()
    starts = [t[0] for t in tokens]
    known: set[str] = set()
    for p in strong:
        i = bisect_left(starts, p.start)
        while i < len(tokens) and tokens[i][1] <= p.end:
            b = _base(tokens[i][2])
            if len(b) >= 3 and b not in _SPLIT_WORDS and b not in _KILL_WORDS:
                known.add(b)
            i += 1
    for s, e, tok in tokens:
        if _base(tok) in known:
            yield PiiSpan("PERSON", s, e, 0.5)


def _find_person(text: str, addresses: list[PiiSpan]) -> list[PiiSpan]:
    """PERSON candidates; ``addresses`` are used to drop street names and to find the name
    line on top of an address block."""
    out: list[PiiSpan] = []
    singles: list[tuple[int, int, str, bool]] = []  # one-word pieces: start, end, base, evidence
    tokens: list[tuple[int, int, str]] = []

    def add(start: int, end: int, score: float) -> None:
        if end > start:
            out.append(PiiSpan("PERSON", start, end, score))

    for m in _capseq_re().finditer(text):
        run = m.group()
        if " " not in run and "\t" not in run:
            # Fast path for the commonest run, one capitalised word ("Find", "Paris"): it
            # needs a given name, a surname shape or a cue right before it to go further.
            ps, b = m.start(), _base(run)
            if b in _SPLIT_WORDS or b in _KILL_WORDS:
                continue
            pe = m.end() - (2 if run.endswith(_POSSESSIVE) else 0)
            prev = text[max(0, ps - 24) : ps].split()
            if (
                not _evidence(b)
                and (not prev or prev[-1].lower() not in _CUE_LAST_WORDS)
                and text[pe : pe + 1] != ","
                and not _after_name_re().match(text, pe)
            ):
                tokens.append((ps, pe, run))
                singles.append((ps, pe, b, False))
                continue
        for piece in _name_pieces(run, m.start()):
            tokens.extend(piece)
            ps, pe = piece[0][0], piece[-1][1]
            raw_before = text[max(0, ps - 40) : ps]
            bwords = raw_before.lower().split()
            words = [t for t in piece if not _is_initial(t[2])]
            s, e, sc = _best_window(piece)
            honorific = _cue_before(bwords, _HONORIFICS, 1, _HONORIFICS)
            if honorific == "dr" and _street_dr_re().search(raw_before):
                honorific = None  # "1737 Cheriton Dr Reuquén": a street suffix, not "Dr"
            cue = None
            if not honorific and bwords and bwords[-1] in _CUE_LAST_WORDS:
                cue = _cue_before(bwords, _NAME_CUES) or _cue_before(bwords, _WEAK_CUES, 2)
            if cue in _GREETINGS and text[pe : pe + 1] not in (",", "!"):
                cue = None  # "Hi John," but not "Hello World program"
            if cue in ("name:", "name?") and raw_before.rsplit("\n", 1)[-1].strip().lower() in ("name:", "name?"):
                cue = "my name is"  # a "Name:" field at the start of a line
            if honorific:
                add(ps, words[min(len(words), 3) - 1][1], 0.85)
                continue
            if cue and (cue not in _WEAK_CUES or sc > 0 or (cue in _SELF_INTRO and 2 <= len(words) <= 3)):
                if sc and s == ps:
                    add(s, e, max(sc, 0.7))
                else:  # "my name is Rubija", "I'm Bojka Žilih"
                    # a lone unknown word after a cue may be a nickname or a bot persona: no
                    # later-mention propagation for it (score below 0.6)
                    add(ps, words[min(len(words), 3) - 1][1], 0.6 if len(words) > 1 else 0.55)
                continue
            after = text[pe : pe + 24]
            if _after_name_re().match(text, pe) and len(words) <= 3:
                add(ps, pe, max(sc, 0.6))
                continue
            tail = raw_before.rstrip(" \t\"“'")
            sentence_start = (ps < 40 and not tail.strip()) or tail[-1:] in (".", "!", "?", ":", "(", "\n")
            if len(words) == 1 and sentence_start and after.startswith(", "):
                nxt = after[2:].split(" ", 1)[0].lower()
                wb = _base(words[0][2])
                if nxt in _VOCATIVE_NEXT and wb not in _NOT_VOCATIVE and not wb.endswith("ly"):
                    add(ps, pe, max(sc, 0.55))  # "Leif, can I please speak to your boss?"
                    continue
            if len(words) == 1:
                b = _base(words[0][2])
                singles.append((ps, pe, b, _evidence(b)))
            if not sc:
                continue
            single = s == piece[0][0] and e == piece[-1][1] and len(words) == 1
            prev_word = bwords[-1] if bwords else ""
            if single and prev_word in _PLACE_PREPS:
                continue  # "from Florence", "in Victoria"
            if sentence_start and s == ps and not single and sc < 0.7:
                sc = 0.5
            add(s, e, sc)
    out.extend(_enumerations(text, singles))
    out.extend(_speakers(text))
    out.extend(_address_block_heads(text, addresses))
    if not any(c.isupper() for c in text):
        out.extend(_find_person_lowercase(text))
    if not out:
        return out
    out.extend(list(_later_mentions(out, tokens)))
    # Names inside an address are street or place names ("5850 Jana Nerudy 894"), and a
    # name followed by a house number is a street ("Peter Zuidhove 188").
    addr_starts = [a.start for a in addresses]
    kept = []
    for p in out:
        i = bisect_right(addr_starts, p.start) - 1
        if i >= 0 and p.end <= addresses[i].end:
            continue
        if _followed_by_number_re().match(text, p.end):
            continue
        kept.append(p)
    return kept


_lower_token_re = _regex(rf"(?<![\w-]){_L}+(?:\.|(?![\w-]))")
_lower_cue_re = _regex(
    rf"\b(?:my name is|(?:his|her|their|your|last|first|full|maiden) name is|call me|calls me|"
    rf"(?:named|called) (?:him|her)|dear)[ \t]+({_L}+)(?:[ \t]+({_L}+))?"
)
_COMMON_LOWER = frozenset(_lines("pii_common_lowercase_words.txt"))

def _find_person_lowercase(text: str) -> Iterator[PiiSpan]:
    """All-lowercase texts carry no case signal: only given-name pairs/singles and cues."""
    toks = [(m.start(), m.end(), m.group()) for m in _lower_token_re().finditer(text)]
    i = 0
    while i < len(toks):
        s, e, w = toks[i]
        if len(w) >= 3 and w.rstrip(".") in _FIRST_NAMES_SOLO:
            j = i + 1
            if j < len(toks) and len(toks[j][2].rstrip(".")) == 1 and toks[j][2].rstrip(".") not in ("a", "i"):
                j += 1  # middle initial
            if (
                j < len(toks)
                and text[toks[j - 1][1] : toks[j][0]].strip(" \t") == ""
                and len(toks[j][2]) >= 3
                and toks[j][2] not in _SPLIT_WORDS
                and toks[j][2] not in _KILL_WORDS
                and toks[j][2] not in _COMMON_LOWER
            ):
                yield PiiSpan("PERSON", s, toks[j][1], 0.55)
                i = j + 1
                continue
            yield PiiSpan("PERSON", s, e, 0.45)
        i += 1
    for m in _lower_cue_re().finditer(text):
        w1, w2 = m.group(1), m.group(2)
        if w1 in _SPLIT_WORDS or w1 in _COMMON_LOWER:
            continue
        end = m.end(2) if w2 and w2 not in _SPLIT_WORDS and w2 not in _COMMON_LOWER else m.end(1)
        yield PiiSpan("PERSON", m.start(1), end, 0.6)


# --------------------------------------------------------------------------------------
# STREET_ADDRESS (best effort)

_SUFFIX = _alternatives(_ADDRESS_WORDS["street_suffixes"])
_UNIT = _alternatives(_ADDRESS_WORDS["unit_words"]) + r"\.?[ \t]*#?\d{1,5}[A-Za-z]?\b"
_PARTICLE = _alternatives(_ADDRESS_WORDS["particles"])
_PARTICLES = frozenset(_ADDRESS_WORDS["particles"])
_SWORD = rf"(?:{_CAP}|\d{{1,3}}(?:st|nd|rd|th)|[NSEW]\.?|NE|NW|SE|SW|{_PARTICLE})"
_us_street_re = _regex(
    rf"(?<![\w.,-])(?:\d{{1,6}}[ \t]+)?\d{{1,6}}[A-Za-z]?[ \t]+(?:{_SWORD}[ \t]+){{1,4}}{_SUFFIX}\b\.?"
    rf"(?:[ \t]*,?[ \t]*{_UNIT}){{0,2}}"
)
# Continental street types: a word ending in one (Koskikatu, Puruntie, Ringvej,
# Bundesstrasse) or a separate word (Rua, Via, rue, ul., u., tér, gate).
_EU_TYPE_ENDINGS = tuple(_ADDRESS_WORDS["street_type_endings"])
_EU_TYPE_WORDS = frozenset(_ADDRESS_WORDS["street_type_words"])
# Separate type words that are also English words: they count only in lower case.
_LOWERCASE_TYPES = frozenset(_ADDRESS_WORDS["lowercase_only_street_types"])
_type_first_re = _regex(
    rf"(?<![\w.,-])(?:\d{{1,6}}[ \t]+)?\d{{1,5}}[ \t]+(?:(?i:{'|'.join(_ADDRESS_WORDS['leading_street_types'])})|Via|Boulevard)"
    rf"(?:[ \t]+(?:{_CAP}|{_PARTICLE}|{_L}{{3,}})){{1,5}}"
)
_street_token_re = _regex(rf"(?:{_CAP}|{_L}+|C/)\.?|{_U}\.|\d{{1,6}}")
_units_tail_re = _regex(rf"\.?(?:[ \t]*,?[ \t]*{_UNIT})*")
# Address cues, compared on lower-cased text with whitespace collapsed.
_ADDR_CUES = frozenset(_ADDRESS_WORDS["cues"])
_ADDR_KILL = frozenset(_ADDRESS_WORDS["not_street_words"])
_unit_re = _regex(r"(?<![\w])(?:Apt|Apartment|Suite|Ste|Flat)\.?[ \t]*#?\d{1,5}[A-Za-z]?\b")
_pobox_re = _regex(
    r"(?<![\w.,-])(?:\d{1,6}[ \t]+)?(?i:P\.?[ \t]?O\.?[ \t]?Box|Post[ \t]?Office[ \t]+Box|Postbox|Post[ \t]+Box)[ \t]+\d{1,6}\b"
    r"|(?<![\w])(?i:PSC|Unit|CMR)[ \t]+\d{3,5},?[ \t]+(?i:Box)[ \t]+\d{3,5}(?:[ \t]*\n?[ \t]*(?i:[ADF]PO[ \t]+A[AEP])[ \t]+\d{5})?"
    r"|(?<![\w])(?i:USNS|USNV|USS|USCGC)[ \t]+[^\W\d_]+(?:[ \t]*\n?[ \t]*(?i:[ADF]PO[ \t]+A[AEP])[ \t]+\d{5})"
)
_corner_re = _regex(
    r"(?i)\bthe[ \t]+corner[ \t]+of[ \t]+[^\n,;!?{}]{2,60}?[ \t]+and[ \t]+[^\n,;!?{}]{2,50}?"
    r"(?=[.,;!?]?(?:$|[ \t]+(?:in|for|to|at|on|the|after|before|and|is|I)\b|[\n,;!?]))"
)
# "... on Marina Fort Street were ...": a street name without a number.
_NAMED_STREET_HINTS = tuple(_ADDRESS_WORDS["named_street_types"])
_named_street_re = _regex(
    rf"\b(?:on|at|of|in|along|down|up|off|from|to)[ \t]+(?P<street>(?:{_CAP}[ \t]+){{1,3}}{_alternatives(_NAMED_STREET_HINTS)})\b"
)
# After an address cue: a number, then street words (any case for the first one:
# "πεντέλης"), capitalised words, particles and numbers ("214 Pavlou Drandaki").
_cue_num_re = _regex(
    rf"(?:\d{{1,6}}[ \t]+)?\d{{1,6}}[ \t]+{_WORD}(?:[ \t]+(?:{_CAP}|[{_UP}]{{2,}}|{_PARTICLE}\b|\d{{1,5}}\b\.?))*"
)
_lower_cue_num_re = _regex(rf"(?:\d{{1,6}}[ \t]+)?\d{{1,6}}[ \t]+{_WORD}(?:[ \t]+(?:{_WORD}|\d{{1,5}}\b\.?))*")
_lower_street_re = _regex(
    rf"(?:\d{{1,6}}[ \t]+)?\d{{1,6}}[ \t]+(?:{_WORD}[ \t]+){{1,4}}(?i:{_SUFFIX})\b\.?(?:[ \t]+\d{{1,5}}\b)?"
)
_lower_unit_re = _regex(r"(?<![\w])(?:apt|apartment|suite)\.?[ \t]*\d{1,5}\b")
_UNIT_ONLY = 0.49  # score marker of a lone apartment/suite number
_addr_line_token_re = _regex(rf"{_UNIT}|{_A}[{_UP}{_LO}'’.-]*|\d+|[(),]")
_unit_full_re = _regex(_UNIT)
_same_line_token_re = _regex(rf"[ \t]*,?[ \t]*(?:({_CAP}|[{_UP}]{{2,}}|nan)|(\d{{4,6}}))(?![\w@])")
_alpha_run_re = _regex(rf"{_A}+")
_lower_stop_re = _regex(rf"[ \t]+{_alternatives(_ADDRESS_WORDS['stop_words'])}\b")
_house_number_re = _regex(r"\d{1,5}[A-Za-z]?(?![\w]|[.,]\d)")
_lead_num_re = _regex(r"(?<![\w.,-])\d{1,6}[ \t]+$")


def _address_line_ok(line: str, lower_text: bool = False) -> bool:
    """A city / region / country / postcode line of an address block ("Porto Alegre",
    ", RS", " Brazil 95828", "Apt. 724")."""
    s = line.strip(" \t>?")
    if not s or len(s) > 60 or any(c in s for c in ":@/"):
        return False
    if _unit_full_re().fullmatch(s):
        return True
    if _phone_ctx_re().search(s):
        return False
    toks = _addr_line_token_re().findall(s)
    if "".join(toks) != "".join(s.split()).rstrip("."):
        return False  # other punctuation: not an address line
    numbers = [t for t in toks if t.isdigit()]
    if len(numbers) > 2 or any(not 2 <= len(t) <= 6 for t in numbers):
        return False
    words = [t for t in toks if t[0].isalpha()]
    if words and all(w.lower().rstrip(".,") in _SPLIT_WORDS for w in words):
        return False  # "Thanks", "Best regards"
    return all(t[0].isupper() or lower_text or t in _PARTICLES or t == "nan" for t in words)


_postcode_end_re = _regex(r"\d{4,6}[ \t.]*$")


def _extend_address(text: str, end: int, lower_text: bool = False) -> int:
    """Extend an address over the city/region/postcode that follows it, on the same line
    (", Goiânia", " OULU NO") and on the following lines of an address block."""
    while True:
        m = _same_line_token_re().match(text, end)
        if not m or (m.group(1) and m.group(1).lower() in _SPLIT_WORDS):
            break
        end = m.end()
    for _ in range(5):
        nl = text.find("\n", end)
        if nl == -1 or text[end:nl].strip(" \t,.") != "":
            break
        start = nl + 1
        nxt = text.find("\n", start)
        if nxt != -1 and text[start:nxt].strip(" \t>?") == "":
            start = nxt + 1  # one blank line inside a block is fine
            nxt = text.find("\n", start)
        line = text[start : nxt if nxt != -1 else len(text)]
        if not _address_line_ok(line, lower_text):
            break
        end = start + len(line.rstrip(" \t."))
        if _postcode_end_re().search(line):
            break  # "Estonia 62488": the postcode closes the block
    return end


def _is_street_type(word: str) -> bool:
    low = word.lower()
    if low in _LOWERCASE_TYPES and word != low:
        return False  # "Gate 12" at an airport; "Trenerys gate 232" in Oslo
    return low in _EU_TYPE_WORDS or low.rstrip(".") in _EU_TYPE_WORDS or low.rstrip(".").endswith(_EU_TYPE_ENDINGS)


def _street_before(text: str, num_start: int) -> tuple[int, bool, bool] | None:
    """Walk back from a house number over the street-name words on its line.

    Returns (start, has_street_type, has_leading_number), or None without street words.
    """
    line_start = text.rfind("\n", 0, num_start) + 1
    lo = max(line_start, num_start - 80)
    toks = list(_street_token_re().finditer(text, lo, num_start))
    words: list[re.Match[str]] = []
    for t in reversed(toks):
        gap = text[t.end() : (words[-1].start() if words else num_start)]
        if gap.strip(" \t") != "" or len(words) >= 4:
            break
        tok = t.group()
        low = tok.lower()
        if tok[0].isdigit():
            break
        if not (tok[0].isupper() or low in _PARTICLES or _is_street_type(tok)):
            break
        if low.rstrip(".") in _SPLIT_WORDS and low.rstrip(".") not in _PARTICLES:
            break
        words.append(t)
    while words and words[-1].group() in _PARTICLES:
        words.pop()  # do not start on a lower-case particle ("Pod Floriánem 1677" is fine)
    if not words:
        return None
    start = words[-1].start()
    has_type = any(_is_street_type(w.group()) for w in words)
    lead = _lead_num_re().search(text, max(line_start, start - 8), start)
    if lead:
        start = lead.start()
    return start, has_type, bool(lead)


def _find_all(haystack: str, needle: str) -> Iterator[int]:
    i = haystack.find(needle)
    while i != -1:
        yield i
        i = haystack.find(needle, i + len(needle))


def _own_line(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is alone on its line (an address-block line like " Apt. 5")."""
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    return ls > 0 and text[ls:start].strip(" \t>?") == "" and text[end : le if le != -1 else len(text)].strip(" \t.,") == ""


_ADDR_CUE_LAST = frozenset(c.rsplit(" ", 1)[-1] for c in _ADDR_CUES)


def _addr_cue_before(text: str, pos: int) -> bool:
    words = text[max(0, pos - 60) : pos].lower().split()
    if words and words[-1].isdigit():
        words.pop()  # "lives at 28919 136 Filadelfeos Str."
    if words and words[-1] in (":", "-"):
        words.pop()
    if words:
        words[-1] = words[-1].rstrip(":-")
    return _cue_before(words, _ADDR_CUES, 4, _ADDR_CUE_LAST) is not None


def _find_address(text: str, blobs: list[_Blob]) -> list[PiiSpan]:
    found: list[PiiSpan] = []
    lower_text = not any(c.isupper() for c in text)

    def add(start: int, end: int, score: float) -> None:
        if end > start:
            found.append(PiiSpan("STREET_ADDRESS", start, end, score))

    for b in blobs:
        p = b.start
        if not text[p].isdigit():
            continue
        # House number first: "1668 Glyn St", "31 Rue de Tanger", "at 9816 214 Pavlou Drandaki".
        q = b.end
        while q < len(text) and text[q] in " \t" and q - b.end < 2:
            q += 1
        if text[q : q + 1].isalpha():
            nw = text[q : q + 12].split(None, 1)[0].lower()
            upper = text[q].isupper()
            if upper or lower_text or q == b.end or nw in _EU_TYPE_WORDS or nw in _PARTICLES:
                m = _us_street_re().match(text, p)
                if m:
                    add(m.start(), m.end(), 0.8)
                m = _type_first_re().match(text, p)
                if m:
                    add(m.start(), m.end(), 0.75)
                if lower_text:
                    m = _lower_street_re().match(text, p)
                    if m:
                        add(m.start(), m.end(), 0.55)
            if (upper or lower_text) and (p == 0 or not (text[p - 1].isalnum() or text[p - 1] in ".,-")):
                m = (_lower_cue_num_re() if lower_text else _cue_num_re()).match(text, p)
                if m and nw not in _ADDR_KILL and nw not in _SPLIT_WORDS and _addr_cue_before(text, p):
                    end = m.end()
                    if lower_text:  # no case signal: stop at the first function word
                        cut = _lower_stop_re().search(text, m.start(), end)
                        end = cut.start() if cut else end
                    add(m.start(), end, 0.6)
        # Street name first: "Koskikatu 25", "Erzsébet tér 19.", "20789 Allika 46".
        if p >= 2 and text[p - 1] in " \t" and (text[p - 2].isalpha() or text[p - 2] == "."):
            pw = text[max(0, p - 30) : p - 1].rsplit(None, 1)[-1]
            if not (pw[:1].isupper() or lower_text or _is_street_type(pw)):
                continue
            num = _house_number_re().match(text, p)
            if not num:
                continue
            st = _street_before(text, p - 1)
            if st is None:
                continue
            start, has_type, lead = st
            if any(w.lower() in _ADDR_KILL for w in _alpha_run_re().findall(text[start:p])):
                continue
            tail = _units_tail_re().match(text, num.end())
            end = tail.end() if tail else num.end()
            if text[end - 1 : end] == "." and text[end : end + 1] not in ("\n", ","):
                end -= 1  # a sentence's full stop; "Erzsébet tér 19.\n" keeps its ordinal dot
            in_block = text.startswith("\n", end) or end != num.end()
            if has_type:
                add(start, end, 0.8)
            elif lead and (in_block or _addr_cue_before(text, start)):
                add(start, end, 0.7)
            elif lead or _addr_cue_before(text, start):
                add(start, end, 0.55)
    # The remaining rules have a literal anchor ("box", "corner", "Apt", "Street"): find it
    # with str.find and run the regex on a window around it, not over the whole text.
    lower = text.lower()
    seen: set[tuple[int, int]] = set()
    for needle in ("box", "apo", "fpo", "dpo"):
        for i in _find_all(lower, needle):
            for m in _pobox_re().finditer(text, max(0, i - 40), i + 40):
                if (m.start(), m.end()) not in seen:
                    seen.add((m.start(), m.end()))
                    add(m.start(), m.end(), 0.8)
    for needle in ("Apt", "Suite", "Ste", "Flat"):
        for i in _find_all(text, needle):
            m = _unit_re().match(text, i)
            if m:
                add(m.start(), m.end(), 0.5 if _own_line(text, m.start(), m.end()) else _UNIT_ONLY)
    for i in _find_all(lower, "the corner of"):
        m = _corner_re().match(text, i)
        if m:
            add(m.start(), m.end(), 0.8)
    for needle in _NAMED_STREET_HINTS:
        for i in _find_all(text, needle):
            for m in _named_street_re().finditer(text, max(0, i - 70), i + len(needle) + 1):
                if m.end("street") == i + len(needle):
                    add(m.start("street"), m.end("street"), 0.5)
    if lower_text:
        for needle in ("apt", "suite"):
            for i in _find_all(text, needle):
                m = _lower_unit_re().match(text, i)
                if m:
                    add(m.start(), m.end(), 0.5 if _own_line(text, m.start(), m.end()) else _UNIT_ONLY)
    if not found:
        return found
    # Pieces of one address (street, "Apt. 5", a second street line) become one span,
    # which is then extended over the city / postcode lines that follow.
    found.sort(key=lambda s: (s.start, -s.end))
    merged: list[PiiSpan] = []
    for s in found:
        if merged and s.start <= merged[-1].end + 8 and text[merged[-1].end : s.start].strip(" \t,\n>?") == "" and text.count("\n", merged[-1].end, s.start) <= 1:
            last = merged[-1]
            merged[-1] = PiiSpan("STREET_ADDRESS", last.start, max(last.end, s.end), max(last.score, s.score))
        else:
            merged.append(s)
    # "Apt. 5" on its own is not an address ("Suite 16 of the program"): only next to a street.
    return [
        PiiSpan(s.entity, s.start, _extend_address(text, s.end, lower_text), s.score)
        for s in merged
        if s.score != _UNIT_ONLY
    ]


# --------------------------------------------------------------------------------------
# Public API


def _resolve(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Drop overlaps: the higher score wins, then the longer span, then the earlier one."""
    kept: list[PiiSpan] = []  # non-overlapping, sorted by start
    starts: list[int] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        i = bisect_right(starts, s.start)
        if (i and kept[i - 1].end > s.start) or (i < len(kept) and kept[i].start < s.end):
            continue
        kept.insert(i, s)
        starts.insert(i, s.start)
    return kept


def preload() -> None:
    """Compile every pattern and import the validation libraries now rather than on the
    first call (a server's start-up; without it the first message pays a few hundred ms)."""
    import phonenumbers  # noqa: F401
    import stdnum.exceptions  # noqa: F401
    from stdnum import iban, luhn  # noqa: F401

    for compiled in _COMPILERS:
        compiled()


def _check_entities(entities: Collection[str] | None) -> frozenset[str]:
    if entities is None:
        return frozenset(ENTITIES)
    if isinstance(entities, str):
        entities = (entities,)
    wanted = frozenset(entities)
    unknown = wanted - frozenset(ENTITIES)
    if unknown:
        raise ValueError(f"unknown PII entities {sorted(unknown)}; known: {list(ENTITIES)}")
    return wanted


def find_pii(text: str, *, entities: Collection[str] | None = None) -> list[PiiSpan]:
    """Sorted, non-overlapping spans (on overlap keep the higher score, then the longer).

    ``entities`` restricts the search to some of ``ENTITIES`` (``None`` means all of them);
    an unknown entity name raises ``ValueError``.  Candidates of all requested types compete
    for the same characters, so e.g. an SSN-shaped number is not also reported as a phone.
    """
    wanted = _check_entities(entities)
    if not text:
        return []
    blobs = _numeric_blobs(text)
    spans: list[PiiSpan] = []
    if "EMAIL" in wanted:
        spans.extend(_find_email(text))
    if blobs:
        if "CREDIT_CARD" in wanted:
            spans.extend(_find_card(text, blobs))
        if "IBAN_CODE" in wanted:
            spans.extend(_find_iban(text, blobs))
        if "US_SSN" in wanted:
            spans.extend(_find_ssn(text, blobs))
        if "PHONE_NUMBER" in wanted:
            spans.extend(_find_phone(text, blobs))
    if "IP_ADDRESS" in wanted:
        spans.extend(_find_ip(text, blobs))
    addresses: list[PiiSpan] = []
    if "STREET_ADDRESS" in wanted or "PERSON" in wanted:
        addresses = _find_address(text, blobs)
    if "STREET_ADDRESS" in wanted:
        spans.extend(addresses)
    if "PERSON" in wanted:
        spans.extend(_find_person(text, addresses))
    return _resolve(spans)


def redact_pii(
    text: str,
    spans: Sequence[PiiSpan] | None = None,
    *,
    entities: Collection[str] | None = None,
) -> str:
    """Replace each span with ``<ENTITY>`` e.g. ``<EMAIL>``, ``<CREDIT_CARD>``.

    ``spans=None`` means ``find_pii(text, entities=entities)``.  Given spans are filtered by
    ``entities`` as well, clipped to the text and de-overlapped with the same rule as
    ``find_pii``.
    """
    wanted = _check_entities(entities)
    if spans is None:
        chosen = find_pii(text, entities=wanted)
    else:
        chosen = _resolve(
            [
                PiiSpan(s.entity, max(0, s.start), min(len(text), s.end), s.score)
                for s in spans
                if s.entity in wanted and s.start < s.end and s.start < len(text) and s.end > 0
            ]
        )
    if not chosen:
        return text
    parts: list[str] = []
    pos = 0
    for s in chosen:
        parts.append(text[pos : s.start])
        parts.append(f"<{s.entity}>")
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)
