"""A redelivered agent activity returns the answer it already got instead of asking again.

The engine delivers activities at least once: after a failover the same scheduled activity
(same workflow, same task number, same input) can run a second time although the model had
answered (tests/scale_out/test_replicas.py saw a planner request made three times before
this). Here the activity function is called twice for one scheduled activity, through a real
sidecar's state store, with the model served over HTTP and counted.
"""

from __future__ import annotations

from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest
import respx
from dapr.ext.workflow._durabletask.task import ActivityContext
from pydantic import SecretStr

from fte import activities
from fte.agents import planner
from fte.contracts import AgentTask, ModelEndpoint
from fte.dapr_stack import RuntimeEndpoint
from fte.llm import LLMConfig
from fte.wiring import research_worker
from tests.pipeline.conftest import OPENAI_URL, SUB_QUESTIONS, TEST_KEY
from tests.support.scripted_llm import PLANNER, ScriptedLLM

pytestmark = pytest.mark.engine


def _ctx(workflow_id: str, task_number: int, execution: str = "") -> wf.WorkflowActivityContext:
    """What the SDK hands an activity: `execution` is the engine's ID for one scheduling of
    it (the same on a redelivery; a sidecar that sends none leaves it empty)."""
    return wf.WorkflowActivityContext(ActivityContext(workflow_id, task_number, execution))


def test_a_redelivered_agent_activity_reuses_the_answer(
    dapr_stack: RuntimeEndpoint, instance_id: str
) -> None:
    llm = ScriptedLLM(SUB_QUESTIONS)
    task = AgentTask(
        task_id=instance_id,
        agent=planner.AGENT.name,
        model="gpt-4o-mini",
        endpoint=ModelEndpoint(base_url="https://api.openai.com/v1"),
        inputs=planner.PlannerInput(query="How do durable workflows stay reliable?",
                                    max_sub_questions=4).model_dump(mode="json"),
    )  # fmt: skip
    raw: dict[str, Any] = task.model_dump(mode="json")
    run = activities.agent_activity(planner.AGENT)
    config = LLMConfig(
        api_key=SecretStr(TEST_KEY), base_url="https://api.openai.com/v1", backoff_base_s=0.05
    )
    with (
        respx.mock(assert_all_mocked=True) as router,
        httpx.Client(timeout=10) as http,
        research_worker(dapr_stack, llm_config=config, http_client=http),
    ):
        router.post(OPENAI_URL).mock(side_effect=llm)
        first = run(_ctx(instance_id, 1, "exec-a"), raw)
        again = run(_ctx(instance_id, 1, "exec-a"), raw)  # the same scheduling, redelivered
        assert llm.calls[PLANNER] == 1
        assert again == first and first["usage"]["calls"] == 1

        # Another scheduling (a run started again under a purged run's ID has the same task
        # numbers, not the same execution IDs), or another input, asks anew.
        run(_ctx(instance_id, 1, "exec-b"), raw)
        assert llm.calls[PLANNER] == 2
        other = {**raw, "inputs": {**raw["inputs"], "max_sub_questions": 3}}
        run(_ctx(instance_id, 1, "exec-a"), other)
        assert llm.calls[PLANNER] == 3

        # A sidecar that sends no execution ID: the task number tells schedulings apart.
        run(_ctx(instance_id, 5), raw)
        run(_ctx(instance_id, 5), raw)
        assert llm.calls[PLANNER] == 4
        run(_ctx(instance_id, 6), raw)
        assert llm.calls[PLANNER] == 5
