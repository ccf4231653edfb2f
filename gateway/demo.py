"""Demo data: Northwind IT (MSP), NightOwl NOC, their people and an active partnership.

Seeding twice changes nothing. Generated secrets are kept in `var/demo.json` (mode 0600) so that
`shiftgate demo` can print them again; a secret that no longer works there is replaced.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.app import root_key_provider
from gateway.settings import Settings
from policies.ceiling import Ceiling
from policies.decision import MspRules
from policies.schedule import BusinessHours, Weekday
from sharing import accounts, clients, handoffs, partner_clients, partnerships, schedules
from sharing.clock import DatabaseClock
from sharing.handoffs import GrantView, Severity4
from sharing.importer import import_markdown
from sharing.partnerships import PartnershipAction, PartnershipStatus
from tenants import service
from tenants.errors import NotFound
from tenants.keyring import KeyRing
from tenants.oauth_clients import AuthMethod, PartnerScope, load_client
from tenants.passwords import hash_password, verify_password
from tenants.roles import Actor, ActorKind, Role
from tenants.tables import ApiToken, User

__all__ = ["seed_demo"]

_MSP = {"name": "Northwind IT", "slug": "northwind", "kind": "msp", "zone": "Europe/Berlin"}
_NOC = {"name": "NightOwl NOC", "slug": "nightowl", "kind": "noc", "zone": "America/New_York"}
_PEOPLE = [
    ("northwind", "admin@northwind.example", "Nora Admin", Role.ADMIN),
    ("northwind", "tech@northwind.example", "Theo Technician", Role.TECHNICIAN),
    ("northwind", "auditor@northwind.example", "Otto Auditor", Role.AUDITOR),
    ("nightowl", "admin@nightowl.example", "Nick Admin", Role.ADMIN),
    ("nightowl", "tech@nightowl.example", "Tia Technician", Role.TECHNICIAN),
    ("nightowl", "auditor@nightowl.example", "Ada Auditor", Role.AUDITOR),
]
_CLIENTS = [
    ("Contoso Ltd", "CONTOSO", "Manufacturing, two sites, 24/7 production line."),
    ("Fabrikam Inc", "FABRIKAM", "Law firm, one office, strict confidentiality."),
]
_TOKEN_NAME = "demo"
_OAUTH_CLIENT_NAME = "NightOwl tooling (demo)"
_SAMPLES = Path(__file__).parent / "sample_docs"


def _facts_path(settings: Settings) -> Path:
    return settings.var_dir / "demo.json"


def _load_facts(settings: Settings) -> dict[str, Any]:
    try:
        return dict(json.loads(_facts_path(settings).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _save_facts(settings: Settings, facts: dict[str, Any]) -> None:
    path = _facts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(facts, handle, indent=2)


async def _tenant(spec: dict[str, str], system: Actor) -> service.TenantInfo:
    try:
        return await service.get_tenant_by_slug(spec["slug"])
    except NotFound:
        return await accounts.create_tenant(
            name=spec["name"],
            slug=spec["slug"],
            kind=spec["kind"],
            time_zone=spec["zone"],
            actor=system,
        )


async def _person(
    tenant: service.TenantInfo,
    email: str,
    name: str,
    role: Role,
    known_password: str | None,
    system: Actor,
) -> str:
    """Ensure the user exists with a password we can print; return that password."""
    row = await service.user_by_email(email)
    if row is None:
        password = secrets.token_urlsafe(12)
        await accounts.create_user(
            email=email,
            display_name=name,
            password=password,
            tenant_id=tenant.id,
            role=role.value,
            actor=system,
        )
        return password
    if known_password and verify_password(known_password, row["password_hash"]):
        return known_password
    password = secrets.token_urlsafe(12)
    await User.update({User.password_hash: hash_password(password)}).where(User.id == row["id"])
    return password


async def _api_token(tenant: service.TenantInfo, known: str | None, admin: Actor) -> str:
    now = datetime.now(UTC)
    if known:
        actor = await service.actor_for_token(known, now)
        if actor is not None and actor.tenant_id == tenant.id:
            return known
    await ApiToken.update({ApiToken.revoked_at: now}).where(
        (ApiToken.tenant_id == tenant.id)
        & (ApiToken.name == _TOKEN_NAME)
        & ApiToken.revoked_at.is_null()
    )
    issued = await accounts.issue_api_token(
        admin, name=_TOKEN_NAME, scopes=["read", "write", "handoff", "audit"], expires_in_days=366
    )
    return issued.secret


async def _oauth_client(noc_admin: Actor, known: dict[str, str] | None) -> dict[str, str]:
    """The demo NOC's client_secret_basic client; a new secret when the remembered one fails."""
    now = datetime.now(UTC)
    existing = next(
        (c for c in await partner_clients.list_clients(noc_admin) if c.name == _OAUTH_CLIENT_NAME),
        None,
    )
    if existing is not None and known and known.get("client_id") == existing.client_id:
        loaded = await load_client(existing.client_id, now)
        if loaded is not None and loaded.secret_matches(known.get("client_secret", "")):
            return known
    if existing is None:
        view, secret = await partner_clients.register_client(
            noc_admin,
            name=_OAUTH_CLIENT_NAME,
            auth_method=AuthMethod.CLIENT_SECRET_BASIC,
            scopes=[scope.value for scope in PartnerScope],
        )
    else:
        view, secret = await partner_clients.rotate_credentials(
            noc_admin, existing.id, overlap_hours=0
        )
    assert secret is not None
    return {"client_id": view.client_id, "client_secret": secret}


