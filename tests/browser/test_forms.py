"""Every form of the portal tried with bad input in a real browser.

Each test fills a form through its labels and sends it with its own button, as a person would,
then checks what that person sees: the message next to the field (the input says it is invalid
and its description is the visible message), what they typed still there (never a password), and
that nothing was written, looked up where a user would look (the list, the page) or through the
JSON API with the demo MSP's token. The forms carry `novalidate` or none of the browser's own
checks apply to the values used here: each value is one the browser sends and the server refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Locator, Page, Response, expect

from tests.browser.conftest import Browsing, sign_in
from tests.live_server import LiveGateway

pytestmark = pytest.mark.browser

MSP_ADMIN = "admin@northwind.example"
MSP_TECH = "tech@northwind.example"
MSP_AUDITOR = "auditor@northwind.example"
NOC_ADMIN = "admin@nightowl.example"
NOC_TECH = "tech@nightowl.example"
BERLIN = ZoneInfo("Europe/Berlin")
BLANK = "   "
"""Whitespace: `required` lets it through, the server reads it as nothing."""
SECRET_TITLE = "Contoso core switch admin"
AT_THE_LIMIT = ("Line of a reason\n" * 30)[:499] + "."
"""500 characters in several lines, as `maxlength="500"` counts them; the browser sends each
line break as two characters (CRLF), which the server must not count against the writer."""
WAIT = 10_000


# --- The demo's state, seen through the MSP's API token ----------------------------------------


@pytest.fixture(scope="module")
def api(live: LiveGateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {live.facts['api_token']}"}
    with httpx.Client(base_url=f"{live.base}/api/v1", headers=headers, timeout=15) as client:
        yield client


def got(api: httpx.Client, path: str) -> Any:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def grant_id(live: LiveGateway) -> str:
    return str(live.facts["grant_id"])


def handoff(api: httpx.Client, live: LiveGateway) -> dict[str, Any]:
    found: dict[str, Any] = got(api, f"/handoffs/{live.facts['handoff_id']}")
    return found


# --- What a person sees -------------------------------------------------------------------------


def send(page: Page, button: Locator) -> Response:
    """Click a form's button and wait for the page it leads to; that page's response."""
    with page.expect_response(
        lambda r: r.request.is_navigation_request() and r.request.method in {"GET", "POST"}
    ) as answer:
        button.click()
    page.wait_for_load_state()
    return answer.value


def expect_error_at(field: Locator, message: str, *, marked: bool = True) -> None:
    """`message` is next to `field`: visible, in the card of the field's form, and the field's
    accessible description; the field says it is invalid (`marked`; a group of checkboxes
    carries the description only)."""
    if marked:
        expect(field).to_have_attribute("aria-invalid", "true", timeout=WAIT)
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    ids = (field.get_attribute("aria-describedby") or "").split()
    errors = [name for name in ids if name.endswith("-error")]
    assert len(errors) == 1, ids
    card = field.locator("xpath=ancestor::form[1]/..")
    note = card.locator(f"[id='{errors[0]}']")
    expect(note).to_be_visible()
    expect(note).to_contain_text(message)


def only_marked(page: Page, count: int = 1) -> None:
    """No other field of the page claims to be invalid."""
    expect(page.locator("[aria-invalid='true']")).to_have_count(count)


def group(scope: Page | Locator, legend: str) -> Locator:
    return scope.get_by_role("group", name=legend, exact=True)


def accepting_dialogs(page: Page) -> Page:
    """Say yes to the portal's "are you sure?" questions (`data-confirm`)."""
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def local_input(moment: datetime, zone: ZoneInfo) -> str:
    """A `datetime-local` value: wall time in `zone`."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def now() -> datetime:
    return datetime.now(UTC)


# --- Signing in and the account -----------------------------------------------------------------


def test_a_wrong_password_at_sign_in_keeps_the_email_and_signs_nobody_in(
    browsing: Browsing, live: LiveGateway
) -> None:
    page = browsing.page_for(None)
    page.goto("/login")
    page.get_by_label("Email").fill(MSP_AUDITOR)
    page.get_by_label("Password").fill("not the password at all")

    response = send(page, page.get_by_role("button", name="Sign in"))

    assert response.status == 401
    expect_error_at(page.get_by_label("Email"), "The email or the password is wrong.")
    expect(page.get_by_label("Email")).to_have_value(MSP_AUDITOR)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    sign_in(page, MSP_AUDITOR, live.login(MSP_AUDITOR))
    expect(page.get_by_role("heading", name="Northwind IT", level=1)).to_be_visible()


def test_switching_to_a_tenant_one_is_not_a_member_of_is_refused(
    browsing: Browsing, live: LiveGateway
) -> None:
    """Someone in two tenants sees the switcher; a forged choice (another tenant's id put into
    the list) is refused with a message, and the session stays in its tenant."""
    email, password = "two-hats@westwind.example", "westwind switcher passphrase"
    live.cli("create-tenant", "--name", "Westwind IT", "--slug", "westwind", "--kind", "msp")
    live.cli("create-user", "--email", email, "--tenant", "northwind", "--role", "auditor",
             "--password-stdin", stdin=password)  # fmt: skip
    live.cli("create-user", "--email", email, "--tenant", "westwind", "--role", "auditor")
    page = browsing.page_for(None)
    sign_in(page, email, password)
    switcher = page.get_by_label("Tenant", exact=True)
    expect(switcher.locator("option")).to_have_count(2)
    before = page.get_by_role("heading", level=1).inner_text()
    acting_in = switcher.input_value()
    switcher.locator("option").first.evaluate(
        "(option, id) => { option.value = id; }", live.facts["noc"]["id"]
    )
    switcher.select_option(index=0)

    send(page, page.get_by_role("button", name="Switch"))

    expect(page.get_by_role("status")).to_contain_text("You are not a member of that tenant.")
    expect(page.get_by_role("heading", level=1)).to_have_text(before)
    expect(page.get_by_label("Tenant", exact=True)).to_have_value(acting_in)


@pytest.mark.parametrize(
    ("current", "new", "repeat", "field", "message"),
    [
        ("not my password", "a brand new passphrase", "a brand new passphrase",
         "Current password", "The current password is wrong."),
        ("{current}", "short", "short", "New password", "at least 12 characters"),
        ("{current}", "a brand new passphrase", "another new passphrase",
         "New password again", "The two new passwords differ"),
    ],
    ids=["wrong-current", "too-short", "repeated-differently"],
)  # fmt: skip
def test_a_refused_password_change_keeps_the_old_password(
    browsing: Browsing,
    live: LiveGateway,
    current: str,
    new: str,
    repeat: str,
    field: str,
    message: str,
) -> None:
    page = browsing.page_for(MSP_AUDITOR)
    page.goto("/account")
    page.get_by_label("Current password").fill(current.format(current=live.login(MSP_AUDITOR)))
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password again").fill(repeat)

    response = send(page, page.get_by_role("button", name="Change password"))

    assert response.status == 422
    expect_error_at(page.get_by_label(field, exact=True), message)
    only_marked(page)
    for label in ("Current password", "New password", "New password again"):
        expect(page.get_by_label(label, exact=True)).to_have_value("")  # never sent back
    again = browsing.page_for(None)
    sign_in(again, MSP_AUDITOR, live.login(MSP_AUDITOR))  # the old password still works
    expect(again.get_by_role("heading", name="Northwind IT", level=1)).to_be_visible()


# --- Partners -----------------------------------------------------------------------------------


def partner_rows(page: Page) -> Locator:
    return page.locator("table").first.locator("tbody tr")


def invitation(page: Page) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name="Invite a partner NOC"))


def fill_invitation(form: Locator, noc: str, hours: str, clients: str, kinds: str) -> None:
    form.get_by_label("NOC slug").fill(noc)
    form.get_by_label("Longest grant (hours)").fill(hours)
    if clients == "listed":
        form.get_by_label("Only these:").check()
    if kinds == "none":
        for box in form.locator("input[name='document_kinds']").all():
            box.uncheck()


@pytest.mark.parametrize(
    ("noc", "hours", "clients", "kinds", "where", "message"),
    [
        ("no-such-noc", "16", "all", "all", "NOC slug", "no NOC tenant with the slug"),
        ("northwind", "16", "all", "all", "NOC slug", "is not a NOC tenant"),
        ("nightowl", "16", "all", "all", "NOC slug", "is open already"),
        ("nightowl", "0", "all", "all", "Longest grant (hours)", "Choose between 1 and 168"),
        ("nightowl", "16", "listed", "all", "Clients that may ever be shared",
         "Choose at least one client"),
        ("nightowl", "16", "all", "none", "Document kinds that may ever be shared",
         "Choose at least one document kind"),
    ],
    ids=["unknown-noc", "not-a-noc", "partnered-already", "no-hours", "no-client", "no-kind"],
)  # fmt: skip
def test_a_refused_invitation_shows_why_and_invites_nobody(
    browsing: Browsing,
    api: httpx.Client,
    noc: str,
    hours: str,
    clients: str,
    kinds: str,
    where: str,
    message: str,
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/partnerships")
    rows = partner_rows(page).count()
    before = got(api, "/partnerships")
    form = invitation(page)
    fill_invitation(form, noc, hours, clients, kinds)

    response = send(page, form.get_by_role("button", name="Send invitation"))

    assert response.status == 422
    form = invitation(page)
    is_group = where.endswith("shared")
    field = group(form, where) if is_group else form.get_by_label(where)
    expect_error_at(field, message, marked=not is_group)
    expect(form.get_by_label("NOC slug")).to_have_value(noc)
    expect(form.get_by_label("Longest grant (hours)")).to_have_value(hours)
    expect(partner_rows(page)).to_have_count(rows)
    assert got(api, "/partnerships") == before


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ("hours", "Longest grant (hours)", "Choose between 1 and 168"),
        ("clients", "Clients that may ever be shared", "Choose at least one client"),
        ("kinds", "Document kinds that may ever be shared", "Choose at least one document kind"),
    ],
)
def test_a_refused_ceiling_leaves_the_ceiling_as_it_was(
    browsing: Browsing, api: httpx.Client, live: LiveGateway, change: str, where: str, message: str
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/partnerships")
    before = got(api, f"/partnerships/{live.facts['partnership_id']}")
    editor = page.locator("details", has_text="Change the ceiling for NightOwl NOC")
    editor.locator("summary").click()
    if change == "hours":
        editor.get_by_label("Longest grant (hours)").fill("500")
    elif change == "clients":
        editor.get_by_label("Only these:").check()
    else:
        for box in editor.locator("input[name='document_kinds']").all():
            box.uncheck()

    response = send(page, editor.get_by_role("button", name="Save ceiling"))

    assert response.status == 422
    editor = page.locator("details", has_text="Change the ceiling for NightOwl NOC")
    expect(editor).to_have_attribute("open", "")
    field = editor.get_by_label(where) if change == "hours" else group(editor, where)
    expect_error_at(field, message, marked=change == "hours")
    if change == "hours":
        expect(field).to_have_value("500")
    else:
        expect(editor.get_by_label("Longest grant (hours)")).to_have_value("120")
    expect(partner_rows(page).first).to_contain_text("up to 120 h")
    assert got(api, f"/partnerships/{live.facts['partnership_id']}") == before


# --- Business hours and sharing rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "typed", "message"),
    [
        ("Monday", "18:00-08:00", "(18:00-08:00)"),
        ("Tuesday", "8 to 6", "Write each range as 08:00-17:00"),
        ("Time zone", "Mars/Olympus_Mons", "Unknown time zone 'Mars/Olympus_Mons'"),
        ("Holidays (closed all day), one date per line, YYYY-MM-DD", "2026-02-30",
         "'2026-02-30' is not a date written YYYY-MM-DD"),
        ("Minutes after opening to hand the incident back", "300", "Choose between 0 and 240"),
    ],
    ids=["overnight-range", "not-a-range", "unknown-zone", "no-such-date", "long-buffer"],
)  # fmt: skip
def test_refused_business_hours_are_shown_again_and_not_saved(
    browsing: Browsing, api: httpx.Client, label: str, typed: str, message: str
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/schedule")
    before = got(api, "/schedule")
    form = page.locator("form[action='/schedule']")
    form.get_by_label(label, exact=True).fill(typed)

    response = send(page, form.get_by_role("button", name="Save business hours"))

    assert response.status == 422
    field = page.get_by_label(label, exact=True)
    expect_error_at(field, message)
    only_marked(page)
    expect(field).to_have_value(typed)
    expect(page.get_by_label("Wednesday", exact=True)).to_have_value("08:00-18:00")
    assert got(api, "/schedule") == before
    page.goto("/schedule")
    expect(page.get_by_label("Monday", exact=True)).to_have_value("08:00-18:00")


@pytest.mark.parametrize(
    ("label", "typed", "message"),
    [
        ("Longest grant (hours)", "200", "Enter a whole number of at most 168."),
        ("Reads per minute per grant", "0", "Enter a whole number of at least 1."),
        ("Document tags never shared, separated by commas", "internal, Board Only!",
         "lower-case letters"),
        ("Partner source networks, one per line (empty: from anywhere)", "10.0.0.300/8",
         "Line 1:"),
    ],
    ids=["long-grants", "no-reads", "bad-tag", "bad-network"],
)  # fmt: skip
def test_refused_sharing_rules_are_shown_again_and_not_saved(
    browsing: Browsing, api: httpx.Client, label: str, typed: str, message: str
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/schedule")
    before = got(api, "/rules")
    form = page.locator("form[action='/schedule/rules']")
    form.get_by_label(label).fill(typed)

    response = send(page, form.get_by_role("button", name="Save sharing rules"))

    assert response.status == 422
    field = page.get_by_label(label)
    expect_error_at(field, message)
    only_marked(page)
    expect(field).to_have_value(typed)
    assert got(api, "/rules") == before


# --- Handing off ----------------------------------------------------------------------------------


SUMMARY = "Firewall cluster failed over twice."
LONG_SUMMARY = ("What was tried so far.\n" * 100)[:1999] + "."
"""As long as the summary's `maxlength` allows, in lines (sent with CRLF line breaks)."""


