"""Starting a research run from the command line: validate input, pick the model, write reports.

Validation happens here, before anything is scheduled, so a bad query or corpus
gets a one-line error instead of a failed run with partial artifacts.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from fte.config import FteSettings
from fte.contracts import OFFLINE_MODEL, AgentModels, ModelEndpoint, RunConfig
from fte.errors import UsageError
from fte.llm import LLMConfig, without_credentials
from fte.sources import LocalCorpus

MAX_QUERY_CHARS = 2000
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


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
    if not TASK_ID.match(task_id):
        raise UsageError(
            f"invalid task ID {task_id!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return task_id


def validate_corpus(corpus: Path) -> Path:
    """Load it once now so a bad corpus fails before the run is scheduled."""
    root = corpus.expanduser().resolve()
    LocalCorpus.load(root)
    return root


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
    )


def validate_out_dir(out_dir: Path) -> Path:
    """Fail before a run starts when its report could not be written."""
    out = out_dir.expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory for the reports")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise UsageError(f"--out {out_dir}: {probe} is not writable")
    return out


def write_report(
    report: dict[str, Any],
    out_dir: Path,
    *,
    force: bool,
    formats: tuple[str, ...] = ("md", "json"),
) -> list[Path]:
    """Write `<task>.<ext>` for each format into `out_dir`; never overwrite without force."""
    out = validate_out_dir(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the report folder {out}: {exc.strerror}") from None
    base = out.resolve()
    paths = [(base / f"{report['task_id']}.{ext}").resolve() for ext in formats]
    for path in paths:
        if path.parent != base:  # a task ID can never contain a separator, but be sure
            raise UsageError(f"refusing to write {path}: it is outside {base}")
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; pass --force to overwrite it")
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
