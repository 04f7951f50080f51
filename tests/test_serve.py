"""The real server: `complaints serve` runs the app under gunicorn and answers health."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from engine.settings import PROJECT_ROOT

BIN = PROJECT_ROOT / ".venv" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_serve_runs_gunicorn_and_answers_health(sqlite_url, tmp_path):
    port = _free_port()
    env = dict(os.environ, COMPLAINTS_DATABASE_URL=sqlite_url,
               COMPLAINTS_SECRET_KEY="test-secret-key")
    server = subprocess.Popen(
        [str(BIN / "complaints"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/api/v1/health")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok"})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = server.stdout.read().decode()
    assert "gunicorn" in output.lower()
