"""The ``bulwark`` command line: ask, chat, resume, serve, graph, guard, threads, eval, ingest,
memory, keys, audit, usage.

Every command validates its input and configuration first; an error prints one line
(``bulwark: error: …``) and exits non-zero without touching any thread. ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import re
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NoReturn

from dotenv import dotenv_values
from langchain_core.messages import AIMessage, AIMessageChunk
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command, Interrupt

from bulwark.cli import audit, usage
from bulwark.graphs.agent import build_agent, cut_short, open_agent
from bulwark.graphs.state import RunContext
from bulwark.guardrails.vault import PiiVault, StreamRestorer, VaultScope, restored, vault_for
from bulwark.memory.knowledge import MAX_CHARS, MIN_CHARS, ingest
from bulwark.observability.langsmith import install_tracing, offline_env, trace_metadata
from bulwark.persistence.checkpoints import PersistenceError, open_checkpointer_for
from bulwark.settings import ConfigError, Settings, load_settings

THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
EXIT_USAGE, EXIT_FAILURE = 2, 1

# Keep the LangGraph/LangSmith stack from phoning home unless configured otherwise (see _offline_env).
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "NEMO_GUARDRAILS_NO_USAGE_STATS": "1",
    # langgraph-api posts usage metadata to LANGSMITH_ENDPOINT with this key (default:
    # LANGSMITH_API_KEY); traces need only the API key.
    "LANGSMITH_CONTROL_PLANE_API_KEY": "",
}


def _offline_env() -> dict[str, str]:
    """What to set in the environment: each of :data:`OFFLINE_ENV` that neither the
    environment nor ``.env`` configures (tracing stays off unless asked for), and ``.env``'s
    LangSmith variables, which the SDK reads from the environment only."""
    return offline_env(OFFLINE_ENV, environ=os.environ, dotenv=dotenv_values(".env"))


# What `bulwark serve` gives the server besides the graph, as langgraph.json does: only the
# APIs Bulwark authorizes (no generative UI, MCP or A2A routes), no Studio auth bypass, and
# the /health and /ready probes (``_serve`` passes the app's absolute path).
SERVER_HTTP = {"app": "./server/routes.py:app", "disable_ui": True, "disable_mcp": True, "disable_a2a": True}


class UsageError(ValueError):
    """The command line itself is wrong; the message says how to fix it."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), like every other Bulwark error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _thread_id(value: str) -> str:
    if not THREAD_ID.match(value):
        raise argparse.ArgumentTypeError(
            f"invalid thread id {value!r}: use 1-128 letters, digits, '.', '_', ':' or '-'"
        )
    return value


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return int(value)


def _chunk_size(value: str) -> int:
    if not value.isdigit() or int(value) < MIN_CHARS:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {MIN_CHARS}, got {value!r}")
    return int(value)


