"""The scripted activities of one test never see what another test's wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orchestration.test_coordinator import STORED


@pytest.fixture(autouse=True)
def _nothing_stored_yet() -> Iterator[None]:
    STORED.documents.clear()
    yield
    STORED.documents.clear()
