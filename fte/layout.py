"""What an embedded runtime keeps in its data directory, for the launcher and its readers.

`fte.dapr_stack` writes these; commands that only read (status of an unknown run, an empty
list) look at them without importing the launcher or starting anything.
"""

from __future__ import annotations

APP_ID = "fte"
# Held (flock) by the process that runs the directory's stack, for as long as it runs it.
LOCK_FILE = "stack.lock"
STACK_RECORD = "stack.json"
# The SQLite state store of components/local/statestore.yaml (its connectionString),
# relative to the data directory, where the runtime runs.
STATE_DB = "state.db"
# The state-store key of the run index (task ID -> query, corpus, created-at).
RUN_INDEX_KEY = "runs:index"
# The prefix of the keys of agents' answer memos (`fte.artifacts.answer_key`), which a purge
# of the embedded store deletes straight from its file (`fte.stored_runs`).
ANSWER_PREFIX = "answer"
