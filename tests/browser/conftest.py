"""Browser tests: Playwright for Python driving Debian's Chromium against a real `shiftgate serve`.

The server runs in a subprocess on 127.0.0.1 with the demo seeded (SQLite, or PostgreSQL + Redis
in that pass). No browser is downloaded: Playwright launches the `chromium` binary of Debian's
package (`.ci/run` installs it). Without it, these tests are skipped on a laptop and fail in CI.
Screenshots of the main pages go to `tests/output/screenshots/` (not committed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.live_server import LiveGateway, live_gateway

SCREENSHOTS = Path(__file__).parents[1] / "output" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_PAGE_STATUS = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


def _missing() -> str | None:
    if shutil.which("chromium") is None:
        return "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (make dev installs it)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI needs {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> Iterator[LiveGateway]:
    """One server per test module, with the worker beside it as `make run` starts it."""
    with live_gateway(
        tmp_path_factory.mktemp("live"), settings, serve_args=("--with-worker",)
    ) as gateway:
        yield gateway


class Browsing:
    """Signed-in browser contexts, one per person, that record what the console complains of."""

    def __init__(self, browser: Any, live: LiveGateway) -> None:
        self.browser = browser
        self.live = live
        self.contexts: list[Any] = []
        self.console_errors: list[str] = []

    def page_for(self, email: str | None, **options: Any) -> Any:
        """A new browser context (its own cookies) signed in as `email` (None: signed out)."""
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = self.browser.new_context(base_url=self.live.base, **options)
        self.contexts.append(context)
        page = self.watch(context.new_page())
        if email is not None:
            sign_in(page, email, self.live.login(email))
        return page

    def watch(self, page: Any) -> Any:
        """`page` (a new tab, say), with its console errors kept like every other's."""
        page.set_default_timeout(15_000)
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.console_errors.append(f"{page.url}: {error}"))
        return page

    def _console(self, page: Any, message: Any) -> None:
        """Keep the console's errors, except the status of a page that is itself the answer:
        a form refused with 422, a read refused with 403 (the page shows why). A script,
        stylesheet or htmx request that fails still counts."""
        if message.type != "error":
            return
        document = message.location.get("url") == page.url
        if document and _PAGE_STATUS.match(message.text):
            return
        self.console_errors.append(f"{page.url}: {message.text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: not url.endswith("/login"))


@pytest.fixture
def browsing(browser: Any, live: LiveGateway) -> Iterator[Browsing]:
    """Contexts for the test; afterwards, no page may have logged an error (a CSP violation,
    a failed script, a 500 behind an htmx request)."""
    session = Browsing(browser, live)
    try:
        yield session
    finally:
        session.close()
    assert session.console_errors == []


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
