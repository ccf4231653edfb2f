"""No page of one tenant opens for another tenant's people, in a real browser.

Beside the demo's Northwind IT (MSP) and NightOwl NOC, a second MSP (Southwind IT) and a second
NOC (DayOwl NOC) are made with the `shiftgate` CLI against the live server, with an admin, a
technician and an auditor each. Their people type the addresses of Northwind's and NightOwl's
objects (the demo grant, a secret document, a client, a webhook, an OAuth client, the
partnership's ceiling form), and Northwind's and NightOwl's people those of Southwind's and
DayOwl's: every one is the "Not found" page, which names nothing of the other tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser.conftest import Browsing, sign_in
from tests.live_server import LiveGateway

pytestmark = pytest.mark.browser

PASSWORD = "isolation test passphrase"
SOUTHWIND = {"name": "Southwind IT", "slug": "southwind", "kind": "msp"}
DAYOWL = {"name": "DayOwl NOC", "slug": "dayowl", "kind": "noc"}
ROLES = ("admin", "technician", "auditor")
NOT_FOUND = "The page does not exist, or it belongs to an organisation you are not signed in to."


def person(tenant: dict[str, str], role: str) -> str:
    return f"{role}@{tenant['slug']}.example"


# --- The two worlds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The ids a URL may name, by name (`grant`, `secret_document`, ...), and what each side's
    pages must never show to the other side."""

    ids: dict[str, str]
    demo_names: list[str]
    other_names: list[str]


def _signed_in(browser: Any, live: LiveGateway, email: str, password: str) -> Page:
    context = browser.new_context(base_url=live.base)
    page: Page = context.new_page()
    sign_in(page, email, password)
    return page


def _demo_objects(live: LiveGateway) -> dict[str, str]:
    """Northwind's secret document and a webhook endpoint (registered now), through the API."""
    headers = {"Authorization": f"Bearer {live.facts['api_token']}"}
    with httpx.Client(base_url=f"{live.base}/api/v1", headers=headers, timeout=15) as api:
        documents = api.get("/documents", params={"limit": 200}).json()["items"]
        secret = next(d for d in documents if d["title"] == "Contoso core switch admin")
        hook = api.post(
            "/webhooks",
            json={"url": "https://8.8.8.8/northwind-pager", "events": ["grant.rate_limited"]},
        )
        assert hook.status_code == 201, hook.text
        psa = next(g for g in api.get("/grants").json() if g["id"] == live.facts["grant_id"])
    return {
        "secret_document": secret["id"],
        "webhook": hook.json()["endpoint"]["id"],
        "psa_reference": psa["psa_reference"],
    }


def _nightowl_client(browser: Any, live: LiveGateway) -> str:
    email = "admin@nightowl.example"
    page = _signed_in(browser, live, email, live.login(email))
    page.goto("/noc/clients")
    href = str(page.get_by_role("link", name="NightOwl tooling (demo)").get_attribute("href"))
    page.context.close()
    return href.rsplit("/", 1)[1]


def _southwind_objects(browser: Any, live: LiveGateway) -> dict[str, str]:
    """A client and a document of Southwind's, made in its admin's browser."""
    page = _signed_in(browser, live, person(SOUTHWIND, "admin"), PASSWORD)
    page.goto("/clients")
    page.get_by_label("Name", exact=True).fill("Tailspin Toys")
    page.get_by_label("Short code").fill("TAILSPIN")
    page.get_by_role("button", name="Add client").click()
    link = page.get_by_role("link", name="Documents of Tailspin Toys")
    client = str(link.get_attribute("href")).rsplit("=", 1)[1]
    page.goto("/documents/new")
    page.get_by_label("Title").fill("Tailspin warehouse runbook")
    page.get_by_label("Kind").select_option("runbook")
    page.get_by_label("Client", exact=True).select_option(label="Tailspin Toys (TAILSPIN)")
    page.get_by_label("Body (Markdown)").fill("Restart the conveyor PLC.")
    page.get_by_role("button", name="Create document").click()
    page.wait_for_url(re.compile(r"/documents/[0-9a-f-]{36}$"))
    document = page.url.rsplit("/", 1)[1]
    page.context.close()
    return {"southwind_client": client, "southwind_document": document}


def _dayowl_client(browser: Any, live: LiveGateway) -> str:
    page = _signed_in(browser, live, person(DAYOWL, "admin"), PASSWORD)
    page.goto("/noc/clients")
    page.get_by_label("Name", exact=True).fill("DayOwl runner")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Client secret")).to_be_visible()
    page.goto("/noc/clients")
    href = str(page.get_by_role("link", name="DayOwl runner").get_attribute("href"))
    page.context.close()
    return href.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def world(browser: Any, live: LiveGateway) -> World:
    for tenant in (SOUTHWIND, DAYOWL):
        live.cli("create-tenant", "--name", tenant["name"], "--slug", tenant["slug"],
                 "--kind", tenant["kind"])  # fmt: skip
        for role in ROLES:
            live.cli("create-user", "--email", person(tenant, role), "--tenant", tenant["slug"],
                     "--role", role, "--password-stdin", stdin=PASSWORD)  # fmt: skip
    demo = _demo_objects(live)
    ids = {
        "grant": str(live.facts["grant_id"]),
        "contoso": str(live.facts["clients"]["CONTOSO"]),
        "partnership": str(live.facts["partnership_id"]),
        "secret_document": demo["secret_document"],
        "webhook": demo["webhook"],
        "nightowl_client": _nightowl_client(browser, live),
        **_southwind_objects(browser, live),
        "dayowl_client": _dayowl_client(browser, live),
    }
    return World(
        ids=ids,
        demo_names=[
            "Northwind",
            "NightOwl",
            "Contoso",
            "Fabrikam",
            demo["psa_reference"],
            "Core switch",
            "northwind-pager",
            "Sample-Only",
        ],
        other_names=["Southwind", "DayOwl", "Tailspin", "conveyor"],
    )


