"""Builders for test data through the real services, and a portal sign-in helper."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
from joserfc import jwt
from joserfc.jwk import ECKey
from litestar import Litestar
from redis.asyncio import Redis

from gateway.settings import Settings
from policies.ceiling import Ceiling
from sharing import accounts, clients, partner_clients, partnerships
from sharing.clock import Clock
from sharing.partnerships import PartnershipAction
from sharing.tables import AuditEvent
from tenants import service
from tenants.oauth_clients import AuthMethod, OAuthClientView
from tenants.roles import Actor, ActorKind, Role

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    user_id: uuid.UUID
    tenant: service.TenantInfo
    role: Role

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=ActorKind.USER,
            id=self.user_id,
            label=self.email,
            tenant_id=self.tenant.id,
            tenant_kind=self.tenant.kind,
            role=self.role,
        )


async def make_tenant(kind: str = "msp", *, zone: str = "Europe/Berlin") -> service.TenantInfo:
    slug = f"{kind}-{uuid.uuid4().hex[:8]}"
    return await accounts.create_tenant(
        name=f"Tenant {slug}", slug=slug, kind=kind, time_zone=zone, actor=Actor.system("test")
    )


async def make_person(tenant: service.TenantInfo, role: Role = Role.ADMIN) -> Person:
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.test"
    user = await accounts.create_user(
        email=email,
        display_name=email,
        password=PASSWORD,
        tenant_id=tenant.id,
        role=role.value,
        actor=Actor.system("test"),
    )
    return Person(email, PASSWORD, user.id, tenant, role)


def csrf_token(client: Any) -> str:
    token = client.cookies.get("shiftgate_csrf")
    assert token, "no CSRF cookie: GET a portal page first"
    return str(token)


async def sign_in(client: Any, person: Person) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    response = await client.post(
        "/login",
        data={
            "email": person.email,
            "password": person.password,
            "_csrf_token": csrf_token(client),
        },
        follow_redirects=False,  # the test client follows redirects by default
    )
    assert response.status_code in (302, 303), response.text
    assert response.headers["location"] == "/"


def form_error(html: str) -> str | None:
    match = re.search(r'class="error"[^>]*>([^<]+)<', html)
    return match.group(1) if match else None


# --- OAuth: partner clients, tokens, the gateway at its public origin -------------------------

PUBLIC_ORIGIN = "http://127.0.0.1:8000"
"""Where tests reach the app when URLs matter: authlib refuses plain http unless loopback."""

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class GatewayClient(httpx.AsyncClient):
    """An in-process HTTP client of one app, reached at `PUBLIC_ORIGIN` from `address`."""

    def __init__(self, app: Litestar, address: str) -> None:
        super().__init__(
            transport=httpx.ASGITransport(app=app, client=(address, 50000)),
            base_url=PUBLIC_ORIGIN,
        )
        self.app = app


@asynccontextmanager
async def gateway(
    settings: Settings, *, address: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[GatewayClient]:
    """A fresh app for `settings` (with `overrides`) and a client calling it from `address`.

    Like `served`, the app's lifespan runs in the test's own event loop. Redis counters and
    sessions of earlier tests are cleared first.
    """
    from gateway.app import create_app

    if overrides:
        settings = msgspec.structs.replace(settings, **overrides)
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        async for key in redis.scan_iter(f"{settings.redis_namespace}*"):
            await redis.delete(key)
        await redis.aclose()
    app = create_app(settings)
    async with _lifespan(app), GatewayClient(app, address) as client:
        yield client


async def secret_client(
    admin: Person, *, networks: Iterable[str] = (), scopes: Iterable[str] = ("partner:read",)
) -> tuple[OAuthClientView, str]:
    """A client_secret_basic client of `admin`'s NOC, and its secret."""
    view, secret = await partner_clients.register_client(
        admin.actor,
        name="noc tooling",
        auth_method=AuthMethod.CLIENT_SECRET_BASIC,
        scopes=scopes,
        networks=networks,
    )
    assert secret is not None
    return view, secret


