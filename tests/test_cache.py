"""The answer cache (models/cache.py): exact levels in-process and on real Redis servers, the
semantic level on a real QdrantStore (embedded Qdrant Edge and the Qdrant-protocol server),
and the false-hit guard on the near-miss set (evals/datasets/cache_near_miss.jsonl)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from clocks import ManualClock
from bulwark.memory.backends import EdgeCollection, ServerCollection
from bulwark.memory.embeddings import HashingEmbeddings
from bulwark.memory.store import QdrantStore
from bulwark.models.cache import (
    AnswerCache,
    CacheKey,
    context_digest,
    embedding_text,
    normalise_request,
)
from bulwark.models.false_hits import same_specifics, specifics
from bulwark.observability import metrics, telemetry
from bulwark.persistence.answer_cache import ANSWER_CACHE, RedisUnreachable, answer_namespace
from bulwark.tools.builtin import builtin_registry
from qdrant_server import QdrantTestServer
from redis_servers import RedisServer

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "evals" / "datasets"
EMBED = HashingEmbeddings()  # the default embedder, 384 dims: similarities as deployed
TTL_S = 600.0
CONTEXT = context_digest("You are Bulwark.", [])


def key(request: str, *, tenant: str = "acme", model: str = "offline", context: str = CONTEXT) -> CacheKey:
    return CacheKey(tenant=tenant, model=model, context=context, request=request)


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def qdrant_server() -> Iterator[QdrantTestServer]:
    with QdrantTestServer() as server:
        yield server


@pytest.fixture(params=["embedded", "server"])
def memory(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[QdrantStore]:
    """A real QdrantStore on the default hash embedder, its TTL on the test's clock."""
    dims = len(EMBED.embed_query("probe"))
    if request.param == "embedded":
        collection = EdgeCollection.open(tmp_path / "memory", dims=dims)
    else:
        server = request.getfixturevalue("qdrant_server")
        collection = ServerCollection.open(server.url, dims=dims, name=f"c{abs(hash(tmp_path))}", clock=clock)
    store = QdrantStore(collection, index={"dims": dims, "embed": EMBED, "fields": ["text"]}, clock=clock)
    yield store
    store.close()


