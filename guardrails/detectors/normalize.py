"""De-obfuscation views of a text, for detectors that match words and phrases.

Attackers hide a phrase such as "ignore previous instructions" from keyword matching by
swapping letters for look-alikes, spacing them out, writing them in leetspeak or encoding
them. :func:`views` undoes the common tricks, each into its own *view* of the text, so a
detector can run the same patterns on every view; :func:`deobfuscate` returns the same
views with where in the original each decoded payload came from.

Everything here is standard library and bounded: a view is only built when a cheap
test (a substring, or a regex that starts with a literal) says the text shows the
trick, decoded payloads are capped in size and count, and decoding nests at most
:data:`MAX_DEPTH` levels. Regexes that would start with a character class or a
lookbehind are avoided on the whole text: Python's ``re`` scans those an order of
magnitude slower than ones that start with a literal.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress
from urllib.parse import unquote

MAX_DEPTH = 2
"""Decoding levels: base64 inside URL-encoding is found, a third wrapping is not."""
MAX_PAYLOAD_CHARS = 4096
"""Decoded text kept per encoded run."""
MAX_PAYLOADS = 32
"""Encoded runs decoded per level; the rest are left as they are."""
_MIN_PAYLOAD = 16  # shortest base64 or hex token worth decoding
_MIN_PRINTABLE = 0.9


@dataclass(frozen=True, slots=True)
class View:
    """One de-obfuscated version of a text."""

    kind: str
    """``original``, ``folded``, ``despaced``, ``leet``, ``decoded``, ``rot13``, ``caesar`` or ``reversed``."""
    text: str
    spans: tuple[tuple[int, int], ...] = ()
    """For ``decoded``: the encoded runs of the original text that were decoded."""


# --- Folding: look-alike letters and invisible characters -------------------------------

# Cyrillic and Greek letters that render like Latin ones (after casefold, so lower case),
# small capitals and regional-indicator "flag" letters. NFKD already maps fullwidth,
# mathematical, circled and superscript letters. This is the high-traffic subset of
# Unicode's confusables.txt; the confusable-homoglyphs package has the full table.
_CONFUSABLES = dict(
    pair.split(":")
    for pair in (
        "а:a в:b с:c ԁ:d е:e ɡ:g һ:h н:h і:i ј:j к:k ӏ:l м:m о:o ԛ:q р:p ѕ:s т:t у:y ԝ:w х:x "  # Cyrillic
        "α:a β:b γ:y ε:e η:n ι:i κ:k ν:v ο:o ρ:p τ:t υ:u χ:x ω:w ϲ:c "  # Greek
        "ᴀ:a ʙ:b ᴄ:c ᴅ:d ᴇ:e ꜰ:f ɢ:g ʜ:h ɪ:i ᴊ:j ᴋ:k ʟ:l ᴍ:m ɴ:n ᴏ:o ᴘ:p ʀ:r ꜱ:s ᴛ:t ᴜ:u ᴠ:v ᴡ:w ʏ:y ᴢ:z "  # small caps
        "ı:i ℓ:l"
    ).split()
) | {chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)}  # regional indicators 🇦..🇿
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_DIACRITIC_RANGES = ((0x300, 0x370), (0x1AB0, 0x1B00), (0x1DC0, 0x1E00), (0x20D0, 0x2100), (0xFE20, 0xFE30))


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """One non-ASCII character, folded.

    Format characters (zero-width spaces and joiners, bidi controls, soft hyphen...),
    variation selectors and combining diacritics (accents, "zalgo" text) are dropped;
    Unicode tag characters, invisible in most fonts, are read as the ASCII they shadow.
    """
    code = ord(char)
    if 0xE0020 <= code < 0xE007F:
        return chr(code - 0xE0000)
    if unicodedata.category(char) == "Cf" or 0xFE00 <= code < 0xFE10 or 0xE0100 <= code < 0xE01F0:
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", char).casefold():
        if not any(lo <= ord(part) < hi for lo, hi in _DIACRITIC_RANGES):
            out.append(_CONFUSABLES.get(part, part))
    return unicodedata.normalize("NFC", "".join(out))


def fold(text: str) -> str:
    """Casefold, with invisibles and diacritics dropped and look-alikes mapped to Latin."""
    return _NON_ASCII.sub(lambda m: "".join(map(_fold_char, m[0])), text).casefold()


# Marks dropped by :func:`fold_letters`: Latin, Greek and Cyrillic accents, Hebrew points
# and Arabic harakat. Vowel signs of Indic and Southeast Asian scripts are letters there
# and are kept.
_MARK_RANGES = ((0x300, 0x370), (0x591, 0x5C8), (0x610, 0x61B), (0x64B, 0x660), (0x670, 0x671), (0x6D6, 0x6EE))


@lru_cache(maxsize=8192)
def _fold_letter(char: str) -> str:
    decomposed = unicodedata.normalize("NFD", char)
    kept = "".join(c for c in decomposed if not any(lo <= ord(c) < hi for lo, hi in _MARK_RANGES))
    return unicodedata.normalize("NFC", kept)


def fold_letters(text: str) -> str:
    """Casefolded, with accents and points dropped and each script kept, for matching the
    words of other languages: "Instrucțiunile" -> "instructiunile", "ΟΔΗΓΊΕΣ" -> "οδηγιεσ",
    "Előző" -> "elozo", Cyrillic stays Cyrillic, Arabic loses its harakat.

    Unlike :func:`fold`, which reads Cyrillic and Greek look-alikes as Latin letters and
    undoes compatibility forms (fullwidth, mathematical letters) to catch disguised
    English, this only undoes what ordinary typing varies: canonical decomposition (NFD)
    drops the marks, so Indic vowel signs and Thai stay as typed. Format characters
    (zero-width joiners, as in Persian) are kept: a word split by one is
    obfuscation, for :func:`fold`. The result has the text's length unless casefolding
    expanded a letter ("ß" -> "ss").
    """
    if text.isascii():
        return text.lower()
    return _NON_ASCII.sub(lambda m: "".join(map(_fold_letter, m[0])), text).casefold()


# --- Spacing and leetspeak -------------------------------------------------------------

# "i g n o r e  a l l", "I-G-N-O-R-E", "i.g.n.o.r.e": four or more single characters
# with separators between them; two or more spaces mark a word break.
_SPACED_RUN = re.compile(r"(?<!\w)\w(?!\w)(?:(?:[ \t]{1,3}|[-._*|/+~·]{1,2})\w(?!\w)){3,}")
_SPACED_HINT = re.compile(r" \w {1,3}\w {1,3}\w |[-._*|/+~·]\w[-._*|/+~·]\w[-._*|/+~·]")
_RUN_SEPARATOR = re.compile(r"[ \t]{2,}|[^\w \t]+|[ \t]")
# A separator pushed inside a word, next to a fragment of one or two letters:
# "i-nstruction", "fu-lfilled", "terminatio-n"; "well-known" is left alone.
_INNER_SEPARATOR = re.compile(r"[-_.*·|](?<=[^\W\d_].)(?=[^\W\d_])")


def _despace(text: str) -> str:
    if _SPACED_HINT.search(f" {text} "):
        text = _SPACED_RUN.sub(
            lambda run: _RUN_SEPARATOR.sub(lambda s: " " if len(s[0]) > 1 and s[0].isspace() else "", run[0]),
            text,
        )

    def inner(match: re.Match[str]) -> str:
        before, after = text[max(match.start() - 3, 0) : match.start()], text[match.end() : match.end() + 3]
        left = len(before) - len(before.rstrip(_ALPHABET))  # letters just before, up to 3
        right = len(after) - len(after.lstrip(_ALPHABET))
        return "" if min(left, right) <= 2 else match[0]

    return _INNER_SEPARATOR.sub(inner, text)


_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "+": "t"})
_LEET_HINT = re.compile(r"[0-9@$|€!]")
_LEET_RUN = re.compile(r"[0-9@$!|€+]+")
_WORD_EDGE = re.compile(r"[^\w@$!|€+]")


def _deleet(text: str) -> str:
    """Undo leetspeak in words that mix two or more letters with leet characters."""
    if not _LEET_HINT.search(text):
        return text

    def letters(match: re.Match[str]) -> str:
        run = match[0]
        if run.isdigit() and len(run) > 3:  # a year or a number, not a word
            return run
        at, end = match.start(), match.end()
        left = _WORD_EDGE.split(text[max(at - 24, 0) : at])[-1]
        right = _WORD_EDGE.split(text[end : end + 24])[0]
        if sum(c.isalpha() for c in left + right) < 2 or (run == "!" and not right):
            return run
        return run.translate(_LEET)

    return _LEET_RUN.sub(letters, text)


# --- Encoded payloads ------------------------------------------------------------------


def _printable(raw: bytes) -> str | None:
    """The bytes as text when they read as text (UTF-8, mostly printable, some letters)."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not any(c.isalpha() for c in decoded):
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in decoded)
    return decoded if printable >= _MIN_PRINTABLE * len(decoded) else None


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_TOKEN = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")