def fill_handoff(page: Page, psa: str, **changes: str) -> None:
    """The hand-off form for Contoso, P2, with `changes` (label -> value) typed on top."""
    page.goto("/handoffs/new")
    page.get_by_label("Client", exact=True).select_option(label="Contoso Ltd (CONTOSO)")
    page.get_by_label("PSA reference").fill(psa)
    page.get_by_label("Severity").select_option("P2")
    page.get_by_label("Summary for the partner").fill(SUMMARY)
    for label, value in changes.items():
        field = page.get_by_label(label, exact=True)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        elif field.get_attribute("type") == "checkbox":
            field.check()
        else:
            field.fill(value)


def handed_off(api: httpx.Client, psa: str) -> list[dict[str, Any]]:
    return [grant for grant in got(api, "/grants") if grant["psa_reference"] == psa]


@contextmanager
def ceiling_narrowed(api: httpx.Client, live: LiveGateway) -> Iterator[None]:
    """NightOwl's ceiling without credentials and secrets, for as long as the block runs."""
    path = f"/partnerships/{live.facts['partnership_id']}/ceiling"
    was = got(api, f"/partnerships/{live.facts['partnership_id']}")["ceiling"]
    kinds = [kind for kind in was["document_kinds"] if kind != "credential"]
    narrowed = {**was, "document_kinds": kinds, "secrets_allowed": False}
    assert api.put(path, json=narrowed).status_code == 200
    try:
        yield
    finally:
        assert api.put(path, json=was).status_code == 200