def _checked(kind: str) -> Callable[[str], str]:
    """An argparse type for a tenant id, user id or scope, checked as the server checks them."""
    from bulwark.server.credentials import validate_id, validate_scope

    def check(value: str) -> str:
        try:
            return validate_scope(value) if kind == "scope" else validate_id(kind, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bulwark", description="Bulwark: a production-grade agent on LangGraph."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def identity(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--thread", type=_thread_id, help="conversation thread id")
        cmd.add_argument("--user", type=_checked("user"), default="anonymous", help="user id (memories are per user)")
        cmd.add_argument("--tenant", type=_checked("tenant"), default="default", help="tenant id")

    ask = commands.add_parser("ask", help="ask one question (continue a thread with --thread)")
    ask.add_argument("question", help="what to ask")
    ask.add_argument("--stream", action="store_true", help="print the answer as it is written")
    identity(ask)

    chat = commands.add_parser("chat", help="talk to the agent interactively")
    identity(chat)

    resume = commands.add_parser(
        "resume", help="approve or reject a paused tool call, or finish a run cut short"
    )
    resume.add_argument("--thread", type=_thread_id, required=True, help="the paused thread")
    decision = resume.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="let the tool call run")
    decision.add_argument("--reject", action="store_true", help="refuse the tool call")
    resume.add_argument("--reason", default="", help="reason given to the model on reject")
    resume.add_argument("--id", dest="interrupt_id", help="decide only this pending call")
    resume.add_argument("--user", type=_checked("user"), default="anonymous", help="user id")
    resume.add_argument("--tenant", type=_checked("tenant"), default="default", help="tenant id")

    serve = commands.add_parser("serve", help="serve the agent on the LangGraph server")
    serve.add_argument("--host", help="bind address (default: BULWARK_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: BULWARK_PORT or 8024)")
    serve.add_argument(
        "--prod", action="store_true",
        help="the production engine (aegra) on DATABASE_URL (Postgres) and REDIS_URL, for several replicas",
    )

    commands.add_parser("graph", help="print the agent graph as Mermaid")

    evals = commands.add_parser("eval", help="run an eval suite")
    suites = evals.add_subparsers(dest="suite", required=True, metavar="SUITE")
    bfcl = suites.add_parser("bfcl", help="BFCL tool-calling accuracy of the agent's model")
    bfcl.add_argument("--data", type=Path, help="BFCL JSON-lines file (default: the bundled set)")
    bfcl.add_argument("--limit", type=_positive, help="score only the first N rows")
    bfcl.add_argument("--failures", type=int, default=10, help="failures to list (default 10)")
    guard_eval = suites.add_parser(
        "guardrails", help="jailbreak recall, false positives and PII precision/recall"
    )
    guard_eval.add_argument("--misses", type=int, default=5, help="missed ids to list per set")
    guard_eval.add_argument("--limit", type=_positive, help="score only the first N rows of each set")
    for suite in (bfcl, guard_eval):
        suite.add_argument(
            "--langsmith", action="store_true",
            help="create or update the suite's LangSmith dataset and run it there as an experiment "
            "(LANGSMITH_API_KEY, LANGSMITH_ENDPOINT)",
        )
        suite.add_argument("--dataset", metavar="NAME", help="with --langsmith: the dataset (default bulwark-<suite>)")
        suite.add_argument(
            "--experiment-prefix", metavar="P", help="with --langsmith: the experiment's name prefix (default: the dataset's)"
        )

    guard = commands.add_parser(
        "guard", help="screen JSON lines {\"id\", \"text\"} with the guardrails, one verdict per line"
    )
    guard.add_argument("--input", type=Path, help="JSON-lines file (default: standard input)")
    guard.add_argument(
        "--rail",
        choices=("input", "output", "context"),
        default="input",
        help="which rail to apply: input (requests), output (answers), context (documents)",
    )

    threads = commands.add_parser("threads", help="retention: prune or delete threads")
    actions = threads.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("prune", "keep only the latest checkpoints of each thread"),
        ("delete", "delete threads with all their checkpoints"),
    ):
        action = actions.add_parser(name, help=text)
        if name == "prune":
            action.add_argument(
                "--keep", type=_positive, default=1, metavar="N",
                help="checkpoints to keep per thread (default 1; with the ones their state needs)",
            )
        which = action.add_mutually_exclusive_group(required=True)
        which.add_argument("--thread", type=_thread_id, action="append", help="thread id (repeatable)")
        which.add_argument("--all", action="store_true", help="every thread in the checkpointer")

    memory = commands.add_parser("memory", help="list or erase a user's long-term memories")
    memory_actions = memory.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("list", "show a user's memories, newest first"),
        ("forget", "erase all of a user's memories"),
    ):
        action = memory_actions.add_parser(name, help=text)
        action.add_argument("--user", type=_checked("user"), required=True, help="user id")
        action.add_argument("--tenant", type=_checked("tenant"), default="default", help="tenant id")

    keys = commands.add_parser("keys", help="create, list or revoke API keys (BULWARK_AUTH=keys)")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser("create", help="make a key for a user and print it (shown once)")
    create.add_argument("--user", type=_checked("user"), required=True, help="user id")
    create.add_argument(
        "--tenant", type=_checked("tenant"), default="default",
        help="tenant id (default: default)",
    )
    create.add_argument(
        "--scope", type=_checked("scope"), action="append", default=[],
        help="scope to grant, such as admin (repeatable)",
    )
    create.add_argument(
        "--tier", default="default",
        help="rate-limit tier, one of BULWARK_RATE_LIMIT_TIERS (default: default, the flat limits)",
    )
    key_actions.add_parser("list", help="show every key (never its secret)")
    revoke = key_actions.add_parser("revoke", help="revoke a key: the server refuses it from the next request")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as bulwark keys list shows it")

    ingest_cmd = commands.add_parser(
        "ingest", help="add documents (.md, .markdown, .txt, .rst files or directories) to the knowledge base"
    )
    ingest_cmd.add_argument("paths", nargs="+", metavar="PATH", help="file or directory to ingest")
    ingest_cmd.add_argument("--tenant", type=_checked("tenant"), default="default", help="tenant whose knowledge base receives them")
    ingest_cmd.add_argument(
        "--max-chars", type=_chunk_size, default=MAX_CHARS,
        help=f"longest chunk in characters (default {MAX_CHARS})",
    )
    audit.add_parser(commands)
    usage.add_parser(commands)
    return parser


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def _context(args: argparse.Namespace) -> RunContext:
    return RunContext(user_id=args.user, tenant_id=args.tenant, request_id=str(uuid.uuid4()))


