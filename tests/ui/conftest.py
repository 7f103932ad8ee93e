"""Fixtures of the browser tests: one live server on the demo scenario with an active plan,
and Debian's Chromium driven headless by Playwright (the system browser: nothing is
downloaded at test time). Every request a page makes is recorded, so a test can assert that
none left the machine."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import LiveServer, fresh_database, make_settings, wait_run

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "ui" / "screenshots"  # written by the tests; the best go to docs/
CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian's package, then Ubuntu's


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.fail(
        "no Chromium on PATH: install Debian's (apt-get install -y chromium chromium-driver); "
        ".ci/run does it when missing",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server (SQLite, the demo scenario) with an active plan solved by a real run."""
    tmp = tmp_path_factory.mktemp("ui-server")
    srv = LiveServer(make_settings(fresh_database("sqlite", tmp, "ui"))).start()
    with srv.client("planner") as c:
        r = c.post("/runs", json={"activate": True, "note": "the dashboard's plan"})
        assert r.status_code == 202, r.text
        assert wait_run(c, r.json()["id"])["state"] == "succeeded"
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Tab:
    """A browser page and every URL it asked for."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)

    def sign_in(self, key: str) -> None:
        self.page.goto(f"{self.base}/ui")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def record_timing(self, name: str) -> float:
        """Milliseconds since this page's navigation began, kept in the screenshots folder
        beside the pictures (recorded, never asserted: the machine is shared)."""
        ms = float(self.page.evaluate("performance.now()"))
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / "timings.json"
        timings = json.loads(path.read_text()) if path.exists() else {}
        timings[name] = round(ms, 1)
        path.write_text(json.dumps(timings, indent=2) + "\n")
        return ms

    def foreign_requests(self) -> list[str]:
        allowed = (self.base + "/", "data:", "blob:", "about:")
        return [u for u in self.requests if not u.startswith(allowed)]


@pytest.fixture()
def tab(browser: Any, ui_server: LiveServer) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    t = Tab(page, ui_server.url)
    page.on("request", lambda req: t.requests.append(req.url))
    yield t
    ctx.close()