def _in_berlin(days: float) -> str:
    return local_input(now() + timedelta(days=days), BERLIN)


HANDOFF_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("end-beyond-the-ceiling", {"Grant ends (Europe/Berlin)": lambda: _in_berlin(7)},
     [("Grant ends (Europe/Berlin)", "a grant may last at most 120 hours")]),
    ("end-in-the-past", {"Grant ends (Europe/Berlin)": lambda: _in_berlin(-1)},
     [("Grant ends (Europe/Berlin)", "the grant would end in the past")]),
    ("blank-reference", {"PSA reference": lambda: BLANK},
     [("PSA reference", "Enter the incident's reference in your PSA.")]),
    ("blank-summary", {"Summary for the partner": lambda: BLANK},
     [("Summary for the partner", "Write what the partner needs to know.")]),
    ("long-buffer", {"Hand-back buffer (minutes)": lambda: "241"},
     [("Hand-back buffer (minutes)", "Enter 0 to 240 minutes.")]),
    ("bad-tag", {"Only documents tagged (optional)": lambda: "network, Not A Tag!"},
     [("Only documents tagged (optional)", "lower-case letters")]),
    ("long-summary-in-lines-is-fine", {"Summary for the partner": lambda: LONG_SUMMARY,
                                       "Grant ends (Europe/Berlin)": lambda: _in_berlin(-1)},
     [("Grant ends (Europe/Berlin)", "the grant would end in the past")]),
]  # fmt: skip


