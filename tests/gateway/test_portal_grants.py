"""The MSP's hand-off and grant pages: the pre-filled form, the confirmation of what the partner
will see, the live grants list, revoke, complete, extensions, notes and the rotation list."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from policies.ceiling import Ceiling
from policies.schedule import BusinessHours, shift_end
from policies.vocabulary import DocumentKind
from sharing.clock import ManualClock
from sharing.tables import Grant, GrantExtension, RotationItem
from tenants.roles import Role
from tests.helpers import (
    BERLIN,
    BUSINESS_HOURS,
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    audit_events,
    bearer,
    csrf_token,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    partner_up,
    served_at,
    session_for,
    sign_in,
    table_snapshot,
)

CEILING = Ceiling(
    document_kinds=[kind for kind in DocumentKind if kind is not DocumentKind.CONTACT],
    max_grant_hours=120,
    secrets_allowed=True,
)
"""Everything but contacts, for at most 120 hours, secrets by break-glass."""
NARROW = Ceiling(document_kinds=[DocumentKind.SOP], max_grant_hours=12)
"""A second partner's: SOPs only, 12 hours, never a secret."""
SHIFT_END = shift_end(msgspec.convert(BUSINESS_HOURS, BusinessHours), STORY_START)
REASON = "PSA-4411: console password needed to restore the uplinks"


@dataclass(frozen=True)
class Parties:
    msp: MspSide
    noc: NocSide


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


@pytest.fixture
async def parties(http: AppClient) -> Parties:
    msp = await make_msp_side(http)
    noc = await make_noc_side()
    await partner_up(msp, noc, CEILING)
    return Parties(msp, noc)


@pytest.fixture
async def signed_in(http: AppClient, parties: Parties) -> Parties:
    """The MSP's admin signed in to the portal."""
    await sign_in(http, parties.msp.admin)
    return parties


def local_field(moment: datetime) -> str:
    """`moment` as a datetime-local value in Berlin, the MSP's zone."""
    return moment.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M")


