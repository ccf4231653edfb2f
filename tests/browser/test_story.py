"""The story of DESIGN.md, clicked through in a real browser: the portal's acceptance test.

Northwind IT's technician hands an incident to NightOwl NOC; NightOwl's technician watches the
grant appear, reads the bundle, a standard document and, by break-glass, a secret; Northwind's
open grants page raises the alert by itself; Northwind revokes; NightOwl's open page shows that
access ended and a further read is refused; both auditors see the grant's timeline, and the
verifiable export of the chain checks out offline. Each person has a browser context of their
own; pages that the story says stay open are never reloaded (the live parts poll).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Browsing

pytestmark = pytest.mark.browser

MSP_TECH = "tech@northwind.example"
NOC_TECH = "tech@nightowl.example"
MSP_AUDITOR = "auditor@northwind.example"
NOC_AUDITOR = "auditor@nightowl.example"

LIVE = 10_000
"""How long a live part may take to show a change (it polls every 3 s)."""

_SAMPLES = Path(__file__).parents[2] / "gateway" / "sample_docs" / "contoso"
STANDARD_DOC = "Contoso network overview"
SECRET_DOC = "Contoso core switch admin"
IN_SCOPE = ("Core switch outage", "Contoso core switch configuration", STANDARD_DOC, SECRET_DOC)
"""What DESIGN.md's story hands over: the network documents (tag `network`) of Contoso..."""
OUT_OF_SCOPE = ("Contoso contacts", "Contoso Hamburg HQ site")
"""...and not the rest of Contoso's documentation."""
BREAK_GLASS_REASON = "Switch rejects RADIUS logins; console access needed to restore the uplink."
REVOKE_REASON = "Northwind on-call took the incident back: uplink restored."


def _secret_fields() -> dict[str, str]:
    """username and password from the sample credential's front matter (what the MSP stored)."""
    text = (_SAMPLES / "core-switch-admin.md").read_text(encoding="utf-8")
    front = text.split("---")[1]
    return {
        key.strip(): value.strip()
        for key, value in (line.split(":", 1) for line in front.splitlines() if ":" in line)
    }


SECRET_FIELDS = _secret_fields()


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Story:
    """What the acts of the story hand on to the next ones."""

    browsing: Browsing
    screenshot: Any
    psa: str = field(default_factory=lambda: f"PSA-{secrets.token_hex(3).upper()}")
    grant_id: str = ""

    @property
    def facts(self) -> dict[str, Any]:
        return self.browsing.live.facts

    def refused(self, response: Any, status: int) -> None:
        """The page came back with `status`, as the story expects."""
        assert response.status == status, (response.url, response.status)


def test_an_incident_handed_to_the_noc_for_the_night(browsing: Browsing, screenshot: Any) -> None:
    story = Story(browsing, screenshot)
    noc = browsing.page_for(NOC_TECH)
    noc.goto("/noc/grants")  # open before the hand-off: the grant appears in the live list
    expect(noc.get_by_role("heading", name="My grants", level=1)).to_be_visible()
    expect(noc.get_by_role("link", name=story.psa)).to_have_count(0)

    msp = browsing.page_for(MSP_TECH)
    msp.on("dialog", lambda dialog: dialog.accept())  # "Revoke ... now?" (data-confirm)
    msp_hands_off_the_incident(story, msp)

    noc_reader = _another_tab(browsing, noc)
    noc_opens_the_bundle_and_reads_a_document(story, noc, noc_reader)

    msp.goto("/grants")  # open before the break-glass read, never reloaded afterwards
    msp_row = msp.locator(f"#grant-{story.grant_id}")
    expect(msp_row).to_contain_text("active")
    expect(msp_row.locator(".alert")).to_have_count(0)

    noc_breaks_the_glass(story, noc)
    msp_sees_the_break_glass_alert(story, msp)
    msp_revokes_the_grant(story, msp)
    noc_access_ends(story, noc, noc_reader)

    msp_auditor = browsing.page_for(MSP_AUDITOR)
    auditor_reads_the_timeline(story, msp_auditor, side="the MSP", shot="story-09-timeline")
    auditor_exports_and_verifies_the_chain(story, msp_auditor, tenant=story.facts["msp"]["id"])
    noc_auditor = browsing.page_for(NOC_AUDITOR)
    auditor_reads_the_timeline(
        story, noc_auditor, side="the partner NOC", shot="story-10-timeline-noc"
    )