def grant_ids(api: httpx.Client) -> set[str]:
    return {grant["id"] for grant in got(api, "/grants")}


@pytest.mark.parametrize(("changes", "errors"), [c[1:] for c in HANDOFF_CASES],
                         ids=[c[0] for c in HANDOFF_CASES])  # fmt: skip
def test_a_refused_hand_off_shows_each_reason_at_its_field_and_hands_off_nothing(
    browsing: Browsing,
    api: httpx.Client,
    changes: dict[str, Callable[[], str]],
    errors: list[tuple[str, str]],
) -> None:
    before = grant_ids(api)
    page = browsing.page_for(MSP_TECH)
    typed = {label: make() for label, make in changes.items()}
    fill_handoff(page, "PSA-5120", **typed)

    response = send(page, page.get_by_role("button", name="Review what the partner will see"))

    assert response.status == 422
    expect(page.get_by_role("heading", name="Hand off an incident")).to_be_visible()
    expect(page.get_by_role("alert").first).to_be_visible()
    for label, message in errors:
        expect_error_at(page.get_by_label(label, exact=True), message)
    only_marked(page, len(errors))
    kept = {"PSA reference": "PSA-5120", "Summary for the partner": SUMMARY, "Severity": "P2"}
    for label, value in {**kept, **typed}.items():
        if value != BLANK:
            expect(page.get_by_label(label, exact=True)).to_have_value(value)
    expect(page.get_by_label("Client", exact=True)).not_to_have_value("")
    assert grant_ids(api) == before


def test_a_scope_wider_than_the_ceiling_is_refused_kind_by_kind(
    browsing: Browsing, api: httpx.Client, live: LiveGateway
) -> None:
    """With secrets and credentials outside NightOwl's ceiling, the form marks both as beyond
    it; choosing them anyway is refused at the kinds and at the level."""
    psa = "PSA-WIDE-1"
    with ceiling_narrowed(api, live):
        page = browsing.page_for(MSP_TECH)
        fill_handoff(page, psa, **{"Most sensitive level": "secret"})
        credential = page.get_by_role("checkbox", name=re.compile(r"^credential"))
        expect(credential).to_have_accessible_name(re.compile("beyond the ceiling"))
        credential.check()

        response = send(page, page.get_by_role("button", name="Review what the partner will see"))

        assert response.status == 422
        expect_error_at(
            group(page, "Document kinds"), "beyond the ceiling: credential", marked=False
        )
        expect_error_at(page.get_by_label("Most sensitive level"), "never reveals secrets")
        expect(page.get_by_role("checkbox", name=re.compile(r"^credential"))).to_be_checked()
        expect(page.get_by_label("PSA reference")).to_have_value(psa)
        assert handed_off(api, psa) == []