def _from_token(token: str) -> tuple[int, int, str] | None:
    """A base64 or hex payload inside a long whitespace-free token, with its offsets."""
    if match := _HEX_TOKEN.search(token):
        if decoded := _printable(bytes.fromhex(match[0])):
            return match.start(), match.end(), decoded
    for match in _BASE64.finditer(token):
        run = match[0].rstrip("=")
        run = run[: len(run) - (len(run) % 4 == 1)]
        try:
            raw = base64.b64decode(run.replace("-", "+").replace("_", "/") + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded := _printable(raw):
            return match.start(), match.end(), decoded
    return None


def _from_hex(run: str) -> str | None:
    return _printable(bytes.fromhex(re.sub(r"0x|[^0-9a-fA-F]", "", run)))


def _from_binary(run: str) -> str | None:
    bits = re.sub(r"[^01]", "", run)
    return _printable(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def _from_escapes(run: str) -> str | None:
    decoded = codecs.decode(run, "unicode_escape")
    return decoded if any(c.isalpha() for c in decoded) else None


def _from_url(run: str) -> str | None:
    decoded = unquote(run)
    return decoded if decoded != run else None


def _from_entities(run: str) -> str | None:
    decoded = html.unescape(run)
    return decoded if decoded != run else None


# Encodings that keep their own markers, found by regexes that start with a literal,
# each behind a substring gate: (gate, run pattern, decoder).
_MARKED = (
    ("%", re.compile(r"(?:%[0-9a-fA-F]{2})+"), _from_url),
    ("&", re.compile(r"(?:&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});)+"), _from_entities),
    ("\\", re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}){2,}"), _from_escapes),
    ("0x", re.compile(r"(?:0x[0-9a-fA-F]{2}[ ,]*){4,}"), _from_hex),
)
_SPACED_HEX_GATE = re.compile(r" [0-9a-fA-F]{2}[ :][0-9a-fA-F]{2}[ :][0-9a-fA-F]{2} ")
_SPACED_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[ :]){7,}[0-9a-fA-F]{2}(?![0-9a-fA-F])")
_BINARY = re.compile(r"(?<![01])(?:[01]{8}[ ,]?){3,}")
_BINARY_GATE = ("0110", "0111", "0100", "0101")  # 8-bit ASCII letters start with 010 or 011


