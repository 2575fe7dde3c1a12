"""A LangGraph ``BaseStore`` on Qdrant: the agent's long-term and semantic memory.

The graph (``runtime.store``), the LangGraph server's ``/store`` API and Studio all read and
write this one store (``store.path`` in ``langgraph.json``). LangGraph ships in-memory,
SQLite and Postgres stores but none on Qdrant, hence this module. Items are Qdrant points:

- the point id is derived from (namespace, key), so a put replaces the item;
- the payload holds the namespace (``ns``, plus every prefix in ``ns_path`` for prefix
  search), the key, the value, timestamps and the TTL;
- the one ``text`` vector embeds the item's indexed fields (joined), if it has any.

Search with a query ranks by cosine similarity among items that have a vector; without one,
newest first. Filters on values (``{"kind": "preference", "importance": {"$gte": 0.5}}``)
run inside Qdrant. Expired items are never returned; :meth:`QdrantStore.sweep_ttl` deletes
them (run when a store opens). ``abatch`` runs ``batch`` on a worker thread: the embedded
engine is synchronous, and one code path keeps the two backends identical.

Bad input (an illegal namespace, a value that is not JSON, a vector of the wrong size)
raises before anything is written.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    _ensure_refresh,
    _ensure_ttl,
    _validate_namespace,
    validate_op_namespace,
)
from langgraph.store.base.embed import ensure_embeddings, get_text_at_path, tokenize_path

from bulwark.memory.backends import (
    Collection,
    EdgeCollection,
    Match,
    MemoryStoreError,
    Range,
    ServerCollection,
    StoredPoint,
    Where,
)
from bulwark.settings import Settings

__all__ = ["MemoryStoreError", "QdrantStore", "open_memory_store"]

MAX_LABEL_CHARS = 256
MAX_KEY_CHARS = 1024
MAX_VALUE_BYTES = 1_000_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELD = re.compile(r"^[A-Za-z0-9_-]+$")
_OPERATORS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


class QdrantStore(BaseStore):
    """LangGraph store over a Qdrant collection (embedded or server).

    Args:
        collection: where the points live (:class:`~bulwark.memory.backends.EdgeCollection`
            or :class:`~bulwark.memory.backends.ServerCollection`).
        index: LangGraph's index config (``dims``, ``embed``, ``fields``); without it items
            are stored but search ignores ``query``.
        ttl: LangGraph's TTL config; ``default_ttl`` is in minutes.
        clock: seconds since the epoch; injected so TTL tests need not sleep.
    """

    supports_ttl = True

    def __init__(
        self,
        collection: Collection,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collection = collection
        self.ttl_config = ttl
        self.clock = clock
        self.embeddings: Embeddings | None = None
        self.fields: list[tuple[str, list[str]]] = []
        if index:
            self.embeddings = ensure_embeddings(index["embed"])
            self.fields = [(f, tokenize_path(f)) for f in index.get("fields") or ["$"]]
            if index["dims"] != collection.dims:
                raise MemoryStoreError(
                    f"index dims {index['dims']} differ from the collection's {collection.dims} "
                    f"at {collection.location}"
                )

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the collection (an embedded shard closes when its last store does)."""
        self.collection.close()

    # BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            _check_op(op)
        now = self.clock()
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op, now))
            elif isinstance(op, SearchOp):
                results.append(self._search(op, now))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op, now))
            elif isinstance(op, PutOp):
                puts[(op.namespace, op.key)] = op  # the last put of a key wins
                results.append(None)
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        if puts:
            self._put(list(puts.values()), now)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # Maintenance

    def sweep_ttl(self) -> int:
        """Delete expired items; returns how many there were."""
        expired = Where(must=(Range("expires_at", lte=self.clock()),))
        count = self.collection.count(expired)
        if count:
            self.collection.delete_where(expired)
        return count

    def forget(self, namespace_prefix: tuple[str, ...]) -> int:
        """Delete every item under ``namespace_prefix`` (a user's erasure); returns the count."""
        _validate_namespace(namespace_prefix)
        where = Where(must=(Match("ns_path", _join(namespace_prefix)),))
        count = self.collection.count(where)
        if count:
            self.collection.delete_where(where)
        return count

    def optimize(self) -> None:
        """Index recently written items now (see :meth:`EdgeCollection.optimize`)."""
        self.collection.optimize()

    def count(self, namespace_prefix: tuple[str, ...] = ()) -> int:
        """How many live items are under ``namespace_prefix`` (all, if empty)."""
        return self.collection.count(self._where(namespace_prefix, None, self.clock()))

    # Operations

    def _get(self, op: GetOp, now: float) -> Item | None:
        payloads = self.collection.retrieve([_point_id(op.namespace, op.key)])
        live = [p for p in payloads if not _expired(p, now)]
        if not live:
            return None
        if _ensure_refresh(self.ttl_config, op.refresh_ttl):
            self._refresh(live, now)
        return _item(live[0])

    def _search(self, op: SearchOp, now: float) -> list[SearchItem]:
        where = self._where(op.namespace_prefix, op.filter, now)
        if op.query and self.embeddings is not None:
            vector = self._vectors([op.query], query=True)[0]
            hits = self.collection.query(vector, where, limit=op.limit, offset=op.offset)
        else:
            payloads = self.collection.scroll(where, limit=op.offset + op.limit)[op.offset :]
            hits = [(payload, None) for payload in payloads]
        if hits and _ensure_refresh(self.ttl_config, op.refresh_ttl):
            self._refresh([payload for payload, _ in hits], now)
        return [_search_item(payload, score) for payload, score in hits]

    def _list_namespaces(self, op: ListNamespacesOp, now: float) -> list[tuple[str, ...]]:
        prefix = next(
            (c.path for c in op.match_conditions or () if c.match_type == "prefix" and "*" not in c.path),
            (),
        )
        found = {tuple(ns.split(".")) for ns in self.collection.facet("ns", self._where(prefix, None, now))}
        matching = [ns for ns in found if all(_matches(c, ns) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            matching = list({ns[: op.max_depth] for ns in matching})
        return sorted(matching)[op.offset : op.offset + op.limit]

    def _put(self, ops: list[PutOp], now: float) -> None:
        deletes = [_point_id(op.namespace, op.key) for op in ops if op.value is None]
        writes = [op for op in ops if op.value is not None]
        if writes:
            points = self._points(writes, now)  # embeds and validates before any write
            self.collection.upsert(points)
        if deletes:
            self.collection.delete(deletes)

    def _points(self, ops: list[PutOp], now: float) -> list[StoredPoint]:
        ids = [_point_id(op.namespace, op.key) for op in ops]
        created = {
            _point_id(tuple(p["ns"].split(".")), p["key"]): p["created_at"]
            for p in self.collection.retrieve(ids)
        }
        texts = {i: text for i, op in enumerate(ops) if (text := self._text(op))}
        vectors = dict(zip(texts, self._vectors(list(texts.values())), strict=True)) if texts else {}
        points = []
        for i, (point_id, op) in enumerate(zip(ids, ops, strict=True)):
            payload: dict[str, Any] = {
                "ns": _join(op.namespace),
                "ns_path": [_join(op.namespace[:depth]) for depth in range(1, len(op.namespace) + 1)],
                "key": op.key,
                "value": op.value,
                "created_at": created.get(point_id, now),
                "updated_at": now,
            }
            ttl = _ensure_ttl(self.ttl_config, op.ttl)
            if ttl is not None:
                payload |= {"ttl_minutes": ttl, "expires_at": now + ttl * 60}
            points.append(StoredPoint(id=point_id, vector=vectors.get(i), payload=payload))
        return points

    def _text(self, op: PutOp) -> str:
        """The text to embed for ``op``: its indexed fields, joined."""
        if self.embeddings is None or op.index is False:
            return ""
        fields = self.fields if op.index is None else [(f, tokenize_path(f)) for f in op.index]
        return "\n".join(text for _, path in fields for text in get_text_at_path(op.value, path) if text.strip())

    def _vectors(self, texts: list[str], *, query: bool = False) -> list[list[float]]:
        assert self.embeddings is not None
        vectors = [self.embeddings.embed_query(texts[0])] if query else self.embeddings.embed_documents(texts)
        for vector in vectors:
            if len(vector) != self.collection.dims:
                raise MemoryStoreError(
                    f"the embedder made a {len(vector)}-dimensional vector but the memory store at "
                    f"{self.collection.location} holds {self.collection.dims}: nothing was written"
                )
        return [list(map(float, v)) for v in vectors]

    def _refresh(self, payloads: list[dict[str, Any]], now: float) -> None:
        by_ttl: dict[float, list[str]] = defaultdict(list)
        for p in payloads:
            if p.get("ttl_minutes") is not None:
                by_ttl[p["ttl_minutes"]].append(_point_id(tuple(p["ns"].split(".")), p["key"]))
        for ttl, ids in by_ttl.items():
            self.collection.set_payload(ids, {"expires_at": now + ttl * 60})

    def _where(self, prefix: tuple[str, ...], filter: dict[str, Any] | None, now: float) -> Where:
        must: list[Match | Range] = [Match("ns_path", _join(prefix))] if prefix else []
        must_not: list[Match | Range] = [Range("expires_at", lte=now)]
        for key, wanted in (filter or {}).items():
            _conditions(f"value.{key}", wanted, must, must_not)
        return Where(must=tuple(must), must_not=tuple(must_not))


def open_memory_store(settings: Settings, *, embeddings: Embeddings | None = None) -> QdrantStore:
    """Open the memory store ``settings`` name, ready for the graph and the server.

    ``settings.resolved_memory_url`` picks the engine: a directory (embedded Qdrant Edge, the
    default ``<data_dir>/memory``), ``http(s)://`` (a Qdrant server) or ``memory://`` (an
    embedded store in a temporary directory, gone when the process ends). Expired items are
    swept on opening.

    Raises:
        MemoryStoreError: the store cannot be opened, is in use by another process, or holds
            vectors of another size than the embedder makes.
    """
    from bulwark.memory.embeddings import embeddings_dims, make_embeddings

    embeddings = embeddings or make_embeddings(settings.embeddings, settings=settings)
    dims = embeddings_dims(embeddings)
    url = settings.resolved_memory_url
    collection: Collection
    if url.startswith(("http://", "https://")):
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        collection = ServerCollection.open(url, dims=dims, api_key=key)
    elif url == "memory://":
        collection = EdgeCollection.open(Path(tempfile.mkdtemp(prefix="bulwark-memory-")), dims=dims)
    else:
        collection = EdgeCollection.open(Path(url), dims=dims)
    ttl: TTLConfig | None = None
    if settings.memory_ttl_days:
        ttl = {"default_ttl": settings.memory_ttl_days * 24 * 60, "refresh_on_read": True}
    store = QdrantStore(collection, index={"dims": dims, "embed": embeddings, "fields": ["text"]}, ttl=ttl)
    store.sweep_ttl()
    return store


def _check_op(op: Op) -> None:
    """Refuse what Qdrant payloads or our namespace encoding cannot hold."""
    validate_op_namespace(op)
    labels = op.namespace if isinstance(op, GetOp | PutOp) else ()
    if isinstance(op, SearchOp):
        labels = op.namespace_prefix
    for label in labels:
        if len(label) > MAX_LABEL_CHARS or _CONTROL.search(label) or label == "*":
            raise InvalidNamespaceError(
                f"invalid namespace label {label[:40]!r}: labels are at most {MAX_LABEL_CHARS} "
                "characters, without control characters, and not '*'"
            )
    if isinstance(op, GetOp | PutOp) and (not isinstance(op.key, str) or not op.key or len(op.key) > MAX_KEY_CHARS):
        raise ValueError(f"a store key is a non-empty string of at most {MAX_KEY_CHARS} characters")
    if isinstance(op, PutOp):
        _validate_namespace(op.namespace)
        if op.value is not None:
            if not isinstance(op.value, dict):
                raise ValueError(f"a store value is a dict, not {type(op.value).__name__}")
            try:
                size = len(json.dumps(op.value, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"a store value must be JSON: {exc}") from None
            if size > MAX_VALUE_BYTES:
                raise ValueError(f"a store value is at most {MAX_VALUE_BYTES} bytes of JSON (got {size})")
    if isinstance(op, SearchOp):
        if op.limit < 0 or op.offset < 0:
            raise ValueError("search limit and offset cannot be negative")
        for key in op.filter or {}:
            if not _FIELD.match(key):
                raise ValueError(f"invalid filter field {key!r}: use letters, digits, '_' and '-'")


def _conditions(
    key: str, wanted: Any, must: list[Match | Range], must_not: list[Match | Range]
) -> None:
    """Translate one LangGraph filter entry (value, operators or nested dict) to conditions."""
    if isinstance(wanted, dict) and any(k.startswith("$") for k in wanted):
        for operator, value in wanted.items():
            if operator == "$eq":
                must.append(_equals(key, value))
            elif operator == "$ne":
                must_not.append(_equals(key, value))
            elif operator in _OPERATORS and isinstance(value, int | float) and not isinstance(value, bool):
                must.append(Range(key, **{_OPERATORS[operator]: float(value)}))
            else:
                raise ValueError(f"unsupported filter {operator!r} on {key!r}: use $eq $ne $gt $gte $lt $lte")
    elif isinstance(wanted, dict):
        for sub, value in wanted.items():
            if not _FIELD.match(sub):
                raise ValueError(f"invalid filter field {sub!r}")
            _conditions(f"{key}.{sub}", value, must, must_not)
    else:
        must.append(_equals(key, wanted))


def _equals(key: str, value: Any) -> Match | Range:
    if isinstance(value, bool | int | str):
        return Match(key, value)
    if isinstance(value, float):
        return Range(key, gte=value, lte=value)
    raise ValueError(f"cannot filter {key!r} on a {type(value).__name__}: use a string, number or bool")


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :] if path else ()
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


def _join(namespace: tuple[str, ...]) -> str:
    return ".".join(namespace)  # safe: labels cannot contain "."


def _point_id(namespace: tuple[str, ...], key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps([list(namespace), key])))


def _expired(payload: dict[str, Any], now: float) -> bool:
    return payload.get("expires_at") is not None and payload["expires_at"] <= now


def _item(payload: dict[str, Any]) -> Item:
    return Item(
        value=payload["value"],
        key=payload["key"],
        namespace=tuple(payload["ns"].split(".")),
        created_at=datetime.fromtimestamp(payload["created_at"], timezone.utc),
        updated_at=datetime.fromtimestamp(payload["updated_at"], timezone.utc),
    )


def _search_item(payload: dict[str, Any], score: float | None) -> SearchItem:
    item = _item(payload)
    return SearchItem(
        namespace=item.namespace, key=item.key, value=item.value,
        created_at=item.created_at, updated_at=item.updated_at, score=score,
    )
