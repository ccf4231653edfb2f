"""Keys and credentials over time: the gateway's signing key rotates under live tokens, a NOC's
client secrets and keys rotate with (or without) overlap, and registration refuses bad input.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from gateway.settings import Settings
from sharing.keys import rotate_signing_key
from sharing.tables import AuditEvent
from tenants.roles import PLATFORM_TENANT_ID, Actor, Role
from tenants.signing import TokenSigner
from tenants.tables import OAuthClient, OAuthCredential, SigningKey
from tests.helpers import (
    GatewayClient,
    Person,
    access_token,
    api_token,
    assertion_form,
    audit_events,
    bearer,
    client_assertion,
    client_key,
    csrf_header,
    gateway,
    key_client,
    make_person,
    make_tenant,
    request_token,
    secret_client,
    session_for,
)

ME = "/api/v1/partner/me"
CLIENTS = "/api/v1/oauth-clients"


@pytest.fixture
async def http(settings: Settings, db: object) -> AsyncIterator[GatewayClient]:
    async with gateway(settings) as client:
        yield client


@pytest.fixture
async def noc_admin(db: object) -> Person:
    return await make_person(await make_tenant("noc"), Role.ADMIN)


def _kid(token: str) -> str:
    return str(pyjwt.get_unverified_header(token)["kid"])


async def _published(http: GatewayClient) -> list[str]:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


# --- the gateway's signing key ---------------------------------------------------------------


async def test_signing_key_rotation_under_live_tokens(
    http: GatewayClient, settings: Settings, noc_admin: Person
) -> None:
    view, secret = await secret_client(noc_admin)
    first = await access_token(http, view.client_id, secret)
    old_kid = _kid(first)
    assert await _published(http) == [old_kid]

    new_kid = await rotate_signing_key(http.app.state.signer, actor=Actor.system("test"))
    assert new_kid != old_kid
    [rotated] = await audit_events(PLATFORM_TENANT_ID, "key:signing_rotated")
    assert rotated["target_id"] == new_kid

    assert (await http.get(ME, headers=bearer(first))).status_code == 200
    assert sorted(await _published(http)) == sorted([old_kid, new_kid])
    second = await access_token(http, view.client_id, secret)
    assert _kid(second) == new_kid
    assert (await http.get(ME, headers=bearer(second))).status_code == 200

    # another replica (nothing cached) knows the retired key from the database alone
    async with gateway(settings) as replica:
        assert (await replica.get(ME, headers=bearer(first))).status_code == 200
        assert old_kid in await _published(replica)


async def test_a_retired_key_stays_published_while_its_tokens_may_live(
    http: GatewayClient, settings: Settings, noc_admin: Person
) -> None:
    """Retired 10.5 minutes ago: a token signed just before retirement (600 s, plus the
    30 s a replica may keep signing with a cached key) may still be alive."""
    view, secret = await secret_client(noc_admin)
    token = await access_token(http, view.client_id, secret)
    old_kid = _kid(token)
    await rotate_signing_key(http.app.state.signer, actor=Actor.system("test"))
    retired = datetime.now(UTC) - timedelta(seconds=settings.access_token_seconds + 30)
    await SigningKey.update({SigningKey.retired_at: retired}).where(SigningKey.kid == old_kid)
    async with gateway(settings) as fresh:
        assert old_kid in await _published(fresh)
        assert (await fresh.get(ME, headers=bearer(token))).status_code == 200


async def test_a_key_retired_past_the_window_is_withdrawn(
    http: GatewayClient, settings: Settings, noc_admin: Person
) -> None:
    view, secret = await secret_client(noc_admin)
    first = await access_token(http, view.client_id, secret)
    old_kid = _kid(first)
    new_kid = await rotate_signing_key(http.app.state.signer, actor=Actor.system("test"))
    second = await access_token(http, view.client_id, secret)
    await SigningKey.update({SigningKey.retired_at: datetime.now(UTC) - timedelta(hours=2)}).where(
        SigningKey.kid == old_kid
    )
    async with gateway(settings) as fresh:
        assert await _published(fresh) == [new_kid]
        refused = await fresh.get(ME, headers=bearer(first))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the token is signed by an unknown key"
        assert (await fresh.get(ME, headers=bearer(second))).status_code == 200
    [event] = await audit_events(PLATFORM_TENANT_ID, "token:rejected")
    assert event["reason"] == "the token is signed by an unknown key"


async def test_concurrent_first_uses_all_get_a_published_key(http: GatewayClient) -> None:
    """A fresh deployment: replicas (signers with nothing cached) and requests ask for the
    signing key at the same moment. Every one gets a key, and every such key is published."""
    for _ in range(5):
        await SigningKey.delete(force=True)
        replicas = [TokenSigner(http.app.state.root_keys, max_token_seconds=600) for _ in range(10)]
        kids = [kid for kid, _ in await asyncio.gather(*(s.signing_key() for s in replicas))]
        published = await _published(http)
        assert set(kids) <= set(published)
        assert await SigningKey.count().where(SigningKey.retired_at.is_null()) >= 1


async def test_concurrent_first_token_requests_all_succeed(
    http: GatewayClient, noc_admin: Person
) -> None:
    view, secret = await secret_client(noc_admin)
    responses = await asyncio.gather(
        *(request_token(http, view.client_id, secret) for _ in range(8))
    )
    assert [response.status_code for response in responses] == [200] * 8
    for response in responses:
        me = await http.get(ME, headers=bearer(response.json()["access_token"]))
        assert me.status_code == 200


# --- a NOC's client credentials ---------------------------------------------------------------


async def _rotate(http: GatewayClient, client_pk: Any, **body: Any) -> httpx.Response:
    response: httpx.Response = await http.post(
        f"{CLIENTS}/{client_pk}/rotate", json=body, headers=csrf_header(http)
    )
    return response


async def test_secret_rotation_with_and_without_overlap(
    http: GatewayClient, noc_admin: Person
) -> None:
    view, first = await secret_client(noc_admin)
    await session_for(http, noc_admin)

    rotated = await _rotate(http, view.id, overlap_hours=1)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["client_secret"]
    assert second.startswith("sgs_") and second != first
    for secret in (first, second):
        response = await request_token(http, view.client_id, secret)
        assert response.status_code == 200, response.text

    rotated = await _rotate(http, view.id, overlap_hours=0)
    assert rotated.status_code == 200, rotated.text
    third = rotated.json()["client_secret"]
    for secret in (first, second):
        refused = await request_token(http, view.client_id, secret)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
    assert (await request_token(http, view.client_id, third)).status_code == 200

    events = await audit_events(noc_admin.tenant.id, "oauth_client:credentials_rotated")
    assert [event["context"]["overlap_hours"] for event in events] == ["1", "0"]
    assert all(event["actor_label"] == noc_admin.email for event in events)


async def test_key_rotation_without_overlap_retires_the_old_key(
    http: GatewayClient, settings: Settings, noc_admin: Person
) -> None:
    old = client_key("noc-2026-a")
    view = await key_client(noc_admin, old)
    old_assertion = client_assertion(view.client_id, old, audience=settings.issuer)
    new = client_key("noc-2026-b")
    await session_for(http, noc_admin)
    rotated = await _rotate(
        http, view.id, overlap_hours=0, jwks={"keys": [new.as_dict(private=False)]}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["client_secret"] is None
    http.cookies = httpx.Cookies()
    refused = await http.post("/oauth/token", data=assertion_form(old_assertion))
    assert refused.json()["error"] == "invalid_client"
    fresh = client_assertion(view.client_id, new, audience=settings.issuer)
    assert (await http.post("/oauth/token", data=assertion_form(fresh))).status_code == 200


# --- registration through the API -------------------------------------------------------------


def _registration(**fields: Any) -> dict[str, Any]:
    return {"name": "noc tooling", "auth_method": "client_secret_basic", **fields}


@pytest.mark.parametrize(
    ("fields", "statuses", "mentions"),
    [
        (
            {"auth_method": "private_key_jwt", "jwks": "private"},
            {422},
            "public keys only",
        ),
        ({"scopes": ["partner:everything"]}, {400, 422}, "scopes"),
        ({"networks": ["10.0.0.0/33"]}, {422}, "CIDR"),
        ({"networks": ["not-a-network"]}, {422}, "CIDR"),
        ({"auth_method": "private_key_jwt"}, {422}, "jwks"),
        ({"auth_method": "private_key_jwt", "jwks": {"keys": []}}, {422}, "jwks"),
        ({"auth_method": "client_secret_basic", "jwks": "public"}, {422}, "takes no keys"),
        ({"client_secret": "sgs_chosen-by-me"}, {400}, "client_secret"),
    ],
)
async def test_registration_refuses_bad_input(
    http: GatewayClient,
    noc_admin: Person,
    fields: dict[str, Any],
    statuses: set[int],
    mentions: str,
) -> None:
    key = client_key()
    if fields.get("jwks") == "private":
        fields = {**fields, "jwks": {"keys": [key.as_dict(private=True)]}}
    elif fields.get("jwks") == "public":
        fields = {**fields, "jwks": {"keys": [key.as_dict(private=False)]}}
    await session_for(http, noc_admin)
    response = await http.post(CLIENTS, json=_registration(**fields), headers=csrf_header(http))
    assert response.status_code in statuses, response.text
    assert mentions in response.text
    # nothing half-made is left behind
    assert await OAuthClient.count() == 0
    assert await OAuthCredential.count() == 0
    assert await AuditEvent.count().where(AuditEvent.action == "oauth_client:registered") == 0


async def test_only_a_noc_admin_signed_in_registers_clients(
    http: GatewayClient, noc_admin: Person
) -> None:
    msp_admin = await make_person(await make_tenant("msp"), Role.ADMIN)
    technician = await make_person(noc_admin.tenant, Role.TECHNICIAN)
    for person in (msp_admin, technician):
        await session_for(http, person)
        response = await http.post(CLIENTS, json=_registration(), headers=csrf_header(http))
        assert response.status_code == 403, (person.role, response.text)
    http.cookies = httpx.Cookies()
    token = await api_token(noc_admin)
    response = await http.post(CLIENTS, json=_registration(), headers=bearer(token))
    assert response.status_code == 403
    await session_for(http, noc_admin)
    without_csrf = await http.post(CLIENTS, json=_registration())
    assert without_csrf.status_code == 403
    assert await OAuthClient.count() == 0
    response = await http.post(CLIENTS, json=_registration(), headers=csrf_header(http))
    assert response.status_code == 201, response.text


async def test_the_secret_is_shown_once_and_stored_only_as_a_hash(
    http: GatewayClient, noc_admin: Person
) -> None:
    await session_for(http, noc_admin)
    created = await http.post(
        CLIENTS,
        json=_registration(networks=["192.0.2.0/24"], scopes=["partner:read", "partner:notes"]),
        headers=csrf_header(http),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["client_secret"]
    client = body["client"]
    assert re.fullmatch(r"sgs_[A-Za-z0-9_-]{43}", secret)
    assert client["client_id"].startswith("sgc_")
    assert client["networks"] == ["192.0.2.0/24"]
    assert client["scopes"] == ["partner:notes", "partner:read"]

    listed = await http.get(CLIENTS)
    assert listed.status_code == 200
    assert [row["client_id"] for row in listed.json()] == [client["client_id"]]
    assert secret not in listed.text
    assert not {"client_secret", "secret_hash"} & set(listed.json()[0])

    rotated = await _rotate(http, client["id"], overlap_hours=0)
    new_secret = rotated.json()["client_secret"]
    assert secret not in (await http.get(CLIENTS)).text
    assert new_secret not in (await http.get(CLIENTS)).text

    rows = await OAuthCredential.select(OAuthCredential.secret_hash, OAuthCredential.jwks)
    assert len(rows) == 2
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row["secret_hash"])
        assert row["jwks"] is None
    stored = [await table.select() for table in (OAuthClient, OAuthCredential, AuditEvent)]
    for text in (secret, new_secret, secret.removeprefix("sgs_")):
        assert text not in repr(stored)


async def test_a_registered_client_works_at_once(http: GatewayClient, noc_admin: Person) -> None:
    """What the portal shows is what the token endpoint accepts."""
    await session_for(http, noc_admin)
    created = (await http.post(CLIENTS, json=_registration(), headers=csrf_header(http))).json()
    http.cookies = httpx.Cookies()
    token = await access_token(http, created["client"]["client_id"], created["client_secret"])
    me = await http.get(ME, headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["tenant_id"] == str(noc_admin.tenant.id)
    [registered] = await audit_events(noc_admin.tenant.id, "oauth_client:registered")
    assert registered["context"]["client_id"] == created["client"]["client_id"]
    assert created["client_secret"] not in repr(registered)
