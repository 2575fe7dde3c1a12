"""The knowledge base: chunking, ingesting, the knowledge_search tool and `bulwark ingest`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.memory import InMemoryStore
from scripted_model import ScriptedModel

from bulwark.cli.main import main, run_ingest
from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.memory.embeddings import HashingEmbeddings
from bulwark.memory.knowledge import aingest, chunk_markdown, chunk_text, ingest
from bulwark.memory.longterm import knowledge_namespace
from bulwark.settings import Settings

GUIDE = """\
Bulwark is an agent framework.

# Guide

## Install

Run `pip install bulwark` in a fresh virtual environment.

## Configure

Set BULWARK_MODEL to pick the chat model.

```
# not a heading: a comment in a code block
```

Setext heading
--------------

Text under a setext heading.

# Vacation policy

Employees get 25 vacation days per year, to be booked two weeks ahead.
"""

WORDS = " ".join(f"word{i}" for i in range(400))


def _store() -> InMemoryStore:
    return InMemoryStore(index={"dims": 384, "embed": HashingEmbeddings(dims=384), "fields": ["text"]})


def _stored(store: InMemoryStore, tenant: str = "acme") -> dict[str, dict]:
    return {item.key: item.value for item in store.search(knowledge_namespace(tenant), limit=1000)}


def _tokens(text: str) -> list[str]:
    return text.split()


# -- chunking ------------------------------------------------------------------------------


def test_markdown_is_split_on_headings_with_the_heading_path_as_title() -> None:
    chunks = chunk_markdown(GUIDE)
    assert [c.title for c in chunks] == [
        "", "Guide > Install", "Guide > Configure", "Guide > Setext heading", "Vacation policy",
    ], "a heading with no text of its own (# Guide) gives no chunk"
    assert chunks[0].text == "Bulwark is an agent framework."
    assert chunks[1].text.startswith("## Install\n\n") and "pip install bulwark" in chunks[1].text
    assert "# not a heading" in chunks[2].text, "a heading inside a code fence is text"
    assert chunks[3].text == "## Setext heading\n\nText under a setext heading."


@pytest.mark.parametrize("max_chars", [40, 120, 800])
def test_chunks_fit_and_never_cut_words(max_chars: int) -> None:
    text = f"# Words\n\n{WORDS}\n\nA short paragraph.\n\n{WORDS[:500]}"
    chunks = chunk_markdown(text, max_chars=max_chars)
    assert len(chunks) > 1
    source_words = set(_tokens(text))
    for chunk in chunks:
        assert len(chunk.text) <= max_chars
        assert set(_tokens(chunk.text)) <= source_words, "every word of a chunk is whole"
    assert set().union(*(_tokens(c.text) for c in chunks)) == source_words, "nothing is lost"


def test_paragraphs_are_packed_together_up_to_the_size() -> None:
    paragraphs = [f"Paragraph {i} has a few words." for i in range(10)]
    chunks = chunk_text("\n\n".join(paragraphs), max_chars=100, overlap=0)
    assert [c.text.split("\n\n") for c in chunks] == [paragraphs[0:3], paragraphs[3:6], paragraphs[6:9], paragraphs[9:]]
    assert all(c.title == "" for c in chunks)


def test_consecutive_chunks_of_a_section_overlap_at_a_word_boundary() -> None:
    chunks = [c.text for c in chunk_text(WORDS, max_chars=200, overlap=30)]
    for previous, current in zip(chunks, chunks[1:]):
        shared = current.split("\n\n")[0]
        assert 0 < len(shared) <= 30
        assert previous.endswith(" " + shared), "the overlap is the previous chunk's last whole words"
    no_overlap = [c.text for c in chunk_text(WORDS, max_chars=200, overlap=0)]
    assert " ".join(no_overlap).split() == WORDS.split(), "without overlap the chunks are the text"


def test_unicode_text_is_measured_in_characters_and_kept_whole() -> None:
    text = " ".join(["café", "naïve", "日本語の文章", "emoji🙂ok", "Ελληνικά", "straße"] * 40)
    chunks = chunk_text(text, max_chars=60)
    for chunk in chunks:
        assert len(chunk.text) <= 60
        assert set(_tokens(chunk.text)) <= set(_tokens(text))
    assert set().union(*(_tokens(c.text) for c in chunks)) == set(_tokens(text))


def test_only_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = chunk_text("short " + "x" * 130 + " end", max_chars=50, overlap=0)
    assert "".join("".join(c.text.split()) for c in chunks) == "short" + "x" * 130 + "end"
    assert _tokens(chunks[0].text) == ["short"], "the long word starts a new piece, not cut to fill"
    assert all(len(c.text) <= 50 for c in chunks)


def test_chunk_size_and_overlap_are_checked() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_text("text", max_chars=5)
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("text", max_chars=100, overlap=60)


# -- ingesting -----------------------------------------------------------------------------


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """``docs/`` under the working directory (the tests run in ``tmp_path``)."""
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    (folder / "guide.md").write_text(GUIDE, encoding="utf-8")
    (folder / "nested" / "notes.txt").write_text("First note.\n\nSecond note.\n", encoding="utf-8")
    return folder


def test_ingest_stores_chunks_with_their_source_and_is_idempotent(docs: Path) -> None:
    store = _store()
    report = ingest(store, [docs], tenant_id="acme")
    assert [str(f) for f in report.files] == [
        "docs/guide.md: ingested 5 chunks", "docs/nested/notes.txt: ingested 1 chunk",
    ], "sources are relative to the working directory"
    stored = _stored(store)
    assert stored["docs/guide.md#4"] == {
        "text": "# Vacation policy\n\nEmployees get 25 vacation days per year, to be booked two weeks ahead.",
        "source": "docs/guide.md",
        "chunk": 4,
        "title": "Vacation policy",
        "sha": stored["docs/guide.md#0"]["sha"],
    }
    assert stored["docs/nested/notes.txt#0"]["text"] == "First note.\n\nSecond note."

    again = ingest(store, [docs / "guide.md", "docs/nested"], tenant_id="acme")
    assert [f.status for f in again.files] == ["unchanged", "unchanged"]
    assert _stored(store) == stored


def test_a_changed_file_replaces_its_old_chunks(docs: Path) -> None:
    store = _store()
    ingest(store, [docs], tenant_id="acme")
    (docs / "guide.md").write_text("# Guide\n\nEverything was rewritten.\n", encoding="utf-8")
    report = ingest(store, [docs / "guide.md"], tenant_id="acme")
    assert [str(f) for f in report.files] == ["docs/guide.md: ingested 1 chunk"]
    guide = {k: v for k, v in _stored(store).items() if v["source"] == "docs/guide.md"}
    assert list(guide) == ["docs/guide.md#0"] and "rewritten" in guide["docs/guide.md#0"]["text"]
    assert "docs/nested/notes.txt#0" in _stored(store), "other files are untouched"

    (docs / "guide.md").write_text("  \n", encoding="utf-8")
    emptied = ingest(store, [docs / "guide.md"], tenant_id="acme")
    assert str(emptied.files[0]) == "docs/guide.md: skipped: empty file (no text)"
    assert not [v for v in _stored(store).values() if v["source"] == "docs/guide.md"]


def test_problems_are_reported_and_the_other_files_still_ingested(docs: Path, tmp_path: Path) -> None:
    (docs / "logo.png").write_bytes(b"\x89PNG")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (docs / "empty.md").write_text("", encoding="utf-8")
    (docs / ".hidden.md").write_text("secret", encoding="utf-8")
    store = _store()
    report = ingest(store, [docs, tmp_path / "missing.md"], tenant_id="acme")
    lines = [str(f) for f in report.files]
    assert lines == [
        "docs/empty.md: skipped: empty file (no text)",
        "docs/guide.md: ingested 5 chunks",
        "docs/latin1.txt: error: not UTF-8 text (unexpected end of data at byte 3)",
        "docs/logo.png: skipped: unsupported file type (use .md, .markdown, .txt, .rst)",
        "docs/nested/notes.txt: ingested 1 chunk",
        "missing.md: error: no such file or directory",
    ]
    assert not report.ok
    assert report.summary() == "2 ingested (6 chunks), 0 unchanged, 2 skipped, 2 errors"
    assert {v["source"] for v in _stored(store).values()} == {"docs/guide.md", "docs/nested/notes.txt"}


def test_a_path_outside_the_working_directory_keeps_its_given_form(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.md").write_text("Outside text.", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    os.chdir(work)  # conftest restores the working directory after the test
    report = ingest(_store(), ["../outside/a.md"], tenant_id="acme")
    assert str(report.files[0]) == "../outside/a.md: ingested 1 chunk"


async def test_aingest_does_the_same(docs: Path) -> None:
    store = _store()
    first = await aingest(store, [docs], tenant_id="acme")
    second = await aingest(store, [docs], tenant_id="acme")
    assert [f.status for f in first.files] == ["ingested", "ingested"]
    assert [f.status for f in second.files] == ["unchanged", "unchanged"]
    sync_store = _store()
    ingest(sync_store, [docs], tenant_id="acme")
    assert _stored(store) == _stored(sync_store) and len(_stored(store)) == 6


# -- the knowledge_search tool through the graph ---------------------------------------------


def _ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def _tool_message(result: dict) -> ToolMessage:
    return next(m for m in result["messages"] if isinstance(m, ToolMessage))


def _scripted_search(settings: Settings, store: InMemoryStore | None, **args: object) -> CompiledStateGraph:
    call = AIMessage("", tool_calls=[{"name": "knowledge_search", "args": args, "id": "k1"}])
    model = ScriptedModel(responses=[call, AIMessage("done")])
    return build_agent(settings, store=store, models={"offline": model})


def test_offline_agent_answers_from_the_docs_with_a_citation(docs: Path, settings: Settings) -> None:
    store = _store()
    ingest(store, [docs], tenant_id="acme")
    agent = build_agent(settings, store=store)
    result = agent.invoke(
        _ask("what does the handbook say about vacation days?"),
        {"configurable": {"thread_id": "kb"}},
        context=RunContext(user_id="ada", tenant_id="acme"),
    )
    tool = _tool_message(result)
    assert (tool.name, tool.status) == ("knowledge_search", "success")
    answer = result["messages"][-1].text
    first = re.search(r"(.*)\n\[source: ([^\]]+)\]", answer)
    assert first and first.group(2) == "docs/guide.md#4", answer
    assert "25 vacation days" in answer


def test_one_tenant_never_sees_another_tenants_documents(docs: Path, settings: Settings) -> None:
    store = _store()
    ingest(store, [docs], tenant_id="acme")
    agent = build_agent(settings, store=store)
    other = agent.invoke(
        _ask("what does the handbook say about vacation days?"),
        {"configurable": {"thread_id": "kb-b"}},
        context=RunContext(user_id="bob", tenant_id="globex"),
    )
    tool = _tool_message(other)
    assert (tool.name, tool.status) == ("knowledge_search", "success")
    assert tool.content == "no matching documents in the knowledge base"
    assert "vacation" not in other["messages"][-1].text.replace("vacation days?", "")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"query": "   "}, "the query is empty"),
        ({"query": "install", "k": 11}, "invalid arguments for knowledge_search: argument 'k'"),
        ({"query": "install", "k": 0}, "invalid arguments for knowledge_search: argument 'k'"),
    ],
)
def test_bad_searches_come_back_as_tool_errors(args: dict, error: str, docs: Path, settings: Settings) -> None:
    store = _store()
    ingest(store, [docs], tenant_id="acme")
    result = _scripted_search(settings, store, **args).invoke(
        _ask("search"), {"configurable": {"thread_id": "bad"}}, context=RunContext(tenant_id="acme")
    )
    tool = _tool_message(result)
    assert tool.status == "error" and tool.content.startswith(error), tool.content


def test_k_limits_the_passages_and_each_is_cited(docs: Path, settings: Settings) -> None:
    store = _store()
    ingest(store, [docs], tenant_id="acme")
    result = _scripted_search(settings, store, query="install configure model", k=2).invoke(
        _ask("search"), {"configurable": {"thread_id": "k2"}}, context=RunContext(tenant_id="acme")
    )
    citations = re.findall(r"\[source: (docs/[\w/.]+#\d+)\]", _tool_message(result).content)
    assert len(citations) == 2 and len(set(citations)) == 2


def test_without_a_store_the_tool_says_there_is_no_knowledge_base(settings: Settings) -> None:
    result = _scripted_search(settings, None, query="install").invoke(
        _ask("search"), {"configurable": {"thread_id": "none"}}
    )
    tool = _tool_message(result)
    assert (tool.status, tool.content) == ("error", "no knowledge base is configured")


# -- bulwark ingest -------------------------------------------------------------------------


def test_run_ingest_prints_one_line_per_file_and_fails_on_errors(
    docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store()
    assert run_ingest(store, ["docs/guide.md"], tenant_id="acme") == 0
    assert capsys.readouterr().out.splitlines() == [
        "docs/guide.md: ingested 5 chunks", "1 ingested (5 chunks), 0 unchanged, 0 skipped, 0 errors",
    ]
    assert run_ingest(store, ["docs/guide.md", "nope.md"], tenant_id="acme", max_chars=800) == 1
    assert capsys.readouterr().out.splitlines() == [
        "docs/guide.md: unchanged",
        "nope.md: error: no such file or directory",
        "0 ingested (0 chunks), 1 unchanged, 0 skipped, 1 errors",
    ]


def test_ingest_command_uses_the_configured_memory_store(
    docs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULWARK_MEMORY_URL", "memory://")
    assert main(["ingest", "docs", "--tenant", "acme", "--max-chars", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("2 ingested (") and "docs/nested/notes.txt: ingested 1 chunk" in out
    assert main(["ingest", "missing-dir"]) == 1
    assert "missing-dir: error: no such file or directory" in capsys.readouterr().out


def test_ingest_command_checks_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "docs", "--max-chars", "5"])
    assert exit_info.value.code == 2 and "expected a whole number >= 20" in capsys.readouterr().err


def test_a_long_table_is_cut_between_rows() -> None:
    rows = "\n".join(f"| setting_{n} | value {n} | what setting {n} does |" for n in range(40))
    chunks = chunk_text(rows, max_chars=300, overlap=0)
    assert len(chunks) > 1
    for chunk in chunks:
        for line in chunk.text.splitlines():
            assert not line or (line.startswith("| setting_") and line.endswith("does |")), line
