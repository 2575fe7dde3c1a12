"""The knowledge base: documents chunked for retrieval, one namespace per tenant.

``bulwark ingest`` (or :func:`ingest`) reads Markdown and plain-text files, cuts them into
chunks of at most ``max_chars`` characters and stores each chunk in the tenant's
knowledge namespace (see :func:`~bulwark.memory.longterm.knowledge_namespace`), embedded
for semantic search by the ``knowledge_search`` tool.

Chunking: Markdown is split at its headings (each chunk's ``title`` is the heading path,
``"Guide > Install"``), plain text (``.txt``, ``.rst``) only at blank lines. The
paragraphs of a section are packed into chunks; a paragraph too long for one chunk is cut
at whitespace, never inside a word (a single word longer than a chunk is the only thing
ever cut). Each chunk after the first of a section starts with the last few words of the
previous one, so a sentence cut at a boundary is still found whole in one of them.

A chunk is stored under the key ``"<source>#<n>"`` with the value ``{"text", "source",
"chunk", "title", "sha"}``, ``sha`` being the SHA-256 of the file's bytes: ingesting an
unchanged file again does nothing, a changed file's chunks replace its old ones.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.store.base import BaseStore, Item, Op, PutOp

from bulwark.memory.longterm import knowledge_namespace

MAX_CHARS = 800
"""Default longest chunk, in characters."""
MIN_CHARS = 20
"""Smallest ``max_chars`` accepted."""
SUFFIXES: dict[str, bool] = {".md": True, ".markdown": True, ".txt": False, ".rst": False}
"""Extensions ingested, mapped to whether the file is Markdown."""
_PAGE = 500  # stored chunks read per search call when looking for a file's old chunks

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_SPACE = re.compile(r"\s")

Status = Literal["ingested", "unchanged", "skipped", "error"]


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """A piece of a document, small enough to embed and to show a model."""

    text: str
    title: str
    """The heading path of the chunk's section (``"Guide > Install"``); empty for plain text."""


def chunk_markdown(text: str, *, max_chars: int = MAX_CHARS, overlap: int | None = None) -> list[Chunk]:
    """Split Markdown at its headings, then pack each section's paragraphs into chunks.

    A section's first chunk starts with its heading; a section with no text of its own
    (a heading right before a sub-heading) gives no chunk. Headings inside fenced code
    blocks are text.

    Args:
        text: the Markdown document.
        max_chars: longest chunk, in characters.
        overlap: characters of the previous chunk repeated at the start of the next one
            in the same section; default ``max_chars // 8``.
    """
    chunks: list[Chunk] = []
    for path, heading, body in _sections(text):
        if body.strip():
            title = " > ".join(path)
            section = f"{heading}\n\n{body}" if heading else body
            pieces = _pack(section, max_chars=max_chars, overlap=overlap)
            chunks += (Chunk(text=piece, title=title) for piece in pieces)
    return chunks


def chunk_text(text: str, *, max_chars: int = MAX_CHARS, overlap: int | None = None) -> list[Chunk]:
    """Pack the paragraphs of plain text into chunks (arguments as :func:`chunk_markdown`)."""
    return [Chunk(text=piece, title="") for piece in _pack(text, max_chars=max_chars, overlap=overlap)]


def _sections(text: str) -> Iterator[tuple[list[str], str, str]]:
    """``(heading path, heading line, text)`` of each section; the first may have no heading."""
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: str | None = None

    def section() -> tuple[list[str], str, str]:
        heading = f"{'#' * path[-1][0]} {path[-1][1]}" if path else ""
        return [title for _, title in path], heading, "\n".join(lines)

    for line in text.splitlines():
        if fence is None and (match := _FENCE.match(line)):
            fence = match[1]
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None and (match := _ATX.match(line)):
            yield section()
            level, title, lines = len(match[1]), (match[2] or "").strip(), []
            path = [*(h for h in path if h[0] < level), (level, title)]
            continue
        elif fence is None and lines and lines[-1].strip() and (match := _SETEXT.match(line)):
            title = lines.pop().strip()
            yield section()
            level, lines = (1 if match[1][0] == "=" else 2), []
            path = [*(h for h in path if h[0] < level), (level, title)]
            continue
        lines.append(line)
    yield section()


