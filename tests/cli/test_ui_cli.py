"""`fte ui` as a separate process: token URL, refusals, answering a detached run, clean stop."""

from __future__ import annotations

import re
import signal
import ssl
import sys
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from fte.ui.app import STREAM_RETRY_MS
from tests.cli.test_cli import SAMPLE_CORPUS, _env, fte
from tests.support.processes import LoggedProcess, wait_for

pytestmark = pytest.mark.engine

_URL = re.compile(r"^(https?://127\.0\.0\.1:\d+)/runs\?token=([A-Za-z0-9_-]+)$", re.MULTILINE)


def _start_ui(tmp_path: Path, data: Path, *extra: str) -> tuple[LoggedProcess, str, str]:
    ui = LoggedProcess(
        [sys.executable, "-m", "fte", "ui", "--port", "0", "--data-dir", str(data), *extra],
        tmp_path / "ui.log",
        env=_env(),
    )
    wait_for(lambda: ui.alive() and _URL.search(ui.log()) is not None, "the console's URL", 90)
    found = _URL.search(ui.log())
    assert found is not None
    return ui, found[1], found[2]


def test_ui_answers_a_detached_run_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ui, base, token = _start_ui(tmp_path, data)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/runs").status_code == 403
            signed_in = http.get(f"/runs?token={token}", follow_redirects=True)
            assert signed_in.status_code == 200 and "<h1>Runs</h1>" in signed_in.text
            assert token not in signed_in.text
            started = fte(
                "research", "How do durable timers fire after a restart?", "--detach",
                "--approve-plan", "--offline", "--id", "ui-gated", "--corpus",
                str(SAMPLE_CORPUS), "--data-dir", str(data),
            )  # fmt: skip
            assert started.returncode == 0, started.stderr

            link = f"Answer it at {base}/runs/ui-gated"

            def waiting() -> bool:
                # The approval request sent while the console runs links to this page (the
                # notice may land a moment after the stage changes).
                page = http.get("/runs/ui-gated").text
                return "awaiting approval" in page and link in page

            wait_for(waiting, "the run to wait at the gate with its linked notice", 120)
            page = http.get("/runs/ui-gated").text
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert csrf is not None
            answered = http.post("/runs/ui-gated/approve", data={"csrf": csrf[1]})
            assert answered.status_code == 303, answered.text
            wait_for(
                lambda: (
                    'id="run-status" class="state state-completed"'
                    in http.get("/runs/ui-gated").text
                ),
                "the approved run to complete",
                180,
            )
            # Answering a finished run is refused as the CLI refuses it (exit 5: HTTP 409).
            again = http.post("/runs/ui-gated/approve", data={"csrf": csrf[1]})
            assert again.status_code == 409
            assert "it already ended (completed)" in again.text
            # A page left open (the runs list's event stream never ends by itself) does not
            # keep the console from stopping: its stream ends cleanly first.
            with http.stream("GET", "/runs/events") as stream:
                lines = stream.iter_lines()
                assert next(lines) == f"retry: {STREAM_RETRY_MS}"
                ui.proc.send_signal(signal.SIGTERM)
                assert ui.proc.wait(timeout=60) == 0, ui.log()
                assert "event: fragment" in list(lines)
    finally:
        ui.stop()
    assert "fte ui: stopped" in ui.log() and "Traceback" not in ui.log()
    # The token is a secret: no log of the data directory (worker, JSON log, Dapr) holds it.
    logs = list((data / "logs").iterdir())
    assert logs
    for path in logs:
        assert token not in path.read_text(errors="replace"), path


def test_ui_on_all_interfaces_warns(tmp_path: Path) -> None:
    ui, base, _ = _start_ui(tmp_path, tmp_path / "data", "--host", "0.0.0.0")
    try:
        assert "WARNING: --host 0.0.0.0 serves the console to every network" in ui.log()
        assert base.startswith("http://127.0.0.1:")
        ui.proc.send_signal(signal.SIGINT)  # Ctrl-C is the ordinary way to stop it
        assert ui.proc.wait(timeout=60) == 0, ui.log()
    finally:
        ui.stop()
    assert "fte ui: stopped" in ui.log() and "Traceback" not in ui.log()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port 70000: use 0-65535"),
        (["--host", "192.0.2.1"], "192.0.2.1 is not an address of this machine"),
    ],
    ids=["port", "host"],
)
def test_ui_bad_input_is_one_line(tmp_path: Path, argv: list[str], message: str) -> None:
    result = fte("ui", *argv, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"fte: error: {result.stderr.split(': ', 2)[2].strip()}"
    ]
    assert message in result.stderr
    assert not (tmp_path / "data" / "state.db").exists()


def _tls_files(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    """A throwaway CA, and a certificate it issued for 127.0.0.1 with its key, as PEM files."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "console.pem", tmp_path / "console.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    return ca, cert, key


def test_ui_serves_https_with_a_secure_cookie(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    ui, base, token = _start_ui(
        tmp_path, tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    try:
        assert base.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        with httpx.Client(base_url=base, verify=trusting, timeout=30) as http:
            traded = http.get(f"/runs?token={token}")
            assert traded.status_code == 303
            assert "; Secure" in traded.headers["set-cookie"]
            page = http.get("/runs")
            assert page.status_code == 200 and "<h1>Runs</h1>" in page.text
        # The port speaks only TLS: a plain HTTP request gets no page (nor the token back).
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https://", "http://") + f"/runs?token={token}", timeout=10)
        ui.proc.send_signal(signal.SIGINT)
        assert ui.proc.wait(timeout=60) == 0, ui.log()
    finally:
        ui.stop()
    assert "fte ui: stopped" in ui.log() and "Traceback" not in ui.log()


def test_ui_unusable_tls_files_are_one_line_errors(tmp_path: Path) -> None:
    _, cert, key = _tls_files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, _, other_key = _tls_files(other)  # the key of another certificate
    # The same key, encrypted: OpenSSL would prompt for its password on the terminal.
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [
        (["--tls-cert", str(cert), "--tls-key", str(encrypted)], "the key is encrypted"),
        (["--tls-cert", str(tmp_path / "missing.pem")], "no such file"),
        (["--tls-key", str(key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)], "cannot use it with --tls-key"),
        (["--tls-cert", str(cert)], "cannot use it with its key"),
    ]
    for argv, message in cases:
        result = fte("ui", *argv, "--data-dir", str(tmp_path / "data"))
        assert result.returncode == 2, (argv, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("fte: error: ") and message in line, (argv, line)
    assert not (tmp_path / "data" / "state.db").exists()