def _scope(args: argparse.Namespace, thread: str) -> VaultScope:
    return VaultScope(tenant_id=args.tenant, thread_id=thread, user_id=args.user)


async def _values(vault: PiiVault | None, scope: VaultScope) -> dict[str, str]:
    """The thread's PII values by placeholder, to show the user and approvers (never stored)."""
    return await vault.avalues(scope) if vault is not None else {}


def _describe(item: Interrupt, values: dict[str, str]) -> str:
    """A pending call as the approver sees it: with the real values of its placeholders."""
    value = item.value if isinstance(item.value, dict) else {"tool": str(item.value)}
    args = ", ".join(f"{k}={restored(v, values)!r}" for k, v in (value.get("args") or {}).items())
    return f"{value.get('tool')}({args})"


async def _report(
    agent: CompiledStateGraph, thread: str, values: dict[str, str], *, printed: str = ""
) -> list[Interrupt]:
    """Print the thread's outcome: the answer, or the calls waiting for approval, with the
    user's own values in place of their placeholders (``printed``: what was streamed)."""
    snapshot = await agent.aget_state(_config(thread))
    if snapshot.interrupts:
        print("Paused: waiting for approval of")
        for item in snapshot.interrupts:
            print(f"  - {_describe(item, values)}  [id {item.id}]")
        print(f"Resume with: bulwark resume --thread {thread} --approve   (or --reject)")
        return list(snapshot.interrupts)
    answer = next(
        (m for m in reversed(snapshot.values.get("messages", [])) if isinstance(m, AIMessage)),
        None,
    )
    text = answer.text if answer else ""
    if printed and text != printed:
        print(f"\n[replaced by the output guardrail] {restored(text, values)}")
    elif not printed:
        print(restored(text, values))
    return []


