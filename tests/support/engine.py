"""A worker with a test's own workflows on a stack, and a workflow client of that stack."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dapr.ext.workflow as wf

from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack
from fte.worker import Registrar, WorkflowWorker


@contextlib.contextmanager
def serving(
    stack: EmbeddedStack, register: Registrar, **worker_options: Any
) -> Iterator[wf.DaprWorkflowClient]:
    """`register`'s workflows served on `stack` while the block runs; yields a client."""
    endpoint = stack.endpoint
    assert endpoint is not None, "the stack is not started"
    client = workflow_client(endpoint)
    try:
        with WorkflowWorker.on(endpoint, register, **worker_options):
            yield client
    finally:
        client.close()