@pytest.fixture(params=["l1", pytest.param("redis", marks=pytest.mark.slow)])
def l2_url(request: pytest.FixtureRequest) -> str | None:
    """No shared level, or a real Redis (Valkey) behind ``l2``."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def cache(clock: ManualClock, *, mode: str = "exact", redis_url: str | None = None, **kwargs) -> AnswerCache:
    return AnswerCache(mode=mode, ttl_s=TTL_S, redis_url=redis_url, clock=clock, **kwargs)  # type: ignore[arg-type]


# -- keys -------------------------------------------------------------------------------------


def test_requests_normalise_case_whitespace_and_trailing_punctuation() -> None:
    assert normalise_request("  What is  the AREA of a circle?! ") == "what is the area of a circle"
    assert normalise_request("Ｗhat is 2+2?") == "what is 2+2"  # NFKC: full-width letters
    assert normalise_request("Is 3.5 > 3?") != normalise_request("Is 35 > 3?")  # inner punctuation stays


def test_embedding_text_drops_politeness_framing_and_function_words() -> None:
    assert embedding_text("Could you please tell me what's the area of a circle with a radius of 10?") == (
        "area circle with radius 10"
    )
    assert embedding_text("Calculate the area of a circle with radius 10") == "area circle with radius 10"
    # Pronouns, prepositions, question words and negations are kept.
    assert embedding_text("When did you not see my dog near the house?") == "when you not see my dog near house"


def test_context_digest_covers_the_prompt_but_not_message_ids() -> None:
    earlier = [HumanMessage("my favourite colour is teal", id="a"), AIMessage("Noted.", id="b")]
    base = context_digest("system", earlier)
    same_with_other_ids = [HumanMessage("my favourite colour is teal", id="x"), AIMessage("Noted.", id="y")]
    assert context_digest("system", same_with_other_ids) == base
    assert context_digest("system\n\nKnown facts about the user:\n- lives in Lisbon", earlier) != base
    assert context_digest("system", earlier[:1]) != base
    def called(expression: str) -> AIMessage:
        return AIMessage("", tool_calls=[{"name": "calculator", "args": {"e": expression}, "id": "1"}])

    assert context_digest("system", [*earlier, called("1+1")]) != context_digest("system", [*earlier, called("1+2")])
    assert context_digest("system", [ToolMessage("2", tool_call_id="1", name="calculator")]) != (
        context_digest("system", [ToolMessage("3", tool_call_id="1", name="calculator")])
    )
    schema = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    assert context_digest("system", earlier, [schema]) != base


def test_context_digest_takes_the_agents_tools(settings) -> None:
    registry = builtin_registry(settings)
    with_tools = context_digest("system", [], registry.tools)
    assert with_tools == context_digest("system", [], [convert_to_openai_tool(t) for t in registry.tools])
    assert with_tools != context_digest("system", [], registry.tools[1:])


def test_settings_are_checked(clock: ManualClock) -> None:
    for bad in ({"mode": "fuzzy"}, {"ttl_s": 0}, {"l1_size": 0}, {"similarity": 1.5}):
        with pytest.raises(ValueError):
            AnswerCache(clock=clock, **bad)  # type: ignore[arg-type]


# -- exact levels -----------------------------------------------------------------------------


def test_exact_hit(clock: ManualClock, l2_url: str | None) -> None:
    answers = cache(clock, redis_url=l2_url)
    assert answers.lookup(key("What is 17*23?")).outcomes == {"l1": "miss", **({"l2": "miss"} if l2_url else {})}
    stored = answers.store(key("What is 17*23?"), "17*23 = 391 (calculator).")
    assert stored == {"l1": "stored", **({"l2": "stored"} if l2_url else {})}
    found = answers.lookup(key("  what is 17*23 "))
    assert (found.answer, found.level, found.outcomes) == ("17*23 = 391 (calculator).", "l1", {"l1": "hit"})
    assert not answers.lookup(key("What is 17*24?")).hit
    answers.close()


async def test_exact_hit_async(clock: ManualClock, l2_url: str | None) -> None:
    answers = cache(clock, redis_url=l2_url)
    stored = await answers.astore(key("What is 17*23?"), "391")
    assert stored == {"l1": "stored", **({"l2": "stored"} if l2_url else {})}
    found = await answers.alookup(key("what is 17*23"))
    assert (found.answer, found.level) == ("391", "l1")
    await answers.aclose()


def test_mode_off_does_nothing(clock: ManualClock) -> None:
    answers = cache(clock, mode="off")
    assert answers.store(key("hi"), "hello") == {}
    assert answers.lookup(key("hi")).outcomes == {}


def test_another_replica_hits_redis(clock: ManualClock, redis_url: str, redis_server: RedisServer) -> None:
    """A second process (its own L1) finds the answer in Redis, keyed by a digest, with a TTL."""
    first, second = cache(clock, redis_url=redis_url), cache(clock, redis_url=f"{redis_url}?ttl=5")
    first.store(key("Convert 150 Euros to Canadian dollars"), "150 EUR is about 220 CAD.")
    found = second.lookup(key("convert 150 euros to canadian dollars."))
    assert (found.answer, found.level) == ("150 EUR is about 220 CAD.", "l2")
    assert found.outcomes == {"l1": "miss", "l2": "hit"}
    assert second.lookup(key("convert 150 euros to canadian dollars")).level == "l1"  # copied into its L1
    with redis_server.client() as client:
        [name] = client.keys("*")
        assert name.decode().startswith("bulwark:answer_cache:") and len(name.decode().rsplit(":", 1)[1]) == 64
        assert client.get(name) == "150 EUR is about 220 CAD.".encode()  # the answer, nothing else
        assert 0 < client.pttl(name) <= TTL_S * 1000
    first.close()
    second.close()


def test_an_answer_from_redis_keeps_its_remaining_lifetime_in_l1(
    clock: ManualClock, redis_url: str, redis_server: RedisServer
) -> None:
    first, second = cache(clock, redis_url=redis_url), cache(clock, redis_url=redis_url)
    first.store(key("what is 2+2"), "4")
    with redis_server.client() as client:
        [name] = client.keys("*")
        client.pexpire(name, 60_000)  # as if stored 540 s ago
    assert second.lookup(key("what is 2+2")).level == "l2"
    clock.advance(59)
    assert second.lookup(key("what is 2+2")).level == "l1"
    clock.advance(2)
    assert second.lookup(key("what is 2+2")).outcomes["l1"] == "miss"  # gone from L1 when Redis drops it


def test_ttl_expiry(clock: ManualClock, memory: QdrantStore) -> None:
    """Every level drops an answer after ttl_s on the injected clock (Redis' PX: see above)."""
    answers = cache(clock, mode="semantic")
    answers.store(key("Who was the President of the United States in 1940?"), "Franklin D. Roosevelt.", memory=memory)
    clock.advance(TTL_S - 1)
    assert answers.lookup(key("who was the president of the united states in 1940"), memory=memory).level == "l1"
    paraphrase = key("In 1940, who was the President of the United States?")
    assert cache(clock, mode="semantic").lookup(paraphrase, memory=memory).level == "semantic"
    clock.advance(2)
    late = answers.lookup(key("Who was the President of the United States in 1940?"), memory=memory)
    assert late.outcomes == {"l1": "miss", "semantic": "miss"}


def test_tenants_never_share(clock: ManualClock, memory: QdrantStore, l2_url: str | None) -> None:
    answers = cache(clock, mode="semantic", redis_url=l2_url)
    answers.store(key("What is the capital of France?", tenant="acme"), "Paris.", memory=memory)
    other = answers.lookup(key("What is the capital of France?", tenant="globex"), memory=memory)
    assert not other.hit
    assert set(other.outcomes.values()) == {"miss"}
    assert set(other.outcomes) == {"l1", "semantic", *(["l2"] if l2_url else [])}
    assert answers.lookup(key("What is the capital of France?", tenant="acme"), memory=memory).hit


def test_context_or_model_change_is_a_miss(clock: ManualClock, memory: QdrantStore, l2_url: str | None) -> None:
    answers = cache(clock, mode="semantic", redis_url=l2_url)
    earlier = [HumanMessage("I live in Lisbon"), AIMessage("Noted.")]
    before = context_digest("You are Bulwark.", earlier)
    answers.store(key("what is the weather there?", context=before), "Sunny in Lisbon.", memory=memory)
    assert answers.lookup(key("what is the weather there?", context=before), memory=memory).hit
    follow_up = context_digest("You are Bulwark.", [HumanMessage("I live in Oslo"), AIMessage("Noted.")])
    for changed in (key("what is the weather there?", context=follow_up),
                    key("what is the weather there?", model="openai:gpt-4o")):
        found = answers.lookup(changed, memory=memory)
        assert not found.hit and found.outcomes["semantic"] == "miss"


# -- the semantic level -------------------------------------------------------------------------


def test_the_store_score_is_the_cosine_of_the_embeddings(memory: QdrantStore) -> None:
    """With the hash embedder (unit vectors) on Qdrant's cosine distance, a search score is
    the cosine similarity the threshold is meant for."""
    import numpy as np

    texts = ["area circle with radius 10", "circumference circle with radius 3", "directions from sydney to melbourne"]
    for n, text in enumerate(texts):
        memory.put(answer_namespace("t", "offline", CONTEXT), f"k{n}", {"text": text})
    query = "area circle with radius 3"
    found = memory.search(answer_namespace("t", "offline", CONTEXT), query=query, limit=5)
    scores = {item.value["text"]: item.score for item in found}
    wanted = {t: float(np.dot(EMBED.embed_query(query), EMBED.embed_query(t))) for t in texts}
    assert scores.keys() == wanted.keys()
    for text in texts:
        assert scores[text] == pytest.approx(wanted[text], abs=1e-4)


async def test_a_paraphrase_hits_the_semantic_level(clock: ManualClock, memory: QdrantStore) -> None:
    answers = cache(clock, mode="semantic")
    answer = "x = (-6 ± √-4)/4: no real roots."
    await answers.astore(key("Solve a quadratic equation where a=2, b=6, and c=5"), answer, memory=memory)
    paraphrase = key("solve the quadratic equation with a=2, b=6 and c=5")
    found = await answers.alookup(paraphrase, memory=memory)
    assert (found.answer, found.level, found.outcomes) == (answer, "semantic", {"l1": "miss", "semantic": "hit"})
    assert 0.95 <= found.similarity < 1
    assert (await answers.alookup(paraphrase, memory=memory)).level == "l1"  # copied into L1
    stored = memory.search((ANSWER_CACHE,), limit=10)
    assert [item.namespace for item in stored] == [answer_namespace("acme", "offline", CONTEXT)]
    assert stored[0].namespace[:2] == ("answer_cache", "acme")
    assert stored[0].value == {"text": "solve quadratic equation where 2 b 6 and c 5",
                               "request": "Solve a quadratic equation where a=2, b=6, and c=5",
                               "answer": answer, "expires_at": clock() + TTL_S}


def test_a_semantic_hit_is_copied_to_redis(clock: ManualClock, memory: QdrantStore, redis_url: str) -> None:
    def replica() -> AnswerCache:
        return cache(clock, mode="semantic", redis_url=redis_url)

    replica().store(key("Who was the President of the United States in 1940?"), "Franklin D. Roosevelt.", memory=memory)
    paraphrase = key("In 1940, who was the President of the United States?")
    assert replica().lookup(paraphrase, memory=memory).level == "semantic"
    found = replica().lookup(paraphrase)  # another replica, without the store: Redis has it now
    assert (found.level, found.answer) == ("l2", "Franklin D. Roosevelt.")


def test_the_guard_refuses_a_similar_request_with_other_specifics(clock: ManualClock, memory: QdrantStore) -> None:
    answers = cache(clock, mode="semantic", similarity=0.5)  # let the guard alone decide
    answers.store(key("Convert 150 Euros to Canadian dollars"), "about 220 CAD", memory=memory)
    for other in ("Convert 150 Canadian dollars to Euros", "Convert 250 Euros to Canadian dollars",
                  "Convert 150 Euros to US dollars", "Do not convert 150 Euros to Canadian dollars"):
        assert answers.lookup(key(other), memory=memory).outcomes["semantic"] == "miss", other
    assert answers.lookup(key("please convert 150 euros into canadian dollars"), memory=memory).level == "semantic"


def test_zero_false_hits_on_the_near_miss_set(clock: ManualClock, memory: QdrantStore) -> None:
    """Every question of the near-miss set stored in one tenant; no near miss is served anything."""
    answers = cache(clock, mode="semantic")
    near = rows("cache_near_miss.jsonl")
    questions = {normalise_request(r["question"]): r["question"] for r in near}
    assert not questions.keys() & {normalise_request(r["near_miss"]) for r in near}
    for n, question in enumerate(questions.values()):
        answers.store(key(question), f"answer {n}", memory=memory)
    served = {r["id"]: found.answer for r in near if (found := answers.lookup(key(r["near_miss"]), memory=memory)).hit}
    assert served == {}
    assert len(near) >= 100


def test_the_guard_on_the_near_miss_set() -> None:
    """Only the near misses that differ in an ordinary word (or a name typed in lower case)
    get past the guard; the similarity threshold keeps those apart."""
    passed = {r["differs"] for r in rows("cache_near_miss.jsonl") if same_specifics(r["question"], r["near_miss"])}
    assert passed <= {"word", "entity"}
    entities = [r for r in rows("cache_near_miss.jsonl") if r["differs"] == "entity"]
    passed_entities = [r for r in entities if same_specifics(r["question"], r["near_miss"])]
    assert all(r["question"] == r["question"].lower() for r in passed_entities)


def test_the_guard_lets_most_paraphrases_through() -> None:
    pairs = rows("cache_paraphrases.jsonl")
    assert len(pairs) >= 100
    assert sum(same_specifics(r["question"], r["paraphrase"]) for r in pairs) >= 0.85 * len(pairs)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("What is 5 km in miles?", "what's five kilometres in miles", True),
        ("What is 5 km in miles?", "What is 6 km in miles?", False),
        ("a=1, b=-3, c=2", "a=1, b=3, c=2", False),
        ("a population of 213 million", "a population of 213,000,000", True),
        ("100 million shares", "100 billion shares", False),
        ("twenty five apples", "25 apples", True),
        ("the third chord", "the fourth chord", False),
        ("Flights from Paris to Rome", "flights from paris to rome", True),
        ("Flights from Paris to Rome", "Flights from Rome to Paris", False),
        ("Flights from Paris to Rome", "Flights from Paris to Milan", False),
        ("in Celsius", "in Fahrenheit", False),
        ("weather for the next week", "weather for the next month", False),
        ("$100", "100 US dollars", True),
        ("100 Canadian dollars", "100 US dollars", False),
        ("Sentiment of 'I love it'", "Sentiment of 'I hate it'", False),
        ("call math.factorial", "call math.gamma", False),
        ("read C:/data/cars.csv", "read C:/data/trucks.csv", False),
        ("speed without air resistance", "speed with air resistance", False),
        ("I don't want nuts", "I do want nuts", False),
        ("code in not Python but Rust", "code in Python but not Rust", False),
        ("derivative of x^2 + 1", "derivative of x^2 - 1", False),
        ("When was the treaty signed?", "Where was the treaty signed?", False),
        ("Solve an equation where a=2", "Solve an equation with a=2", True),
        ("What is the GDP of the U.S. in 2020?", "What's the GDP of the US in 2020", True),
    ],
)
def test_specifics(a: str, b: str, same: bool) -> None:
    assert same_specifics(a, b) is same, (specifics(a), specifics(b))


