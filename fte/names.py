"""Wire names: what the engine stores in workflow history and routes by.

A run's history refers to workflows, activities and events by these strings, so a
name here is a promise to every run in flight: renaming one strands those runs.
Change behaviour through workflow versions (`fte.coordinator`), never by renaming.
"""

from __future__ import annotations

# Workflows
COORDINATOR = "research"
SOURCE_FINDER = "research.source_finder"
# Coordinator v2's source finder: passages stay in the state store (lean history).
SOURCE_FINDER_LEAN = "research.source_finder.lean"
# Coordinator v4's: v2's, with the query proposal and the search as one activity.
SOURCE_FINDER_PROPOSING = "research.source_finder.proposing"
# Coordinator v5's: the query proposal, the search and the relevance judgement as one activity.
SOURCE_FINDER_SINGLE = "research.source_finder.single"
SPECIALIST_PREFIX = "research."
SCHEDULE = "research.schedule"

# External events the coordinator waits for
APPROVAL_EVENT = "approval"
CANCEL_EVENT = "cancel"
# External event a schedule waits for: pause, resume, trigger, remove
SCHEDULE_CONTROL = "schedule.control"

# Activities that are not agents
SEARCH_SOURCES = "fte.search_sources"
SEARCH_CANDIDATES = "fte.search_candidates"
PROPOSE_AND_SEARCH = "fte.propose_and_search"
JUDGE_CANDIDATES = "fte.judge_candidates"
FIND_SOURCES = "fte.find_sources"
GATHER_SOURCES = "fte.gather_sources"
STORE_ARTIFACT = "fte.store_artifact"
FINALIZE_REPORT = "fte.finalize_report"
NOTIFY = "fte.notify"
DELETE_ARTIFACTS = "fte.delete_artifacts"
CANCEL_CHILDREN = "fte.cancel_children"
SCHEDULE_FIRE = "fte.schedule.fire"


def agent_activity(agent: str) -> str:
    """The activity that runs one agent: `fte.agent.<agent name>`."""
    return f"fte.agent.{agent}"


def specialist_workflow(agent: str) -> str:
    """The child workflow type that runs one specialist agent: `research.<agent name>`."""
    return f"{SPECIALIST_PREFIX}{agent}"


def child_id(task_id: str, role: str) -> str:
    """Instance ID of a run's child workflow: `<task>.<role>`, e.g. `r1.analyst`."""
    return f"{task_id}.{role}"


def parent_of(instance_id: str) -> tuple[str, str] | None:
    """(task ID, role) when `instance_id` has the shape of a run's child (`child_id`)."""
    task_id, dot, role = instance_id.partition(".")
    return (task_id, role) if dot and task_id and role else None


def schedule_instance(schedule: str) -> str:
    """Instance ID of a schedule's workflow: `schedule:<name>` (task IDs never hold a ':')."""
    return f"schedule:{schedule}"
