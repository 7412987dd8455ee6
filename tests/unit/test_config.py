"""Settings: flags > environment > fte.toml > defaults, with honest provenance and no leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fte.config import FteSettings, Origin, load_settings, mask, show
from fte.errors import UsageError
from tests.unit.conftest import API_KEY

ECOSYSTEM_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DAPR_API_TOKEN")


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts in an empty folder with none of the variables FTE reads."""
    for name in [*ECOSYSTEM_VARS, *(n for n in os.environ if n.upper().startswith("FTE_"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def write_toml(text: str, path: Path = Path("fte.toml")) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def show_table(settings: FteSettings) -> dict[str, tuple[str, str]]:
    """`show` output as key -> (value, origin), skipping comment lines."""
    table = {}
    for line in show(settings).splitlines():
        if line.startswith("#"):
            continue
        assignment, origin = line.split("  # from: ")
        key, value = assignment.split(" = ", 1)
        table[key.strip()] = (value.strip(), origin)
    return table


# Per field: (toml line, env var and value, flag value, expected value per layer).
Layers = tuple[str, tuple[str, str], object, dict[str, object]]
LAYERS: dict[str, Layers] = {
    "model": (
        'model = "from-toml"',
        ("FTE_MODEL", "from-env"),
        "from-flag",
        {"default": "gpt-4o-mini", "fte.toml": "from-toml", "env": "from-env", "flag": "from-flag"},
    ),
    "offline": (
        "offline = true",
        ("FTE_OFFLINE", "false"),  # env can switch off what the file switched on
        True,
        {"default": False, "fte.toml": True, "env": False, "flag": True},
    ),
    "approval_timeout_s": (
        "approval_timeout_s = 60",
        ("FTE_APPROVAL_TIMEOUT_S", "30.5"),
        10.0,
        {"default": 3600.0, "fte.toml": 60.0, "env": 30.5, "flag": 10.0},
    ),
    "data_dir": (
        'data_dir = "state"',
        ("FTE_DATA_DIR", "/env/state"),
        Path("/flag/state"),
        {
            "default": Path(".fte"),
            "fte.toml": Path("state"),
            "env": Path("/env/state"),
            "flag": Path("/flag/state"),
        },
    ),
}
ORDER: tuple[Origin, ...] = ("default", "fte.toml", "env", "flag")


@pytest.mark.parametrize("top", ORDER)
@pytest.mark.parametrize("field", list(LAYERS))
def test_each_layer_overrides_the_ones_below(
    field: str, top: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml_line, (variable, env_value), flag_value, expected = LAYERS[field]
    present = ORDER[: ORDER.index(top) + 1]
    if "fte.toml" in present:
        write_toml(toml_line + "\n")
    if "env" in present:
        monkeypatch.setenv(variable, env_value)
    flags = {field: flag_value} if "flag" in present else {}

    settings = load_settings(flags)

    assert getattr(settings, field) == expected[top]
    assert settings.origins[field] == top
    assert show_table(settings)[field][1] == top


def test_flags_that_are_none_were_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTE_MODEL", "from-env")
    settings = load_settings({"model": None, "offline": None})
    assert settings.model == "from-env"
    assert settings.origins["model"] == "env"
    assert settings.origins["offline"] == "default"


def test_show_reports_value_and_origin_of_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml('model = "gpt-4o"\ncitation_policy = "mark"\n')
    monkeypatch.setenv("FTE_OFFLINE", "1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")

    table = show_table(load_settings({"out_dir": Path("out")}))

    assert set(table) == set(FteSettings.model_fields)
    assert table["model"] == ('"gpt-4o"', "fte.toml")
    assert table["citation_policy"] == ('"mark"', "fte.toml")
    assert table["offline"] == ("true", "env")
    assert table["openai_base_url"] == ('"http://localhost:11434/v1"', "env")
    assert table["out_dir"] == ('"out"', "flag")
    assert table["corpus"] == ('"examples/corpus"', "default")
    assert table["openai_api_key"] == ("(not set)", "default")


def test_show_masks_secrets_and_never_prints_them(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "dapr-token-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("DAPR_API_TOKEN", token)

    settings = load_settings()
    text = show(settings)

    assert API_KEY not in text and token not in text
    assert API_KEY not in repr(settings)
    table = show_table(settings)
    assert table["openai_api_key"] == (f"sk-...{API_KEY[-4:]}", "env")
    assert table["dapr_api_token"] == ("dap...cdef", "env")
    assert settings.secret_values() == [API_KEY, token]


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        pytest.param(
            "http://fte-user:p%40ss-W0RD-123@127.0.0.1:8080/v1",
            "http://fte-user:****@127.0.0.1:8080/v1",
            ["p%40ss-W0RD-123", "p@ss-W0RD-123"],
            id="user-and-password",
        ),
        pytest.param(
            "https://tok-0123456789@gateway.example/v1",
            "https://****@gateway.example/v1",
            ["tok-0123456789"],
            id="token-as-user",
        ),
        pytest.param("http://localhost:11434/v1", "http://localhost:11434/v1", [], id="none"),
    ],
)
def test_credentials_in_the_base_url_are_masked_and_redacted(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str, secrets: list[str]
) -> None:
    """A gateway key in OPENAI_BASE_URL's userinfo is a secret like OPENAI_API_KEY."""
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    settings = load_settings()
    assert show_table(settings)["openai_base_url"] == (f'"{shown}"', "env")
    assert sorted(settings.secret_values()) == sorted(secrets)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        pytest.param(API_KEY, "sk-...b1a0", id="long"),
        pytest.param("short-secret", "****", id="short"),
        pytest.param(None, "(not set)", id="unset"),
    ],
)
def test_mask(secret: str | None, shown: str) -> None:
    from pydantic import SecretStr

    assert mask(SecretStr(secret) if secret is not None else None) == shown


def test_blank_environment_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_BASE_URL", "  ")
    monkeypatch.setenv("DAPR_API_TOKEN", f" {API_KEY}\n")
    monkeypatch.setenv("FTE_MODEL", "")
    settings = load_settings()
    assert settings.openai_api_key is None
    assert settings.openai_base_url is None
    assert settings.secret_values() == [API_KEY]
    assert settings.model == "gpt-4o-mini"
    assert settings.origins["model"] == "default"


def test_per_agent_models_fall_back_to_the_common_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_toml('model_planner = "planner-from-toml"\n')
    monkeypatch.setenv("FTE_MODEL", "common")
    monkeypatch.setenv("FTE_MODEL_WRITER", "writer-from-env")

    models = load_settings().agent_models()

    assert models.planner == "planner-from-toml"
    assert models.writer == "writer-from-env"
    assert models.analyst == models.fact_checker == models.source_finder == "common"


def test_llm_config_carries_key_and_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    config = load_settings().llm_config()
    assert config.api_key is not None and config.api_key.get_secret_value() == API_KEY
    assert config.base_url == "http://localhost:8000/v1"


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTE_LOG_LEVEL", "DEBUG")
    assert load_settings().log_level == "debug"


def test_fte_config_names_the_project_file_and_anchors_its_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_toml('corpus = "docs"\nout_dir = "/abs/reports"\n', project / "settings.toml")
    write_toml('model = "ignored: FTE_CONFIG wins"\n')
    monkeypatch.setenv("FTE_CONFIG", str(project / "settings.toml"))

    settings = load_settings()

    assert settings.corpus == project / "docs"
    assert settings.out_dir == Path("/abs/reports")
    assert settings.model == "gpt-4o-mini"
    assert settings.project_file == project / "settings.toml"


def test_fte_config_naming_a_missing_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTE_CONFIG", "nowhere.toml")
    with pytest.raises(UsageError, match=r"FTE_CONFIG=nowhere\.toml does not name a file"):
        load_settings()


def test_unknown_key_in_project_file_is_named() -> None:
    write_toml('modle = "gpt-4o"\n')
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert "fte.toml" in message and "'modle'" in message and "did you mean 'model'" in message
    assert "\n" not in message


def test_tables_in_project_file_are_rejected_with_a_hint() -> None:
    write_toml('[fte]\nmodel = "gpt-4o"\n')
    with pytest.raises(UsageError, match="unknown setting 'fte'; settings are top-level keys"):
        load_settings()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(f'openai_api_key = "{API_KEY}"', "(OPENAI_API_KEY)", id="api-key"),
        pytest.param('dapr_api_token = "tok-123456"', "(DAPR_API_TOKEN)", id="dapr-token"),
        pytest.param('OPENAI_API_KEY = "x-123456"', "(OPENAI_API_KEY)", id="env-spelling"),
        pytest.param('search_api_key = "x-123456"', "environment", id="any-key"),
    ],
)
def test_secrets_in_project_file_are_refused(line: str, expected: str) -> None:
    write_toml(line + "\n")
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert "secret" in message and "environment" in message and expected in message
    assert line.split('"')[1] not in message


