"""The auditor's pages: the audit log with its filters and pages, the exports under a portal
session, the chain's verification, and the timeline of a grant from either side's chain."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from piccolo.engine.postgres import PostgresEngine

from sharing import checkpoints
from sharing.audit import AuditAction, record, verify_chain
from sharing.audit_export import verify_export
from sharing.audit_search import AuditQuery, search
from sharing.clock import DatabaseClock
from sharing.tables import AuditEvent
from tenants.roles import Actor, Role
from tests.helpers import (
    AppClient,
    MspSide,
    NocSide,
    Person,
    audit_events,
    bearer,
    csrf_token,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    make_tenant,
    partner_up,
    served_at,
    session_for,
)

BREAK_GLASS_REASON = "PSA-4411: console login <script>alert(1)</script> & uplinks"
BERLIN = ZoneInfo("Europe/Berlin")
READS = ("grant:bundle_read", "document:partner_read")
MARK = re.compile(r'<g class="mark (read|denied|break-glass)">')


@pytest.fixture
async def http(settings, db) -> AsyncIterator[AppClient]:
    # The real clock: audit events are stamped with it, so the grant window must follow it too.
    async with served_at(settings, DatabaseClock()) as client:
        yield client


@dataclass
class Story:
    http: AppClient
    msp: MspSide
    noc: NocSide
    grant: str
    starts_at: datetime
    msp_auditor: Person
    noc_auditor: Person


async def _ok(response: Any, status: int = 200) -> None:
    assert response.status_code == status, response.text


async def _hand_off(http: AppClient, msp: MspSide, noc: NocSide, **fields: Any) -> dict[str, Any]:
    ends_at = (datetime.now(UTC) + timedelta(hours=10)).isoformat()
    return await hand_off(http, msp, noc, ends_at=ends_at, **fields)


async def _story(http: AppClient) -> Story:
    """PSA-4411 handed to the NOC, whose tooling pulls the bundle, reads the network document,
    is refused the password without a reason, breaks glass with one, and is refused another
    client's document: two reads, two denials, one break-glass."""
    msp, noc = await make_msp_side(http), await make_noc_side()
    await partner_up(msp, noc)
    handoff = await _hand_off(http, msp, noc)
    grant = handoff["grant"]["id"]
    partner = bearer(await grant_token(http, noc, grant))
    base = f"/api/v1/partner/grants/{grant}"
    docs = msp.documents
    await _ok(await http.get(f"{base}/bundle", headers=partner))
    await _ok(await http.get(f"{base}/documents/{docs['network']}", headers=partner))
    credential = f"{base}/documents/{docs['credential']}"
    await _ok(await http.get(credential, headers=partner), 403)
    glass = {**partner, "X-Break-Glass-Reason": BREAK_GLASS_REASON}
    await _ok(await http.get(credential, headers=glass))
    await _ok(await http.get(f"{base}/documents/{docs['other_client']}", headers=partner), 403)
    return Story(
        http=http,
        msp=msp,
        noc=noc,
        grant=grant,
        starts_at=datetime.fromisoformat(handoff["grant"]["starts_at"]),
        msp_auditor=await make_person(msp.tenant, Role.AUDITOR),
        noc_auditor=await make_person(noc.tenant, Role.AUDITOR),
    )


@pytest.fixture
async def story(http) -> Story:
    return await _story(http)


def marks(page: str) -> dict[str, int]:
    found = MARK.findall(page)
    return {kind: found.count(kind) for kind in ("read", "denied", "break-glass")}


async def grant_read_counts(tenant_id: uuid.UUID, grant: str) -> dict[str, int]:
    """The reads of the grant in the tenant's chain, by the chart's kinds: the truth to compare
    the chart with."""

    async def count(*actions: str) -> int:
        rows = [row for action in actions for row in await audit_events(tenant_id, action)]
        return sum(1 for row in rows if row["context"].get("grant_id") == grant)

    return {
        "read": await count(*READS),
        "denied": await count("document:read_denied"),
        "break-glass": await count("document:break_glass"),
    }


def seqs(page: str) -> list[int]:
    """The sequence numbers of the events listed on a log page, in order."""
    return [int(n) for n in re.findall(r'<span class="muted">#(\d+)</span>', page)]


def get_form(page: str, form_id: str) -> tuple[str, list[tuple[str, str]]]:
    """A GET form's action and hidden fields, as a browser would submit them."""
    match = re.search(
        rf'<form method="get" action="([^"]+)"[^>]*id="{form_id}">(.*?)</form>', page, re.S
    )
    assert match, f"no form {form_id}"
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2))
    return match.group(1), [(name, html.unescape(value)) for name, value in fields]


