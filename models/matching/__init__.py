"""The offline model's rules (:mod:`bulwark.models.offline`): text analysis without an LLM.

Three jobs, all deterministic and rule-based:

* **tool scoring** - which bound tool (OpenAI-format schema) fits a request, by
  IDF-weighted overlap of crudely stemmed words, concept synonyms and the *shape* of
  the request (an arithmetic expression, an email address, an IANA timezone);
* **argument filling** - build tool arguments from the request using the tool's JSON
  schema: the request is taken apart into candidate values (numbers with their units,
  currency or percent sign, number words, lists, ranges, dates, quoted strings, names,
  identifiers, noun phrases, emails, timezones, expressions), each parameter is described
  by the words that announce it (its name, its description, prepositions of its role)
  and its unit, and values go to parameters best fit first (see :mod:`.filling`);
* **fact extraction** - "my name is Ada"-style statements and the memory block of a
  system prompt, plus matching a personal question to the best fact.

Modules, in the order a request goes through them:

* words and shapes: :mod:`.text` (words, stems, concepts), :mod:`.spans` (emails, time
  zones, quoted strings, arithmetic expressions), :mod:`.units`;
* tools: :mod:`.schemas` (a tool's schema and profile), :mod:`.scoring` (tool choice and
  the calls to make);
* request analysis: :mod:`.request` (:class:`~.request.Request`) with its finders in
  :mod:`.literals`, :mod:`.dates`, :mod:`.numbers`, :mod:`.names`, :mod:`.phrases`;
  each value a :class:`~.candidates.Candidate`;
* parameters and assignment: :mod:`.slots`, :mod:`.evidence`, :mod:`.fits`,
  :mod:`.assignment`, :mod:`.options`, :mod:`.free_text`, :mod:`.filling`;
* :mod:`.facts`;
* :mod:`.tables`: the reference tables (word lists, units, places...) loaded from
  ``data/`` (see ``data/README.md``).

What this package exports is what the offline model uses; nothing here is public API of
Bulwark, and the names may change with the offline model.
"""

from bulwark.models.matching.facts import (
    Fact,
    dedupe_facts,
    extract_facts,
    facts_from_system,
    is_personal,
    is_question,
    score_fact,
)
from bulwark.models.matching.filling import fill_arguments
from bulwark.models.matching.schemas import ToolSpec, param_kind
from bulwark.models.matching.scoring import plan_tool_calls, score_tools
from bulwark.models.matching.spans import find_expression, find_timezones, normalize_arithmetic
from bulwark.models.matching.text import stem, words

__all__ = [
    "Fact",
    "ToolSpec",
    "dedupe_facts",
    "extract_facts",
    "facts_from_system",
    "fill_arguments",
    "find_expression",
    "find_timezones",
    "is_personal",
    "is_question",
    "normalize_arithmetic",
    "param_kind",
    "plan_tool_calls",
    "score_fact",
    "score_tools",
    "stem",
    "words",
]