def field_error(page: str, error_id: str) -> str | None:
    match = re.search(rf'<p class="error" id="{re.escape(error_id)}">([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def error_ids(page: str) -> list[str]:
    return re.findall(r'<p class="error" id="([^"]+)"', page)


def checked_kinds(page: str) -> set[str]:
    return set(re.findall(r'name="document_kinds" value="(\w+)" checked', page))


def selected(page: str, select_id: str) -> str | None:
    block = re.search(rf'<select id="{select_id}".*?</select>', page, re.S)
    assert block is not None, select_id
    match = re.search(r'<option value="([^"]*)" selected', block.group(0))
    return match.group(1) if match else None


def handoff_form(http: AppClient, parties: Parties, **changes: Any) -> dict[str, Any]:
    """The hand-off form for PSA-4411 as a person fills it in, with `changes` on top."""
    form: dict[str, Any] = {
        "partner": parties.noc.tenant.slug,
        "client_id": str(parties.msp.contoso),
        "psa_reference": "PSA-4411",
        "summary": f"Core switch down at Contoso Hamburg {parties.msp.marker}-summary",
        "severity": "P1",
        "document_kinds": ["network", "configuration", "sop", "credential"],
        "tags": "",
        "max_sensitivity": "secret",
        "ends_at": local_field(SHIFT_END),
        "handback_buffer_minutes": "0",
        "_csrf_token": csrf_token(http),
    }
    form.update(changes)
    return form


async def grant_row(grant_id: str | uuid.UUID) -> dict[str, Any]:
    row: dict[str, Any] | None = (
        await Grant.select().where(Grant.id == uuid.UUID(str(grant_id))).first()
    )
    assert row is not None
    return row


def post(http: AppClient, url: str, **fields: str) -> Any:
    return http.post(url, data={**fields, "_csrf_token": csrf_token(http)})


def read_url(grant_id: str, document_id: uuid.UUID) -> str:
    return f"/api/v1/partner/grants/{grant_id}/documents/{document_id}"


# --- The form --------------------------------------------------------------------------------


async def test_the_form_starts_from_the_ceiling_and_the_next_shift_end(
    http: AppClient, signed_in: Parties
) -> None:
    assert SHIFT_END is not None

    page = await http.get("/handoffs/new")

    assert page.status_code == 200, page.text
    assert selected(page.text, "partner") == signed_in.noc.tenant.slug
    assert checked_kinds(page.text) == {kind.value for kind in CEILING.document_kinds}
    assert 'value="contact" >' in page.text and "(beyond the ceiling)" in page.text
    assert selected(page.text, "max_sensitivity") == "secret"
    # 08:00 on Monday in Berlin: the 24th and 25th are holidays, then the weekend.
    assert f'name="ends_at" type="datetime-local" value="{local_field(SHIFT_END)}"' in page.text
    assert local_field(SHIFT_END) == "2026-12-28T08:00"
    assert "Grant ends (Europe/Berlin)" in page.text
    assert 'hx-get="/handoffs/scope"' in page.text and 'hx-include="#partner"' in page.text


async def test_the_scope_follows_the_partner_with_and_without_javascript(
    http: AppClient, signed_in: Parties
) -> None:
    other = await make_noc_side()
    await partner_up(signed_in.msp, other, NARROW)
    await http.get("/handoffs/new")

    fieldset = await http.get("/handoffs/scope", params={"partner": other.tenant.slug})
    no_js = await http.post(
        "/handoffs/new",
        data=handoff_form(http, signed_in, partner=other.tenant.slug, action="ceiling"),
    )

    assert fieldset.status_code == 200
    assert fieldset.text.lstrip().startswith('<fieldset id="handoff-scope"')
    assert "<html" not in fieldset.text
    for response in (fieldset, no_js):
        assert checked_kinds(response.text) == {"sop"}
        assert selected(response.text, "max_sensitivity") == "confidential"
        assert "grants up to 12 h; secrets never" in response.text
    # the rest of what was typed stays
    assert no_js.status_code == 200
    assert 'value="PSA-4411"' in no_js.text
    assert f"{signed_in.msp.marker}-summary" in no_js.text
    assert selected(no_js.text, "partner") == other.tenant.slug


@pytest.mark.parametrize("url", ["/handoffs/confirm", "/handoffs"])
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param(
            {"document_kinds": ["network", "contact"]},
            "document_kinds",
            "beyond the ceiling: contact",
            id="kind-beyond-ceiling",
        ),
        pytest.param(
            {"ends_at": "2026-12-29T08:00"},
            "ends_at",
            "a grant may last at most 120 hours",
            id="end-beyond-ceiling",
        ),
        pytest.param(
            {"ends_at": "2026-12-23T17:00"},
            "ends_at",
            "the grant would end in the past",
            id="end-in-the-past",
        ),
        pytest.param(
            {"ends_at": "tomorrow"},
            "ends_at",
            "Enter a date and time, e.g. 2026-12-28 08:00.",
            id="end-not-a-time",
        ),
        pytest.param({"document_kinds": []}, "document_kinds", None, id="no-kind"),
        pytest.param({"psa_reference": " "}, "psa_reference", None, id="no-psa-reference"),
        pytest.param({"severity": "P0"}, "severity", None, id="unknown-severity"),
        pytest.param({"tags": "Not A Tag!"}, "tags", "tag 'not a tag!'", id="bad-tag"),
        pytest.param({"partner": "no-such-noc"}, "partner", None, id="unknown-partner"),
    ],
)
async def test_a_bad_handoff_shows_the_error_at_its_field_and_writes_nothing(
    http: AppClient,
    signed_in: Parties,
    url: str,
    changes: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    await http.get("/handoffs/new")
    before = await table_snapshot()

    response = await http.post(url, data=handoff_form(http, signed_in, **changes))

    assert response.status_code == 422, response.text
    assert error_ids(response.text) == [f"{field}-error"]
    shown = field_error(response.text, f"{field}-error")
    assert shown
    if message is not None:
        assert message in shown
    assert f'aria-describedby="{field}-error' in response.text
    assert f"{signed_in.msp.marker}-summary" in response.text  # what was typed is kept
    assert await table_snapshot() == before


async def test_secrets_are_refused_for_a_partner_that_never_sees_them(
    http: AppClient, signed_in: Parties
) -> None:
    other = await make_noc_side()
    await partner_up(signed_in.msp, other, NARROW)
    await http.get("/handoffs/new")
    before = await table_snapshot()

    response = await http.post(
        "/handoffs/confirm",
        data=handoff_form(
            http,
            signed_in,
            partner=other.tenant.slug,
            document_kinds=["sop"],
            max_sensitivity="secret",
            ends_at=local_field(STORY_START + timedelta(hours=10)),
        ),
    )

    assert response.status_code == 422
    assert field_error(response.text, "max_sensitivity-error") == (
        "the partnership never reveals secrets"
    )
    assert await table_snapshot() == before


# --- Confirmation and hand-off -----------------------------------------------------------


async def test_the_confirmation_lists_what_the_partner_will_see_and_writes_nothing(
    http: AppClient, signed_in: Parties
) -> None:
    msp = signed_in.msp
    await http.get("/handoffs/new")
    before = await table_snapshot()

    response = await http.post("/handoffs/confirm", data=handoff_form(http, signed_in))

    assert response.status_code == 200, response.text
    table = re.search(r'<table id="in-scope">.*?</table>', response.text, re.S)
    assert table is not None
    titles = re.findall(r'<th scope="row">([^<]+)</th>', table.group(0))
    assert sorted(html.unescape(t) for t in titles) == sorted(
        [
            "Contoso Hamburg network",
            "HH-CORE-1 switch configuration",
            "Core switch outage",
            "HH-CORE-1 admin",
        ]
    )
    credential_row = re.search(r"HH-CORE-1 admin</th>.*?</tr>", table.group(0), re.S)
    assert credential_row is not None and "break-glass only" in credential_row.group(0)
    # Contoso's board-only document stays out (the MSP never shares that tag), and Fabrikam's
    # is another client's: neither title appears, one document is counted as out of reach.
    assert f"Board room AV {msp.marker}" not in response.text
    assert f"Fabrikam office network {msp.marker}" not in response.text
    assert '<p id="out-of-scope">Not in scope: 1 other document of Contoso Ltd' in response.text
    assert "Mon 28 Dec 2026, 08:00 CET" in response.text
    assert "2026-12-28 07:00 UTC" in response.text
    assert "Wed 23 Dec 2026, 17:55 CET" in response.text
    assert 'action="/handoffs"' in response.text and 'formaction="/handoffs/new"' in response.text
    assert await table_snapshot() == before


async def test_a_narrower_scope_shows_fewer_documents(http: AppClient, signed_in: Parties) -> None:
    await http.get("/handoffs/new")

    response = await http.post(
        "/handoffs/confirm",
        data=handoff_form(http, signed_in, tags="core", max_sensitivity="confidential"),
    )

    assert response.status_code == 200, response.text
    table = re.search(r'<table id="in-scope">.*?</table>', response.text, re.S)
    assert table is not None
    assert re.findall(r'<th scope="row">([^<]+)</th>', table.group(0)) == [
        "Contoso Hamburg network"
    ]
    assert '<p id="out-of-scope">Not in scope: 4 other documents' in response.text


async def test_change_goes_back_to_the_form_with_the_values_kept(
    http: AppClient, signed_in: Parties
) -> None:
    await http.get("/handoffs/new")

    back = await http.post(
        "/handoffs/new",
        data=handoff_form(
            http,
            signed_in,
            document_kinds=["network"],
            tags="core",
            summary='Switch "HH-CORE-1" <b>down</b>',
        ),
    )

    assert back.status_code == 200
    assert "Switch &#34;HH-CORE-1&#34; &lt;b&gt;down&lt;/b&gt;</textarea>" in back.text
    assert checked_kinds(back.text) == {"network"}
    assert 'id="tags" name="tags" value="core"' in back.text
    assert selected(back.text, "client_id") == str(signed_in.msp.contoso)
    assert selected(back.text, "severity") == "P1"


async def test_handing_off_creates_the_grant_and_opens_its_page(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    await http.get("/handoffs/new")
    chosen = {"document_kinds": ["network", "sop"], "handback_buffer_minutes": "15"}
    confirmed = await http.post("/handoffs/confirm", data=handoff_form(http, signed_in, **chosen))
    assert confirmed.status_code == 200

    response = await http.post("/handoffs", data=handoff_form(http, signed_in, **chosen))

    assert response.status_code == 303, response.text
    grant_id = response.headers["location"].removeprefix("/grants/")
    row = await grant_row(grant_id)
    assert SHIFT_END is not None
    assert (row["tenant_id"], row["noc_tenant_id"], row["client_id"], row["status"]) == (
        msp.tenant.id,
        noc.tenant.id,
        msp.contoso,
        "active",
    )
    assert row["ends_at"] == SHIFT_END + timedelta(minutes=15)
    scope = row["scope"] if isinstance(row["scope"], dict) else msgspec.json.decode(row["scope"])
    assert scope["document_kinds"] == ["network", "sop"]
    [event] = await audit_events(msp.tenant.id, "grant:created")
    assert event["context"]["grant_id"] == grant_id
    detail = await http.get(response.headers["location"])
    assert detail.status_code == 200
    assert "PSA-4411 handed to" in detail.text and "Mon 28 Dec 2026, 08:15 CET" in detail.text
    assert '<span class="status active" id="grant-state">active</span>' in detail.text
    assert "network, sop" in detail.text
    # what the confirmation listed is what the partner's bundle holds
    token = bearer(await grant_token(http, noc, grant_id))
    bundle = await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=token)
    assert bundle.status_code == 200, bundle.text
    listed = re.search(r'<table id="in-scope">.*?</table>', confirmed.text, re.S)
    assert listed is not None
    assert sorted(re.findall(r'<th scope="row">([^<]+)</th>', listed.group(0))) == sorted(
        doc["title"] for doc in bundle.json()["documents"]
    )


# --- The live list, revoke, complete ---------------------------------------------------------


async def test_revoking_needs_a_reason_and_then_ends_the_partners_access(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    assert (await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=token)).is_success
    await http.get("/grants")
    before = await table_snapshot()

    refused = await post(http, f"/grants/{grant_id}/revoke", reason="  ", next="list")

    assert refused.status_code == 422
    assert field_error(refused.text, f"reason-{grant_id}-error") == (
        "Give a reason: the partner and the auditors will see it."
    )
    assert f'aria-describedby="reason-{grant_id}-error"' in refused.text
    assert (await grant_row(grant_id))["status"] == "active"
    assert await table_snapshot() == before

    revoked = await post(
        http, f"/grants/{grant_id}/revoke", reason="wrong partner picked", next="list"
    )

    assert (revoked.status_code, revoked.headers["location"]) == (303, "/grants")
    row = await grant_row(grant_id)
    assert (row["status"], row["end_reason"]) == ("revoked", "wrong partner picked")
    dead = await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=token)
    assert dead.status_code == 401
    [event] = await audit_events(msp.tenant.id, "grant:revoked")
    assert event["actor_id"] == str(msp.admin.user_id)
    page = await http.get("/grants")
    assert "PSA-4411: access for" in page.text and "revoked." in page.text