async def key_client(
    admin: Person, key: ECKey, *, scopes: Iterable[str] = ("partner:read",)
) -> OAuthClientView:
    """A private_key_jwt client of `admin`'s NOC that holds the public half of `key`."""
    view, secret = await partner_clients.register_client(
        admin.actor,
        name="noc automation",
        auth_method=AuthMethod.PRIVATE_KEY_JWT,
        scopes=scopes,
        jwks={"keys": [key.as_dict(private=False)]},
    )
    assert secret is None
    return view


def client_key(kid: str = "noc-key-1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def client_assertion(
    client_id: str,
    key: ECKey,
    *,
    audience: str,
    iat: int | None = None,
    exp: int | None = None,
    jti: str | None = None,
) -> str:
    """A private_key_jwt assertion (RFC 7523) signed with `key`."""
    now = int(time.time())
    issued = now if iat is None else iat
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + 60 if exp is None else exp,
        "jti": jti or secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


async def request_token(client: Any, client_id: str, secret: str, **form: str) -> httpx.Response:
    """POST /oauth/token with client_secret_basic."""
    response: httpx.Response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=(client_id, secret),
    )
    return response


async def access_token(client: Any, client_id: str, secret: str) -> str:
    response = await request_token(client, client_id, secret)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_events(tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    """The tenant chain's events of `action`, oldest first."""
    rows: list[dict[str, Any]] = (
        await AuditEvent.select()
        .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.action == action))
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    return rows


# --- The app in the test's own event loop; sessions, tokens and snapshots -------------------


class AppClient(httpx.AsyncClient):
    """An httpx client wired straight to one app over ASGI; `app` is that app."""

    def __init__(self, app: Any, base_url: str) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url=base_url)
        self.app = app


@asynccontextmanager
async def served(
    settings: Settings, base_url: str = "http://testserver.local"
) -> AsyncIterator[AppClient]:
    """A fresh app for `settings`, its lifespan run in this event loop, and a client for it.

    Litestar's `AsyncTestClient` (the `client` fixture of conftest) runs the app in a portal
    thread with its own event loop. On PostgreSQL the app's connection pool then belongs to that
    loop, and a test that calls services itself (`make_tenant`, `AuditEvent.select()`) once the
    app has started fails with "attached to a different loop" and hangs in teardown. Here the
    app, its pool and the test share one loop. Redirects are not followed: tests assert them.
    """
    from gateway.app import create_app

    if settings.redis_url:  # counters and sessions of earlier tests must not leak in
        redis = Redis.from_url(settings.redis_url)
        async for key in redis.scan_iter(f"{settings.redis_namespace}*"):
            await redis.delete(key)
        await redis.aclose()
    app = create_app(settings)
    async with _lifespan(app), AppClient(app, base_url) as http:
        yield http


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Start and stop `app` as a server does: ASGI lifespan messages, the app in its own task.

    (`app.lifespan()` enters a task group, which pytest-asyncio would leave from another task.)
    """
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(message)

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
    )

    async def exchange(kind: str) -> None:
        await inbox.put({"type": f"lifespan.{kind}"})
        reply = asyncio.ensure_future(outbox.get())
        await asyncio.wait({reply, task}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():
            reply.cancel()
            task.result()  # the app died: raise what it raised
            raise RuntimeError(f"the app ended during lifespan {kind}")
        message = reply.result()
        if message["type"] != f"lifespan.{kind}.complete":
            raise RuntimeError(f"lifespan {kind} failed: {message.get('message', '')}")

    await exchange("startup")
    try:
        yield
    finally:
        await exchange("shutdown")
        await task


def csrf_header(client: Any) -> dict[str, str]:
    """What a session write to the API needs: the CSRF cookie's value, echoed in a header."""
    return {"X-CSRF-Token": csrf_token(client)}


async def session_for(client: Any, person: Person) -> httpx.Cookies:
    """Sign `person` in on a fresh cookie jar and return it; `client.cookies = jar` resumes it."""
    client.cookies = httpx.Cookies()
    await sign_in(client, person)
    jar: httpx.Cookies = client.cookies
    return jar