# -- failures ---------------------------------------------------------------------------------


def test_redis_down_is_a_miss(
    clock: ManualClock, redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache(clock, redis_url=redis_url).store(key("what is 2+2"), "4")
    redis_server.stop()
    answers = cache(clock, redis_url=redis_url)
    with caplog.at_level(logging.WARNING, logger="bulwark.models.cache"):
        assert answers.lookup(key("what is 2+2")).outcomes == {"l1": "miss", "l2": "error"}
        assert answers.store(key("what is 3+3"), "6") == {"l1": "stored", "l2": "error"}
        assert answers.lookup(key("what is 3+3")).level == "l1"  # L1 still works
        assert answers.lookup(key("what is 4+4")).outcomes == {"l1": "miss", "l2": "error"}
    assert "answer cache level l2 failed, treated as a miss: ConnectionError" in caplog.text
    # Three failures in a row open the breaker: Redis is skipped, without waiting on the network ...
    assert answers.l2 is not None
    with pytest.raises(RedisUnreachable, match="skipped: it failed 3 times in a row, retry in 30 s"):
        answers.l2.get("0" * 64)
    assert answers.lookup(key("what is 2+2")).outcomes == {"l1": "miss", "l2": "error"}
    redis_server.start()
    assert answers.lookup(key("what is 2+2")).outcomes["l2"] == "error"
    clock.advance(30)  # ... until its recovery time, when it is tried again
    assert answers.lookup(key("what is 2+2")).level == "l2"


async def test_redis_down_is_a_miss_async(clock: ManualClock, redis_url: str, redis_server: RedisServer) -> None:
    redis_server.stop()
    answers = cache(clock, redis_url=redis_url)
    assert (await answers.alookup(key("what is 2+2"))).outcomes == {"l1": "miss", "l2": "error"}
    assert await answers.astore(key("what is 2+2"), "4") == {"l1": "stored", "l2": "error"}
    await answers.aclose()


def test_store_down_is_a_miss(clock: ManualClock, qdrant_server: QdrantTestServer, tmp_path: Path) -> None:
    dims = len(EMBED.embed_query("probe"))
    collection = ServerCollection.open(qdrant_server.url, dims=dims, name=f"down{abs(hash(tmp_path))}", clock=clock)
    memory = QdrantStore(collection, index={"dims": dims, "embed": EMBED, "fields": ["text"]}, clock=clock)
    answers = cache(clock, mode="semantic")
    qdrant_server.stop()
    try:
        assert answers.store(key("what is 2+2"), "4", memory=memory) == {"l1": "stored", "semantic": "error"}
        assert answers.lookup(key("what is 2 + 2"), memory=memory).outcomes == {"l1": "miss", "semantic": "error"}
    finally:
        qdrant_server.start()


# -- metrics ----------------------------------------------------------------------------------


def test_lookups_are_counted_per_level_and_outcome(
    clock: ManualClock, redis_url: str, redis_server: RedisServer
) -> None:
    def count(level: str, outcome: str) -> float:
        return metrics.REGISTRY.get_sample_value("memory_cache_hits_total", {"level": level, "outcome": outcome}) or 0.0

    reader = InMemoryMetricReader()
    previous = telemetry.install(telemetry.Telemetry(metric_readers=[reader]))
    try:
        before = {(lv, o): count(lv, o) for lv in ("l1", "l2") for o in ("hit", "miss", "error")}
        answers = cache(clock, redis_url=redis_url)
        answers.lookup(key("q"))  # l1 miss, l2 miss
        answers.store(key("q"), "a")
        answers.lookup(key("q"))  # l1 hit
        cache(clock, redis_url=redis_url).lookup(key("q"))  # l1 miss, l2 hit
        redis_server.stop()
        cache(clock, redis_url=redis_url).lookup(key("q"))  # l1 miss, l2 error
        grown = {k: count(*k) - v for k, v in before.items()}
        points = [
            (dict(p.attributes), p.value)
            for resource in reader.get_metrics_data().resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == "memory.cache.hits"
            for p in metric.data.data_points
        ]
    finally:
        telemetry.install(previous)
    assert grown == {("l1", "hit"): 1, ("l1", "miss"): 3, ("l1", "error"): 0,
                     ("l2", "hit"): 1, ("l2", "miss"): 1, ("l2", "error"): 1}
    assert sorted((a["level"], a["outcome"], v) for a, v in points) == [
        ("l1", "hit", 1), ("l1", "miss", 3), ("l2", "error", 1), ("l2", "hit", 1), ("l2", "miss", 1)
    ]


# -- the server's /store API --------------------------------------------------------------------


@pytest.mark.slow
def test_the_store_api_cannot_reach_the_cache_namespace(tmp_path: Path) -> None:
    """The LangGraph server's store handler (server/auth.py) refuses every operation on
    ``("answer_cache", tenant)``, for users and admins alike, and never lists it. Run in a
    child process: importing the handler builds the server's rails and logging."""
    script = textwrap.dedent("""
        import asyncio, json
        from langgraph_sdk import Auth
        import bulwark.server.auth as server

        USER = {"identity": "acme:ada", "tenant_id": "acme", "user_id": "ada", "credential": "key:k", "tier": "default"}
        CACHE = ["answer_cache", "acme"]
        ASKS = [
            ("put", {"namespace": CACHE, "key": "k", "value": {"answer": "planted"}}),
            ("get", {"namespace": CACHE, "key": "k"}),
            ("delete", {"namespace": CACHE, "key": "k"}),
            ("search", {"namespace": CACHE}),
            ("search", {"namespace_prefix": ["answer_cache"]}),
            ("list_namespaces", {"namespace": ["answer_cache"]}),
            ("list_namespaces", {"prefix": ["answer_cache"]}),
            ("list_namespaces", {"namespace": None}),
            ("list_namespaces", {"prefix": None}),
        ]

        async def main():
            out = []
            for permissions in ([], ["admin"]):
                for action, value in ASKS:
                    ctx = Auth.types.AuthContext(permissions=permissions, user=USER, resource="store", action=action)
                    try:
                        result = await server._store(ctx, value)
                        out.append([action, "allowed", value.get("namespace"), result])
                    except Auth.exceptions.HTTPException as exc:
                        out.append([action, exc.status_code])
            print(json.dumps(out))

        asyncio.run(main())
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BULWARK_DATA_DIR": str(tmp_path / "data"),
           "BULWARK_GUARDRAILS_ENGINE": "direct", "PYTHONPATH": ":".join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    refused = [a for a in answers if a[1] != "allowed"]
    assert [a[1] for a in refused] == [403, 404, 403, 404, 404, 404, 404] * 2
    listed = [a for a in answers if a[1] == "allowed"]
    assert len(listed) == 4  # listing without a prefix is narrowed to one's own memories
    assert all("answer_cache" not in json.dumps(a) for a in listed)