# --- 1. The MSP hands off ------------------------------------------------------------------------


def msp_hands_off_the_incident(story: Story, msp: Any) -> None:
    noc = story.facts["noc"]
    msp.goto("/handoffs/new")
    expect(msp.get_by_role("heading", name="Hand off an incident")).to_be_visible()
    with msp.expect_response(re.compile(r"/handoffs/scope\?")):  # the ceiling, by htmx
        msp.get_by_label("Partner NOC").select_option(label=f"{noc['name']} ({noc['slug']})")
    expect(msp.locator("#ceiling-hint")).to_contain_text(f"Ceiling of {noc['name']}")
    msp.get_by_label("Client", exact=True).select_option(value=story.facts["clients"]["CONTOSO"])
    msp.get_by_label("PSA reference").fill(story.psa)
    msp.get_by_label("Severity").select_option(value="P1")
    msp.get_by_label("Summary for the partner").fill(
        "Core switch down at Contoso Hamburg: production line offline since 17:40.\n\n"
        "Power-cycled the stack once; check the uplinks from the console."
    )
    msp.get_by_label("Only documents tagged (optional)").fill("network")
    proposed_end = msp.get_by_label(re.compile(r"^Grant ends")).input_value()
    assert proposed_end, "the form proposes the end from Northwind's schedule"
    story.screenshot(msp, "story-01-handoff-form")

    msp.get_by_role("button", name="Review what the partner will see").click()
    expect(msp.get_by_role("heading", level=1)).to_have_text(
        f"Confirm: hand {story.psa} to {noc['name']}"
    )
    in_scope = msp.locator("#in-scope")
    for title in IN_SCOPE:
        expect(in_scope.get_by_role("rowheader", name=title, exact=True)).to_be_visible()
    expect(in_scope.get_by_role("row", name=SECRET_DOC)).to_contain_text("break-glass only")
    for title in OUT_OF_SCOPE:
        expect(in_scope.get_by_text(title)).to_have_count(0)
    expect(msp.locator("#out-of-scope")).not_to_contain_text("Not in scope: 0 ")
    ends = msp.locator("dt:text-is('Ends') + dd")
    expect(ends).to_contain_text(
        datetime.fromisoformat(proposed_end).strftime("%a %d %b %Y, %H:%M")
    )
    story.screenshot(msp, "story-02-handoff-confirm")

    msp.get_by_role("button", name="Hand off", exact=True).click()
    msp.wait_for_url(re.compile(rf"/grants/{_UUID}$"))
    story.grant_id = msp.url.rsplit("/", 1)[1]
    expect(msp.locator(".flash")).to_contain_text(f"{story.psa} handed to {noc['name']} until")
    expect(msp.locator("#grant-state")).to_have_text("active")


# --- 2. The NOC reads ----------------------------------------------------------------------------


def noc_opens_the_bundle_and_reads_a_document(story: Story, noc: Any, reader: Any) -> None:
    """The grant shows up in the open list; the bundle opens; a second tab reads a document
    (and stays on it, to try again once access has ended)."""
    link = noc.get_by_role("link", name=story.psa)
    expect(link).to_be_visible(timeout=LIVE)
    expect(noc.get_by_role("row", name=story.psa)).to_contain_text(story.facts["msp"]["name"])
    link.click()
    bundle_url = f"/noc/grants/{story.grant_id}"
    noc.wait_for_url(f"**{bundle_url}")
    expect(noc.get_by_role("heading", level=1)).to_have_text(f"{story.psa}: Contoso Ltd")
    expect(noc.locator("#grant-live .status")).to_have_text("active")
    expect(noc.get_by_text("Core switch down at Contoso Hamburg")).to_be_visible()
    for title in IN_SCOPE:
        expect(noc.get_by_role("rowheader", name=title, exact=True)).to_be_visible()
    for title in OUT_OF_SCOPE:
        expect(noc.get_by_text(title)).to_have_count(0)
    story.screenshot(noc, "story-03-noc-bundle")

    reader.goto(bundle_url)
    reader.get_by_role("row", name=STANDARD_DOC).get_by_role("button", name="Read").click()
    expect(reader.get_by_role("heading", level=1)).to_have_text(STANDARD_DOC)
    expect(reader.locator(".markdown")).to_contain_text(
        "Two sites joined by an IPsec site-to-site VPN"
    )
    story.screenshot(reader, "story-04-noc-document")


