"""The embedded sidecar's API tokens: one pair per data directory, readable by its owner only.

Loopback ports keep the network out, but not the machine's other users: anyone on the host
could otherwise start, read or purge workflows through daprd's gRPC/HTTP API. daprd
refuses every API call without `DAPR_API_TOKEN` (health checks excepted), and the token
lives in `<data-dir>/api-tokens.json` with mode 0600, so only the user who owns the data
directory — its launcher, worker and CLI commands — can drive the sidecar.

`APP_API_TOKEN` is what daprd would present when calling into the app. The worker opens no
app port (it pulls work over the sidecar's gRPC stream), so today nothing checks it; it is
set anyway so that an app channel added later is not open by default.

The token is required by default; `FTE_SIDECAR_API_TOKEN=0` turns it off (an escape hatch,
e.g. to point a tool that cannot send the header at the sidecar). It was opt-in for a while
because tests/cli/test_schedule_kill.py stalled with it: a worker SIGKILLed mid-run can leave
daprd 1.18.2 deadlocked (the last stream's disconnect callback holds the actor registration
lock while a workflow actor waits for a stream; the next stream waits for that lock). The
token does not cause it: the same deadlock happens without it, and a test can trigger it at
will (tests/dapr_stack/test_work_stream_stall.py). The launcher now notices it and restarts
daprd (`fte.stall_watch`), so crash recovery holds with the token on. A stack started with the
token turned off removes a token file left from an earlier start, so clients present a token
exactly when the running stack wants one.

The Dapr SDK reads its token from a process-wide setting when a client is constructed,
while one test process may talk to several stacks; `sdk_token` sets that setting only
around a construction, under a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from fte.errors import RuntimeSetupError

log = structlog.get_logger(__name__)

TOKENS_FILE = "api-tokens.json"
REQUIRE_SETTING = "FTE_SIDECAR_API_TOKEN"
_OWNER_ONLY = 0o600
_NO = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ApiTokens:
    dapr: str
    """Clients present it to daprd (`dapr-api-token`)."""
    app: str
    """daprd presents it to the app, if the app ever opens a port."""

    def environment(self) -> dict[str, str]:
        """What daprd reads them from."""
        return {"DAPR_API_TOKEN": self.dapr, "APP_API_TOKEN": self.app}


def required() -> bool:
    """Whether a stack started by this process requires the token (yes unless turned off)."""
    return os.environ.get(REQUIRE_SETTING, "").strip().lower() not in _NO


def prepare(data_dir: Path) -> None:
    """At stack start: create the tokens when required, else drop a token file left over."""
    if required():
        ensure_tokens(data_dir)
    else:
        (Path(data_dir) / TOKENS_FILE).unlink(missing_ok=True)


def current_token(data_dir: Path) -> str | None:
    """The token this directory's running stack wants from its clients (None: none)."""
    if not (Path(data_dir) / TOKENS_FILE).exists():
        return None
    return read_tokens(data_dir).dapr


def daprd_environment(data_dir: Path) -> dict[str, str]:
    """What daprd of this directory's stack reads its tokens from (empty: no token)."""
    if not (Path(data_dir) / TOKENS_FILE).exists():
        return {}
    return read_tokens(data_dir).environment()


def ensure_tokens(data_dir: Path) -> ApiTokens:
    """This directory's tokens, created on first use (mode 0600, written atomically)."""
    path = Path(data_dir) / TOKENS_FILE
    if not path.exists():
        fresh = {"dapr": secrets.token_urlsafe(32), "app": secrets.token_urlsafe(32)}
        tmp = path.with_name(f"{TOKENS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _OWNER_ONLY)
        with os.fdopen(fd, "w") as handle:
            json.dump(fresh, handle)
        # Two launchers racing: the first link wins, the other reads the winner's tokens.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    return read_tokens(data_dir)


def read_tokens(data_dir: Path) -> ApiTokens:
    path = Path(data_dir) / TOKENS_FILE
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            # Copied or restored with looser permissions: the token is only as private as
            # the file, so tighten it rather than serve a token others can read.
            log.warning("tightening permissions of the API token file", path=str(path))
            path.chmod(_OWNER_ONLY)
        data = json.loads(path.read_text())
        return ApiTokens(dapr=str(data["dapr"]), app=str(data["app"]))
    except FileNotFoundError:
        raise RuntimeSetupError(
            f"{path} is missing; the process that runs the Dapr runtime of {data_dir} "
            "creates it — start it again"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeSetupError(
            f"{path} is not an API token file fte wrote ({exc}); if no fte command is using "
            f"{data_dir}, delete the file and try again"
        ) from None


_SETTING_LOCK = threading.Lock()


@contextlib.contextmanager
def sdk_token(token: str | None) -> Iterator[None]:
    """Make the Dapr SDK's clients constructed in this block present `token`.

    None leaves the setting alone: an external sidecar's token comes from DAPR_API_TOKEN,
    which the SDK reads itself.
    """
    if token is None:
        yield
        return
    from dapr.conf import settings

    with _SETTING_LOCK:
        previous = settings.DAPR_API_TOKEN
        setattr(settings, "DAPR_API_TOKEN", token)  # noqa: B010 - untyped settings
        try:
            yield
        finally:
            setattr(settings, "DAPR_API_TOKEN", previous)  # noqa: B010
