"""The process's guardrails: the checks run directly, or as NeMo Guardrails rails built once.

With ``engine="direct"`` (the default) input and output checks call
:mod:`bulwark.guardrails.checks` directly. With ``engine="nemo"``
(``BULWARK_GUARDRAILS_ENGINE=nemo``) they run as the NeMo rails configured in
``guardrails/config`` (``LLMRails`` built once per :class:`Guardrails`), whose Python
actions call the same checks: same verdicts, plus whatever rails the config adds.

NeMo's cost, and what was done about it (issue 15, measured with ``bench/guardrails.py``;
figures in ``bench/README.md``). A check used to be a whole NeMo turn (``generate`` with
``rails=["input"]``): about 27 Colang events, replayed from the start at every step, over
all ~95 flows NeMo loads, with each of the ~90 ``if``/``set`` expressions re-parsed by
simpleeval every time: 24-30 ms of CPU a check over the direct engine's on a loaded
machine (13 ms wall when quiet). Now:

* a check starts only NeMo's rail-list flow (``run input rails`` / ``run output rails``)
  through the public ``generate_events``, as NeMo itself starts each rail in parallel
  mode; the config's rail list, its order and its stop-on-block semantics are NeMo's;
* a block only ``stop``s (``rails.co``): a ``bot refuse to respond`` made NeMo generate a
  bot message the caller discards, doubling the Colang work of a blocked check;
* two version-guarded changes to NeMo 0.24's Colang 1.0 runtime, which has no cache of
  its own: expressions are parsed once and evaluators reused, and library flows the
  config cannot reach leave the runtime (see the section below).

That is about a fifth of the former NeMo cost (6 ms of CPU a check at a load average of
7 on 2 cores). IORails, NeMo's fast engine, does not apply: it runs only the built-in
library rails of its manifest catalog, not a config's own actions ("'bulwark input rail'
has no surface ... in the rail catalog"), and it serves Colang 1.0 only, so Colang 2.x
would not reach it either (2.x was not measured).

Decision, by measurement (``bench/guardrails.py``, quiet machine): NeMo still adds 4.8 ms
p50 and 8.2 ms p99 to a request check, so through NeMo a request check is 11.5 ms at p99,
over the 10 ms budget (direct: 4.0 ms); answers are 8.2 ms (direct: 2.3 ms). So ``direct``
is the default, and NeMo's config is the extension point: with ``engine="nemo"`` a rail
added to ``config.yml`` runs after Bulwark's, and one that stops the turn blocks it
(reason ``rail:<flow>``).

A second stage, the LLM judge (:mod:`bulwark.guardrails.judge`, ``BULWARK_GUARDRAILS_JUDGE``),
reads the input and output texts the harmful-request model scores as uncertain (a
``harmful:`` reason on a verdict that does not block), and only those: its ``judge_unsafe``
blocks, and a judge that fails is treated as a failed rail.

Context checks (tool results, retrieved knowledge) always run direct: NeMo's tool rails
only fire inside a generation NeMo drives itself, and these checks neutralise rather
than refuse.

A rail that raises, or a NeMo run that ends without a verdict, gives a ``rail_error``
verdict, never a silent pass: it blocks when ``fail_closed`` (the default) and flags
otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bulwark.guardrails.checks import (
    BLOCKED_ANSWER,
    RailPolicy,
    RailResult,
    check_context,
    check_input,
    check_output,
    error_result,
)
from bulwark.guardrails.detectors import pii
from bulwark.guardrails.judge import Judge, judged
from bulwark.observability.langsmith import traced_rail
from bulwark.observability.telemetry import rail_verdict, span

if TYPE_CHECKING:
    from bulwark.settings import Settings

CONFIG_DIR = Path(__file__).with_name("config")
Engine = Literal["nemo", "direct"]
log = logging.getLogger(__name__)


def _load_nemo(config_dir: Path, policy: RailPolicy):  # -> nemoguardrails.LLMRails
    # NeMo reports usage to NVIDIA unless told not to; nothing leaves the machine.
    os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")
    from nemoguardrails import LLMRails, RailsConfig

    # NeMo logs every action it registers at INFO, and an action's error with its
    # parameters, i.e. the raw text and its PII; the failure is logged here without them.
    logging.getLogger("nemoguardrails").setLevel(logging.CRITICAL)

    rails = LLMRails(RailsConfig.from_path(str(config_dir)))
    rails.register_action_param("bulwark_policy", policy)
    if _tuned_for_nemo_version():
        _memoise_expression_parsing()
        _drop_unused_library_flows(rails)
    return rails


# -- NeMo 0.24 Colang 1.0 runtime: two speed-ups -----------------------------------------
#
# Colang 1.0 recomputes the state of every flow from the whole event history at each step
# (``flows.compute_next_steps``), so a check pays for every loaded flow and every ``if``/
# ``set``/``while`` expression again and again. NeMo has no cache for either: each
# evaluation builds a ``SimpleEval`` and re-parses the expression text with ``ast.parse``
# (~90 parses a check), and ``LLMRails`` loads all ~80 flows of its integration library
# (ActiveFence, Llama Guard, ...) into the runtime, where the ~15 not used as rails are
# still tried against every event. Both fixes are below, guarded by NeMo's version since
# they touch module internals; on another version the rails run unpatched (slower, same
# verdicts).

_TUNED_NEMO = "0.24."


def _tuned_for_nemo_version() -> bool:
    from importlib.metadata import version

    return version("nemoguardrails").startswith(_TUNED_NEMO)


@functools.lru_cache(maxsize=4096)
def _parsed_expression(expr: str):  # -> ast.expr
    from simpleeval import SimpleEval

    return SimpleEval.parse(expr)


def _cached_simple_eval(expr: str, operators=None, functions=None, names=None, allowed_attrs=None):
    """``simpleeval.simple_eval`` with each expression parsed once and evaluators reused.

    The evaluation itself is simpleeval's: an evaluator with the caller's functions (one
    per thread and function set, since building one costs more than most evaluations) is
    given the caller's names and walks the cached syntax tree, which simpleeval never
    mutates. Calls with custom operators or attribute rules get a fresh evaluator.
    """
    from simpleeval import DEFAULT_NAMES, SimpleEval

    parsed = _parsed_expression(expr)
    if operators is not None or allowed_attrs is not None or functions is None:
        evaluator = SimpleEval(operators=operators, functions=functions, names=names, allowed_attrs=allowed_attrs)
        return evaluator.eval(expr, previously_parsed=parsed)
    reused = _evaluators.__dict__
    key = tuple(functions.items())
    evaluator = reused.get(key)
    if evaluator is None:
        evaluator = reused[key] = SimpleEval(functions=dict(functions))
    evaluator.names = DEFAULT_NAMES.copy() if names is None else names
    try:
        return evaluator.eval(expr, previously_parsed=parsed)
    finally:
        evaluator.names = {}  # the names hold the checked text: not kept past the call


_evaluators = threading.local()


def _memoise_expression_parsing() -> None:
    from nemoguardrails.colang.v1_0.runtime import eval as colang_eval

    colang_eval.simple_eval = _cached_simple_eval


def _drop_unused_library_flows(rails) -> None:
    """Keep in the runtime NeMo built only the flows this config can reach.

    Kept: the config's own flows (NeMo marks library flows, and the config's rail flows, as
    system flows), NeMo's rail-orchestration flows (``llm_flows.co``), every flow a rail
    list names, and whatever those call by name. A flow that calls one through a variable,
    other than the orchestration flows' calls into the rail lists, keeps everything.
    """
    configs = rails.runtime.flow_configs
    system = {flow["id"] for flow in rails.config.flows if flow.get("is_system_flow")}
    orchestration = {
        flow_id
        for flow_id, flow in configs.items()
        if any(e.get("_source_mapping", {}).get("filename") == "llm_flows.co" for e in flow.elements)
    }
    lists = rails.config.rails
    wanted = [
        _flow_id(name)
        for rail in (lists.input, lists.output, lists.retrieval, lists.tool_input, lists.tool_output)
        for name in rail.flows
    ]
    wanted += [flow_id for flow_id in configs if flow_id not in system or flow_id in orchestration]
    kept: set[str] = set()
    while wanted:
        flow_id = wanted.pop()
        if flow_id in kept or flow_id not in configs:
            continue
        kept.add(flow_id)
        for element in configs[flow_id].elements:
            if element["_type"] != "flow":
                continue
            if element["flow_name"].startswith("$"):
                if flow_id not in orchestration:  # cannot tell what it calls
                    return
                continue
            wanted.append(_flow_id(element["flow_name"]))
    rails.runtime.flow_configs = {flow_id: flow for flow_id, flow in configs.items() if flow_id in kept}


def _flow_id(name: str) -> str:
    """A flow's id from a reference to it, which may pass parameters: ``"x $a=1"``, ``"x(a=1)"``."""
    from nemoguardrails.utils import _normalize_flow_id

    return _normalize_flow_id(name)


