"""What every suite gets: progress output, a work directory, the engine, and the mode."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fte.config import FteSettings
from fte.evals.engine import EvalEngine

T = TypeVar("T")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class EvalContext:
    work_dir: Path
    record: bool = False
    settings: FteSettings | None = None
    say: Callable[[str], None] = _stderr
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # what one suite keeps for another
    _engine: EvalEngine | None = None
    _resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def engine(self) -> EvalEngine:
        """The replay engine (stack and worker), started on first use and shared by suites."""
        if self._engine is None:
            self.say("starting the embedded Dapr stack and a research worker ...")
            started = time.monotonic()
            self._engine = self._resources.enter_context(EvalEngine(self.work_dir / "engine"))
            self.timing("setup", "engine_start_s", time.monotonic() - started)
        return self._engine

    def enter(self, resource: contextlib.AbstractContextManager[T]) -> T:
        """Keep `resource` open until the evaluation ends."""
        return self._resources.enter_context(resource)

    def progress(self, suite: str, done: int, total: int, case: str, detail: str) -> None:
        self.say(f"[{suite} {done}/{total}] {case}: {detail}")

    def timing(self, suite: str, name: str, seconds: float) -> None:
        self.timings.setdefault(suite, {})[name] = round(seconds, 3)

    @contextlib.contextmanager
    def timed(self, suite: str, name: str = "total_s") -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timing(suite, name, time.monotonic() - started)

    def close(self) -> None:
        self._resources.close()
        self._engine = None
