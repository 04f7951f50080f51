"""Browser tests: a real `complaints serve` (gunicorn) on a temporary SQLite database,
driven by Debian's headless Chromium through Playwright.

Skipped (with a reason) when Chromium is not installed; with COMPLAINTS_REQUIRE_BROWSER=1
a missing Chromium fails instead, so CI cannot pass without running them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from engine.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/lib/chromium/chromium")
SKIP_REASON = f"Chromium not installed ({CHROMIUM}): browser tests skipped"
BIN = PROJECT_ROOT / ".venv" / "bin"
SCREENSHOTS = PROJECT_ROOT / "tests" / "output" / "screenshots"
PASSWORD = "demo-password"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("COMPLAINTS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"COMPLAINTS_REQUIRE_BROWSER=1 but Chromium is not installed ({CHROMIUM})")
    pytest.skip(SKIP_REASON)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _complaints(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([str(BIN / "complaints"), *args], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"complaints {' '.join(args)}:\n{result.stdout}{result.stderr}"


@contextlib.contextmanager
def served_database(directory: Path, secret_key: str):
    """A migrated SQLite database in ``directory`` with the deployed processes and the
    demo users, served by `complaints serve` on a free port: yields (base URL, database
    URL) and stops the server afterwards."""
    db = directory / "complaints.db"
    db_url = f"sqlite:///{db}"
    env = dict(os.environ, COMPLAINTS_DATABASE_URL=db_url, COMPLAINTS_SECRET_KEY=secret_key,
               COMPLAINTS_EVIDENCE_DIR=str(directory / "evidence"))
    _complaints(env, "db", "upgrade")
    _complaints(env, "definitions", "deploy", "processes")
    _complaints(env, "demo-users")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = directory / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(BIN / "complaints"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"complaints serve did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield url, db_url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


@pytest.fixture(scope="session")
def base_url(tmp_path_factory):
    """The shared test server's base URL (see served_database)."""
    _require_chromium()
    with served_database(tmp_path_factory.mktemp("browser"), "browser-test-secret-key") as (
            url, _):
        yield url


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(chromium, base_url):
    """Make fresh browser contexts (own cookies) for this test; all are closed after it."""
    contexts = []

    def make():
        context = chromium.new_context(base_url=base_url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def as_user(new_context):
    """``as_user("sam.staff")``: a page signed in as that user, one browser per user."""
    from tests.browser.test_browser import sign_in

    pages = {}

    def page_of(username: str):
        if username not in pages:
            pages[username] = new_context().new_page()
            sign_in(pages[username], username)
        return pages[username]

    return page_of


@pytest.fixture
def page(new_context):
    return new_context().new_page()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def shot(screenshots, request):
    """shot(page, "name"): save a full-page screenshot named after the test."""
    test = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)

    def take(page, name: str) -> None:
        page.screenshot(path=str(screenshots / f"{test}-{name}.png"), full_page=True)

    return take
