"""The research agents: planner, source finder (queries, relevance), analyst, fact checker, writer.

One module per agent holds everything about it (see `fte.agents.agent`); its prompt text is
`prompts/<name>.md`. Agents are found here by looking through this package for module-level
`Agent` objects, so adding an agent is adding its module and its prompt file.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from fte.agents.agent import Agent, by_name
from fte.contracts import OFFLINE_MODEL
from fte.llm import FunctionModel, ModelRequest

AnyAgent = Agent[Any, Any, Any]


@functools.cache
def all_agents() -> dict[str, AnyAgent]:
    """Every agent of this package, by name."""
    found: dict[str, AnyAgent] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Agent):
                if found.setdefault(value.name, value) is not value:
                    raise RuntimeError(f"two agents are named {value.name!r}")
    return found


def find(name: str) -> AnyAgent:
    return by_name(all_agents(), name)


def _answer_offline(request: ModelRequest[Any]) -> Any:
    return find(request.agent).answer_offline(request.inputs)


def offline_model() -> FunctionModel:
    """The built-in offline model: every agent's deterministic offline twin.

    It does not generate text. Every fact it returns is a sentence copied from the sources
    it was given, chosen by lexical overlap, so it can miss things but cannot invent them.
    Same inputs, same answer: no clock, no randomness.
    """
    return FunctionModel(_answer_offline, name=OFFLINE_MODEL)
