"""Starting a research run from the command line: validate input, pick the model, write reports.

Validation happens here, before anything is scheduled, so a bad query or corpus
gets a one-line error instead of a failed run with partial artifacts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fte import names
from fte.config import FteSettings
from fte.contracts import (
    MAX_QUERY_CHARS,
    OFFLINE_MODEL,
    AgentModels,
    Budget,
    ModelEndpoint,
    ModelPrice,
    RunConfig,
    SourceKind,
)
from fte.errors import UnknownTaskError, UsageError
from fte.llm_config import LLMConfig
from fte.pricing import PRICES_ENV, load_prices, price_of

if TYPE_CHECKING:
    # Not at run time: commands that only validate (`fte status <id>`) need neither.
    import httpx

# \A...\Z, not ^...$: `$` also matches before a trailing newline, so "x\n" would pass.
TASK_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
REPORT_FORMATS = ("md", "json")
# Kernel pseudo-filesystems: root may "write" there, but no report or state belongs there.
_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"))


def validate_query(query: str) -> str:
    text = query.strip()
    if not text:
        raise UsageError("the research query is empty: say what you want researched")
    if len(text) > MAX_QUERY_CHARS:
        raise UsageError(
            f"the research query is {len(text):,} characters; keep it under {MAX_QUERY_CHARS:,} "
            "(put background material in the corpus instead)"
        )
    if "\x00" in text:
        raise UsageError("the research query contains a NUL byte; pass plain text")
    return text


def validate_task_id(task_id: str | None) -> str:
    if task_id is None:
        # Sortable by start time, unique without coordination.
        return datetime.now(UTC).strftime("r%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    if not TASK_ID.fullmatch(task_id):
        raise UsageError(
            f"invalid task ID {task_id!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return task_id


def validate_run_ref(task_id: str, command: str) -> str:
    """A task ID given to a command on an existing run; other workflows' IDs are named as such.

    A run's child workflows (`<task>.<role>`) and schedules (`schedule:<name>`) are workflow
    instances too, so the engine would answer for them; but they are not runs, and every
    command says so the same way instead of showing a child's state as if it were a run.
    """
    child = names.parent_of(task_id)
    if child is not None and TASK_ID.fullmatch(child[0]):
        parent, role = child
        raise UnknownTaskError(
            f"{task_id!r} is the {role} child workflow of run {parent!r}, not a run; "
            f"use: fte {command} {parent}"
        )
    schedule = task_id.removeprefix(names.schedule_instance(""))
    if schedule != task_id:
        raise UnknownTaskError(
            f"{task_id!r} is the workflow of schedule {schedule!r}, not a run; "
            f"use: fte schedule show {schedule}"
        )
    return task_id


def validate_corpus(corpus: Path) -> Path:
    """Load it once now so a bad corpus fails before the run is scheduled."""
    # Imported here: the source readers (PDF, HTML) are slow to import, and only commands
    # that take a corpus need them.
    from fte.sources import cached_corpus

    root = corpus.expanduser().resolve()
    cached_corpus(root)
    return root


def validate_sources(sources: list[SourceKind]) -> list[SourceKind]:
    """Web research needs a search API configured: say so before the run, not in its search."""
    if "web" in sources:
        import httpx

        from fte.web import search_api_from_env

        with httpx.Client() as client:  # only to build the API object; nothing is sent
            search_api_from_env(client)
    return list(sources)


@dataclass(frozen=True)
class ModelChoice:
    config: LLMConfig
    http_client: httpx.Client | None
    offline: bool
    models: AgentModels

    @property
    def endpoint(self) -> ModelEndpoint:
        """What a run records as its model server (no credentials)."""
        if self.offline:
            return ModelEndpoint(offline=True)
        from fte.llm import without_credentials

        return ModelEndpoint(base_url=without_credentials(self.config.base_url))


def choose_model(settings: FteSettings) -> ModelChoice:
    """The offline model unless an OpenAI-compatible server is configured (or --offline)."""
    configured = settings.llm_config()
    use_offline = settings.offline or (configured.api_key is None and configured.base_url is None)
    if use_offline:
        return ModelChoice(
            config=LLMConfig(),
            http_client=None,
            offline=True,
            models=AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL)),
        )
    return ModelChoice(
        config=configured, http_client=None, offline=False, models=settings.agent_models()
    )


def build_config(
    settings: FteSettings, *, query: str, choice: ModelChoice, approve_plan: bool
) -> RunConfig:
    return RunConfig(
        query=validate_query(query),
        corpus_dir=str(validate_corpus(settings.corpus)),
        models=choice.models,
        endpoint=choice.endpoint,
        require_approval=approve_plan,
        approval_timeout_s=settings.approval_timeout_s,
        approval_reminder_interval_s=settings.approval_reminder_interval_s,
        progress_checkin_interval_s=settings.progress_checkin_interval_s,
        citation_policy=settings.citation_policy,
        sources=validate_sources(settings.sources),
        depth=settings.depth,
        max_sub_questions=settings.max_sub_questions,
        budget=run_budget(settings, choice.models),
    )


def run_budget(settings: FteSettings, models: AgentModels) -> Budget:
    """The run's limits, with the prices of its models fixed now (the workflow reads no
    environment, and a price changed mid-run must not change how the run is counted)."""
    table = load_prices()
    prices: dict[str, ModelPrice] = {}
    unpriced: dict[str, str] = {}  # agent -> model
    for agent, model in models.model_dump().items():
        price = price_of(model, table)
        if price is None:
            unpriced[agent] = model
        else:
            prices[model] = ModelPrice(input=price.input, output=price.output)
    if settings.budget_usd is not None and unpriced:
        example = json.dumps({next(iter(unpriced.values())): [0.5, 1.5]})
        named = ", ".join(f"{agent} ({model})" for agent, model in unpriced.items())
        raise UsageError(
            f"--budget-usd needs the price of every model, and none is known for {named}; "
            f"set {PRICES_ENV}='{example}' (USD per 1M input and output tokens) "
            "or use --max-tokens"
        )
    return Budget(usd=settings.budget_usd, tokens=settings.max_tokens, prices=prices)


def writable_dir(path: Path, flag: str) -> Path:
    """`path` resolved, if it is (or could be created as) a directory we can write files in.

    Checked without creating anything, so a bad path fails before any work starts.
    """
    loop = UsageError(f"{flag} {path} goes through a symlink loop; give a real directory")
    try:
        resolved = path.expanduser().resolve()  # Python 3.11: RuntimeError on a loop
        resolved.stat()
    except FileNotFoundError:
        pass  # to be created
    except RuntimeError:
        raise loop from None
    except OSError as exc:
        raise (loop if exc.errno == errno.ELOOP else UsageError(f"{flag} {path}: {exc}")) from None
    for pseudo in _PSEUDO_FILESYSTEMS:
        if resolved.is_relative_to(pseudo):
            raise UsageError(
                f"{flag} {path} is on {pseudo}, a kernel pseudo-filesystem; give a normal directory"
            )
    probe = resolved
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        where = "" if probe == resolved else f": {probe}"
        raise UsageError(f"{flag} {path}{where} is a file, not a directory; give a directory")
    # access() also says no for a read-only mount, where even root cannot write.
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {probe} is not writable")
    return resolved


def validate_out_dir(out_dir: Path) -> Path:
    """Fail before a run starts when its report could not be written."""
    return writable_dir(out_dir, "--out")


def validate_data_dir(data_dir: Path) -> Path:
    """Fail before anything starts when the runtime could not keep its state there."""
    return writable_dir(data_dir, "--data-dir")


def report_paths(
    out_dir: Path, task_id: str, *, force: bool, formats: tuple[str, ...] = REPORT_FORMATS
) -> list[Path]:
    """Where a run's reports go; refuses existing files without `force`, so a run whose
    report could not be written is refused before it starts, not after it finished."""
    base = validate_out_dir(out_dir)
    paths = [(base / f"{task_id}.{ext}").resolve() for ext in formats]
    for path in paths:
        if path.parent != base:  # a task ID can never contain a separator, but be sure
            raise UsageError(f"refusing to write {path}: it is outside {base}")
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; pass --force to overwrite it")
    return paths


def write_report(
    report: dict[str, Any],
    out_dir: Path,
    *,
    force: bool,
    formats: tuple[str, ...] = REPORT_FORMATS,
) -> list[Path]:
    """Write `<task>.<ext>` for each format into `out_dir`; never overwrite without force."""
    paths = report_paths(out_dir, str(report["task_id"]), force=force, formats=formats)
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the report folder {out_dir}: {exc.strerror}") from None
    for ext, path in zip(formats, paths, strict=True):
        path.write_text(_render(report, ext), encoding="utf-8")
    return paths


def _render(report: dict[str, Any], ext: str) -> str:
    if ext == "md":
        return str(report["markdown"])
    if ext == "json":
        body = {k: v for k, v in report.items() if k != "markdown"}
        return json.dumps(body, indent=2, ensure_ascii=False)
    from fte.html_report import render_html

    return render_html(report)