def test_a_hand_off_refused_at_the_confirmation_returns_to_the_form_with_the_reason(
    browsing: Browsing, api: httpx.Client, live: LiveGateway
) -> None:
    """The partnership is suspended while the technician reads the confirmation: "Hand off"
    brings the form back with the reason at the partner, the input kept, and no grant."""
    psa = "PSA-LATE-1"
    page = browsing.page_for(MSP_TECH)
    fill_handoff(page, psa)
    send(page, page.get_by_role("button", name="Review what the partner will see"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Confirm: hand {psa} to NightOwl NOC"
    )
    path = f"/partnerships/{live.facts['partnership_id']}"
    assert api.post(f"{path}/suspend").status_code == 200
    try:
        response = send(page, page.get_by_role("button", name="Hand off", exact=True))

        assert response.status == 422
        expect_error_at(page.get_by_label("Partner NOC"), "suspended")
        expect(page.get_by_label("PSA reference")).to_have_value(psa)
        expect(page.get_by_label("Summary for the partner")).to_have_value(SUMMARY)
        assert handed_off(api, psa) == []
    finally:
        assert api.post(f"{path}/resume").status_code == 200


# --- Running grants: revoke, extensions -----------------------------------------------------------


@pytest.mark.parametrize("where", ["/grants", "/grants/{id}"])
def test_revoking_without_a_reason_is_refused_and_the_grant_runs_on(
    browsing: Browsing, api: httpx.Client, live: LiveGateway, where: str
) -> None:
    grant = grant_id(live)
    page = accepting_dialogs(browsing.page_for(MSP_TECH))
    page.goto(where.format(id=grant))
    form = page.locator(f"form[action='/grants/{grant}/revoke']")
    form.get_by_label("Reason to revoke").fill(BLANK)

    response = send(page, form.get_by_role("button", name="Revoke"))

    assert response.status == 422
    expect_error_at(
        page.get_by_label("Reason to revoke"),
        "Give a reason: the partner and the auditors will see it.",
    )
    only_marked(page)
    expect(
        page.get_by_text("Live updates are paused until the form below is sent.")
    ).to_be_visible()
    assert [g["status"] for g in got(api, "/grants") if g["id"] == grant] == ["active"]


def pending_extension(browsing: Browsing, live: LiveGateway, api: httpx.Client) -> str:
    """NightOwl's pending request for more time on the demo grant (asked for in the browser
    when there is none); its id."""
    pending = [e for e in handoff(api, live)["extensions"] if e["status"] == "pending"]
    if not pending:
        noc = browsing.page_for(NOC_TECH)
        noc.goto(f"/noc/grants/{grant_id(live)}")
        noc.get_by_label("Reason", exact=True).fill("Vendor call-back expected at 07:30.")
        send(noc, noc.get_by_role("button", name="Ask the MSP"))
        expect(noc.get_by_role("status")).to_contain_text("More time requested")
        pending = [e for e in handoff(api, live)["extensions"] if e["status"] == "pending"]
    [extension] = pending
    return str(extension["id"])


@pytest.mark.parametrize(
    ("hours_after_end", "message"),
    [(-1, "an extension must end later than the grant does now"), (24 * 7, "at most 120 hours")],
    ids=["before-the-current-end", "beyond-the-ceiling"],
)
def test_an_extension_approved_with_a_bad_end_is_refused_and_stays_pending(
    browsing: Browsing, api: httpx.Client, live: LiveGateway, hours_after_end: int, message: str
) -> None:
    extension = pending_extension(browsing, live, api)
    ends_before = handoff(api, live)["grant"]["ends_at"]
    typed = local_input(
        datetime.fromisoformat(ends_before) + timedelta(hours=hours_after_end), BERLIN
    )
    page = browsing.page_for(MSP_ADMIN)
    page.goto(f"/grants/{grant_id(live)}")
    form = page.locator(f"form[action$='/extensions/{extension}/approve']")
    form.get_by_label("New end (Europe/Berlin)").fill(typed)

    response = send(page, form.get_by_role("button", name="Approve"))

    assert response.status == 422
    field = page.get_by_label("New end (Europe/Berlin)")
    expect_error_at(field, message)
    expect(field).to_have_value(typed)
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    after = handoff(api, live)
    assert after["grant"]["ends_at"] == ends_before
    assert [e["status"] for e in after["extensions"] if e["id"] == extension] == ["pending"]


# --- Clients and documents ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code", "where", "message"),
    [
        ("Contoso Again", "CONTOSO", "Short code", "CONTOSO"),
        ("Tailspin Toys", "tail spin!", "Short code", "1-32 letters, digits, - or _"),
        (BLANK, "TAILSPIN", "Name", "the client name needs 1 to 200 characters"),
    ],
    ids=["code-taken", "code-malformed", "blank-name"],
)
def test_a_refused_client_is_not_added(
    browsing: Browsing, api: httpx.Client, name: str, code: str, where: str, message: str
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/clients")
    rows = page.locator("tbody tr").count()
    before = got(api, "/clients")
    form = page.locator("form[action='/clients']")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Short code").fill(code)
    form.get_by_label("Notes (optional)").fill("Call Mia first.")

    response = send(page, form.get_by_role("button", name="Add client"))

    assert response.status == 422
    expect_error_at(page.get_by_label(where, exact=True), message)
    only_marked(page)
    if name != BLANK:
        expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(page.get_by_label("Short code")).to_have_value(code)
    expect(page.get_by_label("Notes (optional)")).to_have_value("Call Mia first.")
    expect(page.locator("tbody tr")).to_have_count(rows)
    assert got(api, "/clients") == before


BODY = "# Restart the line\n\n1. Call the plant manager."


@pytest.mark.parametrize(
    ("title", "kind", "tags", "where", "message"),
    [
        (BLANK, "sop", "p1", "Title", "the title needs 1 to 200 characters"),
        ("Restart the production line", "", "p1", "Kind", "Choose a kind."),
        ("Restart the production line", "sop", "p1, Not A Tag!", "Tags", "lower-case letters"),
    ],
    ids=["blank-title", "no-kind", "bad-tag"],
)
def test_a_refused_new_document_is_not_created(
    browsing: Browsing,
    api: httpx.Client,
    title: str,
    kind: str,
    tags: str,
    where: str,
    message: str,
) -> None:
    page = browsing.page_for(MSP_TECH)
    page.goto("/documents/new")
    before = got(api, "/documents?limit=200&include_archived=true")["items"]
    page.get_by_label("Title").fill(title)
    if kind:
        page.get_by_label("Kind").select_option(kind)
    page.get_by_label("Client", exact=True).select_option(label="Contoso Ltd (CONTOSO)")
    page.get_by_label("Tags").fill(tags)
    page.get_by_label("Body (Markdown)").fill(BODY)

    response = send(page, page.get_by_role("button", name="Create document"))

    assert response.status == 422
    expect_error_at(page.get_by_label(where, exact=True), message)
    only_marked(page)
    expect(page.get_by_role("alert").first).to_be_visible()
    expect(page.get_by_label("Body (Markdown)")).to_have_value(BODY)
    expect(page.get_by_label("Tags")).to_have_value(tags)
    expect(page.get_by_label("Kind")).to_have_value(kind)
    assert got(api, "/documents?limit=200&include_archived=true")["items"] == before


def document_titled(api: httpx.Client, title: str) -> dict[str, Any]:
    [found] = [d for d in got(api, "/documents?limit=200")["items"] if d["title"] == title]
    return dict(found)


@pytest.mark.parametrize(
    ("label", "typed", "message"),
    [
        ("Title", BLANK, "the title needs 1 to 200 characters"),
        ("Tags", "network, Not A Tag!", "lower-case letters"),
    ],
    ids=["blank-title", "bad-tag"],
)
def test_a_refused_edit_makes_no_new_revision(
    browsing: Browsing, api: httpx.Client, label: str, typed: str, message: str
) -> None:
    document = document_titled(api, "Contoso network overview")
    page = browsing.page_for(MSP_TECH)
    page.goto(f"/documents/{document['id']}/edit")
    changed_body = page.get_by_label("Body (Markdown)").input_value() + "\n\nEdited at 03:00."
    page.get_by_label("Body (Markdown)").fill(changed_body)
    page.get_by_label(label, exact=True).fill(typed)

    response = send(page, page.get_by_role("button", name="Save"))

    assert response.status == 422
    expect_error_at(page.get_by_label(label, exact=True), message)
    only_marked(page)
    expect(page.get_by_label("Body (Markdown)")).to_have_value(changed_body)
    after = got(api, f"/documents/{document['id']}")
    assert after["current_revision"] == document["current_revision"]
    assert after["title"] == "Contoso network overview"
    assert "Edited at 03:00." not in after["body"]


def test_a_reveal_of_a_revision_that_does_not_exist_shows_nothing_and_records_nothing(
    browsing: Browsing, api: httpx.Client
) -> None:
    """The reveal form has one field, the revision, hidden; a forged one is a 404 page with no
    secret on it, and no reveal goes on the record."""
    document = document_titled(api, SECRET_TITLE)
    query = f"/audit/events?action=document:revealed&document_id={document['id']}"
    before = got(api, query)["events"]
    page = browsing.page_for(MSP_TECH)
    page.goto(f"/documents/{document['id']}")
    page.locator("form[action$='/reveal'] input[name='revision']").evaluate(
        "input => { input.value = '99'; }"
    )

    response = send(page, page.get_by_role("button", name="Reveal"))

    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).not_to_have_text(SECRET_TITLE)
    assert "Sample-Only" not in page.content()
    assert got(api, query)["events"] == before