async def api_token(
    person: Person, scopes: Iterable[str] = ("read", "write", "handoff", "audit")
) -> str:
    """The secret of a new tenant API token, issued by `person` (an admin) for their tenant."""
    issued = await accounts.issue_api_token(
        person.actor, name="test token", scopes=list(scopes), expires_in_days=1
    )
    return issued.secret


async def table_snapshot() -> dict[str, Any]:
    """Row counts of every table, and every row of partnerships and API tokens."""
    from gateway.database import ALL_TABLES
    from sharing.tables import Partnership
    from tenants.tables import ApiToken

    counts = {table._meta.tablename: await table.count() for table in ALL_TABLES}
    partnerships = await Partnership.select().order_by(Partnership.id).output(load_json=True)
    tokens = await ApiToken.select().order_by(ApiToken.id).output(load_json=True)
    return {"counts": counts, "partnerships": partnerships, "api_tokens": tokens}


# --- Handoffs: an MSP, its partner NOC, documents and grants, at a time the test moves -------

BERLIN = ZoneInfo("Europe/Berlin")
STORY_START = datetime(2026, 12, 23, 17, 55, tzinfo=BERLIN)
"""17:55 on the Wednesday before the 24th and 25th (holidays) and a weekend. Grant windows
follow the test's clock but JWT `iat`/`exp` follow the real one, so story times lie ahead."""