async def test_complete_ends_the_grant_from_its_page(http: AppClient, signed_in: Parties) -> None:
    grant_id = (await hand_off(http, signed_in.msp, signed_in.noc))["grant"]["id"]
    await http.get(f"/grants/{grant_id}")

    done = await post(http, f"/grants/{grant_id}/complete", next="detail")

    assert (done.status_code, done.headers["location"]) == (303, f"/grants/{grant_id}")
    assert (await grant_row(grant_id))["status"] == "completed"
    page = await http.get(f"/grants/{grant_id}")
    assert '<span class="status completed" id="grant-state">completed</span>' in page.text
    assert f'action="/grants/{grant_id}/revoke"' not in page.text
    again = await post(http, f"/grants/{grant_id}/complete", next="detail")
    assert again.status_code == 303
    assert "the grant is completed already" in (await http.get(f"/grants/{grant_id}")).text


async def test_the_live_list_shows_reads_break_glass_and_a_revoke_done_elsewhere(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    page = await http.get("/grants")
    assert 'hx-get="/grants/live" hx-trigger="every 3s" hx-swap="outerHTML"' in page.text
    assert f'data-ends-at="{SHIFT_END.isoformat() if SHIFT_END else ""}"' in page.text
    assert "break-glass read" not in page.text

    network = await http.get(read_url(grant_id, msp.documents["network"]), headers=token)
    secret = await http.get(
        read_url(grant_id, msp.documents["credential"]),
        headers={**token, "X-Break-Glass-Reason": REASON},
    )
    assert network.status_code == secret.status_code == 200
    live = await http.get("/grants/live")

    assert live.status_code == 200
    assert live.text.startswith('<div id="grants-live"') and "<html" not in live.text
    row = re.search(rf'<tr id="grant-{grant_id}">.*?</tr>', live.text, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
    assert cells[4].strip().startswith("2")  # two documents read
    assert '<p class="alert">1 break-glass read:' in row.group(0)

    revoked = await http.post(
        f"/api/v1/grants/{grant_id}/revoke",
        json={"reason": "incident closed by phone"},
        headers=msp.headers,
    )
    assert revoked.status_code == 200
    after = await http.get("/grants/live")

    ended = after.text.split('id="ended-heading"', 1)[1]
    assert f'<tr id="grant-{grant_id}">' in ended
    assert '<span class="status revoked">revoked</span>' in ended
    assert "incident closed by phone" in ended
    assert "1 break-glass</strong>" in ended
    live_part = after.text.split('id="ended-heading"', 1)[0]
    assert f'action="/grants/{grant_id}/revoke"' not in live_part


async def test_the_live_list_shows_a_grant_expired_without_the_worker(
    http: AppClient, signed_in: Parties, clock: ManualClock
) -> None:
    ends = STORY_START + timedelta(hours=2)
    grant_id = (await hand_off(http, signed_in.msp, signed_in.noc, ends_at=ends.isoformat()))[
        "grant"
    ]["id"]
    running = await http.get("/grants/live")
    assert f'action="/grants/{grant_id}/revoke"' in running.text
    clock.set(ends)

    after = await http.get("/grants/live")

    live_part, ended = after.text.split('id="ended-heading"', 1)
    assert f'<tr id="grant-{grant_id}">' in ended and f"grant-{grant_id}" not in live_part
    assert '<span class="status expired">expired</span>' in ended
    assert (await grant_row(grant_id))["status"] == "active"  # the worker has not run


async def test_the_live_list_keeps_ended_grants_for_a_week(
    http: AppClient, signed_in: Parties, clock: ManualClock
) -> None:
    ends = STORY_START + timedelta(hours=2)
    grant_id = (await hand_off(http, signed_in.msp, signed_in.noc, ends_at=ends.isoformat()))[
        "grant"
    ]["id"]

    clock.set(ends + timedelta(days=6, hours=23))
    assert f'<tr id="grant-{grant_id}">' in (await http.get("/grants/live")).text
    clock.set(ends + timedelta(days=7, minutes=1))
    assert f"grant-{grant_id}" not in (await http.get("/grants/live")).text


async def test_the_grant_page_shows_break_glass_reasons_and_notes_as_markdown(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    secret = await http.get(
        read_url(grant_id, msp.documents["credential"]),
        headers={**token, "X-Break-Glass-Reason": REASON},
    )
    assert secret.status_code == 200
    note = await http.post(
        f"/api/v1/partner/grants/{grant_id}/notes",
        json={"body": "Uplinks **restored** at 02:40.\n\n<script>alert(1)</script>"},
        headers=token,
    )
    assert note.status_code == 201, note.text

    page = await http.get(f"/grants/{grant_id}")
    live = await http.get(f"/grants/{grant_id}/live")

    assert page.status_code == live.status_code == 200
    for text in (page.text, live.text):
        assert "HH-CORE-1 admin" in text
        assert REASON in text
        assert "Uplinks <strong>restored</strong> at 02:40." in text
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert f"{msp.marker}-password" not in text
    assert f'hx-get="/grants/{grant_id}/live" hx-trigger="every 3s"' in live.text
    assert "<html" not in live.text


# --- Extensions ------------------------------------------------------------------------------


async def test_an_extension_is_approved_within_the_ceiling_or_declined(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    assert SHIFT_END is not None
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    wanted = SHIFT_END + timedelta(hours=3)
    url = f"/api/v1/partner/grants/{grant_id}/extension-requests"
    asked = await http.post(
        url,
        json={"reason": "vendor RMA arrives 10:00", "requested_ends_at": wanted.isoformat()},
        headers=token,
    )
    assert asked.status_code == 201, asked.text
    extension_id = asked.json()["id"]
    page = await http.get(f"/grants/{grant_id}")
    assert "vendor RMA arrives 10:00" in page.text
    assert (
        f'name="new_ends_at" type="datetime-local" hx-preserve="true" value="{local_field(wanted)}"'
        in page.text
    )
    before = await table_snapshot()

    # 120 hours from 16:55 UTC on the 23rd end at 17:55 in Berlin on the 28th.
    beyond = await post(
        http,
        f"/grants/{grant_id}/extensions/{extension_id}/approve",
        new_ends_at="2026-12-28T18:00",
    )

    assert beyond.status_code == 422
    assert field_error(beyond.text, f"new_ends_at-{extension_id}-error") == (
        "a grant may last at most 120 hours"
    )
    assert 'value="2026-12-28T18:00"' in beyond.text
    assert await table_snapshot() == before

    approved = await post(
        http,
        f"/grants/{grant_id}/extensions/{extension_id}/approve",
        new_ends_at=local_field(wanted),
    )

    assert (approved.status_code, approved.headers["location"]) == (303, f"/grants/{grant_id}")
    assert (await grant_row(grant_id))["ends_at"] == wanted
    shown = await http.get(f"/grants/{grant_id}")
    assert "Extension approved: the grant now ends Mon 28 Dec 2026, 11:00 CET." in shown.text

    second = await http.post(url, json={"reason": "and the afternoon too"}, headers=token)
    assert second.status_code == 201, second.text
    declined = await post(http, f"/grants/{grant_id}/extensions/{second.json()['id']}/decline")

    assert declined.status_code == 303
    statuses = await GrantExtension.select(GrantExtension.id, GrantExtension.status).where(
        GrantExtension.grant_id == uuid.UUID(grant_id)
    )
    assert {str(r["id"]): r["status"] for r in statuses} == {
        extension_id: "approved",
        second.json()["id"]: "declined",
    }
    assert (await grant_row(grant_id))["ends_at"] == wanted
    assert len(await audit_events(msp.tenant.id, "grant:extension_declined")) == 1


async def test_an_extension_is_decided_only_on_its_own_grants_page(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    first = (await hand_off(http, msp, noc))["grant"]["id"]
    second = (await hand_off(http, msp, noc, psa_reference="PSA-4412"))["grant"]["id"]
    token = bearer(await grant_token(http, noc, first))
    asked = await http.post(
        f"/api/v1/partner/grants/{first}/extension-requests",
        json={"reason": "need the morning too"},
        headers=token,
    )
    assert asked.status_code == 201
    await http.get("/grants")
    before = await table_snapshot()

    response = await post(http, f"/grants/{second}/extensions/{asked.json()['id']}/decline")

    assert response.status_code == 404
    assert await table_snapshot() == before


# --- Rotation --------------------------------------------------------------------------------


async def test_a_credential_revealed_under_break_glass_is_marked_rotated(
    http: AppClient, signed_in: Parties
) -> None:
    msp, noc = signed_in.msp, signed_in.noc
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    secret = await http.get(
        read_url(grant_id, msp.documents["credential"]),
        headers={**token, "X-Break-Glass-Reason": REASON},
    )
    assert secret.status_code == 200
    [item] = await RotationItem.select()

    page = await http.get("/rotation")

    assert page.status_code == 200
    assert "HH-CORE-1 admin" in page.text and "PSA-4411" in page.text
    assert REASON in page.text and f"{msp.marker}-password" not in page.text
    assert f'action="/rotation/{item["id"]}/rotated"' in page.text

    marked = await post(http, f"/rotation/{item['id']}/rotated")

    assert (marked.status_code, marked.headers["location"]) == (303, "/rotation")
    [row] = await RotationItem.select()
    assert row["rotated_by"] == msp.admin.email and row["rotated_at"] is not None
    [event] = await audit_events(msp.tenant.id, "credential:rotated")
    assert event["target_id"] == str(msp.documents["credential"])
    after = await http.get("/rotation")
    assert "Marked rotated." in after.text and "Nothing to rotate." in after.text
    everything = await http.get("/rotation", params={"show": "all"})
    assert "HH-CORE-1 admin" in everything.text and '<span class="status completed">rotated' in (
        everything.text
    )


# --- Who may see what ------------------------------------------------------------------------


PAGES = ["/handoffs/new", "/grants", "/grants/live", "/rotation", "/handoffs/scope"]


@pytest.mark.parametrize("who", ["noc admin", "msp auditor"])
async def test_people_who_may_not_hand_off_get_403(
    http: AppClient, parties: Parties, who: str
) -> None:
    grant_id = (await hand_off(http, parties.msp, parties.noc))["grant"]["id"]
    person = (
        parties.noc.admin
        if who == "noc admin"
        else await make_person(parties.msp.tenant, Role.AUDITOR)
    )
    await session_for(http, person)
    before = await table_snapshot()

    for url in [*PAGES, f"/grants/{grant_id}", f"/grants/{grant_id}/live"]:
        response = await http.get(url)
        assert response.status_code == 403, url
        assert "PSA-4411" not in response.text
    for url, form in (
        ("/handoffs/confirm", handoff_form(http, parties)),
        ("/handoffs", handoff_form(http, parties)),
        (f"/grants/{grant_id}/revoke", {"reason": "mine now"}),
        (f"/grants/{grant_id}/complete", {}),
    ):
        response = await http.post(url, data={**form, "_csrf_token": csrf_token(http)})
        assert response.status_code == 403, url
    assert await table_snapshot() == before


async def test_another_msps_grant_is_not_found(http: AppClient, parties: Parties) -> None:
    msp, noc = parties.msp, parties.noc
    grant_id = (await hand_off(http, msp, noc))["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    asked = await http.post(
        f"/api/v1/partner/grants/{grant_id}/extension-requests",
        json={"reason": "need the morning too"},
        headers=token,
    )
    assert asked.status_code == 201
    stranger = await make_msp_side(http)
    await session_for(http, stranger.admin)
    before = await table_snapshot()

    for url in (f"/grants/{grant_id}", f"/grants/{grant_id}/live"):
        response = await http.get(url)
        assert response.status_code == 404, url
        assert "PSA-4411" not in response.text
    extension = f"/grants/{grant_id}/extensions/{asked.json()['id']}"
    for url, form in (
        (f"/grants/{grant_id}/revoke", {"reason": "mine now"}),
        (f"/grants/{grant_id}/complete", {}),
        (f"{extension}/approve", {"new_ends_at": ""}),
        (f"{extension}/decline", {}),
    ):
        response = await http.post(url, data={**form, "_csrf_token": csrf_token(http)})
        assert response.status_code == 404, url
    listing = await http.get("/grants")
    assert listing.status_code == 200 and "PSA-4411" not in listing.text
    # a partner of the other MSP is not one of this MSP's: its slug is refused at the field
    confirm = await http.post(
        "/handoffs/confirm",
        data={
            **handoff_form(http, parties, client_id=str(stranger.contoso)),
            "_csrf_token": csrf_token(http),
        },
    )
    assert confirm.status_code == 422
    assert (
        field_error(confirm.text, "partner-error")
        == f"{noc.tenant.slug} is not a partner of this MSP"
    )
    assert await table_snapshot() == before


async def test_no_form_posts_without_the_csrf_token(http: AppClient, signed_in: Parties) -> None:
    grant_id = (await hand_off(http, signed_in.msp, signed_in.noc))["grant"]["id"]
    await http.get("/grants")
    before = await table_snapshot()
    form = handoff_form(http, signed_in)
    del form["_csrf_token"]

    for url, data in (
        ("/handoffs", form),
        (f"/grants/{grant_id}/revoke", {"reason": "no token"}),
    ):
        response = await http.post(url, data=data)
        assert response.status_code == 403, url
    assert await table_snapshot() == before