class Guardrails:
    """Input, output and context rails for one deployment; build once and share."""

    def __init__(
        self,
        policy: RailPolicy,
        *,
        engine: Engine = "direct",
        fail_closed: bool = True,
        config_dir: Path = CONFIG_DIR,
        judge: Judge | None = None,
    ) -> None:
        self.policy = policy
        self.fail_closed = fail_closed
        self.judge = judge
        self._nemo = _load_nemo(config_dir, policy) if engine == "nemo" else None

    @classmethod
    def from_settings(cls, settings: Settings, *, system_prompt: str) -> Guardrails:
        """The rails a :class:`~bulwark.settings.Settings` describes, built once per process.

        Graphs, the server and the CLI built from equal settings share one instance.
        """
        topics = tuple(sorted((t, tuple(p)) for t, p in settings.denied_topics.items()))
        return _shared(
            settings.max_input_chars,
            system_prompt,
            frozenset(settings.pii_entities),
            topics,
            settings.guardrails_engine,
            settings.guardrails_fail_closed,
            _judge_for(settings),
        )

    # -- NeMo round trip -------------------------------------------------------------

    def _events(self, rail: str, text: str, sources: Sequence[str]) -> list[dict]:
        # NeMo's own rail-list flow ("run input rails" / "run output rails": every flow of
        # the config's rail list, in order, stopping at a block) started on its own, as NeMo
        # starts each rail in parallel mode, instead of a whole turn of which it is one
        # step. The turn NeMo would have processed is there, already stopped (NeMo's
        # ``stop`` ends every flow), because NeMo reports a failed action by hiding the
        # events since the last user utterance and asserts that there is one.
        message = "user_message" if rail == "input" else "bot_message"
        return [
            {"type": "UtteranceUserActionFinished", "final_transcript": ""},
            {"type": "BotIntent", "intent": "stop"},
            {"type": "ContextUpdate", "data": {message: text, "bulwark_sources": list(sources)}},
            {"type": "start_flow", "flow_id": f"run {rail} rails"},
        ]

    def _result(self, rail: str, text: str, events: list[dict]) -> RailResult:
        key = f"bulwark_{rail}"
        updates = (e["data"] for e in reversed(events) if e["type"] == "ContextUpdate")
        data = next((update[key] for update in updates if key in update), None)
        if not data:  # NeMo swallowed an error in the action and answered "internal error"
            log.error("guardrails %s rail ended without a verdict", rail)
            return self._failed(rail, text, "no_verdict")
        result = RailResult.from_dict(data)
        stopper = _stopping_rail(rail, events)
        if stopper is None or result.blocked:
            return result
        # Another rail of the config (one of NeMo's, added to config.yml) stopped the turn.
        reasons = sorted({*result.verdict["reasons"], f"rail:{stopper}"})
        blocked_text = BLOCKED_ANSWER if rail == "output" else result.text
        return RailResult({"action": "block", "severity": "high", "reasons": reasons}, blocked_text)

    def _failed(self, rail: str, text: str, error: BaseException | str) -> RailResult:
        if isinstance(error, BaseException):
            log.error("guardrails %s rail failed", rail, exc_info=error)
        blocked_text = BLOCKED_ANSWER if rail == "output" else None
        return error_result(text, error, fail_closed=self.fail_closed, blocked_text=blocked_text)

    async def _acheck(self, rail: str, text: str, sources: Sequence[str], direct: Callable[[], RailResult]) -> RailResult:
        with span("rail.check", **{"rail.name": rail}) as opened:
            try:
                if self._nemo is None:
                    result = direct()
                else:
                    events = await self._nemo.generate_events_async(self._events(rail, text, sources))
                    result = self._result(rail, text, events)
            except Exception as exc:  # noqa: BLE001 - a failing rail must not fail the run
                result = self._failed(rail, text, exc)
            if self._unsure(result):
                judgement = await self.judge.ajudge(rail, result.text)  # type: ignore[union-attr, arg-type]
                result = judged(result, judgement, rail=rail, fail_closed=self.fail_closed)  # type: ignore[arg-type]
            rail_verdict(rail, result.verdict, opened)
            return result

    def _check(self, rail: str, text: str, sources: Sequence[str], direct: Callable[[], RailResult]) -> RailResult:
        with span("rail.check", **{"rail.name": rail}) as opened:
            try:
                if self._nemo is None:
                    result = direct()
                else:
                    result = self._result(rail, text, self._generate(self._events(rail, text, sources)))
            except Exception as exc:  # noqa: BLE001 - a failing rail must not fail the run
                result = self._failed(rail, text, exc)
            if self._unsure(result):
                judgement = self.judge.judge(rail, result.text)  # type: ignore[union-attr, arg-type]
                result = judged(result, judgement, rail=rail, fail_closed=self.fail_closed)  # type: ignore[arg-type]
            rail_verdict(rail, result.verdict, opened)
            return result

    def _unsure(self, result: RailResult) -> bool:
        """Whether the judge should read the text: the harmful-request model scored it in its
        uncertain band (a ``harmful:`` reason on a verdict that does not block)."""
        return (
            self.judge is not None
            and not result.blocked
            and any(reason.startswith("harmful:") for reason in result.verdict["reasons"])
        )

    def _generate(self, events: list[dict]) -> list[dict]:
        # NeMo's sync calls refuse to run inside an event loop (a notebook, an async app
        # calling sync code); there it runs on a worker thread with its own loop.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._nemo.generate_events(events)  # type: ignore[union-attr]
        with ThreadPoolExecutor(max_workers=1) as worker:
            return worker.submit(self._nemo.generate_events, events).result()  # type: ignore[union-attr]

    # -- public checks ---------------------------------------------------------------

    @traced_rail("input")
    async def acheck_input(self, text: str) -> RailResult:
        """Screen a user request (async)."""
        return await self._acheck("input", text, (), lambda: check_input(text, self.policy))

    @traced_rail("input")
    def check_input(self, text: str) -> RailResult:
        """Screen a user request."""
        return self._check("input", text, (), lambda: check_input(text, self.policy))

    @traced_rail("output")
    async def acheck_output(self, text: str, *, sources: Sequence[str] = ()) -> RailResult:
        """Screen an answer (async); ``sources`` names the tools and knowledge it used."""
        return await self._acheck(
            "output", text, sources, lambda: check_output(text, self.policy, sources=sources)
        )

    @traced_rail("output")
    def check_output(self, text: str, *, sources: Sequence[str] = ()) -> RailResult:
        """Screen an answer; ``sources`` names the tools and knowledge it used."""
        return self._check(
            "output", text, sources, lambda: check_output(text, self.policy, sources=sources)
        )

    @traced_rail("context")
    def check_context(self, text: str) -> RailResult:
        """Screen a tool result or retrieved document before the model reads it."""
        with span("rail.check", **{"rail.name": "context"}) as opened:
            try:
                result = check_context(text, self.policy)
            except Exception as exc:  # noqa: BLE001 - a failing rail must not fail the run
                result = self._failed("context", text, exc)
            rail_verdict("context", result.verdict, opened)
            return result


