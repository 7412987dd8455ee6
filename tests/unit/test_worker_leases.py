"""A command that needs the background worker keeps it from idling out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fte.serving import LEASES, worker_needed, worker_needed_by_a_command


def test_a_lease_is_held_for_the_block_only(tmp_path: Path) -> None:
    assert not worker_needed_by_a_command(tmp_path)
    with worker_needed(tmp_path):
        assert worker_needed_by_a_command(tmp_path)
    assert not worker_needed_by_a_command(tmp_path)


def test_a_lease_left_by_an_exited_command_is_cleared(tmp_path: Path) -> None:
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / LEASES / exited.stdout.strip()
    stale.parent.mkdir()
    stale.touch()
    (tmp_path / LEASES / "not-a-pid").touch()

    assert not worker_needed_by_a_command(tmp_path)
    assert list((tmp_path / LEASES).iterdir()) == []
