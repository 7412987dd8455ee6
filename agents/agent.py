"""What every agent is: typed input, typed output, a prompt, rules, and an offline twin.

An `Agent` is data, not a class hierarchy. Its module says, in one place:

- `input_model`: what the model is shown, as a pydantic model. The rendered prompt quotes
  it as one JSON document inside `<input>` … `</input>`: data, clearly delimited from the
  instructions, so text in a source can never pass for an instruction or for a field.
- `output_model`: the JSON schema the model must answer in (field descriptions included).
- `prompt`: the template `prompts/<prompt>.md` (system part and user part).
- `rules`: the code-side checks applied to the model's answer before anyone else sees it
  (dropping citations of sources that were not retrieved, minting IDs, ...). They turn the
  raw output into the agent's `result_model`.
- `brief` (optional): the result without the text no workflow reads, for a reply that
  leaves it in the stored artifact (the fact checker's quotes, the analyst's summary).
- `offline`: a deterministic function `inputs -> output` that stands in for a language
  model. `fte.agents.offline_model()` serves all of them behind the `fte.llm.Model`
  interface, so the offline path runs the same rendering, validation and rules.

Activities call `run()`; workflows call `reply()` on what the activity returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from fte.agents.prompting import FIELD, load_prompt, render
from fte.contracts import AgentReply, TokenUsage
from fte.errors import PromptError
from fte.llm import Model, ModelRequest

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)
ResT = TypeVar("ResT", bound=BaseModel)

INPUT_FIELD = "input"
_INPUT_BLOCK = re.compile(r"<input>\n(?P<json>.*)\n</input>", re.DOTALL)


@dataclass(frozen=True)
class AgentRun(Generic[ResT]):
    """An agent's checked result and what the model calls cost."""

    result: ResT
    usage: TokenUsage


@dataclass(frozen=True)
class Agent(Generic[InT, OutT, ResT]):
    name: str
    """Stable name: the usage key, the activity name suffix and the log field."""
    prompt: str
    input_model: type[InT]
    output_model: type[OutT]
    result_model: type[ResT]
    rules: Callable[[InT, OutT], ResT]
    offline: Callable[[InT], OutT]
    brief: Callable[[ResT], ResT] | None = None
    """The result without the text no workflow reads (it stays in the stored artifact)."""

    def render(self, inputs: InT) -> tuple[str, str]:
        """The `(system, user)` messages for `inputs`."""
        system, template = load_prompt(self.prompt)
        return system, render(template, **self._fields(template, inputs))

    def _fields(self, template: str, inputs: InT) -> dict[str, object]:
        fields: dict[str, object] = {INPUT_FIELD: quote_input(inputs)}
        for name in set(FIELD.findall(template)) - {INPUT_FIELD}:
            # Besides the whole input, a template may name one of its scalar fields in the
            # instructions ("at most {max_sub_questions}").
            value = getattr(inputs, name, None)
            if not isinstance(value, str | int | float):
                raise PromptError(
                    f"prompts/{self.prompt}.md uses {{{name}}}, which is not a text or number "
                    f"field of {self.input_model.__name__}"
                )
            fields[name] = value
        return fields

    def run(self, model: Model, model_name: str, inputs: InT) -> AgentRun[ResT]:
        """Ask `model` once (the model layer repairs invalid output) and apply the rules."""
        system, user = self.render(inputs)
        answer = model.complete(
            ModelRequest(
                agent=self.name,
                model=model_name,
                system=system,
                user=user,
                output_model=self.output_model,
                inputs=inputs,
            )
        )
        return AgentRun(result=self.rules(inputs, answer.output), usage=answer.usage)

    def answer_offline(self, inputs: BaseModel) -> OutT:
        """The offline twin's answer; `inputs` must be this agent's input model."""
        return self.offline(self.input_model.model_validate(inputs))

    def brief_of(self, result: dict[str, Any]) -> dict[str, Any]:
        """`brief` applied to a result as JSON (the whole result when there is no `brief`)."""
        if self.brief is None:
            return result
        return self.brief(self.result_model.model_validate(result)).model_dump(mode="json")

    def reply(self, raw: Any) -> tuple[ResT, TokenUsage]:
        """Re-validate what the agent's activity returned (workflow side, replay-safe)."""
        reply = AgentReply.model_validate(raw)
        return self.result_model.model_validate(reply.result), reply.usage

    def inputs_from_prompt(self, user_message: str) -> InT:
        """The typed input quoted in a rendered user message (for HTTP-level test doubles)."""
        match = _INPUT_BLOCK.search(user_message)
        if match is None:
            raise PromptError(f"{self.name}: the user message has no <input> block")
        return self.input_model.model_validate_json(match["json"])


def quote_input(inputs: BaseModel) -> str:
    """`inputs` as one JSON document between `<input>` tags.

    `</` is written `<\\/` (the same string in JSON), so no text inside, a source's
    included, can close the block early.
    """
    document = json.dumps(inputs.model_dump(mode="json"), ensure_ascii=False, indent=1)
    return "<input>\n" + document.replace("</", "<\\/") + "\n</input>"


def keep_output(inputs: BaseModel, output: OutT) -> OutT:
    """Rules for an agent whose answer needs no code-side check before use."""
    return output


def by_name(agents: Mapping[str, Agent[Any, Any, Any]], name: str) -> Agent[Any, Any, Any]:
    try:
        return agents[name]
    except KeyError:
        raise PromptError(
            f"unknown agent {name!r}; known agents: {', '.join(sorted(agents))}"
        ) from None