def field_error(page: str, name: str) -> str | None:
    match = re.search(rf'<p class="error"[^>]*id="{name}-error">([^<]*)</p>', page)
    return html.unescape(match.group(1)) if match else None


# --- The timeline ------------------------------------------------------------------------------


async def test_the_msp_auditor_sees_each_read_of_the_grant_marked_on_its_window(story) -> None:
    await session_for(story.http, story.msp_auditor)

    response = await story.http.get(f"/audit/grants/{story.grant}")

    assert response.status_code == 200, response.text
    page = response.text
    expected = await grant_read_counts(story.msp.tenant.id, story.grant)
    assert expected == {"read": 2, "denied": 2, "break-glass": 1}
    assert marks(page) == expected
    assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in page
    assert 'aria-labelledby="timeline-chart-title timeline-chart-desc"' in page
    assert '<title id="timeline-chart-title">' in page and '<desc id="timeline-chart-desc">' in page
    assert "5 reads: 2 allowed, 2 denied, 1 break-glass." in page
    assert "5 in all: 2 allowed, 2 denied, 1 break-glass" in page
    assert ">break-glass</text>" in page  # the break-glass mark is labelled
    assert '<rect class="grant-window"' in page
    opens = story.starts_at.astimezone(BERLIN)
    assert f">opens {opens:%H:%M}</text>" in page
    assert 'class="grant-end"' not in page  # still running: no early end
    assert '<line class="now"' in page
    # The table lists the same reads; the stated reason is shown, as text.
    table = page.split('id="timeline-table"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + sum(expected.values())
    assert html.escape(BREAK_GLASS_REASON) in table
    assert "<script>alert(1)" not in page
    assert "Printable incident report" in page


async def test_the_noc_auditor_sees_the_same_grant_from_the_partner_chain(story) -> None:
    await session_for(story.http, story.noc_auditor)

    response = await story.http.get(f"/audit/grants/{story.grant}")

    assert response.status_code == 200, response.text
    expected = await grant_read_counts(story.noc.tenant.id, story.grant)
    assert expected == {"read": 2, "denied": 2, "break-glass": 1}
    assert marks(response.text) == expected
    assert "the partner NOC" in response.text
    assert story.noc.tenant.name in response.text
    assert "Printable incident report" not in response.text  # the report is the MSP's


async def test_a_revoked_grant_is_shaded_to_its_end_and_the_end_is_marked(story) -> None:
    revoked = await story.http.post(
        f"/api/v1/grants/{story.grant}/revoke",
        json={"reason": "incident closed by phone"},
        headers=story.msp.headers,
    )
    assert revoked.status_code == 200, revoked.text
    ended = datetime.fromisoformat(revoked.json()["ended_at"]).astimezone(BERLIN)
    await session_for(story.http, story.msp_auditor)

    page = (await story.http.get(f"/audit/grants/{story.grant}")).text

    assert 'class="grant-end"' in page
    assert f"revoked {ended:%H:%M}</text>" in page
    assert '<line class="now"' not in page
    assert "incident closed by phone" in page
    history = page.split('id="history-table"', 1)[1]
    assert "grant:revoked" in history


async def test_a_grant_of_another_tenant_is_not_found(story, http) -> None:
    other_noc = await make_noc_side()
    await partner_up(story.msp, other_noc)
    theirs = (await _hand_off(http, story.msp, other_noc, psa_reference="PSA-4413"))["grant"]
    stranger = await make_person(await make_tenant("msp"), Role.AUDITOR)

    await session_for(http, story.noc_auditor)
    refused = await http.get(f"/audit/grants/{theirs['id']}")
    assert refused.status_code == 404
    assert "PSA-4413" not in refused.text and other_noc.tenant.name not in refused.text
    assert (await http.get(f"/audit/grants/{uuid.uuid4()}")).status_code == 404
    assert (await http.get("/audit/grants/not-a-grant")).status_code == 404
    await session_for(http, stranger)
    assert (await http.get(f"/audit/grants/{story.grant}")).status_code == 404
    # The MSP that handed it off sees it.
    await session_for(http, story.msp_auditor)
    assert (await http.get(f"/audit/grants/{theirs['id']}")).status_code == 200


async def test_a_technician_may_not_open_the_audit_pages(story) -> None:
    technician = await make_person(story.msp.tenant, Role.TECHNICIAN)
    await session_for(story.http, technician)

    assert (await story.http.get("/audit")).status_code == 403
    assert (await story.http.get(f"/audit/grants/{story.grant}")).status_code == 403
    verify = await story.http.post("/audit/verify", data={"_csrf_token": csrf_token(story.http)})
    assert verify.status_code == 403
    export = await story.http.get("/api/v1/audit/events.csv")
    assert export.status_code == 403


async def test_signed_out_the_audit_log_leads_to_the_sign_in_page(http) -> None:
    response = await http.get("/audit")

    assert (response.status_code, response.headers["location"]) == (302, "/login")


# --- The log and its filters ---------------------------------------------------------------------


async def test_the_log_lists_the_tenants_chain_newest_first_with_links_to_timelines(
    story,
) -> None:
    await session_for(story.http, story.msp_auditor)

    page = (await story.http.get("/audit")).text

    api = await search(story.msp_auditor.actor, AuditQuery(), limit=50)
    assert seqs(page) == [event.seq for event in api.events]
    assert seqs(page) == sorted(seqs(page), reverse=True)
    assert f'href="/audit/grants/{story.grant}"' in page
    assert "Verify now" in page


@pytest.mark.parametrize(
    "filters",
    [
        {"grant_id": "GRANT"},
        {"action": "document:break_glass"},
        {"action": ["document:read_denied", "document:break_glass"]},
        {"outcome": "denied"},
        {"severity": "high"},
        {"psa_reference": "PSA-4411", "order": "asc"},
        {"actor": "NOC_CLIENT", "outcome": "success"},
        {"partner": "NOC_SLUG", "action": "grant:created"},
    ],
)
async def test_each_filter_narrows_the_log_as_the_api_does(story, filters) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        names = {"GRANT": story.grant, "NOC_CLIENT": story.noc.client_id}
        return names.get(value, story.noc.tenant.slug if value == "NOC_SLUG" else value)

    params = {name: fill(value) for name, value in filters.items()}
    await session_for(story.http, story.msp_auditor)

    response = await story.http.get("/audit", params=params)

    assert response.status_code == 200, response.text
    listed = seqs(response.text)
    api = await story.http.get("/api/v1/audit/events", params=params)
    assert api.status_code == 200, api.text
    assert listed == [event["seq"] for event in api.json()["events"]]
    whole_chain = await AuditEvent.count().where(AuditEvent.tenant_id == story.msp.tenant.id)
    assert 0 < len(listed) < whole_chain


async def test_a_time_range_in_the_tenants_zone_narrows_the_log(story) -> None:
    await session_for(story.http, story.msp_auditor)
    future = (datetime.now(BERLIN) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    past = (datetime.now(BERLIN) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    later = await story.http.get("/audit", params={"since": future})
    everything = await story.http.get("/audit", params={"since": past, "until": future})

    assert later.status_code == everything.status_code == 200
    assert seqs(later.text) == [] and "No event matches." in later.text
    assert seqs(everything.text) == seqs((await story.http.get("/audit")).text)
    assert f'value="{future}"' in later.text  # the filter is shown as typed


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"grant_id": "not-an-id"}, "grant_id", "Enter a full id"),
        ({"since": "yesterday"}, "since", "Enter a date and time"),
        ({"since": "2026-12-24T10:00", "until": "2026-12-24T09:00"}, "until", "earlier than"),
        ({"outcome": "maybe"}, "outcome", "Choose an outcome"),
        ({"action": "grant:teleported"}, "action", "Choose actions from the list"),
        ({"actor": "x" * 300}, "actor", "length"),
        ({"grantid": str(uuid.uuid4())}, "form", "Unknown filter 'grantid'"),
        ({"cursor": "bogus!"}, "form", "cursor"),
    ],
)
async def test_a_bad_filter_is_shown_next_to_its_field(story, params, field, message) -> None:
    await session_for(story.http, story.msp_auditor)

    response = await story.http.get("/audit", params=params)

    assert response.status_code == 422
    error = field_error(response.text, field)
    assert error is not None and message in error, response.text
    if field != "form":
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in response.text or (
            field == "action" and 'aria-invalid="true"' in response.text
        )
    assert seqs(response.text) == []


