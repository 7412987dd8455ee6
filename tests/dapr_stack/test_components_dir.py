"""Editing the components directory does not restart a running sidecar.

daprd's default hot reload watches `--resources-path` and restarts itself (SIGHUP) on any
edit there, a comment included; `components/local/config.yaml` turns it off, so a change
takes effect on the next start and running workflows never pause for it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, read_record
from tests.support import PROJECT_ROOT

# daprd reacted to an edit within 0.5 s when hot reload was on.
_REACTION_S = 2.0


@pytest.mark.engine
def test_an_edited_component_file_leaves_the_running_sidecar_alone(tmp_path: Path) -> None:
    components = tmp_path / "components"
    shutil.copytree(PROJECT_ROOT / "components" / "local", components)
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, components_dir=components, binaries=find_binaries()):
        record = read_record(data_dir)
        assert record is not None
        daprd = record.pids["daprd"]
        pubsub = components / "pubsub.yaml"
        pubsub.write_text(pubsub.read_text() + "# edited while the stack runs\n")
        time.sleep(_REACTION_S)
        after = read_record(data_dir)
        assert after is not None and after.pids["daprd"] == daprd
    log = (data_dir / "logs" / "daprd.log").read_text()
    assert "triggering SIGHUP reload" not in log
    assert log.count("starting daprd") == 1
