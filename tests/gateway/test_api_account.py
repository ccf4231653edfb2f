"""`/api/v1/me`, `/api/v1/tenants` and tenant API tokens: who may issue them, what they reveal."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sharing import accounts
from tenants.roles import Actor, Role
from tenants.tables import ApiToken
from tests.helpers import (
    AppClient,
    api_token,
    audit_events,
    bearer,
    csrf_header,
    make_person,
    make_tenant,
    served,
    sign_in,
)


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


async def _token_rows(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await ApiToken.select().where(ApiToken.tenant_id == tenant_id)
    return rows


async def test_me_with_an_api_token_names_the_tenant_and_the_scopes(client) -> None:
    tenant = await make_tenant("msp")
    admin = await make_person(tenant)
    token = await api_token(admin, scopes=["read"])

    response = await client.get("/api/v1/me", headers=bearer(token))

    assert response.status_code == 200, response.text
    me = response.json()
    assert me["kind"] == "api_token"
    assert me["tenant_id"] == str(tenant.id)
    assert me["tenant_kind"] == "msp"
    assert me["role"] is None
    assert me["scopes"] == ["read"]
    assert me["permissions"] == ["content:read", "tenant:read"]
    assert me["label"] == "token:test token"


async def test_me_with_a_portal_session_names_the_user_and_the_role(client) -> None:
    tenant = await make_tenant("noc")
    auditor = await make_person(tenant, Role.AUDITOR)
    await sign_in(client, auditor)

    response = await client.get("/api/v1/me")

    assert response.status_code == 200, response.text
    me = response.json()
    assert (me["kind"], me["id"], me["label"]) == ("user", str(auditor.user_id), auditor.email)
    assert (me["tenant_id"], me["tenant_kind"], me["role"]) == (str(tenant.id), "noc", "auditor")
    assert me["scopes"] == []
    assert me["permissions"] == ["audit:read", "tenant:read"]


async def test_tenants_lists_every_membership_and_marks_the_current_one(client) -> None:
    msp, noc, unrelated = await make_tenant("msp"), await make_tenant("noc"), await make_tenant()
    person = await make_person(msp, Role.ADMIN)
    await make_person(unrelated)
    await accounts.add_member(
        email=person.email, tenant_id=noc.id, role="auditor", actor=Actor.system("test")
    )
    await sign_in(client, person)

    response = await client.get("/api/v1/tenants")

    assert response.status_code == 200, response.text
    listed = {row["tenant"]["slug"]: row for row in response.json()}
    assert set(listed) == {msp.slug, noc.slug}
    assert listed[msp.slug]["role"] == "admin"
    assert listed[noc.slug]["role"] == "auditor"
    assert listed[noc.slug]["tenant"]["kind"] == "noc"
    me = (await client.get("/api/v1/me")).json()
    assert [row["tenant"]["id"] for row in listed.values() if row["current"]] == [me["tenant_id"]]


async def test_an_admin_session_issues_a_token_whose_secret_is_shown_once(client) -> None:
    tenant = await make_tenant("msp")
    admin = await make_person(tenant)
    await sign_in(client, admin)

    issued = await client.post(
        "/api/v1/tokens",
        json={"name": "psa sync", "scopes": ["read", "handoff"], "expires_in_days": 30},
        headers=csrf_header(client),
    )

    assert issued.status_code == 201, issued.text
    secret = issued.json()["token"]
    info = issued.json()["info"]
    assert secret.startswith("sgt_") and len(secret) > 40
    assert info["hint"] == secret[:8]
    assert info["scopes"] == ["handoff", "read"]
    assert info["revoked_at"] is None
    created = datetime.fromisoformat(info["created_at"])
    assert datetime.fromisoformat(info["expires_at"]) - created == timedelta(days=30)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    [row] = await _token_rows(tenant.id)
    assert row["token_hash"] == digest
    assert secret not in {str(value) for value in row.values()}
    [event] = await audit_events(tenant.id, "api_token:created")
    assert event["target_id"] == info["id"] and event["actor_id"] == str(admin.user_id)

    listed = await client.get("/api/v1/tokens")

    assert listed.status_code == 200
    assert [token["id"] for token in listed.json()] == [info["id"]]
    assert secret not in listed.text
    assert secret[8:] not in listed.text
    assert digest not in listed.text
    assert "token_hash" not in listed.text

    me = await client.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["tenant_id"]) == ("api_token", str(tenant.id))


@pytest.mark.parametrize("header", [None, "not-the-cookie-value"])
async def test_a_session_write_without_the_csrf_header_is_refused(client, header) -> None:
    tenant = await make_tenant("msp")
    await sign_in(client, await make_person(tenant))

    response = await client.post(
        "/api/v1/tokens",
        json={"name": "x", "scopes": ["read"]},
        headers={"X-CSRF-Token": header} if header else {},
    )

    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _token_rows(tenant.id) == []


async def test_a_revoked_token_is_refused_at_once_and_revoking_twice_conflicts(client) -> None:
    tenant = await make_tenant("msp")
    admin = await make_person(tenant)
    token = await api_token(admin)
    [row] = await _token_rows(tenant.id)
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    await sign_in(client, admin)

    revoked = await client.delete(f"/api/v1/tokens/{row['id']}", headers=csrf_header(client))

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == str(row["id"])
    assert revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/v1/me", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert len(await audit_events(tenant.id, "api_token:revoked")) == 1

    again = await client.delete(f"/api/v1/tokens/{row['id']}", headers=csrf_header(client))

    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_revoked"
    assert len(await audit_events(tenant.id, "api_token:revoked")) == 1


async def test_a_token_cannot_create_tokens_even_with_every_scope(client) -> None:
    tenant = await make_tenant("msp")
    admin = await make_person(tenant)
    token = await api_token(admin, scopes=["read", "write", "handoff", "audit"])
    # The admin's own session cookie in the same jar lends the token nothing: a request with an
    # Authorization header is judged by that header alone.
    await sign_in(client, admin)

    response = await client.post(
        "/api/v1/tokens", json={"name": "successor", "scopes": ["read"]}, headers=bearer(token)
    )

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_missing"
    assert len(await _token_rows(tenant.id)) == 1
    assert len(await audit_events(tenant.id, "api_token:created")) == 1  # the one made above


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.AUDITOR])
async def test_technicians_and_auditors_cannot_issue_or_list_tokens(client, role) -> None:
    tenant = await make_tenant("msp")
    await api_token(await make_person(tenant))
    await sign_in(client, await make_person(tenant, role))

    created = await client.post(
        "/api/v1/tokens", json={"name": "mine", "scopes": ["read"]}, headers=csrf_header(client)
    )
    listed = await client.get("/api/v1/tokens")

    assert created.status_code == 403, created.text
    assert created.json()["code"] == "permission_missing"
    assert listed.status_code == 403
    assert len(await _token_rows(tenant.id)) == 1


async def test_an_expired_token_is_refused(client) -> None:
    tenant = await make_tenant("msp")
    token = await api_token(await make_person(tenant))
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    await ApiToken.update({ApiToken.expires_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
        ApiToken.tenant_id == tenant.id
    )

    response = await client.get("/api/v1/me", headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"] == "the API token is unknown, expired or revoked"


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        ("Basic x", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Bearer    ", "invalid_request"),
        ("Bearer nonsense", "invalid_token"),
        ("Bearer sgt_" + "A" * 43, "invalid_token"),
        ("Bearer sgt_" + "A" * 200, "invalid_token"),
    ],
)
async def test_a_malformed_authorization_header_is_a_401_problem(
    client, authorization, error
) -> None:
    tenant = await make_tenant("msp")
    await sign_in(client, await make_person(tenant))  # a valid session does not rescue it

    response = await client.get("/api/v1/me", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == f'Bearer error="{error}"'
    problem = response.json()
    assert (problem["status"], problem["title"]) == (401, "Authentication required")
    assert problem["detail"]


async def test_no_credentials_at_all_is_a_401_with_a_bearer_challenge(client) -> None:
    response = await client.get("/api/v1/tokens")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer sgt_" in response.json()["detail"]


async def test_an_unknown_field_is_a_400_that_names_it(client) -> None:
    tenant = await make_tenant("msp")
    await sign_in(client, await make_person(tenant))

    response = await client.post(
        "/api/v1/tokens",
        json={"name": "x", "scopes": ["read"], "tenant_id": str(uuid.uuid4())},
        headers=csrf_header(client),
    )

    assert response.status_code == 400, response.text
    assert "tenant_id" in response.json()["detail"]
    assert await _token_rows(tenant.id) == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "scopes": ["read", "token:manage"]},
        {"name": "x", "scopes": ["READ"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "read"},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in_days": 0},
        {"name": "x", "scopes": ["read"], "expires_in_days": 367},
    ],
)
async def test_scopes_outside_the_four_and_bad_fields_are_refused(client, body) -> None:
    tenant = await make_tenant("msp")
    await sign_in(client, await make_person(tenant))

    response = await client.post("/api/v1/tokens", json=body, headers=csrf_header(client))

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _token_rows(tenant.id) == []
