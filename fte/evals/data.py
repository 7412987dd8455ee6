"""The suites' data: questions, labels, fault scripts and cassettes under the top-level `evals/`.

The data is reached like the prompts are: `fte/evals/data` is a committed symlink to
`../../evals`, found through `fte.package_path`. It is not packaged into the wheel (the
cassettes are large and the Dapr docs corpus lives outside the checkout), so `fte eval`
runs from a checkout; an installed wheel says so in one line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fte import package_path
from fte.errors import UsageError

T = TypeVar("T", bound=BaseModel)


def data_dir() -> Path:
    root = package_path("evals", "data")
    if not root.is_dir():
        raise UsageError(
            "the evaluation data (evals/) is not installed with the package: "
            "run `fte eval` from a checkout of the project"
        )
    return root.resolve()


def load_toml(relative: str, model: type[T]) -> T:
    """`evals/<relative>` validated as `model`; errors name the file and the field."""
    path = data_dir() / relative
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return model.model_validate(raw)
    except FileNotFoundError:
        raise UsageError(f"evaluation data file {path} is missing") from None
    except (tomllib.TOMLDecodeError, ValidationError) as error:
        raise UsageError(f"{path}: {error}") from None


def corpus_dir(name: str) -> Path:
    """The corpus called `name` in `evals/corpora.toml`, which must exist."""
    corpora: dict[str, Any] = tomllib.loads((data_dir() / "corpora.toml").read_text())
    if name not in corpora:
        raise UsageError(f"unknown corpus {name!r}; evals/corpora.toml names {sorted(corpora)}")
    path = (data_dir() / str(corpora[name])).resolve()
    if not path.is_dir():
        raise UsageError(
            f"corpus {name!r} not found at {path} (set in evals/corpora.toml); the Dapr "
            "documentation corpus is expected next to the checkout at ../shared/corpus/dapr-docs"
        )
    return path
