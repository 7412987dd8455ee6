"""Recurring research: schedules that live in the workflow engine.

- `contracts.py`: the spec, the durable state, control events, fire input and result
- `timing.py`: fire times, catch-up and jitter (pure calendar arithmetic; cron by cronsim)
- `policy.py`: the overlap decision (skip, buffer-one, cancel-previous)
- `workflow.py`: the eternal schedule workflow (orchestration only)
- `activities.py`: the fire activity (starts a run with a deterministic ID)
- `client.py`: add, list, show, pause, resume, trigger, remove, diff
"""