def noc_breaks_the_glass(story: Story, noc: Any) -> None:
    """The password typed but no reason: refused at the reason's field, nothing revealed, the
    password asked again. With a reason and the password, the secret shows."""
    password = story.browsing.live.login(NOC_TECH)
    row = noc.get_by_role("row", name=SECRET_DOC)
    row.get_by_text("Break glass…").click()
    row.get_by_label("Your password, again").fill(password)
    with noc.expect_response(lambda r: r.request.method == "POST") as sent:
        row.get_by_role("button", name="Break glass and reveal").click()
    story.refused(sent.value, 422)
    expect(noc.get_by_role("heading", name="Break glass", level=1)).to_be_visible()
    reason = noc.get_by_label(re.compile(r"^Reason"))
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_have_attribute("aria-describedby", re.compile("break-glass-reason-error"))
    expect(noc.locator("#break-glass-reason-error")).to_contain_text("State why you need")
    expect(noc.get_by_label("Your password, again")).to_have_value("")
    expect(noc.locator("#break-glass-password-error")).to_have_count(0)
    expect(noc.get_by_text(SECRET_FIELDS["password"])).to_have_count(0)
    story.screenshot(noc, "story-05-break-glass")

    reason.fill(BREAK_GLASS_REASON)
    noc.get_by_label("Your password, again").fill(password)
    noc.get_by_role("button", name="Break glass and reveal").click()
    expect(noc.get_by_role("heading", level=1)).to_have_text(SECRET_DOC)
    expect(noc.get_by_role("status").filter(has_text="Break-glass")).to_contain_text(
        "the MSP has been notified"
    )
    expect(noc.locator("dt:text-is('Username') + dd")).to_have_text(SECRET_FIELDS["username"])
    expect(noc.locator("dt:text-is('Password') + dd")).to_have_text(SECRET_FIELDS["password"])
    story.screenshot(noc, "story-05b-secret-revealed")

    noc.get_by_role("link", name="Back to the incident").click()  # left open from here on
    expect(noc.locator("#grant-live .status")).to_have_text("active")


# --- 3-4. The MSP is alerted, and revokes ----------------------------------------------------


def msp_sees_the_break_glass_alert(story: Story, msp: Any) -> None:
    row = msp.locator(f"#grant-{story.grant_id}")
    expect(row.locator(".alert")).to_contain_text("1 break-glass read", timeout=LIVE)
    expect(row.get_by_role("link", name="see why")).to_be_visible()
    story.screenshot(msp, "story-06-msp-alert")


def msp_revokes_the_grant(story: Story, msp: Any) -> None:
    """Without a reason first: refused at the field, the grant still active. Then with one."""
    row = msp.locator(f"#grant-{story.grant_id}")
    with msp.expect_response(lambda r: r.request.method == "POST") as sent:
        row.get_by_role("button", name="Revoke").click()
    story.refused(sent.value, 422)
    row = msp.locator(f"#grant-{story.grant_id}")
    reason = row.get_by_label("Reason to revoke")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(row.locator(f"#reason-{story.grant_id}-error")).to_contain_text("Give a reason")
    expect(row.locator(".status")).to_have_text("active")

    reason.fill(REVOKE_REASON)
    row.get_by_role("button", name="Revoke").click()
    expect(msp.locator(".flash")).to_contain_text(f"{story.psa}: access for NightOwl NOC revoked")
    ended = msp.locator(f"#grant-{story.grant_id}")
    expect(ended.locator(".status")).to_have_text("revoked")
    expect(ended).to_contain_text(REVOKE_REASON)
    expect(ended).to_contain_text("1 break-glass")


# --- 5. The NOC's access ends ----------------------------------------------------------------


