"""Where corpus indexes live: one setting per process, set by the CLI from its data directory.

Its own module with no imports, because every command sets it before it knows whether it
will search a corpus (the CLI imports only what a command needs).
"""

from __future__ import annotations

import os
from pathlib import Path

INDEX_DIR_ENV = "FTE_INDEX_DIR"

_configured_dir: Path | None = None


def use_index_dir(directory: Path) -> None:
    """Keep this process's corpus indexes in `directory` (the CLI: `<data dir>/index`)."""
    global _configured_dir
    _configured_dir = directory


def default_index_dir() -> Path:
    """Where indexes live: set by `use_index_dir`, else `$FTE_INDEX_DIR`, else `.fte/index`."""
    if _configured_dir is not None:
        return _configured_dir
    if env := os.environ.get(INDEX_DIR_ENV):
        return Path(env)
    return Path(".fte") / "index"
