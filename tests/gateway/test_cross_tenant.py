"""Tenant isolation of every account, token and partnership endpoint, and read-only roles.

An outsider (a user or an API token of an unrelated tenant) aims every endpoint at another
tenant's objects: objects by id are 404 (exactly as for an id that does not exist), lists hold
the outsider's own rows only, the rest is 403; the database is the same afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from policies.ceiling import Ceiling
from sharing import accounts, partnerships
from sharing.partnerships import PartnershipAction
from tenants.roles import Actor, ActorKind, Role
from tenants.service import TenantInfo
from tests.helpers import (
    AppClient,
    api_token,
    bearer,
    csrf_header,
    make_person,
    make_tenant,
    served,
    sign_in,
    table_snapshot,
)

_CEILING = {
    "clients": "all",
    "document_kinds": ["sop"],
    "max_grant_hours": 8,
    "secrets_allowed": False,
}


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


def admin_of(tenant: TenantInfo) -> Actor:
    """An admin of `tenant` for setting up data through the services (no password to hash)."""
    return Actor(
        kind=ActorKind.USER,
        id=uuid.uuid4(),
        label=f"setup@{tenant.slug}",
        tenant_id=tenant.id,
        tenant_kind=tenant.kind,
        role=Role.ADMIN,
    )


@dataclass
class World:
    msp: TenantInfo
    noc: TenantInfo
    partnership_id: uuid.UUID
    token_id: uuid.UUID
    token: str
    outsider: TenantInfo
    outsider_partnership_id: uuid.UUID
    outsider_token_id: uuid.UUID


async def _partnership(msp: TenantInfo, noc: TenantInfo) -> uuid.UUID:
    view = await partnerships.invite(admin_of(msp), noc_slug=noc.slug, ceiling=Ceiling())
    await partnerships.act(admin_of(noc), view.id, PartnershipAction.ACCEPT)
    return view.id


@pytest.fixture
async def world(client) -> World:
    """An MSP and its NOC, partnered, with a token; an outsider with a partnership and a token."""
    msp, noc = await make_tenant("msp"), await make_tenant("noc")
    outsider, outsider_noc = await make_tenant("both"), await make_tenant("noc")
    issued = await accounts.issue_api_token(
        admin_of(msp), name="victim", scopes=["read", "write"], expires_in_days=1
    )
    outsider_token = await accounts.issue_api_token(
        admin_of(outsider), name="outsider's own", scopes=["read"], expires_in_days=1
    )
    return World(
        msp=msp,
        noc=noc,
        partnership_id=await _partnership(msp, noc),
        token_id=issued.info.id,
        token=issued.secret,
        outsider=outsider,
        outsider_partnership_id=await _partnership(outsider, outsider_noc),
        outsider_token_id=outsider_token.info.id,
    )


async def as_outsider(client: AppClient, world: World, kind: str) -> dict[str, str]:
    """Sign the outsider's admin in (a session) or give it an all-scope token; its headers."""
    admin = await make_person(world.outsider, Role.ADMIN)
    if kind == "session":
        await sign_in(client, admin)
        return csrf_header(client)
    return bearer(await api_token(admin))


@dataclass(frozen=True)
class Case:
    """One request of the outsider and what it must get, for a session and for a token."""

    operation: str
    method: str
    path: str
    body: Any = None
    session: int = 404
    token: int = 404


def _lists_own_tenant_only(world: World, response: httpx.Response) -> None:
    assert {row["tenant"]["id"] for row in response.json()} == {str(world.outsider.id)}


def _lists_own_tokens_only(world: World, response: httpx.Response) -> None:
    ids = {row["id"] for row in response.json()}
    assert str(world.outsider_token_id) in ids
    assert str(world.token_id) not in ids


def _lists_own_partnerships_only(world: World, response: httpx.Response) -> None:
    assert [row["id"] for row in response.json()] == [str(world.outsider_partnership_id)]
    assert str(world.msp.id) not in response.text and str(world.noc.id) not in response.text


def _me_is_the_outsider(world: World, response: httpx.Response) -> None:
    assert response.json()["tenant_id"] == str(world.outsider.id)


LIST_CHECKS: dict[str, Callable[[World, httpx.Response], None]] = {
    "getMe": _me_is_the_outsider,
    "listMyTenants": _lists_own_tenant_only,
    "listApiTokens": _lists_own_tokens_only,
    "listPartnerships": _lists_own_partnerships_only,
}

CASES = [
    Case("getMe", "GET", "/api/v1/me", session=200, token=200),
    # An API token acts for its tenant only and never manages tokens: 403 where a user sees lists.
    Case("listMyTenants", "GET", "/api/v1/tenants", session=200, token=403),
    Case("listApiTokens", "GET", "/api/v1/tokens", session=200, token=403),
    Case(
        "createApiToken",
        "POST",
        "/api/v1/tokens",
        {"name": "mine now", "scopes": ["read"], "tenant_id": "{msp}"},
        session=400,
        token=400,
    ),
    Case("revokeApiToken", "DELETE", "/api/v1/tokens/{token_id}", session=404, token=403),
    Case("listPartnerships", "GET", "/api/v1/partnerships", session=200, token=200),
    Case("getPartnership", "GET", "/api/v1/partnerships/{partnership}"),
    Case(
        "invitePartner",
        "POST",
        "/api/v1/partnerships",
        {"noc": "{noc_slug}", "msp": "{msp_slug}"},
        session=400,
        token=400,
    ),
    Case("setPartnershipCeiling", "PUT", "/api/v1/partnerships/{partnership}/ceiling", _CEILING),
    *(
        Case("changePartnershipState", "POST", f"/api/v1/partnerships/{{partnership}}/{action}")
        for action in ("accept", "decline", "suspend", "resume", "end")
    ),
]


