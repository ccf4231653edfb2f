"""The NOC's portal pages: running grants, the incident bundle, reading and break-glass with the
password entered again, notes, extensions, and OAuth client management for NOC admins."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sharing.audit import verify_chain
from sharing.clock import ManualClock
from sharing.tables import GrantExtension, HandoffNote, RotationItem
from tenants.roles import Role
from tenants.tables import OAuthClient, OAuthCredential
from tests.helpers import (
    PASSWORD,
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    Person,
    audit_events,
    client_key,
    csrf_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    partner_up,
    request_token,
    served_at,
    session_for,
)

REASON = "PSA-4411: console login on HH-CORE-1 to restore the uplinks"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


@dataclass(frozen=True)
class Scene:
    """An MSP, its partner NOC with a signed-in technician, and one running grant."""

    msp: MspSide
    noc: NocSide
    tech: Person
    grant_id: str
    handoff_id: str

    @property
    def grant_url(self) -> str:
        return f"/noc/grants/{self.grant_id}"

    def document_url(self, role: str) -> str:
        return f"{self.grant_url}/documents/{self.msp.documents[role]}"

    @property
    def marker(self) -> str:
        return self.msp.marker


async def scene(http: AppClient, **handoff: Any) -> Scene:
    msp = await make_msp_side(http)
    noc = await make_noc_side()
    await partner_up(msp, noc)
    created = await hand_off(http, msp, noc, **handoff)
    tech = await make_person(noc.tenant, Role.TECHNICIAN)
    await session_for(http, tech)
    return Scene(msp, noc, tech, created["grant"]["id"], created["id"])


async def post_form(
    http: AppClient, url: str, data: dict[str, Any] | None = None
) -> httpx.Response:
    """A plain form POST from a page of the portal (with the CSRF field)."""
    response: httpx.Response = await http.post(
        url, data={**(data or {}), "_csrf_token": csrf_token(http)}
    )
    return response


def field_error(page: str, error_id: str) -> str | None:
    match = re.search(rf'id="{re.escape(error_id)}"[^>]*>([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def invalid(page: str, input_id: str) -> bool:
    """The input says it is invalid (for assistive technology), not only by colour."""
    match = re.search(rf'<(?:input|textarea)[^>]*id="{re.escape(input_id)}"[^>]*>', page)
    return bool(match and 'aria-invalid="true"' in match.group(0))


async def read_events(tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    return await audit_events(tenant_id, action)


async def both_chains(s: Scene, action: str) -> list[list[dict[str, Any]]]:
    return [await read_events(chain, action) for chain in (s.msp.tenant.id, s.noc.tenant.id)]


# --- My grants ---------------------------------------------------------------------------------


async def test_a_technician_sees_only_their_nocs_running_grants(http: AppClient) -> None:
    msp = await make_msp_side(http)
    ours, theirs = await make_noc_side(), await make_noc_side()
    await partner_up(msp, ours)
    await partner_up(msp, theirs)
    mine = await hand_off(http, msp, ours, psa_reference="PSA-1001")
    await hand_off(http, msp, theirs, psa_reference="PSA-2002")
    tech = await make_person(ours.tenant, Role.TECHNICIAN)
    await session_for(http, tech)

    listing = await http.get("/noc/grants")
    live = await http.get("/noc/grants/live")

    assert listing.status_code == live.status_code == 200
    for text in (listing.text, live.text):
        assert f'href="/noc/grants/{mine["grant"]["id"]}"' in text
        assert "PSA-1001" in text and "Contoso Ltd" in text and msp.tenant.name in text
        assert "PSA-2002" not in text
        ends_at = datetime.fromisoformat(mine["grant"]["ends_at"].replace("Z", "+00:00"))
        assert f'data-ends-at="{ends_at.isoformat()}"' in text
    assert 'hx-get="/noc/grants/live" hx-trigger="every 3s"' in listing.text
    assert "<html" not in live.text  # a fragment, without the frame
    assert 'href="/noc/grants"' in listing.text  # the menu leads here


async def test_a_revoked_grant_drops_out_of_the_polled_list(http: AppClient) -> None:
    s = await scene(http)
    assert "PSA-4411" in (await http.get("/noc/grants/live")).text

    revoked = await http.post(
        f"/api/v1/grants/{s.grant_id}/revoke",
        json={"reason": "incident closed by phone"},
        headers=s.msp.headers,
    )
    assert revoked.status_code == 200, revoked.text

    live = await http.get("/noc/grants/live")
    assert live.status_code == 200
    assert "PSA-4411" not in live.text
    assert "No running grants" in live.text


# --- The incident bundle and reading -----------------------------------------------------------


async def test_the_grant_page_shows_the_bundle_without_any_body(http: AppClient) -> None:
    s = await scene(http)

    page = await http.get(s.grant_url)

    assert page.status_code == 200, page.text
    text = page.text
    assert f"Core switch down at Contoso Hamburg {s.marker}-summary" in text
    assert "PSA-4411" in text and "P1" in text and "CONTOSO" in text
    for title in (
        "Contoso Hamburg network",
        "HH-CORE-1 switch configuration",
        "Core switch outage",
    ):
        assert title in text
    assert "HH-CORE-1 admin" in text and "break-glass" in text
    # the secret is offered behind the break-glass form only, never as a plain read button
    credential = str(s.msp.documents["credential"])
    assert f'action="{s.grant_url}/documents/{credential}/break-glass"' in text
    assert f'action="{s.grant_url}/documents/{credential}"' not in text
    # no body, no password; other clients' and never-shared documents are not even named
    assert s.marker not in text.replace(f"{s.marker}-summary", "")
    assert "Fabrikam" not in text and "Board room" not in text
    assert f'hx-get="{s.grant_url}/live" hx-trigger="every 3s"' in text
    for events in await both_chains(s, "grant:bundle_read"):
        [event] = events
        assert (event["outcome"], event["actor_id"]) == ("success", str(s.tech.user_id))


async def test_a_technician_reads_a_standard_document_on_the_record_of_both(
    http: AppClient,
) -> None:
    s = await scene(http)

    page = await post_form(http, s.document_url("sop"))

    assert page.status_code == 200, page.text
    assert "Core switch outage" in page.text
    assert f"check power {s.marker}-sop" in page.text
    assert "<ol>" in page.text  # Markdown, rendered
    assert page.headers["cache-control"] == "no-store"
    for chain, events in zip(
        (s.msp.tenant.id, s.noc.tenant.id),
        await both_chains(s, "document:partner_read"),
        strict=True,
    ):
        [event] = events
        assert event["target_id"] == str(s.msp.documents["sop"])
        assert (event["outcome"], event["severity"]) == ("success", "info")
        assert (event["actor_type"], event["actor_label"]) == ("user", s.tech.email)
        assert (await verify_chain(chain)).ok


async def test_reading_a_secret_without_breaking_glass_is_refused_with_the_reasons(
    http: AppClient,
) -> None:
    s = await scene(http)

    page = await post_form(http, s.document_url("credential"))

    assert page.status_code == 403
    assert "Read refused" in page.text and "break_glass_required" in page.text
    assert f"{s.marker}-password" not in page.text
    assert f'href="{s.document_url("credential")}/break-glass"' in page.text
    for events in await both_chains(s, "document:read_denied"):
        [event] = events
        assert "break_glass_required" in event["reason"]


async def test_break_glass_without_a_reason_is_refused_next_to_the_field(
    http: AppClient,
) -> None:
    s = await scene(http)
    url = f"{s.document_url('credential')}/break-glass"

    page = await post_form(http, url, {"reason": "   ", "password": PASSWORD})

    assert page.status_code == 422
    assert "reason" in (field_error(page.text, "break-glass-reason-error") or "")
    assert invalid(page.text, "break-glass-reason")
    assert f"{s.marker}-password" not in page.text
    assert PASSWORD not in page.text  # a password is never sent back
    too_long = await post_form(http, url, {"reason": "x" * 501, "password": PASSWORD})
    assert too_long.status_code == 422
    assert "500" in (field_error(too_long.text, "break-glass-reason-error") or "")
    assert await both_chains(s, "document:break_glass") == [[], []]
    assert await RotationItem.count() == 0


async def test_break_glass_asks_for_the_password_again(http: AppClient) -> None:
    s = await scene(http)
    url = f"{s.document_url('credential')}/break-glass"
    form = await http.get(url)
    assert form.status_code == 200
    assert 'name="password"' in form.text and 'name="reason"' in form.text

    page = await post_form(http, url, {"reason": REASON})

    assert page.status_code == 422
    assert "password" in (field_error(page.text, "break-glass-password-error") or "")
    assert invalid(page.text, "break-glass-password")
    assert REASON in page.text  # the reason typed is kept
    assert f"{s.marker}-password" not in page.text
    assert await both_chains(s, "document:break_glass") == [[], []]


async def test_a_wrong_password_reveals_nothing_and_is_audited(http: AppClient) -> None:
    s = await scene(http)
    url = f"{s.document_url('credential')}/break-glass"

    page = await post_form(http, url, {"reason": REASON, "password": "not my password at all"})

    assert page.status_code == 422
    assert "wrong" in (field_error(page.text, "break-glass-password-error") or "")
    assert f"{s.marker}-password" not in page.text
    assert await both_chains(s, "document:break_glass") == [[], []]
    assert await RotationItem.count() == 0
    for events in await both_chains(s, "document:read_denied"):
        [event] = events
        assert event["reason"].startswith("reauthentication_failed")
        assert event["target_id"] == str(s.msp.documents["credential"])
        assert event["actor_id"] == str(s.tech.user_id)
    # still asked: a wrong password does not count as entered again
    assert 'name="password"' in (await http.get(url)).text


async def test_wrong_passwords_are_throttled(http: AppClient) -> None:
    s = await scene(http)
    url = f"{s.document_url('credential')}/break-glass"
    limit = http.app.state.settings.login_max_failures
    for _ in range(limit):
        wrong = await post_form(http, url, {"reason": REASON, "password": "guess guess guess"})
        assert wrong.status_code == 422

    right = await post_form(http, url, {"reason": REASON, "password": PASSWORD})

    assert right.status_code == 429
    assert "Too many" in (field_error(right.text, "break-glass-password-error") or "")
    assert f"{s.marker}-password" not in right.text


async def test_reason_and_password_reveal_the_secret_as_break_glass(http: AppClient) -> None:
    s = await scene(http)
    url = f"{s.document_url('credential')}/break-glass"

    page = await post_form(http, url, {"reason": REASON, "password": PASSWORD})

    assert page.status_code == 200, page.text
    assert f"<code>{s.marker}-password</code>" in page.text
    assert "<code>admin</code>" in page.text
    assert "Break-glass" in page.text
    assert page.headers["cache-control"] == "no-store"
    for chain, events in zip(
        (s.msp.tenant.id, s.noc.tenant.id),
        await both_chains(s, "document:break_glass"),
        strict=True,
    ):
        [event] = events
        assert (event["severity"], event["reason"]) == ("high", REASON)
        assert event["actor_id"] == str(s.tech.user_id)
        assert (await verify_chain(chain)).ok
    [item] = await RotationItem.select()
    assert (item["revealed_by"], item["reason"]) == (s.tech.email, REASON)
    # the password counts for a few minutes: the next secret asks only for a reason
    again = await http.get(url)
    assert 'name="reason"' in again.text and 'name="password"' not in again.text
    second = await post_form(http, url, {"reason": REASON + " (second look)"})
    assert second.status_code == 200 and f"{s.marker}-password" in second.text


# --- When access ends --------------------------------------------------------------------------


async def test_after_revocation_the_page_shows_access_ended_and_reads_are_refused(
    http: AppClient,
) -> None:
    s = await scene(http)
    assert "Read</button>" in (await http.get(s.grant_url)).text

    revoked = await http.post(
        f"/api/v1/grants/{s.grant_id}/revoke",
        json={"reason": "incident closed by phone"},
        headers=s.msp.headers,
    )
    assert revoked.status_code == 200, revoked.text

    live = await http.get(f"{s.grant_url}/live")
    assert live.status_code == 200
    assert "Access ended (revoked)" in live.text
    assert "hx-trigger" not in live.text  # polling stops
    assert 'id="noc-access" hx-swap-oob="true"' in live.text  # read buttons go too
    page = await http.get(s.grant_url)
    assert page.status_code == 200
    assert "Access ended (revoked)" in page.text and "incident closed by phone" in page.text
    assert "Read</button>" not in page.text and "break-glass" not in page.text
    assert s.marker not in page.text
    read = await post_form(http, s.document_url("sop"))
    assert read.status_code == 403
    assert "the grant is revoked" in read.text
    assert f"{s.marker}-sop" not in read.text
    for events in await both_chains(s, "document:read_denied"):
        [event] = events
        assert "grant_not_active" in event["reason"]
        assert event["target_id"] == str(s.msp.documents["sop"])


async def test_at_the_end_of_the_shift_the_page_shows_access_expired(
    http: AppClient, clock: ManualClock
) -> None:
    s = await scene(http)
    clock.advance(timedelta(days=6))  # well past Monday 08:00, and no worker ran

    page = await http.get(s.grant_url)
    live = await http.get(f"{s.grant_url}/live")

    assert "Access ended (expired)" in page.text and "Access ended (expired)" in live.text
    assert "Read</button>" not in page.text
    read = await post_form(http, s.document_url("network"))
    assert read.status_code == 403 and "the grant has ended" in read.text


async def test_a_scheduled_grant_shows_when_access_starts_and_no_documents(
    http: AppClient, clock: ManualClock
) -> None:
    s = await scene(http, starts_at="2026-12-23T17:55:00Z")  # an hour after the hand-off

    page = await http.get(s.grant_url)

    assert page.status_code == 200
    assert "Access starts" in page.text and "the grant has not started yet" in page.text
    assert "Read</button>" not in page.text and s.marker not in page.text
    assert f'hx-get="{s.grant_url}/live?waiting=1"' in page.text
    clock.advance(timedelta(hours=1))
    live = await http.get(f"{s.grant_url}/live?waiting=1")
    assert "Access has started" in live.text
    assert "Read</button>" in (await http.get(s.grant_url)).text


# --- Who may open these pages ------------------------------------------------------------------


async def test_a_noc_auditor_may_not_read(http: AppClient) -> None:
    s = await scene(http)
    auditor = await make_person(s.noc.tenant, Role.AUDITOR)
    await session_for(http, auditor)

    for response in (
        await http.get("/noc/grants"),
        await http.get("/noc/grants/live"),
        await http.get(s.grant_url),
        await http.get(f"{s.grant_url}/live"),
        await post_form(http, s.document_url("sop")),
        await post_form(http, f"{s.document_url('credential')}/break-glass", {"reason": REASON}),
        await post_form(http, f"{s.grant_url}/notes", {"body": "hello"}),
        await http.get("/noc/clients"),
    ):
        assert response.status_code == 403, response.url
        assert s.marker not in response.text
    assert await both_chains(s, "grant:bundle_read") == [[], []]
    assert await both_chains(s, "document:partner_read") == [[], []]


async def test_another_nocs_grant_is_not_found(http: AppClient) -> None:
    s = await scene(http)
    other = await make_noc_side()
    stranger = await make_person(other.tenant, Role.TECHNICIAN)
    await session_for(http, stranger)

    for response in (
        await http.get(s.grant_url),
        await http.get(f"{s.grant_url}/live"),
        await post_form(http, s.document_url("sop")),
        await http.get(f"{s.document_url('credential')}/break-glass"),
        await post_form(
            http,
            f"{s.document_url('credential')}/break-glass",
            {"reason": REASON, "password": PASSWORD},
        ),
        await post_form(http, f"{s.grant_url}/notes", {"body": "hello"}),
        await post_form(http, f"{s.grant_url}/extension", {"reason": "more time"}),
    ):
        assert response.status_code == 404, response.url
        assert s.marker not in response.text and "PSA-4411" not in response.text
    # the MSP's chain learns nothing of the attempts; the reader's own chain has them
    assert await read_events(s.msp.tenant.id, "document:read_denied") == []
    assert len(await read_events(other.tenant.id, "document:read_denied")) == 2
    assert await RotationItem.count() == 0 and await HandoffNote.count() == 0


async def test_an_msp_user_may_not_open_noc_pages(http: AppClient) -> None:
    s = await scene(http)
    msp_tech = await make_person(s.msp.tenant, Role.TECHNICIAN)
    await session_for(http, msp_tech)

    for response in (
        await http.get("/noc/grants"),
        await http.get(s.grant_url),
        await post_form(http, s.document_url("sop")),
        await http.get("/noc/clients"),
    ):
        assert response.status_code == 403, response.url
        assert s.marker not in response.text
    await session_for(http, s.msp.admin)
    assert (await http.get("/noc/clients")).status_code == 403


# --- Notes and extensions ----------------------------------------------------------------------


async def test_a_note_is_posted_for_the_msp(http: AppClient) -> None:
    s = await scene(http)
    note = "Replaced the uplink SFP; line back at 03:05."

    posted = await post_form(http, f"{s.grant_url}/notes", {"body": note})

    assert posted.status_code == 303
    assert posted.headers["location"] == s.grant_url
    assert "Your hand-back note is with the MSP." in (await http.get(s.grant_url)).text
    seen = await http.get(f"/api/v1/handoffs/{s.handoff_id}", headers=s.msp.headers)
    assert [(n["body"], n["author"]) for n in seen.json()["notes"]] == [(note, s.tech.email)]
    for events in await both_chains(s, "notes:posted"):
        assert len(events) == 1


@pytest.mark.parametrize(
    ("body", "says"), [("   ", "Write the note"), ("x" * 20_001, "20000 characters")]
)
async def test_a_bad_note_is_refused_next_to_the_field(
    http: AppClient, body: str, says: str
) -> None:
    s = await scene(http)

    page = await post_form(http, f"{s.grant_url}/notes", {"body": body})

    assert page.status_code == 422
    assert says in (field_error(page.text, "note-body-error") or "")
    assert invalid(page.text, "note-body")
    assert await HandoffNote.count() == 0


async def test_more_time_is_asked_in_the_nocs_zone(http: AppClient) -> None:
    s = await scene(http)  # the NOC's zone is Europe/Berlin

    asked = await post_form(
        http,
        f"{s.grant_url}/extension",
        {"reason": "the carrier comes at 10:00", "requested_ends_at": "2026-12-28T10:30"},
    )

    assert asked.status_code == 303, asked.text
    [row] = await GrantExtension.select()
    assert row["reason"] == "the carrier comes at 10:00"
    assert row["requested_ends_at"].astimezone(UTC) == datetime(2026, 12, 28, 9, 30, tzinfo=UTC)
    assert row["requested_by"] == s.tech.email
    again = await post_form(http, f"{s.grant_url}/extension", {"reason": "again"})
    assert again.status_code == 409
    assert "waiting for the MSP already" in (field_error(again.text, "extension-error") or "")
    assert await GrantExtension.count() == 1


@pytest.mark.parametrize(
    ("fields", "error_id", "says"),
    [
        ({"reason": ""}, "extension-reason-error", "why"),
        ({"reason": "x" * 501}, "extension-reason-error", "500"),
        ({"reason": "ok", "requested_ends_at": "tomorrow"}, "requested-ends-at-error", "date"),
        (
            {"reason": "ok", "requested_ends_at": "2026-12-24T09:00"},
            "requested-ends-at-error",
            "later end",
        ),
    ],
)
async def test_a_bad_extension_request_is_refused_next_to_the_field(
    http: AppClient, fields: dict[str, str], error_id: str, says: str
) -> None:
    s = await scene(http)

    page = await post_form(http, f"{s.grant_url}/extension", fields)

    assert page.status_code == 422
    assert says in (field_error(page.text, error_id) or "")
    assert await GrantExtension.count() == 0


async def test_no_extension_or_note_after_expiry(http: AppClient, clock: ManualClock) -> None:
    s = await scene(http)
    clock.advance(timedelta(days=6))

    asked = await post_form(http, f"{s.grant_url}/extension", {"reason": "need more time"})
    noted = await post_form(http, f"{s.grant_url}/notes", {"body": "late note"})

    assert asked.status_code == noted.status_code == 409
    assert "Access ended (expired)" in asked.text
    assert "more time can only be asked for while it lasts" in asked.text
    assert "notes can no longer be posted" in noted.text
    assert await GrantExtension.count() == 0 and await HandoffNote.count() == 0


# --- OAuth clients -----------------------------------------------------------------------------


async def noc_admin_session(http: AppClient) -> NocSide:
    noc = await make_noc_side()
    await session_for(http, noc.admin)
    assert (await http.get("/noc/clients")).status_code == 200  # a page first: the CSRF cookie
    return noc


def issued_secret(text: str) -> list[str]:
    return re.findall(r"sgs_[A-Za-z0-9_\-]+", text)


async def test_a_client_secret_is_shown_exactly_once(http: AppClient) -> None:
    await noc_admin_session(http)

    created = await post_form(
        http,
        "/noc/clients",
        {
            "name": "night tooling",
            "auth_method": "client_secret_basic",
            "scopes": ["partner:read", "partner:notes"],
            "networks": "127.0.0.0/8\n198.51.100.7",
        },
    )

    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    [secret] = issued_secret(created.text)
    [client_id] = re.findall(r"sgc_[A-Za-z0-9_\-]+", created.text)[:1]
    [row] = (
        await OAuthClient.select().where(OAuthClient.client_id == client_id).output(load_json=True)
    )
    assert sorted(row["scopes"]) == ["partner:notes", "partner:read"]
    assert row["networks"] == ["127.0.0.0/8", "198.51.100.7/32"]
    for later in (await http.get("/noc/clients"), await http.get(f"/noc/clients/{row['id']}")):
        assert later.status_code == 200
        assert secret not in later.text and issued_secret(later.text) == []
        assert client_id in later.text
    # the secret shown is the real one: the client gets a token (the test calls from 127.0.0.1)
    assert (await request_token(http, client_id, secret)).status_code == 200


async def test_rotating_a_secret_shows_the_new_one_once_and_the_old_stops(
    http: AppClient,
) -> None:
    noc = await noc_admin_session(http)
    created = await post_form(
        http,
        "/noc/clients",
        {"name": "tooling", "auth_method": "client_secret_basic", "scopes": "partner:read"},
    )
    [old] = issued_secret(created.text)
    [client_id] = re.findall(r"sgc_[A-Za-z0-9_\-]+", created.text)[:1]
    [row] = await OAuthClient.select(OAuthClient.id).where(OAuthClient.client_id == client_id)
    assert (await request_token(http, client_id, old)).status_code == 200

    rotated = await post_form(http, f"/noc/clients/{row['id']}/rotate", {"overlap_hours": "0"})

    assert rotated.status_code == 200, rotated.text
    [new] = issued_secret(rotated.text)
    assert new != old
    assert (await request_token(http, client_id, new)).status_code == 200
    assert (await request_token(http, client_id, old)).status_code == 401
    assert new not in (await http.get(f"/noc/clients/{row['id']}")).text
    [event] = await audit_events(noc.tenant.id, "oauth_client:credentials_rotated")
    assert event["context"]["overlap_hours"] == "0"


async def test_a_key_client_is_registered_and_rotated_with_public_keys_only(
    http: AppClient,
) -> None:
    noc = await noc_admin_session(http)
    first, second = client_key("k1"), client_key("k2")

    created = await post_form(
        http,
        "/noc/clients",
        {
            "name": "automation",
            "auth_method": "private_key_jwt",
            "scopes": "partner:read",
            "jwks": json.dumps({"keys": [first.as_dict(private=False)]}),
        },
    )

    assert created.status_code == 201, created.text
    assert issued_secret(created.text) == [] and "Client secret" not in created.text
    [row] = await OAuthClient.select(OAuthClient.id).where(
        (OAuthClient.tenant_id == noc.tenant.id) & (OAuthClient.name == "automation")
    )
    url = f"/noc/clients/{row['id']}/rotate"
    missing = await post_form(http, url, {"overlap_hours": "1"})
    assert missing.status_code == 422
    assert "jwks" in (field_error(missing.text, "rotate-jwks-error") or "")
    keys = json.dumps({"keys": [second.as_dict(private=False)]})
    rotated = await post_form(http, url, {"overlap_hours": "1", "jwks": keys})
    assert rotated.status_code == 200, rotated.text
    assert await OAuthCredential.count().where(OAuthCredential.oauth_client_id == row["id"]) == 2


async def test_disabling_and_enabling_a_client(http: AppClient) -> None:
    await noc_admin_session(http)
    created = await post_form(
        http,
        "/noc/clients",
        {"name": "tooling", "auth_method": "client_secret_basic", "scopes": "partner:read"},
    )
    [secret] = issued_secret(created.text)
    [client_id] = re.findall(r"sgc_[A-Za-z0-9_\-]+", created.text)[:1]
    [row] = await OAuthClient.select(OAuthClient.id).where(OAuthClient.client_id == client_id)
    page = await http.get(f"/noc/clients/{row['id']}")
    assert 'data-confirm="Disable tooling?' in page.text

    disabled = await post_form(http, f"/noc/clients/{row['id']}/disable")

    assert disabled.status_code == 303
    assert disabled.headers["location"] == f"/noc/clients/{row['id']}"
    shown = await http.get(f"/noc/clients/{row['id']}")
    assert "tooling is disabled" in shown.text and ">disabled<" in shown.text
    assert (await request_token(http, client_id, secret)).status_code != 200
    twice = await post_form(http, f"/noc/clients/{row['id']}/disable")
    assert twice.status_code == 303
    assert "disabled already" in (await http.get(f"/noc/clients/{row['id']}")).text
    enabled = await post_form(http, f"/noc/clients/{row['id']}/enable")
    assert enabled.status_code == 303
    assert (await request_token(http, client_id, secret)).status_code == 200


@pytest.mark.parametrize(
    ("fields", "error_id", "says"),
    [
        ({"name": "", "scopes": "partner:read"}, "name-error", "name"),
        ({"name": "x" * 101, "scopes": "partner:read"}, "name-error", "100"),
        ({"name": "t"}, "scopes-error", "scope"),
        ({"name": "t", "scopes": "admin:all"}, "scopes-error", "scopes"),
        (
            {"name": "t", "scopes": "partner:read", "networks": "10.0.0/33"},
            "networks-error",
            "CIDR",
        ),
        (
            {"name": "t", "scopes": "partner:read", "auth_method": "none"},
            "auth-method-error",
            "Choose",
        ),
        (
            {"name": "t", "scopes": "partner:read", "auth_method": "private_key_jwt"},
            "jwks-error",
            "jwks",
        ),
        (
            {"name": "t", "scopes": "partner:read", "auth_method": "private_key_jwt", "jwks": "{"},
            "jwks-error",
            "JSON",
        ),
        (
            {
                "name": "t",
                "scopes": "partner:read",
                "auth_method": "private_key_jwt",
                "jwks": '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]}',
            },
            "jwks-error",
            "public keys only",
        ),
        (
            {"name": "t", "scopes": "partner:read", "jwks": '{"keys": []}'},
            "jwks-error",
            "no keys",
        ),
    ],
)
async def test_bad_client_registrations_are_refused_next_to_the_field(
    http: AppClient, fields: dict[str, str], error_id: str, says: str
) -> None:
    await noc_admin_session(http)
    before = (await OAuthClient.count(), await OAuthCredential.count())

    page = await post_form(http, "/noc/clients", {"auth_method": "client_secret_basic", **fields})

    assert page.status_code == 422, page.text
    assert says in (field_error(page.text, error_id) or ""), page.text
    assert issued_secret(page.text) == []
    assert fields["name"][:50] in page.text  # the input is kept
    assert (await OAuthClient.count(), await OAuthCredential.count()) == before


@pytest.mark.parametrize(
    ("overlap", "says"), [("soon", "whole number"), ("169", "0 to 168"), ("-1", "0 to 168")]
)
async def test_a_bad_rotation_is_refused_next_to_the_field(
    http: AppClient, overlap: str, says: str
) -> None:
    noc = await noc_admin_session(http)
    await post_form(
        http,
        "/noc/clients",
        {"name": "tooling", "auth_method": "client_secret_basic", "scopes": "partner:read"},
    )
    [row] = await OAuthClient.select(OAuthClient.id).where(
        (OAuthClient.tenant_id == noc.tenant.id) & (OAuthClient.name == "tooling")
    )
    before = await OAuthCredential.count()

    page = await post_form(http, f"/noc/clients/{row['id']}/rotate", {"overlap_hours": overlap})

    assert page.status_code == 422
    assert says in (field_error(page.text, "overlap-error") or "")
    assert issued_secret(page.text) == []
    assert await OAuthCredential.count() == before


async def test_a_technician_and_another_noc_may_not_manage_clients(http: AppClient) -> None:
    noc = await noc_admin_session(http)
    await post_form(
        http,
        "/noc/clients",
        {"name": "tooling", "auth_method": "client_secret_basic", "scopes": "partner:read"},
    )
    [row] = await OAuthClient.select(OAuthClient.id).where(
        (OAuthClient.tenant_id == noc.tenant.id) & (OAuthClient.name == "tooling")
    )
    tech = await make_person(noc.tenant, Role.TECHNICIAN)
    await session_for(http, tech)
    assert (await http.get("/noc/clients")).status_code == 403
    assert (await post_form(http, f"/noc/clients/{row['id']}/rotate")).status_code == 403

    await noc_admin_session(http)  # another NOC's admin
    for response in (
        await http.get(f"/noc/clients/{row['id']}"),
        await post_form(http, f"/noc/clients/{row['id']}/rotate", {"overlap_hours": "0"}),
        await post_form(http, f"/noc/clients/{row['id']}/disable"),
    ):
        assert response.status_code == 404, response.url
        assert issued_secret(response.text) == []
