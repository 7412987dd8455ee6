"""The engine's retry policies, one per kind of work; each activity call names one.

One owner per retry layer: inside an attempt the LLM client retries HTTP blips a
few times (`fte.llm`); these policies decide whether a failed attempt runs again,
and each attempt is visible in the workflow history.
"""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf

# LLM calls: the client already retried HTTP-level blips inside the attempt, so an
# attempt that still fails waits a few seconds before the next one.
LLM_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    max_number_of_attempts=4,
    max_retry_interval=timedelta(seconds=30),
    retry_timeout=timedelta(minutes=10),
)
# Local I/O (state store, corpus search, pub/sub): fast, short retries.
IO_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    max_number_of_attempts=5,
    max_retry_interval=timedelta(seconds=10),
    retry_timeout=timedelta(minutes=2),
)
# Compensation must finish even through a sidecar hiccup, so it tries longer.
COMPENSATION_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    max_number_of_attempts=8,
    max_retry_interval=timedelta(seconds=30),
    retry_timeout=timedelta(minutes=10),
)