# --- Webhooks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "event", "where", "message"),
    [
        ("https://127.0.0.1/shiftgate", "grant.revoked", "URL", "a loopback address"),
        ("ftp://8.8.8.8/shiftgate", "grant.revoked", "URL", "must start with https://"),
        ("https://8.8.8.8/shiftgate", None, "Events", "Choose at least one event."),
    ],
    ids=["loopback", "not-http", "no-event"],
)
def test_a_refused_webhook_is_not_registered(
    browsing: Browsing, api: httpx.Client, url: str, event: str | None, where: str, message: str
) -> None:
    page = browsing.page_for(MSP_ADMIN)
    page.goto("/webhooks")
    before = got(api, "/webhooks")
    page.get_by_label("URL").fill(url)
    page.get_by_label("Description (optional)").fill("on-call pager")
    if event:
        page.get_by_label(event).check()

    response = send(page, page.get_by_role("button", name="Register endpoint"))

    assert response.status == 422
    field = page.get_by_label("URL") if where == "URL" else group(page, "Events")
    expect_error_at(field, message, marked=where == "URL")
    expect(page.get_by_label("URL")).to_have_value(url)
    expect(page.get_by_label("Description (optional)")).to_have_value("on-call pager")
    if event:
        expect(page.get_by_label(event)).to_be_checked()
    expect(page.get_by_text("Client secret")).to_have_count(0)
    assert got(api, "/webhooks") == before