async def test_paging_walks_the_whole_chain_once_newest_first(story) -> None:
    for n in range(60):  # more events than a page holds
        await record(
            story.msp.tenant.id, AuditAction.RULES_CHANGED, actor=Actor.system(f"filler-{n}")
        )
    await session_for(story.http, story.msp_auditor)

    listed: list[int] = []
    link: str | None = "/audit"
    pages = 0
    while link:
        page = (await story.http.get(html.unescape(link))).text
        listed += seqs(page)
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        link = found.group(1) if found else None
        pages += 1
        if link:
            assert "First page" in (await story.http.get(html.unescape(link))).text

    chain = [
        row["seq"]
        for row in await AuditEvent.select(AuditEvent.seq).where(
            AuditEvent.tenant_id == story.msp.tenant.id
        )
    ]
    assert pages >= 2
    assert listed == sorted(chain, reverse=True)


# --- Exports -------------------------------------------------------------------------------------


async def test_the_csv_button_downloads_the_filtered_events_with_the_session(story) -> None:
    await session_for(story.http, story.msp_auditor)
    page = (await story.http.get("/audit", params={"grant_id": story.grant})).text
    action, fields = get_form(page, "export-csv")

    response = await story.http.get(action, params=fields)

    assert action == "/api/v1/audit/events.csv"
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and all(
        row["grant_id"] == story.grant or row["target_id"] == story.grant for row in rows
    )
    assert sorted(int(row["seq"]) for row in rows) == sorted(seqs(page))
    assert sum(1 for row in rows if row["action"] == "document:break_glass") == 1