async def _run(
    agent: CompiledStateGraph, payload: Any, thread: str, context: RunContext, *, stream: bool,
    vault: PiiVault | None = None,
) -> list[Interrupt]:
    config = {**_config(thread), "metadata": trace_metadata(context)}  # tenant, user, request in traces
    scope = VaultScope(tenant_id=context.tenant_id, thread_id=thread, user_id=context.user_id)
    if not stream:
        await agent.ainvoke(payload, config, context=context)
        return await _report(agent, thread, await _values(vault, scope))
    printed = ""
    shown = StreamRestorer({})
    async for chunk, meta in agent.astream(payload, config, context=context, stream_mode="messages"):
        if meta.get("langgraph_node") == "agent" and isinstance(chunk, AIMessageChunk):
            if chunk.text:
                printed += chunk.text
                if shown.unknown(chunk.text):  # a value this run's tools brought
                    shown.values = await _values(vault, scope)
                print(shown.feed(chunk.text), end="", flush=True)
    if printed:
        print(shown.flush())
    return await _report(agent, thread, await _values(vault, scope), printed=printed)


async def _screened(settings: Settings, question: str, *, vault: PiiVault | None, scope: VaultScope) -> dict[str, Any]:
    """The question as graph input, screened and redacted (its PII into the vault) before
    anything stores it."""
    from bulwark.guardrails.intake import InputError, IntakePolicy, prepare_input
    from bulwark.guardrails.rails import Guardrails
    from bulwark.nodes.agent import SYSTEM_PROMPT

    rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
    try:
        return await prepare_input(
            {"messages": [{"role": "user", "content": question}]},
            rails=rails, policy=IntakePolicy.from_settings(settings), vault=vault, scope=scope,
        )
    except InputError as exc:
        raise UsageError(str(exc)) from None


async def _thread_exists(agent: CompiledStateGraph, thread: str) -> bool:
    return (await agent.aget_state(_config(thread))).created_at is not None


async def _ask(settings: Settings, args: argparse.Namespace) -> int:
    question = args.question.strip()
    if not question:
        raise UsageError('the question is empty: try bulwark ask "what is 17*23"')
    thread = args.thread or str(uuid.uuid4())
    vault = vault_for(settings)
    async with open_agent(settings, vault=vault) as agent:
        snapshot = await agent.aget_state(_config(thread))
        if snapshot.interrupts:
            raise UsageError(
                f"thread {thread!r} is waiting for approval: "
                f"run bulwark resume --thread {thread} --approve (or --reject) first"
            )
        if cut_short(snapshot):
            print(f"(finishing the run that was cut short on thread {thread})", file=sys.stderr)
            await agent.ainvoke(None, _config(thread), context=_context(args))
        payload = await _screened(settings, question, vault=vault, scope=_scope(args, thread))
        await _run(agent, payload, thread, _context(args), stream=args.stream, vault=vault)
    if not args.thread:
        print(f"(thread {thread}: continue with --thread {thread})", file=sys.stderr)
    return 0


def _decision(approve: bool, reason: str = "") -> dict[str, Any]:
    return {"approved": approve, "reason": reason}


async def _resume(settings: Settings, args: argparse.Namespace) -> int:
    vault = vault_for(settings)
    async with open_agent(settings, vault=vault) as agent:
        if not await _thread_exists(agent, args.thread):
            raise UsageError(
                f"unknown thread {args.thread!r} in {settings.resolved_checkpointer_url}"
            )
        snapshot = await agent.aget_state(_config(args.thread))
        pending = snapshot.interrupts
        decided = args.approve or args.reject
        if not pending:
            if decided or not cut_short(snapshot):
                raise UsageError(f"thread {args.thread!r} has no tool call waiting for approval")
            # No approval pending but work left: a run was cut short (crash, kill); finish it.
            await _run(agent, None, args.thread, _context(args), stream=False, vault=vault)
            return 0
        if not decided:
            raise UsageError(
                f"thread {args.thread!r} is waiting for approval: add --approve or --reject"
            )
        ids = [item.id for item in pending]
        if args.interrupt_id is not None:
            if args.interrupt_id not in ids:
                raise UsageError(
                    f"no pending call {args.interrupt_id!r} on thread {args.thread!r}; "
                    f"pending: {', '.join(ids)}"
                )
            ids = [args.interrupt_id]
        decision = _decision(args.approve, args.reason)
        command = Command(resume={interrupt_id: decision for interrupt_id in ids})
        await _run(agent, command, args.thread, _context(args), stream=False, vault=vault)
    return 0


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    thread = args.thread or str(uuid.uuid4())
    print(f"Bulwark chat on thread {thread} (model {settings.model}). Empty line or Ctrl-D quits.")
    vault = vault_for(settings)
    scope = _scope(args, thread)
    async with open_agent(settings, vault=vault) as agent:
        pending = list((await agent.aget_state(_config(thread))).interrupts)
        while True:
            if pending:
                answers = {}
                values = await _values(vault, scope)
                for item in pending:
                    reply = _prompt(f"approve {_describe(item, values)}? [y/N] ")
                    answers[item.id] = _decision(reply.strip().lower() in {"y", "yes"})
                payload: Any = Command(resume=answers)
            else:
                question = _prompt("you> ").strip()
                if not question or question in {"/exit", "/quit"}:
                    return 0
                payload = await _screened(settings, question, vault=vault, scope=scope)
                print("bulwark> ", end="", flush=True)
            pending = await _run(agent, payload, thread, _context(args), stream=True, vault=vault)


