"""The auditors' API: search pages, the CSV, and the incident report, through HTTP. Auditors read
the log of their own tenant and nothing else: no content, no other tenant, no change."""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from markupsafe import escape
from piccolo.engine.postgres import PostgresEngine

from sharing.audit import GENESIS_HASH, AuditAction, Outcome, Severity, verify_chain
from sharing.audit_search import CSV_COLUMNS, AuditQuery, Order, search
from sharing.clock import ManualClock
from sharing.tables import AuditEvent, GrantExtension, RotationItem
from tenants.roles import Role
from tests.audit_scene import (
    EXTENSION_REASON,
    FORMULA_EMAIL,
    HOSTILE_REASON,
    NOTE,
    REASON,
    AuditScene,
    build_scene,
)
from tests.helpers import (
    BUSINESS_HOURS,
    STORY_START,
    AppClient,
    Person,
    api_token,
    bearer,
    csrf_header,
    handoff_body,
    make_person,
    make_tenant,
    served_at,
    session_for,
    table_snapshot,
)

EVENTS = "/api/v1/audit/events"
CSV = "/api/v1/audit/events.csv"


@pytest.fixture
async def scene(settings, db) -> AsyncIterator[AuditScene]:
    async with served_at(settings, ManualClock(STORY_START)) as http:
        yield await build_scene(http)


def _report(scene: AuditScene) -> str:
    return f"/api/v1/handoffs/{scene.handoff['id']}/report"


async def _signed_in(scene: AuditScene, person: Person) -> dict[str, str]:
    """Sign `person` in on the scene's client; the headers a session write needs."""
    await session_for(scene.http, person)
    return csrf_header(scene.http)


