"""A run's depth and budget from settings (flags, environment, fte.toml), prices fixed at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from fte.config import load_settings
from fte.contracts import OFFLINE_MODEL, AgentModels, Budget, ModelPrice
from fte.errors import UsageError
from fte.research import run_budget


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "FTE_DEPTH",
        "FTE_BUDGET_USD",
        "FTE_MAX_TOKENS",
        "FTE_PRICES",
        "FTE_MAX_SUB_QUESTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_one_round_by_default_and_no_limit() -> None:
    settings = load_settings()
    assert settings.depth == 1
    budget = run_budget(settings, AgentModels())
    assert (budget.usd, budget.tokens, budget.limited) == (None, None, False)
    # Prices are fixed for the run even without a limit: status shows what it cost.
    assert budget.prices == {"gpt-4o-mini": ModelPrice(input=0.15, output=0.60)}


def test_flags_environment_and_project_file_set_depth_and_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("fte.toml").write_text("depth = 2\nmax_tokens = 50000\n", encoding="utf-8")
    monkeypatch.setenv("FTE_BUDGET_USD", "0.25")
    settings = load_settings({"depth": 0})
    assert (settings.depth, settings.max_tokens, settings.budget_usd) == (0, 50000, 0.25)
    assert settings.origins["depth"] == "flag"
    assert settings.origins["max_tokens"] == "fte.toml"


def test_prices_come_from_the_table_with_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTE_PRICES", '{"local-llama": [0.5, 1.5], "gpt-4o-mini": [1, 2]}')
    models = AgentModels(writer="local-llama")
    budget = run_budget(load_settings({"budget_usd": 1.0}), models)
    assert budget == Budget(
        usd=1.0,
        prices={
            "gpt-4o-mini": ModelPrice(input=1.0, output=2.0),
            "local-llama": ModelPrice(input=0.5, output=1.5),
        },
    )


def test_a_usd_budget_with_an_unpriced_model_is_refused_before_the_run() -> None:
    models = AgentModels(writer="local-llama")
    with pytest.raises(UsageError) as raised:
        run_budget(load_settings({"budget_usd": 1.0}), models)
    message = str(raised.value)
    assert "none is known for writer (local-llama)" in message
    assert """FTE_PRICES='{"local-llama": [0.5, 1.5]}'""" in message
    # A token budget needs no price.
    assert run_budget(load_settings({"max_tokens": 9000}), models).tokens == 9000


def test_the_offline_model_is_priced_at_nothing() -> None:
    models = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))
    budget = run_budget(load_settings({"budget_usd": 0.01}), models)
    assert budget.prices == {OFFLINE_MODEL: ModelPrice(input=0.0, output=0.0)}


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"depth": 6}, "option depth=6 is invalid"),
        ({"depth": -1}, "option depth=-1 is invalid"),
        ({"budget_usd": 0.0}, "option budget_usd=0.0 is invalid"),
        ({"max_tokens": 0}, "option max_tokens=0 is invalid"),
        ({"max_sub_questions": 17}, "option max_sub_questions=17 is invalid"),
        ({"max_sub_questions": 2}, "option max_sub_questions=2 is invalid"),
    ],
)
def test_bad_limits_are_one_line_errors(flags: dict[str, object], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        load_settings(flags)


@pytest.mark.parametrize(
    "argv",
    [
        ["research", "q", "--depth", "2", "--max-tokens", "500", "--budget-usd", "0.5",
         "--max-sub-questions", "16"],
        ["schedule", "add", "daily", "q", "--every", "1d", "--depth", "2", "--max-tokens", "500",
         "--budget-usd", "0.5", "--max-sub-questions", "16"],
    ],
    ids=["research", "schedule-add"],
)  # fmt: skip
def test_research_and_schedule_add_take_depth_and_budget_flags(argv: list[str]) -> None:
    from fte import cli

    settings = cli._settings(cli.build_parser().parse_args(argv))
    assert (settings.depth, settings.max_tokens, settings.budget_usd) == (2, 500, 0.5)
    assert settings.origins["depth"] == "flag"
    assert settings.max_sub_questions == 16


def test_a_run_plans_up_to_eight_sub_questions_unless_told() -> None:
    from fte.research import build_config, choose_model

    corpus = Path("corpus")
    corpus.mkdir()
    (corpus / "a.md").write_text("# A\n\nDurable workflows resume.\n", encoding="utf-8")
    for flags, wanted in (({}, 8), ({"max_sub_questions": 16}, 16)):
        settings = load_settings({"corpus": corpus, "offline": True, **flags})
        config = build_config(
            settings, query="q?", choice=choose_model(settings), approve_plan=False
        )
        assert config.max_sub_questions == wanted
