"""The fact check: the detector, the rail function and the node in the real agent graph
(its precision and recall on the dev set: tests/test_guardrails_eval.py)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from scripted_model import RuleModel

from bulwark.graphs.agent import build_agent, open_agent
from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import UNGROUNDED_NOTE, check_grounding
from bulwark.guardrails.detectors.grounding import check_grounding as find_claims
from bulwark.settings import Settings

NOTE_START = UNGROUNDED_NOTE.split("{", 1)[0]


def _unsupported(answer: str, *evidence: str) -> list[str]:
    return [c.text for c in find_claims(answer, evidence).unsupported]


@pytest.mark.parametrize(
    ("answer", "evidence"),
    [
        ("The calculator tool says 17*23 = 391.", ["what is 17*23", "391"]),
        ("That comes to 1,234.5 in total.", ["1234.50"]),
        ("The result is 391.0.", ["391"]),
        ("Five kilometres is roughly 3.11 miles.", ["convert 5 km to miles", "3.10686 mile"]),
        ("Revenue rose 12% to $1.2 million.", ["revenue up 12 percent to 1,200,000 USD"]),
        ("About 454 thousand people live there.", ["population 453,558"]),
        ("It departs at 2:35 pm on 2 March 2026.", ['{"departure": "2026-03-02T14:35"}']),
        ("The shop is open from 8 am to 6 pm.", ["Open 8-18."]),
        ("The deadline is March 31st, 2026.", ["due 31/03/2026"]),
        ("Ada Lovelace worked with Charles Babbage.", ["Augusta Ada King, Countess of Lovelace, worked with Babbage (Charles)."]),
        ("The EU and the Bank of England agreed.", ["The European Union met the bank of england."]),
        ('She said "we grew in every region".', ['"We grew in every region, and kept costs flat."']),
        ("Two things are on today: the review and the dentist.", ["review 10:00; dentist 16:15"]),
        ("Your email to <EMAIL_1> is queued [source: notes.md#3].", ["queued in the outbox"]),
        ("## Weather Summary\nIt is sunny and 18°C.", ['{"temp_c": 18, "sky": "sunny"}']),
    ],
)
def test_paraphrased_supported_answers_pass(answer: str, evidence: list[str]) -> None:
    assert _unsupported(answer, *evidence) == []


@pytest.mark.parametrize(
    ("answer", "evidence", "unsupported"),
    [
        ("17 times 23 is 381.", ["what is 17*23", "391"], ["381"]),
        ("5 km is about 3.11 kilometres.", ["5 km", "3.10686 mile"], ["3.11 kilometres"]),
        ("It departs at 15:35.", ['{"departure": "2026-03-02T14:35"}'], ["15:35"]),
        ("It arrives on 16 May 2026.", ["expected delivery 2026-05-14"], ["16 May 2026"]),
        ("Ada Lovelace worked with Alan Turing.", ["Ada Lovelace worked with Charles Babbage."], ["Alan Turing"]),
        ('She said "we cut costs sharply".', ['"We grew in every region and kept costs flat."'], ["we cut costs sharply"]),
        ("It got five stars.", ["four stars out of five"], ["five stars"]),
        ("It raised KeyError: 'customer_name'.", ["KeyError: 'customer_id'"], ["customer_name"]),
    ],
)
def test_changed_numbers_names_and_quotes_are_unsupported(answer: str, evidence: list[str], unsupported: list[str]) -> None:
    assert _unsupported(answer, *evidence) == unsupported


def test_sentence_initial_common_words_and_units_are_not_names() -> None:
    claims = find_claims("According to the tool, it is 18 degrees Celsius. Sources: weather", ["18"]).claims
    assert [(c.kind, c.text) for c in claims] == [("number", "18 degrees Celsius")]


def test_the_users_own_numbers_are_supported_only_when_the_request_is_evidence() -> None:
    answer = "Splitting 1,250 between 4 people gives 312.5 each."
    assert _unsupported(answer, "312.5") == ["1,250", "4"]
    assert _unsupported(answer, "split 1250 between 4 people", "312.5") == []


def test_the_rail_appends_a_note_and_flags_never_blocks() -> None:
    result = check_grounding("The calculator says 17*23 = 381, per Alan Turing.", ["what is 17*23", "391"])
    assert result.verdict == {"action": "flag", "severity": "low", "reasons": ["ungrounded", "ungrounded:name", "ungrounded:number"]}
    assert result.text.startswith("The calculator says 17*23 = 381, per Alan Turing.")
    assert result.text.endswith(UNGROUNDED_NOTE.format(claims="\u201c381\u201d, \u201cAlan Turing\u201d"))
    again = check_grounding(result.text, ["what is 17*23", "391"])
    assert again == result, "a note from an earlier check is replaced, not repeated"


def test_a_grounded_answer_is_unchanged() -> None:
    result = check_grounding("The calculator tool says 17*23 = 391.", ["what is 17*23", "391"])
    assert result.verdict["action"] == "allow"
    assert result.text == "The calculator tool says 17*23 = 391."


# -- in the agent graph ---------------------------------------------------------------------


def _ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_the_offline_models_calculator_answer_is_grounded(settings: Settings) -> None:
    async with open_agent(settings) as agent:
        result = await agent.ainvoke(_ask("what is 17*23"), {"configurable": {"thread_id": "t"}}, context=RunContext(user_id="u"))
    assert result["messages"][-1].text == "The calculator tool says 17*23 = 391."
    assert result["output_verdict"] == {"action": "allow", "severity": "none", "reasons": []}


def _calculator_then(answer: str) -> RuleModel:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        if not isinstance(messages[-1], ToolMessage):
            return AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": "17*23"}, "id": "c1"}])
        return AIMessage(answer)

    return RuleModel(reply=reply)


async def test_an_ungrounded_answer_is_flagged_noted_and_audited(settings: Settings) -> None:
    graph = build_agent(settings, models={"offline": _calculator_then("17*23 = 401, as the Analytical Engine showed.")})
    result = await graph.ainvoke(_ask("what is 17*23"))
    verdict = result["output_verdict"]
    # The output rail's own rewrite (the Sources: line) makes it a sanitize; never a block.
    assert verdict["action"] == "sanitize" and {"ungrounded", "sources_added"} <= set(verdict["reasons"])
    answer = result["messages"][-1].text
    assert answer.startswith("17*23 = 401") and NOTE_START in answer
    assert "\u201c401\u201d" in answer and "\u201cAnalytical Engine\u201d" in answer
    assert "Sources: calculator" in answer, "the Sources: attribution stays"
    record = json.loads((settings.data_dir / "audit.jsonl").read_text())
    assert record["output_verdict"] == verdict
    assert "Analytical" not in json.dumps(record), "the audit holds the kinds, never the claims"


def test_the_sync_path_checks_too(settings: Settings) -> None:
    graph = build_agent(settings, models={"offline": _calculator_then("The calculator tool says 17*23 = 391.")})
    assert graph.invoke(_ask("what is 17*23"))["output_verdict"]["action"] == "allow"
    graph = build_agent(settings, models={"offline": _calculator_then("The calculator tool says 17*23 = 392.")})
    assert "ungrounded:number" in graph.invoke(_ask("what is 17*23"))["output_verdict"]["reasons"]


async def test_an_answer_without_evidence_is_not_checked(settings: Settings) -> None:
    graph = build_agent(settings, models={"offline": RuleModel(reply=lambda m: AIMessage("Napoleon died in 1821."))})
    result = await graph.ainvoke(_ask("when did Napoleon die?"))
    assert result["output_verdict"]["action"] == "allow"
    assert result["messages"][-1].text == "Napoleon died in 1821."