def test_malformed_toml_names_file_and_line() -> None:
    write_toml('model = "gpt-4o"\noffline = \n')
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("fte.toml: not valid TOML")
    assert "line 2" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        pytest.param("FTE_OFFLINE", "maybe", "expected true or false", id="bool"),
        pytest.param(
            "FTE_APPROVAL_TIMEOUT_S", "-5", "expected a finite number greater than 0", id="positive"
        ),
        pytest.param("FTE_PROGRESS_CHECKIN_INTERVAL_S", "soon", "expected a finite number", id="n"),
        pytest.param(
            "FTE_APPROVAL_TIMEOUT_S",
            "1e20",
            "expected a finite number greater than 0 and at most 2592000",
            id="beyond-30-days",
        ),
        pytest.param("FTE_CITATION_POLICY", "drop", "expected one of remove, mark", id="choice"),
        pytest.param("FTE_LOG_LEVEL", "loud", "expected one of debug, info", id="level"),
    ],
)
def test_bad_environment_value_is_one_line_naming_the_variable(
    variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r} is invalid")
    assert expected in message
    assert "\n" not in message


def test_bad_project_file_value_names_key_and_file() -> None:
    write_toml('offline = "maybe"\n')
    with pytest.raises(UsageError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("fte.toml: offline = 'maybe' is invalid: expected true or false")


def test_bad_flag_value_names_the_option() -> None:
    with pytest.raises(UsageError, match=r"^option approval_timeout_s=0 is invalid: expected a"):
        load_settings({"approval_timeout_s": 0})


def test_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no_such_flag"):
        load_settings({"no_such_flag": 1})