async def _walk(http: httpx.AsyncClient, params: dict[str, Any], **kwargs: Any) -> list[Any]:
    events: list[Any] = []
    cursor = None
    while True:
        page = await http.get(
            EVENTS, params={**params, **({"cursor": cursor} if cursor else {})}, **kwargs
        )
        assert page.status_code == 200, page.text
        events += page.json()["events"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return events


def _problem_detail(response: httpx.Response, *statuses: int) -> str:
    """The problem's `detail`, once the response is a problem with one of `statuses`."""
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


# --- Search ----------------------------------------------------------------------------------


async def test_an_auditor_walks_its_chain_in_pages_with_every_field(scene) -> None:
    await _signed_in(scene, scene.msp_auditor)

    events = await _walk(scene.http, {"order": "asc", "limit": 4})

    report = await verify_chain(scene.msp.tenant.id)
    assert [e["seq"] for e in events] == list(range(1, report.verified + 1))
    assert events[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert set(events[0]) == {column._meta.name for column in AuditEvent._meta.columns}
    assert {e["tenant_id"] for e in events} == {str(scene.msp.tenant.id)}

    newest_first = await _walk(scene.http, {"limit": 5})
    assert [e["seq"] for e in newest_first] == [e["seq"] for e in reversed(events)]


async def test_an_audit_token_searches_and_other_tokens_do_not(scene) -> None:
    admin = scene.msp.admin
    audit_only = bearer(await api_token(admin, scopes=["audit"]))
    everything_else = bearer(await api_token(admin, scopes=["read", "write", "handoff"]))

    found = await scene.http.get(EVENTS, params={"grant_id": scene.grant}, headers=audit_only)
    assert found.status_code == 200, found.text
    assert found.json()["events"]
    for url in (EVENTS, CSV, _report(scene)):
        refused = await scene.http.get(url, headers=everything_else)
        assert _problem_detail(refused, 403)
        assert refused.json()["code"] == "permission_missing"


QUERIES = [
    ({"action": "document:break_glass"}, AuditQuery(action=(AuditAction.BREAK_GLASS,))),
    (
        {"action": ["document:break_glass", "document:read_denied"]},
        AuditQuery(action=(AuditAction.BREAK_GLASS, AuditAction.PARTNER_DOCUMENT_DENIED)),
    ),
    ({"outcome": "denied"}, AuditQuery(outcome=Outcome.DENIED)),
    ({"severity": "high", "order": "asc"}, AuditQuery(severity=Severity.HIGH, order=Order.ASC)),
    ({"psa_reference": "PSA-4411"}, AuditQuery(psa_reference="PSA-4411")),
    ({"actor": FORMULA_EMAIL.upper()}, AuditQuery(actor=FORMULA_EMAIL)),
]


async def test_query_parameters_filter_like_the_service(scene) -> None:
    await _signed_in(scene, scene.msp_auditor)
    for params, query in QUERIES:
        found = await _walk(scene.http, params)

        expected = (await search(scene.msp_auditor.actor, query, limit=500)).events
        assert expected, params
        assert [e["seq"] for e in found] == [e.seq for e in expected], params


async def test_grant_partner_and_time_filters_reach_the_search(scene) -> None:
    await _signed_in(scene, scene.noc_auditor)
    all_noc = await _walk(scene.http, {})
    middle = all_noc[len(all_noc) // 2]

    of_grant = await _walk(scene.http, {"grant_id": scene.grant})
    with_msp = await _walk(scene.http, {"partner": scene.msp.tenant.slug})
    since = await _walk(scene.http, {"since": middle["occurred_at"], "order": "asc"})
    until = await _walk(scene.http, {"until": middle["occurred_at"]})

    assert of_grant and {e["context"].get("grant_id") for e in of_grant} == {scene.grant}
    assert scene.other_msp_grant not in str(with_msp) and scene.grant in str(with_msp)
    assert since[0]["seq"] <= middle["seq"] and since[-1]["seq"] == all_noc[0]["seq"]
    assert {e["seq"] for e in since} | {e["seq"] for e in until} == {e["seq"] for e in all_noc}
    assert not {e["seq"] for e in since} & {e["seq"] for e in until}
    stranger = await scene.http.get(EVENTS, params={"partner": scene.other_noc.tenant.slug})
    assert stranger.status_code == 200
    assert stranger.json() == {"events": [], "next_cursor": None}
    nobody = await scene.http.get(EVENTS, params={"partner": "no-such-tenant"})
    assert nobody.json() == stranger.json()


BAD_PARAMS = [
    {"since": "2026-12-23T17:00:00"},  # no offset
    {"since": "yesterday"},
    {"until": "2026-12-23T17:00:00 01:00"},  # what an unencoded "+" arrives as
    {"since": "2026-12-24T00:00:00Z", "until": "2026-12-23T00:00:00Z"},
    {"grant_id": "not-a-uuid"},
    {"document_id": "1"},
    {"client_id": "x"},
    {"action": "document:teleported"},
    {"outcome": "maybe"},
    {"severity": "critical"},
    {"order": "sideways"},
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "many"},
    {"cursor": "not-a-cursor"},
    {"cursor": "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
    {"psa_reference": "x" * 101},
    {"actor": ""},
    {"grant": str(uuid.uuid4())},  # misspelt: refused, not ignored
    {"tenant_id": str(uuid.uuid4())},
]


@pytest.fixture
async def lone_auditor(settings, db) -> AsyncIterator[AppClient]:
    """An auditor of a tenant with nothing in it, signed in: enough to send bad searches."""
    async with served_at(settings, ManualClock(STORY_START)) as http:
        await session_for(http, await make_person(await make_tenant("msp"), Role.AUDITOR))
        yield http


@pytest.mark.parametrize("params", BAD_PARAMS, ids=lambda params: ",".join(params))
async def test_bad_filter_values_are_problems_never_a_500(lone_auditor, params) -> None:
    for url in (EVENTS, CSV) if "cursor" not in params and "limit" not in params else (EVENTS,):
        response = await lone_auditor.get(url, params=params)
        assert _problem_detail(response, 400, 422)


# --- CSV --------------------------------------------------------------------------------------


async def test_the_csv_is_the_search_for_spreadsheets(scene) -> None:
    await _signed_in(scene, scene.msp_auditor)

    response = await scene.http.get(CSV)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and ".csv" in disposition
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert not {"hash", "prev_hash", "tenant_id"} & set(rows[0])
    searched = await _walk(scene.http, {})
    assert [int(row["seq"]) for row in rows] == [e["seq"] for e in searched]
    # Formulas are text, whether they came in as a reason or as an email.
    [hostile] = [row for row in rows if HOSTILE_REASON in row["reason"]]
    assert hostile["reason"] == "'" + HOSTILE_REASON
    assert "'" + FORMULA_EMAIL in {row["actor_label"] for row in rows}
    assert not any(v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())

    narrowed = await scene.http.get(CSV, params={"grant_id": scene.grant, "order": "asc"})
    grant_rows = list(csv.DictReader(io.StringIO(narrowed.text, newline="")))
    assert grant_rows and {row["grant_id"] for row in grant_rows} == {scene.grant}
    seqs = [int(row["seq"]) for row in grant_rows]
    assert seqs == sorted(seqs)


async def test_the_csv_takes_no_paging(scene) -> None:
    await _signed_in(scene, scene.msp_auditor)
    for params in ({"limit": "10"}, {"cursor": "c2VxOjU"}):
        response = await scene.http.get(CSV, params=params)
        assert _problem_detail(response, 422)


# --- Roles: technicians, auditors ------------------------------------------------------------


@pytest.mark.parametrize("side", ["msp", "noc"])
async def test_technicians_get_403_from_the_audit_api(scene, side) -> None:
    tenant = scene.msp.tenant if side == "msp" else scene.noc.tenant
    await _signed_in(scene, await make_person(tenant, Role.TECHNICIAN))
    for url in (EVENTS, CSV, _report(scene)):
        response = await scene.http.get(url)
        assert _problem_detail(response, 403)
        assert response.json()["code"] == "permission_missing"


async def test_auditors_read_no_content(scene) -> None:
    docs, grant = scene.msp.documents, scene.grant
    partner_urls = [
        f"/api/v1/partner/grants/{grant}/bundle",
        f"/api/v1/partner/grants/{grant}/documents/{docs['network']}",
    ]
    await _signed_in(scene, scene.msp_auditor)
    for url in (
        f"/api/v1/documents/{docs['credential']}",
        f"/api/v1/documents/{docs['network']}/revisions/1",
        f"/api/v1/handoffs/{scene.handoff['id']}",
    ):
        response = await scene.http.get(url)
        assert _problem_detail(response, 403)
        assert response.json()["code"] == "no_body_access"
        assert scene.msp.marker not in response.text
    # The partner API takes partner access tokens only: a session there is not signed in.
    for url in partner_urls:
        assert _problem_detail(await scene.http.get(url), 401)

    await _signed_in(scene, scene.noc_auditor)
    for url in (
        f"/api/v1/documents/{docs['credential']}",
        f"/api/v1/handoffs/{scene.handoff['id']}",
    ):
        assert _problem_detail(await scene.http.get(url), 403, 404)
    for url in partner_urls:
        assert _problem_detail(await scene.http.get(url), 401)


async def _ids(scene: AuditScene) -> dict[str, str]:
    extension = await GrantExtension.select(GrantExtension.id).first()
    rotation = await RotationItem.select(RotationItem.id).first()
    assert extension is not None and rotation is not None
    return {
        "grant": scene.grant,
        "document": str(scene.msp.documents["network"]),
        "client": str(scene.msp.contoso),
        "extension": str(extension["id"]),
        "rotation": str(rotation["id"]),
    }


MSP_WRITES = [
    ("POST", "/api/v1/handoffs", "handoff"),
    ("POST", "/api/v1/grants/{grant}/revoke", {"reason": "audit says so"}),
    ("POST", "/api/v1/grants/{grant}/complete", None),
    ("POST", "/api/v1/extension-requests/{extension}/approve", {}),
    ("POST", "/api/v1/extension-requests/{extension}/decline", None),
    ("PUT", "/api/v1/rules", {"max_grant_hours": 1}),
    ("PUT", "/api/v1/schedule", "schedule"),
    ("POST", "/api/v1/documents", {"kind": "sop", "title": "mine", "body": "x"}),
    ("PATCH", "/api/v1/documents/{document}", {"title": "renamed"}),
    ("POST", "/api/v1/documents/{document}/archive", None),
    ("POST", "/api/v1/clients", {"name": "New", "short_code": "NEW"}),
    ("PATCH", "/api/v1/clients/{client}", {"name": "Renamed"}),
    ("POST", "/api/v1/rotation-list/{rotation}/rotated", None),
    (
        "POST",
        "/api/v1/webhooks",
        {"url": "https://hooks.example.test/x", "events": ["grant.created"]},
    ),
    ("POST", "/api/v1/tokens", {"name": "mine", "scopes": ["audit"]}),
]


async def test_an_auditor_changes_nothing(scene) -> None:
    bodies = {"handoff": handoff_body(scene.msp, scene.noc), "schedule": {"hours": BUSINESS_HOURS}}
    ids = await _ids(scene)
    headers = await _signed_in(scene, scene.msp_auditor)
    before = await table_snapshot()

    for method, path, body in MSP_WRITES:
        response = await scene.http.request(
            method,
            path.format(**ids),
            json=bodies[body] if isinstance(body, str) else body,
            headers=headers,
        )

        assert _problem_detail(response, 403)
        assert response.json()["code"] == "permission_missing", (method, path)
        assert await table_snapshot() == before, (method, path)


NOC_WRITES = [
    ("POST", "/api/v1/oauth-clients", {"name": "mine", "auth_method": "client_secret_basic"}),
    ("POST", "/api/v1/handoffs", "handoff"),
    (
        "POST",
        "/api/v1/webhooks",
        {"url": "https://hooks.example.test/x", "events": ["grant.created"]},
    ),
    ("POST", "/api/v1/partnerships/{partnership}/suspend", None),
]


async def test_a_noc_auditor_changes_nothing(scene) -> None:
    partnership = (await scene.http.get("/api/v1/partnerships", headers=scene.msp.headers)).json()
    handoff = handoff_body(scene.msp, scene.noc)
    headers = await _signed_in(scene, scene.noc_auditor)
    before = await table_snapshot()

    for method, path, body in NOC_WRITES:
        response = await scene.http.request(
            method,
            path.format(partnership=partnership[0]["id"]),
            json=handoff if body == "handoff" else body,
            headers=headers,
        )

        assert _problem_detail(response, 403)
        assert response.json()["code"] == "permission_missing", (method, path)
        assert await table_snapshot() == before, (method, path)


# --- The incident report ---------------------------------------------------------------------


async def test_the_report_shows_an_auditor_the_record_and_withholds_content(scene) -> None:
    await _signed_in(scene, scene.msp_auditor)

    response = await scene.http.get(_report(scene))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script" not in page
    chain = await verify_chain(scene.msp.tenant.id)
    assert f"chain intact: {chain.verified} events" in page
    for fact in ("PSA-4411", "Contoso Ltd", scene.noc.tenant.name, scene.noc.tenant.slug):
        assert str(escape(fact)) in page
    assert "token:test token" in page  # who handed off: the MSP's API token
    # When: the MSP's zone first, then UTC.
    assert "2026-12-23 17:55:00 CET (2026-12-23 16:55:00 UTC)" in page
    # Break-glass reads with their reasons, escaped like everything else.
    assert REASON in page
    assert str(escape(HOSTILE_REASON)) in page and "<script>alert" not in page
    assert page.count('class="break-glass-row"') == 2
    assert "document:read_denied" in page and "break_glass_required" in page
    assert str(scene.msp.documents["credential"]) in page
    # Notes and extension requests: who and when, and the request's reason.
    assert scene.noc.client_id in page and EXTENSION_REASON in page
    # Content is withheld: the summary and the note's body.
    assert page.count(">withheld: your role may read the log, not incident content<") == 2
    assert scene.msp.marker not in page and NOTE not in page


async def test_the_report_shows_content_to_whoever_may_read_it(scene) -> None:
    response = await scene.http.get(_report(scene), headers=scene.msp.headers)

    assert response.status_code == 200, response.text
    assert f"{scene.msp.marker}-summary" in response.text
    assert NOTE in response.text
    assert "withheld" not in response.text


async def test_the_report_is_not_found_for_any_other_tenant(scene) -> None:
    unknown = f"/api/v1/handoffs/{uuid.uuid4()}/report"
    other_auditor = await make_person(scene.other_msp.tenant, Role.AUDITOR)
    for person in (scene.noc_auditor, scene.noc.admin, other_auditor):
        await _signed_in(scene, person)
        found = await scene.http.get(_report(scene))
        assert _problem_detail(found, 404)
        missing = await scene.http.get(unknown)
        assert _problem_detail(missing, 404)
        assert {**found.json(), "request_id": ""} == {**missing.json(), "request_id": ""}
        assert scene.msp.marker not in found.text and "PSA-4411" not in found.text
    scene.http.cookies = httpx.Cookies()
    for token in (scene.other_msp.token, await api_token(scene.noc.admin)):
        assert _problem_detail(await scene.http.get(_report(scene), headers=bearer(token)), 404)


async def test_the_report_names_the_first_broken_link(scene) -> None:
    engine = AuditEvent._meta.db
    sql = (
        "UPDATE audit_events SET reason = 'nothing to see' "
        f"WHERE tenant_id = '{scene.msp.tenant.id}' AND seq = 5"
    )
    if isinstance(engine, PostgresEngine):
        async with engine.transaction():
            await engine.run_ddl("SET LOCAL session_replication_role = replica")
            await engine.run_ddl(sql)
    else:
        await engine.run_ddl(sql)
    await _signed_in(scene, scene.msp_auditor)

    response = await scene.http.get(_report(scene))

    assert response.status_code == 200, response.text
    assert "chain broken at event 5: its contents do not match its hash (altered)" in response.text
    assert "chain intact" not in response.text