BUSINESS_HOURS: dict[str, Any] = {
    "time_zone": "Europe/Berlin",
    "weekly": {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-24", "2026-12-25"],
}
NEVER_SHARE_TAG = "board-only"
STORY_CEILING = Ceiling(max_grant_hours=120, secrets_allowed=True)
"""Long enough for the story's grant (17:55 Wednesday to 08:00 Monday is 110 hours)."""


@asynccontextmanager
async def served_at(settings: Settings, clock: Clock) -> AsyncIterator[AppClient]:
    """As `served`, with grant time taken from `clock`, at `PUBLIC_ORIGIN` (OAuth needs it)."""
    from gateway.app import create_app

    if settings.redis_url:  # read counters and throttles of earlier tests must not leak in
        redis = Redis.from_url(settings.redis_url)
        async for key in redis.scan_iter(f"{settings.redis_namespace}*"):
            await redis.delete(key)
        await redis.aclose()
    app = create_app(settings, clock=clock)
    async with _lifespan(app), AppClient(app, PUBLIC_ORIGIN) as http:
        yield http


@dataclass(frozen=True)
class MspSide:
    """An MSP with two clients, business hours, rules and the incident's documents.

    `documents` maps a role in the story to a document id: `network`, `configuration`, `sop`,
    `credential` (Contoso, in scope), `other_client` (Fabrikam's) and `never_shared` (Contoso's,
    tagged `NEVER_SHARE_TAG`). Every body, the credential's password and the titles of the last
    two carry `marker`, so that a response can be searched for any leaked byte of content.
    """

    tenant: service.TenantInfo
    admin: Person
    token: str
    contoso: uuid.UUID
    fabrikam: uuid.UUID
    marker: str
    documents: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass(frozen=True)
class NocSide:
    """A NOC tenant with an admin and one client_secret_basic OAuth client."""

    tenant: service.TenantInfo
    admin: Person
    client_id: str
    secret: str


def _documents(msp: MspSide) -> list[tuple[str, dict[str, Any]]]:
    mark = msp.marker
    return [
        (
            "network",
            {
                "kind": "network",
                "client_id": str(msp.contoso),
                "tags": ["core"],
                "title": "Contoso Hamburg network",
                "body": f"VLAN 10 core {mark}-network",
            },
        ),
        (
            "configuration",
            {
                "kind": "configuration",
                "client_id": str(msp.contoso),
                "title": "HH-CORE-1 switch configuration",
                "body": f"hostname HH-CORE-1 {mark}-configuration",
            },
        ),
        (
            "sop",
            {
                "kind": "sop",
                "client_id": str(msp.contoso),
                "title": "Core switch outage",
                "body": f"1. check power {mark}-sop",
            },
        ),
        (
            "credential",
            {
                "kind": "credential",
                "client_id": str(msp.contoso),
                "title": "HH-CORE-1 admin",
                "fields": {"username": "admin", "password": f"{mark}-password"},
            },
        ),
        (
            "other_client",
            {
                "kind": "network",
                "client_id": str(msp.fabrikam),
                "title": f"Fabrikam office network {mark}",
                "body": f"VLAN 20 {mark}-other-client",
            },
        ),
        (
            "never_shared",
            {
                "kind": "configuration",
                "client_id": str(msp.contoso),
                "tags": [NEVER_SHARE_TAG],
                "title": f"Board room AV {mark}",
                "body": f"do not share {mark}-never-shared",
            },
        ),
    ]


async def make_msp_side(
    http: Any, *, hours: dict[str, Any] | None = None, max_grant_hours: int = 120
) -> MspSide:
    """An MSP set up as the story needs it; schedule, rules and documents go through the API."""
    tenant = await make_tenant("msp")
    admin = await make_person(tenant)
    contoso = await clients.create_client(admin.actor, name="Contoso Ltd", short_code="CONTOSO")
    fabrikam = await clients.create_client(admin.actor, name="Fabrikam Inc", short_code="FABRIKAM")
    msp = MspSide(
        tenant=tenant,
        admin=admin,
        token=await api_token(admin),
        contoso=contoso.id,
        fabrikam=fabrikam.id,
        marker=f"sg-marker-{uuid.uuid4().hex[:10]}",
    )
    response = await http.put(
        "/api/v1/schedule", json={"hours": hours or BUSINESS_HOURS}, headers=msp.headers
    )
    assert response.status_code == 200, response.text
    rules = {"max_grant_hours": max_grant_hours, "never_share_tags": [NEVER_SHARE_TAG]}
    response = await http.put("/api/v1/rules", json=rules, headers=msp.headers)
    assert response.status_code == 200, response.text
    for role, document in _documents(msp):
        response = await http.post("/api/v1/documents", json=document, headers=msp.headers)
        assert response.status_code == 201, response.text
        msp.documents[role] = uuid.UUID(response.json()["id"])
    return msp


NOC_SCOPES = ("partner:read", "partner:notes", "partner:break_glass")
"""Everything a NOC's tooling needs in a shift: read, post notes, break glass."""


async def make_noc_side() -> NocSide:
    """A NOC whose OAuth client may ask for every partner scope (`NOC_SCOPES`)."""
    tenant = await make_tenant("noc")
    admin = await make_person(tenant)
    view, secret = await secret_client(admin, scopes=NOC_SCOPES)
    return NocSide(tenant, admin, view.client_id, secret)


async def partner_up(msp: MspSide, noc: NocSide, ceiling: Ceiling = STORY_CEILING) -> uuid.UUID:
    """An active partnership MSP -> NOC (invited and accepted); its id."""
    invited = await partnerships.invite(msp.admin.actor, noc_slug=noc.tenant.slug, ceiling=ceiling)
    await partnerships.act(noc.admin.actor, invited.id, PartnershipAction.ACCEPT)
    return invited.id


def handoff_body(msp: MspSide, noc: NocSide, **fields: Any) -> dict[str, Any]:
    """A valid `POST /api/v1/handoffs` body for PSA-4411 (Contoso, P1), with `fields` on top."""
    return {
        "partner": noc.tenant.slug,
        "client_id": str(msp.contoso),
        "psa_reference": "PSA-4411",
        "summary": f"Core switch down at Contoso Hamburg {msp.marker}-summary",
        "severity": "P1",
        **fields,
    }


async def hand_off(http: Any, msp: MspSide, noc: NocSide, **fields: Any) -> dict[str, Any]:
    """Hand PSA-4411 to `noc`; the created handoff (with its grant)."""
    response = await http.post(
        "/api/v1/handoffs", json=handoff_body(msp, noc, **fields), headers=msp.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def grant_token(
    http: Any, noc: NocSide, grant_id: str | uuid.UUID, scopes: Iterable[str] = NOC_SCOPES
) -> str:
    """An access token of `noc`'s client bound to the grant: scope `<scopes> grant:<id>`."""
    response = await request_token(
        http, noc.client_id, noc.secret, scope=" ".join([*scopes, f"grant:{grant_id}"])
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
