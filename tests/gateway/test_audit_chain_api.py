"""Audit signing keys are public; checkpoints are the tenant's auditors' to read."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest

from sharing import checkpoints
from sharing.audit import AuditAction, record
from tenants.roles import Actor, Role
from tests.helpers import (
    AppClient,
    api_token,
    audit_events,
    bearer,
    csrf_header,
    make_person,
    make_tenant,
    served,
    session_for,
)


@pytest.fixture
async def http(settings, db) -> AsyncIterator[AppClient]:
    async with served(settings) as client:
        yield client


async def test_anyone_can_fetch_the_keys_and_verify_the_tenants_checkpoints(
    http: AppClient,
) -> None:
    tenant = await make_tenant()
    keyring = http.app.state.keyring
    first = await checkpoints.sign_checkpoint(keyring, tenant.id, await http.app.state.clock.now())
    await checkpoints.rotate_audit_key(keyring, tenant.id, actor=Actor.system("test"))
    await record(tenant.id, AuditAction.RULES_CHANGED, actor=Actor.system("test"))
    second = await checkpoints.sign_checkpoint(keyring, tenant.id, await http.app.state.clock.now())
    assert first is not None and second is not None

    published = await http.get(f"/.well-known/shiftgate-audit-keys/{tenant.id}")
    assert published.status_code == 200
    keys = {key["key_id"]: key for key in published.json()["keys"]}
    assert set(keys) == {str(first.key_id), str(second.key_id)}
    assert keys[str(first.key_id)]["retired_at"] is not None

    listed = await http.get("/api/v1/audit/checkpoints", headers=bearer(await _audit_token(tenant)))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [item["seq"] for item in body] == [second.seq, first.seq]
    for item in body:
        raw = base64.urlsafe_b64decode(keys[item["key_id"]]["public_key"] + "==")
        view = checkpoints.CheckpointView(
            tenant_id=uuid.UUID(item["tenant_id"]),
            seq=item["seq"],
            hash=item["hash"],
            signed_at=item["signed_at"],
            key_id=uuid.UUID(item["key_id"]),
            signature=item["signature"],
        )
        assert checkpoints.verify_checkpoint(raw, view)


async def _audit_token(tenant) -> str:  # type: ignore[no-untyped-def]
    admin = await make_person(tenant)
    return await api_token(admin, scopes=("audit",))


async def test_an_unknown_tenant_has_no_keys(http: AppClient) -> None:
    response = await http.get(f"/.well-known/shiftgate-audit-keys/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_checkpoints_are_for_auditors_of_the_tenant_only(http: AppClient) -> None:
    tenant, other = await make_tenant(), await make_tenant("noc")
    keyring = http.app.state.keyring
    now = await http.app.state.clock.now()
    await checkpoints.sign_checkpoint(keyring, tenant.id, now)
    await checkpoints.sign_checkpoint(keyring, other.id, now)

    admin = await make_person(tenant)
    refused = await http.get(
        "/api/v1/audit/checkpoints",
        headers=bearer(await api_token(admin, scopes=("read", "handoff"))),
    )
    assert refused.status_code == 403
    theirs = await http.get("/api/v1/audit/checkpoints", headers=bearer(await _audit_token(other)))
    assert [item["tenant_id"] for item in theirs.json()] == [str(other.id)]


async def test_retention_is_kept_forever_until_an_admin_sets_it(http: AppClient) -> None:
    tenant = await make_tenant()
    admin = await make_person(tenant)
    await session_for(http, admin)
    shown = await http.get("/api/v1/audit/retention")
    assert shown.json() == {"months": None}

    for bad in ({"months": 0}, {"months": 1201}, {"months": "soon"}, {"months": 12, "x": 1}):
        response = await http.put("/api/v1/audit/retention", json=bad, headers=csrf_header(http))
        assert response.status_code == 400, bad
    changed = await http.put(
        "/api/v1/audit/retention", json={"months": 24}, headers=csrf_header(http)
    )
    assert changed.status_code == 200, changed.text
    assert (await http.get("/api/v1/audit/retention")).json() == {"months": 24}
    events = await audit_events(tenant.id, "audit:retention_changed")
    assert [event["context"]["months"] for event in events] == ["24"]

    # A token, even with every scope, cannot shorten what the tenant keeps.
    token = await api_token(admin)
    refused = await http.put("/api/v1/audit/retention", json={"months": 1}, headers=bearer(token))
    assert refused.status_code == 403
    auditor = await make_person(tenant, Role.AUDITOR)
    await session_for(http, auditor)
    assert (await http.get("/api/v1/audit/retention")).json() == {"months": 24}
    refused = await http.put(
        "/api/v1/audit/retention", json={"months": None}, headers=csrf_header(http)
    )
    assert refused.status_code == 403