# --- The NOC: break-glass, notes, more time -----------------------------------------------------


def rotation_list(api: httpx.Client) -> list[Any]:
    found: list[Any] = got(api, "/rotation-list")
    return found


@pytest.mark.parametrize(
    ("reason", "password", "where", "message", "status"),
    [
        ("PSA-4411: console login to restore the uplinks", "not my password",
         "Your password, again", "The password is wrong. Nothing was revealed.", 422),
        (BLANK, "not my password", "Reason (required",
         "State why you need this secret", 422),
        (AT_THE_LIMIT, "not my password",
         "Your password, again", "The password is wrong. Nothing was revealed.", 422),
    ],
    ids=["wrong-password", "blank-reason", "reason-in-lines-at-the-limit"],
)  # fmt: skip
def test_break_glass_refused_reveals_nothing_and_keeps_the_reason(
    browsing: Browsing,
    api: httpx.Client,
    live: LiveGateway,
    reason: str,
    password: str,
    where: str,
    message: str,
    status: int,
) -> None:
    before = rotation_list(api)
    page = browsing.page_for(NOC_TECH)
    page.goto(f"/noc/grants/{grant_id(live)}")
    row = page.get_by_role("row", name=re.compile(SECRET_TITLE))
    row.get_by_text("Break glass…").click()
    row.get_by_label(re.compile(r"^Reason \(required")).fill(reason)
    row.get_by_label("Your password, again").fill(password)

    response = send(page, row.get_by_role("button", name="Break glass and reveal"))

    assert response.status == status
    expect(page.get_by_role("heading", name="Break glass", level=1)).to_be_visible()
    expect_error_at(page.get_by_label(re.compile("^" + re.escape(where))), message)
    only_marked(page)
    if reason != BLANK:
        expect(page.get_by_label(re.compile(r"^Reason \(required"))).to_have_value(reason)
    expect(page.get_by_label("Your password, again")).to_have_value("")
    assert "Sample-Only" not in page.content()
    assert rotation_list(api) == before


def test_a_blank_hand_back_note_is_not_posted(
    browsing: Browsing, api: httpx.Client, live: LiveGateway
) -> None:
    before = handoff(api, live)["notes"]
    page = browsing.page_for(NOC_TECH)
    page.goto(f"/noc/grants/{grant_id(live)}")
    page.get_by_label("Note for the MSP (Markdown)").fill(BLANK + "\n" + BLANK)

    response = send(page, page.get_by_role("button", name="Post note"))

    assert response.status == 422
    expect_error_at(page.get_by_label("Note for the MSP (Markdown)"), "Write the note first.")
    only_marked(page)
    expect(page.get_by_role("heading", name="Documents in scope")).to_be_visible()
    assert handoff(api, live)["notes"] == before


@pytest.mark.parametrize(
    ("reason", "until", "where", "message"),
    [
        (BLANK, "", "Reason", "Say why you need more time."),
        ("Vendor call-back at 07:30.", "2026-01-05T08:00", "Until (optional, America/New_York)",
         "an extension asks for a later end than the grant has"),
    ],
    ids=["blank-reason", "end-before-the-current-end"],
)  # fmt: skip
def test_a_refused_request_for_more_time_asks_nothing(
    browsing: Browsing,
    api: httpx.Client,
    live: LiveGateway,
    reason: str,
    until: str,
    where: str,
    message: str,
) -> None:
    before = handoff(api, live)["extensions"]
    page = browsing.page_for(NOC_TECH)
    page.goto(f"/noc/grants/{grant_id(live)}")
    page.get_by_label("Reason", exact=True).fill(reason)
    if until:
        page.get_by_label("Until (optional, America/New_York)").fill(until)

    response = send(page, page.get_by_role("button", name="Ask the MSP"))

    assert response.status == 422
    expect_error_at(page.get_by_label(where, exact=True), message)
    only_marked(page)
    if reason != BLANK:
        expect(page.get_by_label("Reason", exact=True)).to_have_value(reason)
    expect(page.get_by_label("Until (optional, America/New_York)")).to_have_value(until)
    assert handoff(api, live)["extensions"] == before