def _decode_payloads(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text with each encoded run that decodes to readable text replaced by its decoding."""
    found: list[tuple[int, int, str]] = []

    def keep(start: int, end: int, decoded: str | None) -> None:
        if decoded and len(found) < MAX_PAYLOADS and not any(s < end and start < e for s, e, _ in found):
            found.append((start, end, decoded[:MAX_PAYLOAD_CHARS]))

    for gate, pattern, decoder in _MARKED:
        if gate in text:
            for match in pattern.finditer(text):
                keep(*match.span(), decoder(match[0]))
    if _SPACED_HEX_GATE.search(f" {text} "):
        for match in _SPACED_HEX.finditer(text):
            keep(*match.span(), _from_hex(match[0]))
    if any(g in text for g in _BINARY_GATE):
        for match in _BINARY.finditer(text):
            keep(*match.span(), _from_binary(match[0]))
    at = 0
    tokens = text.split()
    for token in compress(tokens, map(_MIN_PAYLOAD.__le__, map(len, tokens))):
        at = text.find(token, at)  # a long token cannot hide inside the shorter ones skipped
        if payload := _from_token(token):
            start, end, decoded = payload
            keep(at + start, at + end, decoded)
        at += len(token)
    if not found:
        return text, []
    found.sort()
    out, at = [], 0
    for start, end, decoded in found:
        out += [text[at:start], decoded]
        at = end
    return "".join(out) + text[at:], [(s, e) for s, e, _ in found]


# --- Ciphers and reversal --------------------------------------------------------------

# Words an injection is made of. Their rot13 or reversed spellings in a text are the cue
# to add that view, which keeps rot13 "always on" at the cost of a few substring tests.
_TRIGGERS = ("ignore", "instructions", "previous", "disregard", "forget", "system prompt",
             "jailbreak", "reveal", "restrictions", "pretend", "override", "bypass", "rules")
_ROT13_TRIGGERS = tuple(codecs.encode(w, "rot13") for w in _TRIGGERS)
_REVERSED_TRIGGERS = tuple(w[::-1] for w in _TRIGGERS)
_ROT13_HINT = re.compile(r"rot-?\s?13")
_CAESAR_HINT = re.compile(r"caesar|cipher|shift(?:ed)? (?:each|every|all|the) letters?|rot-?\s?\d")
_REVERSE_HINT = re.compile(r"revers|backward|mirror|right[- ]to[- ]left")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _best_caesar(folded: str) -> str | None:
    """The shift of the text that spells the most trigger words, if any does."""
    best, best_hits = None, 0
    for shift in range(1, 26):
        shifted = folded.translate(str.maketrans(_ALPHABET, _ALPHABET[shift:] + _ALPHABET[:shift]))
        hits = sum(w in shifted for w in _TRIGGERS)
        if hits > best_hits:
            best, best_hits = shifted, hits
    return best


# --- Views -----------------------------------------------------------------------------


def deobfuscate(text: str) -> list[View]:
    """Every view of the text (see :func:`views`), with the spans of decoded payloads.

    Views that would equal an earlier one up to case are left out. The last few texts'
    views are cached: the injection and toxicity detectors both ask for them.
    """
    return list(_deobfuscate(text))


@lru_cache(maxsize=64)
def _deobfuscate(text: str) -> tuple[View, ...]:
    result = [View("original", text)]
    seen = {text.casefold()}

    def add(kind: str, candidate: str, spans: tuple[tuple[int, int], ...] = ()) -> None:
        if candidate not in seen:
            seen.add(candidate)
            result.append(View(kind, candidate, spans))

    folded = fold(text)
    add("folded", folded)
    despaced = _despace(folded)
    add("despaced", despaced)
    add("leet", _deleet(despaced))

    decoded, spans = _decode_payloads(text)
    if spans:
        for _ in range(MAX_DEPTH - 1):
            decoded, deeper = _decode_payloads(decoded)
            if not deeper:
                break
        add("decoded", fold(decoded), tuple(spans))

    if _ROT13_HINT.search(folded) or any(w in folded for w in _ROT13_TRIGGERS):
        add("rot13", codecs.encode(folded, "rot13"))
    if _CAESAR_HINT.search(folded) and (shifted := _best_caesar(folded)):
        add("caesar", shifted)
    if _REVERSE_HINT.search(folded) or any(w in folded for w in _REVERSED_TRIGGERS):
        add("reversed", folded[::-1])
    return tuple(result)


def views(text: str) -> list[str]:
    """The text itself followed by its de-obfuscated versions, for detectors to check.

    1. ``original``: the text unchanged.
    2. ``folded``: casefolded, with Unicode format characters (zero-width spaces and
       joiners, bidi controls, soft hyphens), variation selectors and combining
       diacritics removed, compatibility forms normalised (NFKD: fullwidth,
       mathematical, circled letters), Cyrillic/Greek look-alikes, small capitals and
       regional indicators mapped to Latin letters, and Unicode tag characters read as
       the ASCII they shadow.
    3. ``despaced``: the folded text with spaced-out letters joined ("i g n o r e  a l l"
       -> "ignore all", "i-g-n-o-r-e", "i.g.n.o.r.e") and separators that split off one
       or two letters of a word dropped ("i-nstruction").
    4. ``leet``: the despaced text with leetspeak undone in words that mix two or more
       letters with digits or symbols ("1gn0r3" -> "ignore", "b1tch").
    5. ``decoded``: encoded runs replaced by their decoding, nested up to
       :data:`MAX_DEPTH` levels, then folded: base64 and base64url and hex tokens of
       16+ characters, spaced or ``0x``/``\\x`` hex, 8-bit binary, ``\\u`` escapes, URL
       percent-encoding and HTML entities. Base64, hex and binary count only when they
       decode to UTF-8 text that is at least 90% printable and has letters.
    6. ``rot13``: when rot13 is mentioned or a trigger word appears in rot13.
    7. ``caesar``: when a Caesar cipher or shift is mentioned, the shift that spells
       the most trigger words.
    8. ``reversed``: the folded text backwards, when reversal is mentioned or a
       trigger word appears reversed.

    A view equal (up to case) to an earlier one is omitted, so plain prose usually
    yields just the original.
    """
    return [view.text for view in deobfuscate(text)]