async def test_the_chain_export_downloads_with_the_session_and_verifies(story) -> None:
    await session_for(story.http, story.msp_auditor)
    page = (await story.http.get("/audit")).text
    action, fields = get_form(page, "export-chain")

    response = await story.http.get(action, params=fields)

    assert action == "/api/v1/audit/export"
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    report = verify_export(response.content.splitlines(keepends=True))
    assert report.ok, report.failure
    head = (await verify_chain(story.msp.tenant.id)).verified
    assert report.events_verified == head - 1  # all but the export's own event, appended after
    [exported] = await audit_events(story.msp.tenant.id, "audit:exported")
    assert exported["actor_id"] == str(story.msp_auditor.user_id)
    # The export signed the chain's head: the status box now names that checkpoint.
    latest = await checkpoints.latest_checkpoint(story.msp.tenant.id)
    assert latest is not None
    status = (await story.http.get("/audit")).text.split('id="chain-checkpoint"', 1)[1]
    assert f"event {latest.seq}, signed" in status and str(latest.key_id) in status


async def test_a_time_range_limits_the_chain_export_to_it(story) -> None:
    await session_for(story.http, story.msp_auditor)
    since = (datetime.now(BERLIN) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = (await story.http.get("/audit", params={"since": since, "outcome": "denied"})).text
    action, fields = get_form(page, "export-chain")

    assert [name for name, _ in fields] == ["since"]
    response = await story.http.get(action, params=fields)

    assert response.status_code == 200, response.text
    assert verify_export(response.content.splitlines(keepends=True)).ok


# --- Verify now ----------------------------------------------------------------------------------


async def test_verify_now_reports_the_verified_count_and_the_page_keeps_it(story) -> None:
    await session_for(story.http, story.noc_auditor)
    page = (await story.http.get("/audit")).text
    assert "not checked in this session yet" in page

    response = await story.http.post(
        "/audit/verify",
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_token(story.http)},
    )

    assert response.status_code == 200, response.text
    assert "<html" not in response.text  # a fragment for htmx
    expected = await verify_chain(story.noc.tenant.id)
    assert expected.ok
    assert f"verified {expected.verified} events" in response.text
    again = (await story.http.get("/audit")).text
    assert f"verified {expected.verified} events" in again


async def test_verify_now_without_javascript_redirects_with_the_result(story) -> None:
    await session_for(story.http, story.msp_auditor)
    await story.http.get("/audit")

    response = await story.http.post("/audit/verify", data={"_csrf_token": csrf_token(story.http)})

    assert (response.status_code, response.headers["location"]) == (303, "/audit")
    expected = await verify_chain(story.msp.tenant.id)
    page = (await story.http.get("/audit")).text
    assert f"Verified {expected.verified} events: the chain is intact." in page


async def test_verify_now_without_the_csrf_token_is_refused(story) -> None:
    await session_for(story.http, story.msp_auditor)

    response = await story.http.post("/audit/verify", headers={"HX-Request": "true"})

    assert response.status_code == 403


async def test_verify_now_shows_the_first_break_of_a_tampered_chain(story) -> None:
    await session_for(story.http, story.msp_auditor)
    tampered = 5
    engine = AuditEvent._meta.db
    sql = (
        f"UPDATE audit_events SET reason = 'edited' "
        f"WHERE tenant_id = '{story.msp.tenant.id}' AND seq = {tampered}"
    )
    if isinstance(engine, PostgresEngine):  # past the append-only trigger, as a superuser could
        async with engine.transaction():
            await engine.run_ddl("SET LOCAL session_replication_role = replica")
            await engine.run_ddl(sql)
    else:
        await engine.run_ddl(sql)

    response = await story.http.post(
        "/audit/verify",
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_token(story.http)},
    )

    assert response.status_code == 200
    text = html.unescape(response.text)
    assert f"at event {tampered}: its contents do not match its hash" in text
    assert f"({tampered - 1} events verified before it)" in text