# --- The NOC's OAuth clients ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"Name": BLANK}, "Name", "the client name needs 1 to 100 characters"),
        ({"Networks (optional)": "203.0.113.0/24\nthe office"}, "Networks (optional)",
         "'the' is not a network in CIDR notation"),
        ({"private_key_jwt": "on"}, "Public keys, JWKS (private_key_jwt only)",
         "private_key_jwt needs the client's public keys"),
        ({"private_key_jwt": "on", "Public keys, JWKS (private_key_jwt only)": "{not json"},
         "Public keys, JWKS (private_key_jwt only)", "The key set is not JSON"),
        ({"partner:read": "off"}, "Scopes the client may ask for",
         "a client needs at least one scope"),
    ],
    ids=["blank-name", "bad-network", "keys-missing", "keys-not-json", "no-scope"],
)  # fmt: skip
def test_a_refused_oauth_client_is_not_registered(
    browsing: Browsing, changes: dict[str, str], where: str, message: str
) -> None:
    page = browsing.page_for(NOC_ADMIN)
    page.goto("/noc/clients")
    rows = page.locator("tbody tr").count()
    form = page.locator("form[action='/noc/clients']")
    form.get_by_label("Name", exact=True).fill("Night shift runbooks")
    for label, value in changes.items():
        field = form.get_by_label(label, exact=True)
        if value == "on":
            field.check()
        elif value == "off":
            field.uncheck()
        else:
            field.fill(value)

    response = send(page, form.get_by_role("button", name="Register"))

    assert response.status == 422
    is_group = where.startswith("Scopes")
    field = group(page, where) if is_group else page.get_by_label(where, exact=True)
    expect_error_at(field, message, marked=not is_group)
    typed = {label: value for label, value in changes.items() if value not in {"on", "off"}}
    for label, value in {"Name": "Night shift runbooks", **typed}.items():
        if value != BLANK:
            expect(page.get_by_label(label, exact=True)).to_have_value(value)
    for label, value in changes.items():
        if value in {"on", "off"}:
            box = page.get_by_label(label, exact=True)
            expect(box).to_be_checked() if value == "on" else expect(box).not_to_be_checked()
    expect(page.get_by_text("Client secret")).to_have_count(0)
    expect(page.locator("tbody tr")).to_have_count(rows)


@pytest.mark.parametrize("overlap", ["500", "-1"])
def test_a_refused_rotation_issues_no_secret(browsing: Browsing, overlap: str) -> None:
    page = accepting_dialogs(browsing.page_for(NOC_ADMIN))
    page.goto("/noc/clients")
    page.get_by_role("link", name="NightOwl tooling (demo)").click()
    credentials = page.locator("dt:text-is('Credentials') + dd")
    before = credentials.inner_text()
    page.get_by_label("Old credentials keep working for (hours)").fill(overlap)

    response = send(page, page.get_by_role("button", name="New secret"))

    assert response.status == 422
    field = page.get_by_label("Old credentials keep working for (hours)")
    expect_error_at(field, "overlap_hours is 0 to 168")
    expect(field).to_have_value(overlap)
    expect(page.get_by_role("heading", name="Client secret")).to_have_count(0)
    expect(credentials).to_have_text(before)


# --- The audit log's search -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "where", "message"),
    [
        ({"From (inclusive)": "2026-11-28T10:00", "Until (exclusive)": "2026-11-27T10:00"},
         "Until (exclusive)", "until"),
        ({"Grant id": "PSA-4411"}, "Grant id", "Enter a full id"),
        ({"Document id": "3f2b8c1e"}, "Document id", "Enter a full id"),
    ],
    ids=["range-backwards", "grant-id-is-a-reference", "short-id"],
)  # fmt: skip
def test_a_refused_audit_search_keeps_the_filters_and_offers_no_export(
    browsing: Browsing, filters: dict[str, str], where: str, message: str
) -> None:
    page = browsing.page_for(MSP_AUDITOR)
    page.goto("/audit")
    for label, value in filters.items():
        page.get_by_label(label, exact=True).fill(value)

    response = send(page, page.get_by_role("button", name="Search"))

    assert response.status == 422
    expect_error_at(page.get_by_label(where, exact=True), message)
    only_marked(page)
    for label, value in filters.items():
        expect(page.get_by_label(label, exact=True)).to_have_value(re.compile(re.escape(value)))
    expect(page.get_by_role("button", name=re.compile("^Download"))).to_have_count(0)