_HOURS = BusinessHours(
    time_zone="Europe/Berlin",
    weekly={
        day: [["08:00", "18:00"]]
        for day in (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
    },
    holidays=[
        date(2026, 12, 24),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 12, 31),
        date(2027, 1, 1),
    ],
)


async def _schedule(msp_admin: Actor) -> None:
    """Business hours (holidays included) and a rule that keeps internal notes in-house."""
    if await schedules.load_schedule(msp_admin.tenant_id) is None:  # type: ignore[arg-type]
        await schedules.set_schedule(msp_admin, _HOURS, handback_buffer_minutes=0)
        await schedules.set_rules(msp_admin, MspRules(never_share_tags=["internal"]))


async def _live_grant(
    msp_admin: Actor, keyring: KeyRing, noc_slug: str, client_id: uuid.UUID
) -> GrantView:
    """A handoff that is active now and for hours yet, whatever the time of day."""
    clock = DatabaseClock()
    now = await clock.now()
    for grant in await handoffs.list_grants(msp_admin, clock, live_only=True):
        if grant.psa_reference.startswith("DEMO-") and grant.ends_at > now + timedelta(hours=2):
            return grant
    made = await handoffs.create_handoff(
        msp_admin,
        keyring,
        clock,
        partner=noc_slug,
        client_id=client_id,
        psa_reference=f"DEMO-{now:%m%d%H%M}",
        summary="Core switch down at Contoso Hamburg: production line offline since 17:40.",
        severity=Severity4.P1,
        ends_at=now + timedelta(hours=12),
    )
    return made.grant


async def seed_demo(settings: Settings) -> dict[str, Any]:
    """Create what is missing of the demo; return the demo facts (logins, token, ids)."""
    system = Actor.system("demo")
    previous = _load_facts(settings)
    known_passwords = {login["email"]: login["password"] for login in previous.get("logins", [])}
    msp = await _tenant(_MSP, system)
    noc = await _tenant(_NOC, system)
    tenants = {msp.slug: msp, noc.slug: noc}
    logins = []
    for slug, email, name, role in _PEOPLE:
        password = await _person(
            tenants[slug], email, name, role, known_passwords.get(email), system
        )
        logins.append({"tenant": slug, "role": role.value, "email": email, "password": password})

    msp_admin = Actor(
        kind=ActorKind.SYSTEM, id=None, label="demo", tenant_id=msp.id, tenant_kind=msp.kind
    )
    noc_admin = Actor(
        kind=ActorKind.SYSTEM, id=None, label="demo", tenant_id=noc.id, tenant_kind=noc.kind
    )
    existing = {c.short_code: c for c in await clients.list_clients(msp_admin)}
    client_ids = {}
    for name, code, notes in _CLIENTS:
        client = existing.get(code) or await clients.create_client(
            msp_admin, name=name, short_code=code, notes=notes
        )
        client_ids[code] = str(client.id)

    open_states = {PartnershipStatus.ACTIVE, PartnershipStatus.INVITED, PartnershipStatus.SUSPENDED}
    current = next(
        (
            p
            for p in await partnerships.list_partnerships(msp_admin)
            if p.noc.id == noc.id and p.status in open_states
        ),
        None,
    )
    if current is None:
        current = await partnerships.invite(
            msp_admin, noc_slug=noc.slug, ceiling=Ceiling(max_grant_hours=120, secrets_allowed=True)
        )
    if current.status is PartnershipStatus.INVITED:
        current = await partnerships.act(noc_admin, current.id, PartnershipAction.ACCEPT)
    if current.status is PartnershipStatus.SUSPENDED:
        suspender = msp_admin if current.suspended_by == msp.id else noc_admin
        current = await partnerships.act(suspender, current.id, PartnershipAction.RESUME)

    token = await _api_token(msp, previous.get("api_token"), msp_admin)
    keyring = KeyRing(root_key_provider(settings))
    report = await import_markdown(msp_admin, keyring, _SAMPLES)
    if report.errors:
        raise RuntimeError(f"sample documents failed to import: {report.errors}")
    oauth = await _oauth_client(noc_admin, previous.get("oauth_client"))
    await _schedule(msp_admin)
    grant = await _live_grant(msp_admin, keyring, noc.slug, uuid.UUID(client_ids["CONTOSO"]))
    facts: dict[str, Any] = {
        "portal_url": settings.base_url,
        "msp": {"name": msp.name, "slug": msp.slug, "id": str(msp.id)},
        "noc": {"name": noc.name, "slug": noc.slug, "id": str(noc.id)},
        "clients": client_ids,
        "partnership_id": str(current.id),
        "logins": logins,
        "api_token": token,
        "oauth_client": oauth,
        "grant_id": str(grant.id),
        "handoff_id": str(grant.handoff_id),
        "grant_ends_at": grant.ends_at.isoformat(),
        "documents": report.created + report.updated + report.unchanged,
    }
    _save_facts(settings, facts)
    return facts