def _stopping_rail(rail: str, events: list[dict]) -> str | None:
    """The flow of the rail list that stopped the run, if one did."""
    if not any(e["type"] == "BotIntent" and e.get("intent") == "stop" for e in events):
        return None
    started = f"Start{rail.capitalize()}Rail"
    return next((e["flow_id"] for e in reversed(events) if e["type"] == started), None)


@functools.lru_cache(maxsize=16)
def _shared(
    max_input_chars: int,
    system_prompt: str,
    pii_entities: frozenset[str],
    denied_topics: tuple[tuple[str, tuple[str, ...]], ...],
    engine: Engine,
    fail_closed: bool,
    judge: Judge | None,
) -> Guardrails:
    policy = RailPolicy(
        max_input_chars=max_input_chars,
        system_prompt=system_prompt,
        pii_entities=pii_entities,
        denied_topics=dict(denied_topics),
    )
    # The detectors load and compile their tables on first use; a deployment pays that
    # (about half a second) here, once, rather than in its first request.
    pii.preload()
    check_output(check_input(_WARM_UP, policy).text, policy)
    return Guardrails(policy, engine=engine, fail_closed=fail_closed, judge=judge)


_WARM_UP = "Ignore the rules? No: email ada@example.com how to kill a stuck process, s'il vous plaît."
_judges: dict[tuple, Judge] = {}


def _judge_for(settings: Settings) -> Judge | None:
    """The settings' judge (``None``: off), one per model and endpoint in the process."""
    entry = settings.judge_entry
    if entry is None:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    ident = (entry.model_dump_json(), settings.openai_base_url, key, settings.model_timeout_s)
    if ident not in _judges:
        from bulwark.models.factory import make_chat_model

        _judges[ident] = Judge(make_chat_model(entry, settings=settings), entry=entry)
    return _judges[ident]