def _pack(text: str, *, max_chars: int, overlap: int | None) -> list[str]:
    """Paragraphs of ``text`` packed into chunks of at most ``max_chars`` characters."""
    overlap = max_chars // 8 if overlap is None else overlap
    if max_chars < MIN_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_CHARS}, got {max_chars}")
    if not 0 <= overlap <= max_chars // 4:
        raise ValueError(f"overlap must be between 0 and max_chars // 4 ({max_chars // 4}), got {overlap}")
    # A piece plus an overlap and the separator between them still fits in one chunk.
    limit = max_chars - overlap - 2
    paragraphs = (p.strip() for p in _BLANK_LINES.split(text.replace("\r\n", "\n")))
    chunks: list[str] = []
    current = ""
    for piece in (piece for p in paragraphs if p for piece in _cut(p, limit)):
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            current = _tail(current, overlap)
        current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _cut(paragraph: str, limit: int) -> Iterator[str]:
    """``paragraph`` in pieces of at most ``limit`` characters, cut at a line break or a space."""
    while len(paragraph) > limit:
        # Prefer a line break in the second half (table rows, list items), then any space.
        line = paragraph.rfind("\n", limit // 2, limit + 1)
        cut = line if line > 0 else max((m.start() for m in _SPACE.finditer(paragraph, 0, limit + 1)), default=0)
        cut = cut or limit  # one word longer than a chunk: the only cut inside a word
        yield paragraph[:cut].rstrip()
        paragraph = paragraph[cut:].lstrip()
    if paragraph:
        yield paragraph


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text`` at most, starting at a line or a word."""
    if overlap == 0:
        return ""
    start = len(text) - overlap
    newline = text.find("\n", max(start, 0))
    if newline != -1:  # whole lines (table rows, list items) rather than a line's end
        start = newline + 1
    elif start > 0 and not text[start - 1].isspace():
        space = _SPACE.search(text, start)
        start = space.end() if space else len(text)
    return text[max(start, 0):].strip()


# -- ingesting -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FileResult:
    """What happened to one file."""

    source: str
    status: Status
    chunks: int = 0
    """Chunks stored (``ingested``) or already there (``unchanged``)."""
    reason: str = ""
    """Why it was skipped or failed."""

    def __str__(self) -> str:
        if self.status == "ingested":
            return f"{self.source}: ingested {self.chunks} chunk{'s' * (self.chunks != 1)}"
        if self.status == "unchanged":
            return f"{self.source}: unchanged"
        return f"{self.source}: {self.status}: {self.reason}"


@dataclass(kw_only=True)
class IngestReport:
    """The outcome of :func:`ingest`, one :class:`FileResult` per file met."""

    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no file failed (skipped files are not failures)."""
        return not any(f.status == "error" for f in self.files)

    def count(self, status: Status) -> int:
        """How many files ended with ``status``."""
        return sum(f.status == status for f in self.files)

    def summary(self) -> str:
        """One line: files per outcome and chunks stored."""
        chunks = sum(f.chunks for f in self.files if f.status == "ingested")
        return (
            f"{self.count('ingested')} ingested ({chunks} chunks), {self.count('unchanged')} "
            f"unchanged, {self.count('skipped')} skipped, {self.count('error')} errors"
        )


@dataclass(frozen=True, kw_only=True)
class _Document:
    source: str
    sha: str
    chunks: list[Chunk]

    def key(self, n: int) -> str:
        return f"{self.source}#{n}"


def ingest(
    store: BaseStore, paths: Iterable[str | os.PathLike[str]], *, tenant_id: str, max_chars: int = MAX_CHARS
) -> IngestReport:
    """Chunk the documents at ``paths`` (files or directories) into ``tenant_id``'s knowledge base.

    Directories are walked recursively (hidden entries left out); only ``.md``,
    ``.markdown``, ``.txt`` and ``.rst`` files are read, others are reported as skipped.
    A file that is missing, unreadable or not UTF-8 is reported as an error and the others
    are still ingested. An empty file is skipped (and its old chunks, if any, removed).

    Args:
        store: the store holding the knowledge base; its index embeds the ``text`` field.
        paths: files and directories to ingest.
        tenant_id: whose knowledge base receives the chunks.
        max_chars: longest chunk, in characters.
    """
    namespace = _namespace(tenant_id)
    report = IngestReport()
    for item in _documents(paths, max_chars=max_chars):
        if isinstance(item, FileResult):
            report.files.append(item)
            continue
        existing: list[Item] = []
        while page := store.search(namespace, **_stored_chunks(item, offset=len(existing))):
            existing += page
        result, ops = _plan(namespace, item, existing)
        if ops:
            store.batch(ops)
        report.files.append(result)
    return report


async def aingest(
    store: BaseStore, paths: Iterable[str | os.PathLike[str]], *, tenant_id: str, max_chars: int = MAX_CHARS
) -> IngestReport:
    """Async :func:`ingest` (the files are read synchronously, the store is awaited)."""
    namespace = _namespace(tenant_id)
    report = IngestReport()
    for item in _documents(paths, max_chars=max_chars):
        if isinstance(item, FileResult):
            report.files.append(item)
            continue
        existing: list[Item] = []
        while page := await store.asearch(namespace, **_stored_chunks(item, offset=len(existing))):
            existing += page
        result, ops = _plan(namespace, item, existing)
        if ops:
            await store.abatch(ops)
        report.files.append(result)
    return report


def _namespace(tenant_id: str) -> tuple[str, str]:
    if not tenant_id.strip():
        raise ValueError("tenant_id cannot be empty")
    return knowledge_namespace(tenant_id)


def _stored_chunks(doc: _Document, *, offset: int) -> dict[str, Any]:
    """Search arguments for a page of the chunks already stored for ``doc``'s file."""
    return {"filter": {"source": doc.source}, "limit": _PAGE, "offset": offset}


def _plan(
    namespace: tuple[str, ...], doc: _Document, existing: Sequence[Item]
) -> tuple[FileResult, list[Op]]:
    """The result for ``doc`` and the store writes that bring its stored chunks up to date."""
    keys = [doc.key(n) for n in range(len(doc.chunks))]
    same = {i.key for i in existing} == set(keys) and all(i.value.get("sha") == doc.sha for i in existing)
    if doc.chunks and same:
        return FileResult(source=doc.source, status="unchanged", chunks=len(keys)), []
    ops: list[Op] = [
        PutOp(namespace, key, {"text": chunk.text, "source": doc.source, "chunk": n, "title": chunk.title,
                               "sha": doc.sha}, index=["text"])
        for n, (key, chunk) in enumerate(zip(keys, doc.chunks))
    ]
    ops += [PutOp(namespace, item.key, None) for item in existing if item.key not in keys]
    if not doc.chunks:
        return FileResult(source=doc.source, status="skipped", reason="empty file (no text)"), ops
    return FileResult(source=doc.source, status="ingested", chunks=len(keys)), ops


def _documents(
    paths: Iterable[str | os.PathLike[str]], *, max_chars: int
) -> Iterator[_Document | FileResult]:
    """Each file under ``paths``, read and chunked, or the reason it was not."""
    for path in _files(paths):
        source = _source(path)
        if not path.exists():
            yield FileResult(source=source, status="error", reason="no such file or directory")
            continue
        markdown = SUFFIXES.get(path.suffix.lower())
        if markdown is None:
            yield FileResult(source=source, status="skipped",
                             reason=f"unsupported file type (use {', '.join(SUFFIXES)})")
            continue
        try:
            data = path.read_bytes()
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            yield FileResult(source=source, status="error", reason=reason)
            continue
        except OSError as exc:
            yield FileResult(source=source, status="error", reason=exc.strerror or str(exc))
            continue
        chunker = chunk_markdown if markdown else chunk_text
        yield _Document(source=source, sha=hashlib.sha256(data).hexdigest(),
                        chunks=chunker(text, max_chars=max_chars))


def _files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files named by ``paths``, directories walked in sorted order; missing paths too."""
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from (Path(root, name) for name in sorted(names) if not name.startswith("."))


def _source(path: Path) -> str:
    """``path`` as given, or relative to the working directory when it lies under it."""
    if path.is_absolute():
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()