def _prompt(text: str) -> str:
    try:
        return input(text)
    except EOFError:
        print()
        return ""


def _pinned_paths(settings: Settings) -> dict[str, str]:
    """Environment that pins every path setting to an absolute path, for a process that
    leaves the working directory (and has read the ``.env`` it would no longer find)."""
    env = {key: value for key, value in dotenv_values(".env").items() if value is not None}
    env |= {
        "BULWARK_DATA_DIR": str(settings.data_dir.resolve()),
        "BULWARK_API_KEYS_FILE": str(settings.resolved_api_keys_file.resolve()),
    }
    checkpoints = settings.resolved_checkpointer_url
    if checkpoints.startswith("sqlite:///"):
        env["BULWARK_CHECKPOINTER_URL"] = f"sqlite:///{Path(checkpoints.removeprefix('sqlite:///')).resolve()}"
    if "://" not in settings.resolved_memory_url:
        env["BULWARK_MEMORY_URL"] = str(Path(settings.resolved_memory_url).resolve())
    return env


def _any_active_key(settings: Settings) -> bool:
    from bulwark.server.credentials import ApiKeys

    return any(key.active for key in ApiKeys(settings.resolved_api_keys_file).list())


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    if settings.auth == "none" and not _is_loopback(host):
        raise UsageError(
            f"refusing to serve on {host} without authentication: set BULWARK_AUTH=keys "
            "(and create keys with bulwark keys create) or BULWARK_AUTH=jwt, or bind to 127.0.0.1"
        )
    if args.prod:
        from bulwark.server.engine import backends

        found = backends(settings, os.environ)
    data_dir = settings.ensure_data_dir()
    # The LangGraph server would silently move to a random port; clients need this one.
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}): "
                "choose another port with --port or BULWARK_PORT"
            ) from None
    # Where the server keeps its own files (./.langgraph_api, aegra.json): under the data dir.
    offline = _offline_env()  # before the chdir below: it reads ./.env
    os.environ.update(offline | _pinned_paths(settings))
    workdir = data_dir / "server"
    workdir.mkdir(exist_ok=True)
    os.chdir(workdir)
    engine = "the production engine (aegra) on Postgres and Redis" if args.prod else "the LangGraph server"
    print(f"Serving the Bulwark agent (model {settings.model}) with {engine} on http://{host}:{port}")
    print(f"  try: curl -s http://{host}:{port}/ok   ·   Python: langgraph_sdk.get_client(url=...)")
    if settings.auth == "none":
        print(
            "warning: BULWARK_AUTH=none: every client is the local admin; serving on loopback "
            "only (set BULWARK_AUTH=keys or jwt to serve others)",
            file=sys.stderr,
        )
    elif settings.auth == "keys" and not _any_active_key(settings):
        print(
            "warning: no active API key yet: every request gets 401 until you run "
            "bulwark keys create --tenant T --user U",
            file=sys.stderr,
        )
    if args.prod:
        from bulwark.server.engine import serve

        serve(settings, found, host=host, port=port, workdir=workdir)
        return 0
    from langgraph_api.cli import run_server

    from bulwark.observability.log_format import server_log_env

    # Paths, not imports: the server loads these files itself, once.
    module, auth_module, routes_module = (find_spec(name).origin for name in ("bulwark.graphs.platform", "bulwark.server.auth", "bulwark.server.routes"))  # type: ignore[union-attr]
    log_env = server_log_env(settings, stream=sys.stdout)
    # Its welcome banner (ASCII art, a Studio link) is no log line; Bulwark printed its own.
    logging.getLogger("langgraph_api.cli").setLevel(logging.WARNING)
    run_server(
        host,
        port,
        False,
        {"agent": f"{module}:graph"},
        checkpointer={"path": f"{module}:checkpointer"},
        store={"path": f"{module}:store"},
        auth={"path": f"{auth_module}:auth", "disable_studio_auth": True},
        http={**SERVER_HTTP, "app": f"{routes_module}:app"},
        open_browser=False,
        env={**offline, **log_env},
        server_level=log_env["LOG_LEVEL"],  # uvicorn's and the access log's
        n_jobs_per_worker=settings.server_jobs,
        # langgraph-api vets a run's webhook URL before the auth handler takes it (Bulwark
        # then checks and sends it itself): let loopback receivers through when allowed.
        webhooks={"url": {"disable_loopback": False}} if settings.webhook_allow_private else None,
    )
    return 0