def noc_access_ends(story: Story, noc: Any, reader: Any) -> None:
    """The bundle page, open all along, says so by itself; the other tab's document, reloaded
    (the browser sends the read again), is refused with the reason and shows nothing."""
    ended = noc.locator("#grant-live").get_by_role("alert")
    expect(ended).to_contain_text("Access ended (revoked)", timeout=LIVE)
    expect(ended).to_contain_text(REVOKE_REASON)
    expect(noc.locator("#noc-access")).to_contain_text("Access has ended")
    expect(noc.get_by_role("button", name="Read")).to_have_count(0)
    story.screenshot(noc, "story-07-noc-access-ended")

    with reader.expect_response(lambda r: r.request.method == "POST") as sent:
        reader.reload()
    story.refused(sent.value, 403)
    expect(reader.get_by_role("heading", level=1)).to_have_text("Read refused")
    expect(reader.get_by_role("alert")).to_contain_text("revoked")
    expect(reader.get_by_text("Two sites joined by an IPsec")).to_have_count(0)
    expect(reader.locator(".markdown")).to_have_count(0)
    story.screenshot(reader, "story-07b-noc-read-refused")


# --- 6. The auditors -----------------------------------------------------------------------------


def auditor_reads_the_timeline(story: Story, auditor: Any, *, side: str, shot: str) -> None:
    """Find the grant in the log by its PSA reference; its timeline draws every read, the
    break-glass, the refused read and the window up to the revocation."""
    auditor.goto("/audit")
    auditor.get_by_label("Incident (PSA reference)").fill(story.psa)
    auditor.get_by_role("button", name="Search", exact=True).click()
    expect(auditor.get_by_role("heading", name="Events matching the search")).to_be_visible()
    events = auditor.locator("table tbody")
    expect(events).to_contain_text("grant:revoked")
    expect(events).to_contain_text("document:read_denied")
    if side == "the MSP":
        story.screenshot(auditor, "story-08-audit-log")
    auditor.get_by_role("link", name=re.compile(r"timeline$")).first.click()
    auditor.wait_for_url(f"**/audit/grants/{story.grant_id}")

    expect(auditor.get_by_role("heading", level=1)).to_have_text(
        f"Accesses under grant {story.psa}"
    )
    expect(auditor.get_by_text(f"({side})")).to_be_visible()
    chart = auditor.get_by_role("img", name=f"Accesses under grant {story.psa} over time")
    expect(chart).to_be_visible()
    expect(chart.locator("g.mark.read").first).to_be_attached()
    expect(chart.locator("g.mark.break-glass")).to_have_count(1)
    expect(chart.locator("g.mark.denied").first).to_be_attached()
    expect(chart.locator("rect.grant-window")).to_have_count(1)
    expect(chart.locator("line.grant-end title")).to_contain_text("revoked")
    expect(auditor.locator("#timeline-counts")).to_contain_text("1 break-glass")
    history = auditor.locator("#history-table")
    expect(history).to_contain_text("grant:revoked")
    expect(history).to_contain_text(REVOKE_REASON)
    expect(auditor.locator("#timeline-table")).to_contain_text(BREAK_GLASS_REASON)
    story.screenshot(auditor, shot)


def auditor_exports_and_verifies_the_chain(story: Story, auditor: Any, *, tenant: str) -> None:
    """The verifiable export, saved as a download, passes the offline verifier with the
    tenant's published keys as the only trusted ones."""
    auditor.goto("/audit")
    with auditor.expect_download() as download:
        auditor.get_by_role("button", name="Download verifiable export (JSON Lines)").click()
    path = Path(str(download.value.path()))
    assert download.value.suggested_filename.startswith(f"shiftgate-audit-{tenant}-")
    assert story.psa in path.read_text(encoding="utf-8")

    keys_link = auditor.get_by_role("link", name="the tenant's audit signing keys")
    published = auditor.request.get(keys_link.get_attribute("href")).json()["keys"]
    assert published, "the tenant publishes its audit signing keys"
    trust = [arg for key in published for arg in ("--trust-key", key["public_key"])]
    checked = story.browsing.live.cli("audit", "verify-export", str(path), *trust)
    assert checked.startswith("verified "), checked
    assert f"tenant {tenant}" in checked and "trusted" in checked


# --- Helpers -------------------------------------------------------------------------------------


def _another_tab(browsing: Browsing, page: Any) -> Any:
    """A second tab of the same person (same cookies), watched for console errors too."""
    return browsing.watch(page.context.new_page())
