"""Every page of the menu, for every demo role, in a real browser: it opens, it logs no error
(no CSP violation, no failed script), every control has a label, no positive tab order, and at
200% zoom nothing needs sideways scrolling. Screenshots of each page go to tests/output."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Browsing

pytestmark = pytest.mark.browser

PEOPLE = [
    "admin@northwind.example",
    "tech@northwind.example",
    "auditor@northwind.example",
    "admin@nightowl.example",
    "tech@nightowl.example",
    "auditor@nightowl.example",
]

_UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => !['hidden', 'submit', 'button'].includes(el.type))
  .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')
               && !el.getAttribute('aria-labelledby'))
  .map(el => el.name || el.id || el.outerHTML.slice(0, 80))"""
_POSITIVE_TABINDEX = """() => [...document.querySelectorAll('[tabindex]')]
  .filter(el => el.tabIndex > 0).map(el => el.outerHTML.slice(0, 80))"""
_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _menu(page: Any) -> list[str]:
    links = page.locator("nav[aria-label=Main] a")
    return [str(links.nth(i).get_attribute("href")) for i in range(links.count())]


@pytest.mark.parametrize("email", PEOPLE)
def test_every_menu_page_opens_cleanly(browsing: Browsing, screenshot: Any, email: str) -> None:
    page = browsing.page_for(email)
    menu = _menu(page)
    assert "/" in menu and "/account" in menu
    who = email.replace("@", "-").replace(".example", "")
    for href in menu:
        response = page.goto(href)
        assert response is not None and response.status == 200, (href, response and response.status)
        assert page.evaluate(_UNLABELLED) == [], href
        assert page.evaluate(_POSITIVE_TABINDEX) == [], href
        screenshot(page, f"{who}{href.replace('/', '-') if href != '/' else '-dashboard'}")


@pytest.mark.parametrize("email", ["admin@northwind.example", "tech@nightowl.example"])
def test_pages_read_at_200_percent_zoom_without_sideways_scrolling(
    browsing: Browsing, email: str
) -> None:
    """A 1280-pixel screen at 200% zoom is a 640-pixel wide page with twice the pixels."""
    page = browsing.page_for(email, viewport={"width": 640, "height": 450}, device_scale_factor=2)
    for href in _menu(page):
        page.goto(href)
        assert page.evaluate(_OVERFLOW) <= 0, href


def test_the_keyboard_reaches_the_skip_link_then_the_menu(browsing: Browsing) -> None:
    page = browsing.page_for("admin@northwind.example")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/"