# --- Opening them ---------------------------------------------------------------------------------


def refused(response: Response | None) -> None:
    assert response is not None and response.status == 404, response and response.status


def expect_not_found_naming_nothing(page: Page, names: list[str]) -> None:
    expect(page.get_by_role("heading", name="Not found", level=1)).to_be_visible()
    expect(page.get_by_text(NOT_FOUND)).to_be_visible()
    content = page.content()
    assert [name for name in names if name in content] == []


def as_person(browsing: Browsing, live: LiveGateway, email: str) -> Page:
    """A browser signed in as a demo person, or as one of the CLI's people."""
    if email.endswith(("@northwind.example", "@nightowl.example")):
        return browsing.page_for(email)
    page = browsing.page_for(None)
    sign_in(page, email, PASSWORD)
    return page


INTO_THE_DEMO = [
    (person(SOUTHWIND, "admin"), "/grants/{grant}"),
    (person(SOUTHWIND, "technician"), "/grants/{grant}"),
    (person(SOUTHWIND, "admin"), "/documents/{secret_document}"),
    (person(SOUTHWIND, "technician"), "/documents/{secret_document}/history"),
    (person(SOUTHWIND, "admin"), "/documents/{secret_document}/edit"),
    (person(SOUTHWIND, "admin"), "/documents?client={contoso}"),
    (person(SOUTHWIND, "admin"), "/webhooks/{webhook}"),
    (person(SOUTHWIND, "auditor"), "/audit/grants/{grant}"),
    (person(DAYOWL, "technician"), "/noc/grants/{grant}"),
    (person(DAYOWL, "technician"), "/noc/grants/{grant}/documents/{secret_document}/break-glass"),
    (person(DAYOWL, "admin"), "/noc/clients/{nightowl_client}"),
    (person(DAYOWL, "auditor"), "/audit/grants/{grant}"),
]
OUT_OF_THE_DEMO = [
    ("admin@northwind.example", "/documents/{southwind_document}"),
    ("tech@northwind.example", "/documents/{southwind_document}/history"),
    ("admin@northwind.example", "/documents?client={southwind_client}"),
    ("admin@nightowl.example", "/noc/clients/{dayowl_client}"),
]


@pytest.mark.parametrize(("email", "address"), INTO_THE_DEMO)
def test_the_demos_pages_are_not_found_for_another_tenants_people(
    browsing: Browsing, live: LiveGateway, world: World, email: str, address: str
) -> None:
    page = as_person(browsing, live, email)

    response = page.goto(address.format(**world.ids))

    assert response is not None and response.status == 404, response and response.status
    expect_not_found_naming_nothing(page, world.demo_names)


@pytest.mark.parametrize(("email", "address"), OUT_OF_THE_DEMO)
def test_the_other_tenants_pages_are_not_found_for_the_demos_people(
    browsing: Browsing, live: LiveGateway, world: World, email: str, address: str
) -> None:
    page = as_person(browsing, live, email)

    response = page.goto(address.format(**world.ids))

    assert response is not None and response.status == 404, response and response.status
    expect_not_found_naming_nothing(page, world.other_names)


def test_a_ceiling_form_aimed_at_another_msps_partnership_changes_nothing(
    browsing: Browsing, live: LiveGateway, world: World
) -> None:
    """Southwind's admin points its own partners form at Northwind's partnership: the answer
    is the "Not found" page, and the ceiling NightOwl works under is what it was."""
    headers = {"Authorization": f"Bearer {live.facts['api_token']}"}
    path = f"{live.base}/api/v1/partnerships/{world.ids['partnership']}"
    before = httpx.get(path, headers=headers).json()
    page = as_person(browsing, live, person(SOUTHWIND, "admin"))
    page.goto("/partnerships")
    invitation = page.get_by_role("heading", name="Invite a partner NOC")
    form = page.locator("section", has=invitation).locator("form")
    form.evaluate(
        "(form, to) => { form.action = to; }", f"/partnerships/{world.ids['partnership']}/ceiling"
    )
    form.get_by_label("Longest grant (hours)").fill("168")
    form.get_by_label("Secrets may be revealed (break-glass only)").check()

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.get_by_role("button", name="Send invitation").click()

    refused(answer.value)
    expect_not_found_naming_nothing(page, world.demo_names)
    assert httpx.get(path, headers=headers).json() == before
