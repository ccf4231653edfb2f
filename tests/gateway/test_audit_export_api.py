"""`GET /api/v1/audit/export` over HTTP: who may export, that the file is always the caller's own
tenant's and verifies offline, that the export is on the record, and problems for bad queries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from policies.ceiling import Ceiling
from sharing import partnerships
from sharing.audit import AuditAction
from sharing.audit_export import FailureKind, verify_export
from sharing.partnerships import PartnershipAction
from sharing.tables import AuditEvent
from tenants.roles import Role
from tenants.service import TenantInfo
from tests.helpers import (
    AppClient,
    Person,
    api_token,
    audit_events,
    bearer,
    make_person,
    make_tenant,
    served,
    session_for,
)

EXPORT = "/api/v1/audit/export"


@pytest.fixture
async def http(settings, db) -> AsyncIterator[AppClient]:
    async with served(settings) as client:
        yield client


async def _partners() -> tuple[TenantInfo, Person, TenantInfo, Person]:
    """An MSP and a NOC with an accepted partnership: events in both chains, some about the
    other tenant."""
    msp, noc = await make_tenant("msp"), await make_tenant("noc")
    msp_admin, noc_admin = await make_person(msp), await make_person(noc)
    invited = await partnerships.invite(msp_admin.actor, noc_slug=noc.slug, ceiling=Ceiling())
    await partnerships.act(noc_admin.actor, invited.id, PartnershipAction.ACCEPT)
    return msp, msp_admin, noc, noc_admin


def _lines(response: httpx.Response) -> list[bytes]:
    return response.content.splitlines(keepends=True)


async def _stored_ids(tenant: TenantInfo) -> set[str]:
    rows = await AuditEvent.select(AuditEvent.id).where(AuditEvent.tenant_id == tenant.id)
    return {str(row["id"]) for row in rows}


async def test_an_auditor_exports_the_own_tenants_chain_and_it_verifies(
    http: AppClient,
) -> None:
    msp, _, noc, _ = await _partners()
    auditor = await make_person(msp, Role.AUDITOR)
    await session_for(http, auditor)

    response = await http.get(EXPORT)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert str(msp.id) in disposition
    lines = _lines(response)
    report = verify_export(lines)
    assert report.ok, report.failure
    assert report.tenant_id == msp.id
    events = [json.loads(line) for line in lines if b'"record"' not in line[:12]]
    assert {event["tenant_id"] for event in events} == {str(msp.id)}
    exported_ids = {event["id"] for event in events}
    assert exported_ids <= await _stored_ids(msp)
    assert not (await _stored_ids(noc)) & exported_ids
    for noc_id in await _stored_ids(noc):
        assert noc_id.encode() not in response.content
    assert report.events_verified == len(events) == len(await _stored_ids(msp)) - 1  # not its own


async def test_the_export_is_audited_outside_its_own_range(http: AppClient) -> None:
    tenant = await make_tenant()
    auditor = await make_person(tenant, Role.AUDITOR)
    await session_for(http, auditor)

    response = await http.get(EXPORT)

    assert response.status_code == 200, response.text
    header = json.loads(_lines(response)[0])
    [event] = await audit_events(tenant.id, AuditAction.AUDIT_EXPORTED.value)
    assert event["actor_label"] == auditor.email
    assert event["actor_type"] == "user"
    assert event["target_type"] == "audit_export"
    assert event["context"] == {
        "from_seq": "1",
        "to_seq": str(header["to_seq"]),
        "events": str(header["to_seq"]),
    }
    assert event["seq"] == header["to_seq"] + 1
    assert str(event["id"]).encode() not in response.content

    again = await http.get(EXPORT)
    assert str(event["id"]).encode() in again.content  # the next export holds it
    assert verify_export(_lines(again)).ok


@pytest.mark.parametrize(
    ("role", "scopes", "status"),
    [
        (Role.OWNER, None, 200),
        (Role.ADMIN, None, 200),
        (Role.AUDITOR, None, 200),
        (Role.TECHNICIAN, None, 403),
        (Role.ADMIN, ("audit",), 200),
        (Role.ADMIN, ("read", "write", "handoff"), 403),
    ],
)
async def test_who_may_export(http: AppClient, role: Role, scopes, status: int) -> None:
    tenant = await make_tenant()
    person = await make_person(tenant, role)
    headers: dict[str, str] = {}
    if scopes is None:
        await session_for(http, person)
    else:
        http.cookies = httpx.Cookies()
        headers = bearer(await api_token(person, scopes=scopes))
    before = await AuditEvent.count().where(AuditEvent.tenant_id == tenant.id)

    response = await http.get(EXPORT, headers=headers)

    assert response.status_code == status, response.text
    exported = await audit_events(tenant.id, AuditAction.AUDIT_EXPORTED.value)
    if status == 403:
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == 403
        assert "audit:read" in body["detail"]
        assert b"shiftgate-audit-export" not in response.content
        assert exported == []
        assert await AuditEvent.count().where(AuditEvent.tenant_id == tenant.id) == before
    else:
        assert verify_export(_lines(response)).ok
        assert len(exported) == 1


async def test_a_noc_tenant_exports_its_own_chain(http: AppClient) -> None:
    msp, _, noc, noc_admin = await _partners()
    headers = bearer(await api_token(noc_admin, scopes=("audit",)))

    response = await http.get(EXPORT, headers=headers)

    assert response.status_code == 200, response.text
    report = verify_export(_lines(response))
    assert report.ok, report.failure
    assert report.tenant_id == noc.id
    assert str(msp.id).encode() in response.content  # the partnership names the MSP...
    for msp_id in await _stored_ids(msp):
        assert msp_id.encode() not in response.content  # ...but none of its events is here


async def test_anonymous_callers_get_nothing(http: AppClient) -> None:
    await make_tenant()
    http.cookies = httpx.Cookies()
    response = await http.get(EXPORT)
    assert response.status_code == 401
    assert response.json()["status"] == 401


async def test_a_time_range_export_verifies_and_names_the_range(http: AppClient) -> None:
    tenant = await make_tenant()
    admin = await make_person(tenant)
    headers = bearer(await api_token(admin, scopes=("audit",)))
    rows = (
        await AuditEvent.select(AuditEvent.occurred_at)
        .where(AuditEvent.tenant_id == tenant.id)
        .order_by(AuditEvent.seq)
    )
    since = rows[1]["occurred_at"]
    until = since + timedelta(minutes=5)

    response = await http.get(
        EXPORT, params={"since": since.isoformat(), "until": until.isoformat()}, headers=headers
    )

    assert response.status_code == 200, response.text
    header = json.loads(_lines(response)[0])
    assert header["since"] == since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert header["until"] == until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert verify_export(_lines(response)).ok
    [event] = await audit_events(tenant.id, AuditAction.AUDIT_EXPORTED.value)
    assert event["context"]["since"] == header["since"]


async def test_a_truncated_download_does_not_verify(http: AppClient) -> None:
    tenant = await make_tenant()
    admin = await make_person(tenant)
    response = await http.get(EXPORT, headers=bearer(await api_token(admin, scopes=("audit",))))
    body = response.content
    report = verify_export(body[: len(body) // 2].splitlines(keepends=True))
    assert report.failure is not None
    assert report.failure.kind is FailureKind.CUT


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"since": "yesterday"}, 400, "since"),
        ({"until": "2026-13-45T00:00:00Z"}, 400, "until"),
        ({"since": "2026-12-01T00:00:00"}, 422, "offset"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, 422, "before"),
        ({"since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, 422, "before"),
        ({"tenant_id": "00000000-0000-0000-0000-000000000000"}, 422, "tenant_id"),
        ({"sinse": "2026-12-01T00:00:00Z"}, 422, "sinse"),
    ],
)
async def test_bad_query_values_get_a_problem_and_export_nothing(
    http: AppClient, params: dict[str, str], status: int, says: str
) -> None:
    tenant = await make_tenant()
    admin = await make_person(tenant)
    headers = bearer(await api_token(admin, scopes=("audit",)))

    response = await http.get(EXPORT, params=params, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert says in json.dumps(body)
    assert "Traceback" not in response.text
    assert await audit_events(tenant.id, AuditAction.AUDIT_EXPORTED.value) == []