def _fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    return template


def _values(world: World, *, partnership: uuid.UUID, token_id: uuid.UUID) -> dict[str, str]:
    return {
        "msp": str(world.msp.id),
        "msp_slug": world.msp.slug,
        "noc_slug": world.noc.slug,
        "partnership": str(partnership),
        "token_id": str(token_id),
    }


async def _send(client: AppClient, case: Case, values: dict[str, str], headers: dict[str, str]):
    return await client.request(
        case.method, _fill(case.path, values), json=_fill(case.body, values), headers=headers
    )


def _without_request_id(response: httpx.Response) -> dict[str, Any]:
    problem = dict(response.json())
    problem.pop("request_id", None)
    return problem


@pytest.mark.parametrize("kind", ["session", "token"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.method} {case.path}")
async def test_an_outsider_reaches_nothing_of_another_tenant(client, world, kind, case) -> None:
    headers = await as_outsider(client, world, kind)
    values = _values(world, partnership=world.partnership_id, token_id=world.token_id)
    before = await table_snapshot()

    response = await _send(client, case, values, headers)

    expected = case.session if kind == "session" else case.token
    assert response.status_code == expected, response.text
    assert await table_snapshot() == before
    if expected == 200:
        LIST_CHECKS[case.operation](world, response)
    else:
        assert response.headers["content-type"].startswith("application/problem+json")
    if expected == 404:
        # The other tenant's object answers exactly like one that does not exist.
        missing = _values(world, partnership=uuid.uuid4(), token_id=uuid.uuid4())
        unknown = await _send(client, case, missing, headers)
        assert unknown.status_code == 404
        assert _without_request_id(unknown) == _without_request_id(response)
    # The victim's token and partnership still work for their owner.
    owner = await client.get(
        f"/api/v1/partnerships/{world.partnership_id}", headers=bearer(world.token)
    )
    assert owner.status_code == 200 and owner.json()["status"] == "active"


async def test_the_matrix_covers_every_account_token_and_partnership_operation(client) -> None:
    schema = client.app.openapi_schema
    operations = {
        operation.operation_id
        for path, item in (schema.paths or {}).items()
        if path.startswith("/api/v1/")
        for operation in (item.get, item.post, item.put, item.patch, item.delete)
        if operation is not None
        and set(operation.tags or ()) & {"account", "api tokens", "partnerships"}
    }
    assert operations == {case.operation for case in CASES}


async def test_a_token_an_outsider_creates_lands_in_its_own_tenant_only(client, world) -> None:
    await as_outsider(client, world, "session")
    victims_tokens = (await table_snapshot())["api_tokens"]

    response = await client.post(
        "/api/v1/tokens", json={"name": "mine", "scopes": ["read"]}, headers=csrf_header(client)
    )

    assert response.status_code == 201, response.text
    rows = (await table_snapshot())["api_tokens"]
    [new] = [row for row in rows if str(row["id"]) == response.json()["info"]["id"]]
    assert new["tenant_id"] == world.outsider.id
    assert [row for row in rows if row["id"] != new["id"]] == victims_tokens


# --- Read-only roles of the partnership's own tenants ------------------------------------------

WRITES = [
    pytest.param("POST", "/api/v1/partnerships", {"noc": "{noc_slug}"}, id="invite"),
    pytest.param("PUT", "/api/v1/partnerships/{partnership}/ceiling", _CEILING, id="ceiling"),
    *(
        pytest.param("POST", f"/api/v1/partnerships/{{partnership}}/{action}", None, id=action)
        for action in ("accept", "decline", "suspend", "resume", "end")
    ),
]


@pytest.mark.parametrize(
    ("side", "role"),
    [
        ("msp", Role.TECHNICIAN),
        ("msp", Role.AUDITOR),
        ("noc", Role.TECHNICIAN),
        ("noc", Role.AUDITOR),
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_technicians_and_auditors_see_partnerships_but_cannot_change_them(
    client, world, side, role, method, path, body
) -> None:
    tenant = world.msp if side == "msp" else world.noc
    await sign_in(client, await make_person(tenant, role))
    values = _values(world, partnership=world.partnership_id, token_id=world.token_id)
    listed = await client.get("/api/v1/partnerships")
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()] == [str(world.partnership_id)]
    one = await client.get(f"/api/v1/partnerships/{world.partnership_id}")
    assert one.status_code == 200 and one.json()["status"] == "active"
    before = await table_snapshot()

    response = await client.request(
        method, _fill(path, values), json=_fill(body, values), headers=csrf_header(client)
    )

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_missing"
    assert await table_snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_a_read_only_token_cannot_change_partnerships(
    client, world, method, path, body
) -> None:
    admin = await make_person(world.msp, Role.ADMIN)
    token = await api_token(admin, scopes=["read", "handoff", "audit"])
    values = _values(world, partnership=world.partnership_id, token_id=world.token_id)
    before = await table_snapshot()

    response = await client.request(
        method, _fill(path, values), json=_fill(body, values), headers=bearer(token)
    )

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "permission_missing"
    assert await table_snapshot() == before
