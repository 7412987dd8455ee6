"""A hostile corpus on the real engine: links out of the corpus and a 5 MB one-line file."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fte.client import ResearchClient
from fte.contracts import OFFLINE_MODEL, AgentModels, ModelEndpoint, RunConfig
from fte.dapr_stack import EmbeddedStack

pytestmark = pytest.mark.engine

RUN_TIMEOUT_S = 180


def test_links_out_of_the_corpus_are_never_read_and_a_huge_line_does_not_break_the_run(
    research: ResearchClient, corpus: Path, embedded_stack: EmbeddedStack, tmp_path: Path
) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}"
    outside = tmp_path / "outside" / "private.md"
    outside.parent.mkdir()
    outside.write_text(f"# Durable timers\n\nDurable timers fire after a restart. {canary}\n")
    (corpus / "leak.txt").symlink_to("/etc/passwd")
    (corpus / "timers-notes.md").symlink_to(outside)
    # 5 MB on one line without a single space (minified data) that mentions the topic once:
    # it was one 5 MB passage, over the engine's 4 MB message limit, in every search result.
    filler = "lorem,ipsum,dolor,sit,amet;" * 100_000
    (corpus / "huge.txt").write_text(f"{filler}durable,timers,restart;{filler}")

    task_id = f"hostile-{uuid.uuid4().hex[:8]}"
    config = RunConfig(
        query="How do durable timers and retry policies behave after a restart?",
        corpus_dir=str(corpus),
        endpoint=ModelEndpoint(offline=True),
        models=AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL)),
    )
    with capture_logs() as logs:
        research.start(config, task_id)
        snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "completed", (snap.failure, snap.progress)

    report = research.report(task_id)
    assert canary not in str(report) and "root:x:0:0" not in str(report)
    located = {Path(source["location"]).name for source in report["sources"]}
    assert located and not located & {"leak.txt", "timers-notes.md"}

    # Nothing of the refused files reached the state store (workflow history, artifacts).
    for path in embedded_stack.data_dir.glob("state.db*"):
        stored = path.read_bytes()
        assert canary.encode() not in stored and b"root:x:0:0" not in stored, path

    refused = {
        Path(entry["path"]).name: entry["reason"]
        for entry in logs
        if entry["event"] == "corpus file refused"
    }
    assert set(refused) == {"leak.txt", "timers-notes.md"}
    assert "/etc/passwd" in refused["leak.txt"]
    assert all("outside the corpus" in reason for reason in refused.values())