def _graph(settings: Settings, args: argparse.Namespace) -> int:
    print(build_agent(settings).get_graph().draw_mermaid())
    return 0


def _guard(settings: Settings, args: argparse.Namespace) -> int:
    from bulwark.guardrails.rails import Guardrails
    from bulwark.nodes.agent import SYSTEM_PROMPT

    if args.input is not None and not args.input.is_file():
        raise UsageError(f"no file at {str(args.input)!r}: pass --input PATH to a JSON-lines file")
    rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
    check = {"input": rails.check_input, "output": rails.check_output, "context": rails.check_context}[args.rail]
    source = args.input.open(encoding="utf-8") if args.input else sys.stdin
    bad = 0
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise ValueError('expected an object with a string "text"')
            except ValueError as exc:
                bad += 1
                print(json.dumps({"line": number, "error": f"invalid input line: {exc}"}), flush=True)
                continue
            result = check(row["text"])
            print(
                json.dumps(
                    {
                        "id": row.get("id"),
                        "verdict": result.verdict["action"],
                        "severity": result.verdict["severity"],
                        "reasons": result.verdict["reasons"],
                        "sanitized": result.text,
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
    if bad:
        print(f"bulwark: error: {bad} input line(s) were not valid; see their error lines", file=sys.stderr)
    return EXIT_FAILURE if bad else 0


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    if (args.dataset or args.experiment_prefix) and not args.langsmith:
        raise UsageError("--dataset and --experiment-prefix name LangSmith's dataset and experiment: add --langsmith")
    if args.suite == "guardrails":
        from bulwark.evals import guardrails

        if args.langsmith:
            from bulwark.evals.langsmith import guardrails_suite

            return _eval_langsmith(settings, args, guardrails_suite(settings, limit=args.limit))
        rails = guardrails.eval_rails(settings)
        print(guardrails.format_report(guardrails.run_guardrail_eval(rails, limit=args.limit), show_misses=args.misses))
        return 0
    from bulwark.evals.bfcl import DEFAULT_DATA, format_report, run_bfcl

    data = args.data or DEFAULT_DATA
    if not data.is_file():
        raise UsageError(f"no BFCL file at {str(data)!r}: pass --data PATH to a .jsonl file")
    try:
        if args.langsmith:
            from bulwark.evals.langsmith import bfcl_suite

            return _eval_langsmith(settings, args, bfcl_suite(settings, data=data, limit=args.limit))
        report = run_bfcl(data, limit=args.limit)
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise UsageError(f"{data} is not a BFCL JSON-lines file: {exc}") from None
    print(format_report(report, show_failures=args.failures))
    return 0


def _eval_langsmith(settings: Settings, args: argparse.Namespace, suite: Any) -> int:
    """Bring the suite's LangSmith dataset up to date and run the suite there as an experiment."""
    from bulwark.evals.langsmith import run_experiment, summarize, sync_dataset
    from bulwark.observability.langsmith import tracing_client

    if not (os.environ.get("LANGSMITH_API_KEY") or os.environ.get("LANGSMITH_ENDPOINT")):
        raise UsageError("--langsmith needs LANGSMITH_API_KEY (and LANGSMITH_ENDPOINT for a self-hosted LangSmith)")
    client = tracing_client(settings)
    synced = sync_dataset(client, args.dataset or suite.dataset, suite)
    print(f"dataset {synced.name}: {synced.created} examples added, {synced.updated} updated, {synced.unchanged} unchanged")
    results = run_experiment(client, suite, synced, experiment_prefix=args.experiment_prefix or synced.name)
    client.flush()
    scores = ", ".join(f"{key} {score:.1%}" for key, score in summarize(results).items())
    print(f"experiment {results.experiment_name}: {scores or 'no scores'}")
    return 0


async def _threads(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.resolved_checkpointer_url
    async with open_checkpointer_for(settings) as saver:
        if args.all:
            ids = list(dict.fromkeys([c.config["configurable"]["thread_id"] async for c in saver.alist(None)]))
        else:
            ids = list(dict.fromkeys(args.thread))
            for thread in ids:
                if await saver.aget_tuple(_config(thread)) is None:
                    raise UsageError(f"unknown thread {thread!r} in {url}")
        try:
            if args.action == "prune":
                await saver.aprune(ids, strategy="keep_latest", **({"keep": args.keep} if args.keep > 1 else {}))
            else:
                vault = vault_for(settings)
                for thread in ids:
                    await saver.adelete_thread(thread)
                    if vault is not None:  # thread ids name no tenant: every tenant's values of it
                        await vault.aforget_thread(thread)
        except NotImplementedError:
            raise UsageError(f"the checkpointer at {url} cannot {args.action} threads") from None
    verb = f"pruned to their latest {args.keep} checkpoint(s)" if args.action == "prune" else "deleted"
    print(f"{len(ids)} thread(s) {verb}")
    return 0


def run_ingest(store: BaseStore, paths: Sequence[str], *, tenant_id: str, max_chars: int = MAX_CHARS) -> int:
    """Ingest ``paths`` into ``tenant_id``'s knowledge base in ``store``; print one line per
    file and a summary. Returns the exit code: 1 if any file failed."""
    report = ingest(store, paths, tenant_id=tenant_id, max_chars=max_chars)
    for result in report.files:
        print(result)
    print(report.summary())
    return 0 if report.ok else EXIT_FAILURE


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from bulwark.memory.store import open_memory_store

    with open_memory_store(settings) as store:
        code = run_ingest(store, args.paths, tenant_id=args.tenant, max_chars=args.max_chars)
        store.optimize()  # index the new chunks now: the embedded engine does not on its own
        return code


def _memory(settings: Settings, args: argparse.Namespace) -> int:
    from bulwark.memory.longterm import memory_namespace
    from bulwark.memory.store import open_memory_store

    namespace = memory_namespace(RunContext(user_id=args.user, tenant_id=args.tenant))
    with open_memory_store(settings) as store:
        if args.action == "forget":
            count = store.forget(namespace)
            vault = vault_for(settings)
            threads = vault.forget_user(tenant_id=args.tenant, user_id=args.user) if vault is not None else 0
            print(f"forgot {count} memories of user {args.user!r} (tenant {args.tenant!r})"
                  + (f" and the PII vault values of {threads} thread(s)" if threads else ""))
            return 0
        items = store.search(namespace, limit=10_000)
    for item in items:
        kind = item.value.get("kind", "-")
        print(f"{item.updated_at:%Y-%m-%d %H:%M}  {kind:<10}  {item.value.get('text', item.value)}")
    print(f"{len(items)} memories of user {args.user!r} (tenant {args.tenant!r})")
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from bulwark.server.credentials import ApiKeys

    keys = ApiKeys(settings.resolved_api_keys_file)
    if args.action == "create":
        tiers = sorted({"default", *settings.rate_limit_tiers})
        if args.tier not in tiers:
            raise UsageError(
                f"unknown tier {args.tier[:64]!r}: use one of {', '.join(tiers)} (tiers are set by BULWARK_RATE_LIMIT_TIERS)"
            )
        info, key = keys.create(tenant_id=args.tenant, user_id=args.user, scopes=args.scope, tier=args.tier)
        print(key)  # alone on stdout, for `KEY=$(bulwark keys create ...)`
        print(
            f"key id {info.key_id} for user {info.user_id!r} (tenant {info.tenant_id!r}"
            f"{'' if info.tier == 'default' else f', tier {info.tier!r}'}); "
            "store it now, it is not shown again",
            file=sys.stderr,
        )
        if settings.auth != "keys":
            print("note: the server checks API keys only with BULWARK_AUTH=keys", file=sys.stderr)
        return 0
    if args.action == "revoke":
        if not keys.revoke(args.key_id):
            raise UsageError(
                f"unknown API key id {args.key_id[:40]!r} in {keys.path}: see bulwark keys list"
            )
        print(f"revoked API key {args.key_id}")
        return 0
    listed = keys.list()
    for info in listed:
        state = "active" if info.active else f"revoked {info.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
        scopes = ",".join(sorted(info.scopes)) or "-"
        print(
            f"{info.key_id}  tenant={info.tenant_id}  user={info.user_id}  scopes={scopes}  "
            f"created {info.created_at:%Y-%m-%dT%H:%M:%SZ}  {state}"
        )
    if not listed:
        print(f"no API keys in {keys.path}", file=sys.stderr)
    return 0


def _log_to(settings: Settings, *, serving: bool) -> None:
    """Logs go to standard error, never among the answers on standard output; a server's
    go to standard output at INFO, as the LangGraph server's own."""
    from bulwark.guardrails.checks import RailPolicy
    from bulwark.observability.log_format import configure_logging

    configure_logging(
        settings, policy=RailPolicy(pii_entities=settings.pii_entities),
        stream=sys.stdout if serving else sys.stderr, default_level="INFO" if serving else "WARNING",
    )


COMMANDS = {
    "ask": _ask,
    "chat": _chat,
    "resume": _resume,
    "serve": _serve,
    "graph": _graph,
    "guard": _guard,
    "threads": _threads,
    "eval": _eval,
    "ingest": _ingest,
    "memory": _memory,
    "keys": _keys,
    "audit": audit.run,
    "usage": usage.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bulwark`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        os.environ.update(_offline_env())
        install_tracing(settings)
        _log_to(settings, serving=args.command == "serve")
        result = COMMANDS[args.command](settings, args)
        return asyncio.run(result) if asyncio.iscoroutine(result) else result
    except KeyboardInterrupt:
        return 130
    except (ConfigError, UsageError) as exc:
        if args.debug:
            raise
        print(f"bulwark: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line for the user, --debug for the rest
        if args.debug:
            raise
        message = str(exc) if isinstance(exc, PersistenceError) else f"{type(exc).__name__}: {exc}"
        print(f"bulwark: error: {message} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
