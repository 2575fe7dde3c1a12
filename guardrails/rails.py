"""The process's guardrails: NeMo Guardrails rails built once, with a direct fallback engine.

With ``engine="nemo"`` (the default) input and output checks run as the NeMo rails
configured in ``guardrails/config`` (``LLMRails`` built once per :class:`Guardrails`);
the rails' Python actions call :mod:`bulwark.guardrails.checks`. ``engine="direct"``
calls the same checks without the Colang runtime, whose own cost (about 13 ms a check
here, measured with a no-op action) exceeds the 10 ms budget; see ``bench/guardrails.py``.

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
    return rails


class Guardrails:
    """Input, output and context rails for one deployment; build once and share."""

    def __init__(
        self,
        policy: RailPolicy,
        *,
        engine: Engine = "nemo",
        fail_closed: bool = True,
        config_dir: Path = CONFIG_DIR,
    ) -> None:
        self.policy = policy
        self.fail_closed = fail_closed
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
        )

    # -- NeMo round trip -------------------------------------------------------------

    def _request(self, rail: str, text: str, sources: Sequence[str]) -> tuple[list[dict], dict]:
        context = {"role": "context", "content": {"bulwark_sources": list(sources)}}
        turn = (
            [{"role": "user", "content": text}]
            if rail == "input"
            else [{"role": "user", "content": ""}, {"role": "assistant", "content": text}]
        )
        return [context, *turn], {"rails": [rail], "output_vars": [f"bulwark_{rail}"]}

    def _result(self, rail: str, text: str, response: object) -> RailResult:
        data = (getattr(response, "output_data", None) or {}).get(f"bulwark_{rail}")
        if not data:  # NeMo swallowed an error in the action and answered "internal error"
            log.error("guardrails %s rail ended without a verdict", rail)
            return self._failed(rail, text, "no_verdict")
        return RailResult.from_dict(data)

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
                    messages, options = self._request(rail, text, sources)
                    result = self._result(rail, text, await self._nemo.generate_async(messages=messages, options=options))
            except Exception as exc:  # noqa: BLE001 - a failing rail must not fail the run
                result = self._failed(rail, text, exc)
            rail_verdict(rail, result.verdict, opened)
            return result

    def _check(self, rail: str, text: str, sources: Sequence[str], direct: Callable[[], RailResult]) -> RailResult:
        with span("rail.check", **{"rail.name": rail}) as opened:
            try:
                if self._nemo is None:
                    result = direct()
                else:
                    messages, options = self._request(rail, text, sources)
                    result = self._result(rail, text, self._generate(messages, options))
            except Exception as exc:  # noqa: BLE001 - a failing rail must not fail the run
                result = self._failed(rail, text, exc)
            rail_verdict(rail, result.verdict, opened)
            return result

    def _generate(self, messages: list[dict], options: dict) -> object:
        # NeMo's sync generate refuses to run inside an event loop (a notebook, an async
        # app calling sync code); there it runs on a worker thread with its own loop.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._nemo.generate(messages=messages, options=options)  # type: ignore[union-attr]
        with ThreadPoolExecutor(max_workers=1) as worker:
            return worker.submit(self._nemo.generate, messages=messages, options=options).result()  # type: ignore[union-attr]

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


@functools.lru_cache(maxsize=16)
def _shared(
    max_input_chars: int,
    system_prompt: str,
    pii_entities: frozenset[str],
    denied_topics: tuple[tuple[str, tuple[str, ...]], ...],
    engine: Engine,
    fail_closed: bool,
) -> Guardrails:
    policy = RailPolicy(
        max_input_chars=max_input_chars,
        system_prompt=system_prompt,
        pii_entities=pii_entities,
        denied_topics=dict(denied_topics),
    )
    return Guardrails(policy, engine=engine, fail_closed=fail_closed)
